"""The family adapter: everything coe needs to know about one MoE architecture.

A family is declared as data (a frozen dataclass), never guessed from module
class names. Code elsewhere asks the family where routers and experts live,
what the router's weights mean and along which axis each per-expert tensor is
indexed; it never branches on a model type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gguf.constants import MODEL_ARCH, MODEL_ARCH_NAMES, MODEL_TENSOR, TENSOR_NAMES

__all__ = ["RouterSemantics", "HFExpertTensor", "GGUFExpertTensor", "MoEFamily"]

RouterOutputField = Literal["probs", "weights", "index", "logits", "_"]


@dataclass(frozen=True)
class RouterSemantics:
    """How a router turns logits into the weights its experts are mixed with.

    Attributes:
        scoring: "softmax" over all experts or per-expert "sigmoid".
        renormalize_topk: whether the top-k weights are renormalised to sum to 1.
        per_expert_scale: whether a learned per-expert scale multiplies the weights.
        group_limited: whether experts are picked within groups first (DeepSeek-V3).
    """

    scoring: Literal["softmax", "sigmoid"]
    renormalize_topk: bool
    per_expert_scale: bool
    group_limited: bool = False

    def describe(self) -> str:
        """One-line human description, stored in profile metadata."""
        parts = [f"{self.scoring} over all experts", "top-k"]
        if self.group_limited:
            parts.insert(1, "group-limited")
        if self.renormalize_topk:
            parts.append("renormalised over the top-k")
        if self.per_expert_scale:
            parts.append("times per_expert_scale")
        return ", ".join(parts)


@dataclass(frozen=True)
class HFExpertTensor:
    """A per-expert parameter of a Hugging Face MoE layer.

    Attributes:
        name: parameter path relative to the decoder layer ("experts.down_proj").
        expert_axis: the axis indexed by expert id.
    """

    name: str
    expert_axis: int


@dataclass(frozen=True)
class GGUFExpertTensor:
    """A per-expert tensor of a GGUF MoE block.

    ``GGUFReader`` arrays have ggml's dimensions reversed, so for every tensor
    here the expert axis is numpy axis 0 (ggml's outermost dimension).

    Attributes:
        tensor: gguf-py's tensor kind, naming the tensor via ``TENSOR_NAMES``.
        suffix: "weight", "bias" or "scale".
        optional: whether a valid file may lack it (split vs fused gate/up, side tensors).
    """

    tensor: MODEL_TENSOR
    suffix: str = "weight"
    optional: bool = False

    def name(self, block: int) -> str:
        """Full tensor name in block ``block``, e.g. ``blk.3.ffn_down_exps.weight``."""
        return f"{TENSOR_NAMES[self.tensor].format(bid=block)}.{self.suffix}"


@dataclass(frozen=True)
class MoEFamily:
    """Declarative description of one MoE architecture.

    Attributes:
        name: registry name ("gemma4").
        hf_model_types: HF ``config.model_type`` values this family covers.
        gguf_arch: llama.cpp's architecture (``general.architecture``).
        layers_paths: candidate module paths of the decoder-layer list, tried in
            order (text-only and multimodal checkpoints nest them differently).
        text_config_key: sub-config holding the text model's settings, if any.
        router_module: router module path, relative to a decoder layer.
        router_output: what each element of the router module's output tuple is.
        experts_module: expert-collection module path, relative to a decoder layer.
        num_experts_key / top_k_key: config keys for the expert count and top-k.
        moe_flag_key: config key that switches MoE blocks on, if the family has one.
        router: the router's weight semantics.
        hf_expert_tensors: per-expert parameters (router rows included).
        gguf_expert_tensors: per-expert GGUF tensors (router rows included).
        shared_modules: modules of a decoder layer that are never pruned.
        fused_gate_up: whether HF stores gate and up projections in one tensor.
    """

    name: str
    hf_model_types: tuple[str, ...]
    gguf_arch: MODEL_ARCH
    layers_paths: tuple[str, ...]
    router_module: str
    router_output: tuple[RouterOutputField, ...]
    experts_module: str
    num_experts_key: str
    top_k_key: str
    router: RouterSemantics
    hf_expert_tensors: tuple[HFExpertTensor, ...]
    gguf_expert_tensors: tuple[GGUFExpertTensor, ...]
    moe_flag_key: str | None = None
    text_config_key: str | None = None
    shared_modules: tuple[str, ...] = field(default_factory=tuple)
    fused_gate_up: bool = True

    @property
    def gguf_arch_name(self) -> str:
        """The ``general.architecture`` string llama.cpp writes for this family."""
        return MODEL_ARCH_NAMES[self.gguf_arch]

    def router_field(self, output: tuple, field_name: RouterOutputField):
        """Pick one named element out of a router module's output tuple."""
        return output[self.router_output.index(field_name)]
