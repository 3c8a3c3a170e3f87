"""Family adapters, looked up by HF ``model_type`` or GGUF architecture."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coe.errors import ConfigError
from coe.families.base import GGUFExpertTensor, HFExpertTensor, MoEFamily, RouterSemantics
from coe.registry import Registry

__all__ = [
    "FAMILIES",
    "MoEFamily",
    "MoELayout",
    "RouterSemantics",
    "HFExpertTensor",
    "GGUFExpertTensor",
    "family_for_model_type",
    "family_for_gguf_arch",
    "layout_from_hf_config",
]

FAMILIES: Registry[MoEFamily] = Registry("family", {"gemma4": "coe.families.gemma4:GEMMA4"})


@dataclass(frozen=True)
class MoELayout:
    """The MoE shape of one concrete model: which blocks, how many experts, top-k."""

    moe_layers: tuple[int, ...]
    num_experts: int
    top_k: int


def family_for_model_type(model_type: str) -> MoEFamily:
    """The family whose ``hf_model_types`` contains ``model_type``."""
    for _, family in FAMILIES.items():
        if model_type in family.hf_model_types:
            return family
    known = sorted(t for _, f in FAMILIES.items() for t in f.hf_model_types)
    raise ConfigError(f"no family adapter knows HF model_type {model_type!r}; known: {', '.join(known)}")


def family_for_gguf_arch(arch: str) -> MoEFamily:
    """The family whose GGUF ``general.architecture`` is ``arch``."""
    for _, family in FAMILIES.items():
        if family.gguf_arch_name == arch:
            return family
    known = sorted(f.gguf_arch_name for _, f in FAMILIES.items())
    raise ConfigError(f"no family adapter knows GGUF architecture {arch!r}; known: {', '.join(known)}")


def text_config(family: MoEFamily, config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The sub-config that holds the text model's settings (or ``config`` itself)."""
    if family.text_config_key and isinstance(config.get(family.text_config_key), Mapping):
        return config[family.text_config_key]
    return config


def layout_from_hf_config(config: Mapping[str, Any]) -> tuple[MoEFamily, MoELayout]:
    """Family and MoE layout from an HF ``config.json`` dict, without loading weights.

    Raises:
        ConfigError: unknown model type, or a model with no MoE blocks.
    """
    family = family_for_model_type(str(config.get("model_type")))
    text = text_config(family, config)
    if family.moe_flag_key and not text.get(family.moe_flag_key, False):
        raise ConfigError(f"this {family.name} model has {family.moe_flag_key}=false: it has no experts to profile or prune")
    try:
        num_experts = int(text[family.num_experts_key])
        top_k = int(text[family.top_k_key])
        num_layers = int(text["num_hidden_layers"])
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{family.name} config lacks {exc}; is this a complete config.json?") from exc
    return family, MoELayout(moe_layers=tuple(range(num_layers)), num_experts=num_experts, top_k=top_k)
