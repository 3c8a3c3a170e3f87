"""Per-token expert picks of one sequence, read from llama.cpp's MoE graph as it is computed.

llama.cpp names the routing tensors of each MoE layer ``il``:
``ffn_moe_topk-<il>`` (the picked experts, best first: a strided view of the
argsort of the router probabilities) and ``ffn_moe_weights-<il>`` (each pick's
softmax probability over all experts, before top-k renormalisation and the
per-expert scale). A sequence longer than the context's micro-batch is
computed as several graphs, in token order; a cursor per tensor lines the
pieces up.
"""

from __future__ import annotations

import re

import numpy as np

from coe.errors import FormatError
from coe.families import MoELayout
from coe.llamacpp.runtime import read_tensor

__all__ = ["ROUTING_TENSOR", "RoutingCapture"]

ROUTING_TENSOR = re.compile(r"ffn_moe_(topk|weights)-(\d+)")


class RoutingCapture:
    """Collect ``picks`` and ``weights`` [L, T, top_k] of one decoded sequence; pass as a GGUFRuntime callback."""

    def __init__(self, layout: MoELayout) -> None:
        self.layout = layout
        self._pieces: dict[tuple[str, int], list[np.ndarray]] = {}

    @staticmethod
    def want(name: str) -> bool:
        """Whether llama.cpp should hand over the graph tensor ``name``."""
        return ROUTING_TENSOR.fullmatch(name) is not None

    def __call__(self, name: str, tensor) -> None:
        kind, block = ROUTING_TENSOR.fullmatch(name).groups()
        self._pieces.setdefault((kind, int(block)), []).append(read_tensor(tensor).reshape(-1, self.layout.top_k))

    def take(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(picks int64, weights float32), each [L, length, top_k], for the sequence just decoded; then reset.

        Raises:
            FormatError: a MoE layer did not report exactly ``length`` tokens
                (a llama.cpp build whose graph names differ from what coe expects).
        """
        pieces, self._pieces = self._pieces, {}
        out = []
        for kind, dtype in (("topk", np.int64), ("weights", np.float32)):
            layers = []
            for block in self.layout.moe_layers:
                parts = pieces.get((kind, block), [])
                values = np.concatenate(parts) if parts else np.zeros((0, self.layout.top_k))
                if values.shape != (length, self.layout.top_k):
                    raise FormatError(
                        f"llama.cpp reported ffn_moe_{kind}-{block} as {values.shape}, expected ({length}, "
                        f"{self.layout.top_k}); this build's MoE graph is not what coe expects"
                    )
                layers.append(values.astype(dtype))
            out.append(np.stack(layers))
        return out[0], out[1]
