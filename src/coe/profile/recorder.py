"""Forward hooks that accumulate router statistics on the model's device.

:class:`RouterRecorder` is a context manager: entering attaches one forward
hook per MoE router, leaving detaches them all. Statistics stay on the model's
device (no host sync per layer per batch); :meth:`RouterRecorder.result`
copies them to numpy once, at the end.
"""

from __future__ import annotations

from types import TracebackType

import numpy as np
import torch
from torch import nn

from coe.errors import ConfigError
from coe.families import MoEFamily, MoELayout

__all__ = ["RouterRecorder", "WEIGHT_SEMANTICS", "find_moe_layers"]

# Which router weight ``weight_sum`` sums. The full-softmax probability of a pick,
# before top-k renormalisation and per_expert_scale, is the seed method's choice:
# it measures the router's confidence against all experts, whereas renormalised
# weights always sum to 1 over the picks and hide how sure the router was.
WEIGHT_SEMANTICS = "router probability of the pick over all experts, before top-k renormalisation and per-expert scale"


def find_moe_layers(model: nn.Module, family: MoEFamily, layout: MoELayout) -> list[nn.Module]:
    """The decoder layers that hold routers, in ``layout.moe_layers`` order.

    Raises:
        ConfigError: the model has none of the family's layer paths, or a listed
            block has no router.
    """
    for path in family.layers_paths:
        try:
            layers = model.get_submodule(path)
        except AttributeError:
            continue
        found = []
        for block in layout.moe_layers:
            layer = layers[block]
            try:
                found.append(layer.get_submodule(family.router_module))
            except AttributeError as exc:
                raise ConfigError(f"block {block} has no {family.router_module!r} module") from exc
        return found
    raise ConfigError(f"model has none of the {family.name} layer paths {list(family.layers_paths)}")


class RouterRecorder:
    """Accumulate ``counts`` and ``weight_sum`` [L, E, R] from every router.

    Set the per-token count mask for each forward pass with :meth:`counting`;
    tokens outside it (padding, BOS) leave every statistic unchanged.
    """

    def __init__(self, routers: list[nn.Module], family: MoEFamily, layout: MoELayout, device: torch.device) -> None:
        self.routers = routers
        self.family = family
        self.layout = layout
        shape = (len(routers), layout.num_experts * layout.top_k)  # [L, E*R], flat for index_add_
        self.counts = torch.zeros(shape, dtype=torch.int64, device=device)
        self.weight_sum = torch.zeros(shape, dtype=torch.float64, device=device)
        self.n_tokens = torch.zeros((), dtype=torch.int64, device=device)
        self._rank = torch.arange(layout.top_k, device=device)  # [R]
        self._mask: torch.Tensor | None = None
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> RouterRecorder:
        for slot, router in enumerate(self.routers):
            self._handles.append(router.register_forward_hook(self._hook(slot)))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def counting(self, count_mask: torch.Tensor) -> None:
        """Set the [batch, seq] bool mask of the tokens the next forward pass counts."""
        self._mask = count_mask.reshape(-1)
        self.n_tokens += self._mask.sum()

    def _hook(self, slot: int):
        def hook(module: nn.Module, args: tuple, output: tuple) -> None:
            self._record(slot, output)

        return hook

    def _record(self, slot: int, output: tuple) -> None:
        if self._mask is None:
            raise RuntimeError("RouterRecorder.counting() must be called before each forward pass")
        probs = self.family.router_field(output, "probs")  # [N, E]
        index = self.family.router_field(output, "index")  # [N, R]
        mask = self._mask.to(probs.dtype)[:, None]  # [N, 1]
        picked = probs.gather(1, index) * mask  # [N, R]
        flat = (index * self.layout.top_k + self._rank).reshape(-1)  # [N*R] = e*R + r
        self.counts[slot].index_add_(0, flat, mask.to(torch.int64).expand_as(index).reshape(-1))
        self.weight_sum[slot].index_add_(0, flat, picked.reshape(-1).to(torch.float64))

    def result(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(counts [L, E, R], weight_sum [L, E, R], n_tokens), copied to the host once."""
        shape = (len(self.routers), self.layout.num_experts, self.layout.top_k)
        return (
            self.counts.cpu().numpy().reshape(shape),
            self.weight_sum.cpu().numpy().reshape(shape),
            int(self.n_tokens.item()),
        )
