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

__all__ = ["RouterRecorder", "WEIGHT_SEMANTICS", "find_moe_layers", "expert_output"]

# Which router weight ``weight_sum`` sums. The full-softmax probability of a pick,
# before top-k renormalisation and per_expert_scale, is the seed method's choice:
# it measures the router's confidence against all experts, whereas renormalised
# weights always sum to 1 over the picks and hide how sure the router was.
WEIGHT_SEMANTICS = "router probability of the pick over all experts, before top-k renormalisation and per-expert scale"


def find_moe_layers(model: nn.Module, family: MoEFamily, layout: MoELayout) -> list[nn.Module]:
    """The decoder layers of ``layout.moe_layers``, in order, each checked to hold a router.

    Raises:
        ConfigError: the model has none of the family's layer paths, or a listed
            block has no router.
    """
    for path in family.layers_paths:
        try:
            layers = model.get_submodule(path)
        except AttributeError:
            continue
        found = [layers[block] for block in layout.moe_layers]
        for block, layer in zip(layout.moe_layers, found, strict=True):
            try:
                layer.get_submodule(family.router_module)
            except AttributeError as exc:
                raise ConfigError(f"block {block} has no {family.router_module!r} module") from exc
        return found
    raise ConfigError(f"model has none of the {family.name} layer paths {list(family.layers_paths)}")


class RouterRecorder:
    """Accumulate ``counts`` and ``weight_sum`` [L, E, R] from every router.

    Set the per-token count mask for each forward pass with :meth:`counting`;
    tokens outside it (padding, BOS) leave every statistic unchanged.

    With ``gate_out_norm=True`` it also accumulates REAP's statistic
    ``gate_out_norm_sum`` [L, E]: the sum over routed tokens of the expert's
    mixing weight times the norm of its output. That recomputes every routed
    expert's output once more, so it is off unless asked for.
    """

    def __init__(
        self,
        layers: list[nn.Module],
        family: MoEFamily,
        layout: MoELayout,
        device: torch.device,
        gate_out_norm: bool = False,
    ) -> None:
        self.layers = layers
        self.family = family
        self.layout = layout
        shape = (len(layers), layout.num_experts * layout.top_k)  # [L, E*R], flat for index_add_
        self.counts = torch.zeros(shape, dtype=torch.int64, device=device)
        self.weight_sum = torch.zeros(shape, dtype=torch.float64, device=device)
        self.n_tokens = torch.zeros((), dtype=torch.int64, device=device)
        self._rank = torch.arange(layout.top_k, device=device)  # [R]
        self.gate_out_norm_sum = (
            torch.zeros((len(layers), layout.num_experts), dtype=torch.float64, device=device) if gate_out_norm else None
        )
        self._mask: torch.Tensor | None = None
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> RouterRecorder:
        for slot, layer in enumerate(self.layers):
            router = layer.get_submodule(self.family.router_module)
            self._handles.append(router.register_forward_hook(self._hook(slot)))
            if self.gate_out_norm_sum is not None:
                experts = layer.get_submodule(self.family.experts_module)
                self._handles.append(experts.register_forward_hook(self._experts_hook(slot)))
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

    def _experts_hook(self, slot: int):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            hidden, index, weights = args[:3]  # [N, H], [N, R], [N, R]
            self._record_gate_out_norm(slot, module, hidden, index, weights)

        return hook

    def _record_gate_out_norm(
        self, slot: int, experts: nn.Module, hidden: torch.Tensor, index: torch.Tensor, weights: torch.Tensor
    ) -> None:
        mask = self._mask.to(weights.dtype)  # [N]
        for expert in range(self.layout.num_experts):
            token, rank = torch.where(index == expert)
            if token.numel() == 0:
                continue
            out = expert_output(experts, expert, hidden[token], self.family.fused_gate_up)  # [n, H]
            contrib = weights[token, rank] * out.float().norm(dim=-1) * mask[token]  # [n]
            self.gate_out_norm_sum[slot, expert] += contrib.sum().double()

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

    def result(self) -> tuple[np.ndarray, np.ndarray, int, dict[str, np.ndarray]]:
        """(counts [L, E, R], weight_sum [L, E, R], n_tokens, extras), copied to the host once."""
        shape = (len(self.layers), self.layout.num_experts, self.layout.top_k)
        extras = {}
        if self.gate_out_norm_sum is not None:
            extras["gate_out_norm_sum"] = self.gate_out_norm_sum.cpu().numpy()
        return (
            self.counts.cpu().numpy().reshape(shape),
            self.weight_sum.cpu().numpy().reshape(shape),
            int(self.n_tokens.item()),
            extras,
        )


def expert_output(experts: nn.Module, expert: int, hidden: torch.Tensor, fused_gate_up: bool) -> torch.Tensor:
    """One expert's output for ``hidden`` [n, H], before the router weight. [n, H]

    For transformers' 3-D expert layout (``gate_up_proj`` [E, 2F, H] or
    ``gate_proj``/``up_proj`` [E, F, H], ``down_proj`` [E, H, F], ``act_fn``).
    """
    if fused_gate_up:
        gate, up = nn.functional.linear(hidden, experts.gate_up_proj[expert]).chunk(2, dim=-1)
    else:
        gate = nn.functional.linear(hidden, experts.gate_proj[expert])
        up = nn.functional.linear(hidden, experts.up_proj[expert])
    return nn.functional.linear(experts.act_fn(gate) * up, experts.down_proj[expert])
