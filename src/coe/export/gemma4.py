"""Gemma 4 specifics of the HF -> GGUF export: llama.cpp's ``gemma4`` keys and tensor names.

Mirrors what llama.cpp's own converter writes (``conversion/gemma.py``,
``Gemma4Model``) and what its loader reads (``src/models/gemma4.cpp``):
per-layer head dims and KV heads for sliding and full attention, the sliding
window pattern, and the ``rope_freqs`` tensor that turns ggml's NeoX rope into
Gemma 4's "proportional" rope on full-attention layers.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from gguf import GGUFWriter
from gguf.constants import MODEL_TENSOR, TENSOR_NAMES

from coe.errors import ConfigError

__all__ = ["write_metadata", "rename", "extra_tensors"]

_BLOCK = re.compile(r"\.layers\.(\d+)\.")


def _layer(config: Any, i: int) -> Any:
    return config.per_layer_config[i]


def _full_attention(config: Any) -> int:
    return next((i for i, t in enumerate(config.layer_types) if t == "full_attention"), -1)


def write_metadata(writer: GGUFWriter, config: Any) -> None:
    """Every ``gemma4.*`` hyperparameter llama.cpp reads, from a ``Gemma4TextConfig``."""
    if config.hidden_size_per_layer_input or config.num_kv_shared_layers or config.attention_k_eq_v:
        raise ConfigError("export supports MoE Gemma 4 (26B-A4B-like): no per-layer inputs, shared KV or k_eq_v")
    n = config.num_hidden_layers
    swa = [t == "sliding_attention" for t in config.layer_types]
    full = _full_attention(config)
    head_swa = config.head_dim
    head_full = _layer(config, full).head_dim if full >= 0 else head_swa
    rope = config.rope_parameters
    writer.add_block_count(n)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    kv = [_layer(config, i).num_key_value_heads for i in range(n)]
    writer.add_head_count_kv(kv[0] if len(set(kv)) == 1 else kv)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_key_length(head_full)
    writer.add_value_length(head_full)
    writer.add_key_length_swa(head_swa)
    writer.add_value_length_swa(head_swa)
    writer.add_rope_dimension_count(head_full)  # the unrotated part is in rope_freqs
    writer.add_rope_dimension_count_swa(int(head_swa * rope["sliding_attention"].get("partial_rotary_factor", 1.0)))
    writer.add_rope_freq_base(rope["full_attention"]["rope_theta"])
    writer.add_rope_freq_base_swa(rope["sliding_attention"]["rope_theta"])
    writer.add_sliding_window(config.sliding_window)
    writer.add_sliding_window_pattern(swa)
    writer.add_shared_kv_layers(0)
    writer.add_embedding_length_per_layer_input(0)
    if config.final_logit_softcapping:
        writer.add_final_logit_softcapping(config.final_logit_softcapping)
    if config.enable_moe_block:
        writer.add_expert_count(config.num_experts)
        writer.add_expert_used_count(config.top_k_experts)
        writer.add_expert_feed_forward_length(config.moe_intermediate_size)


def rename(hf_name: str, name_map: Any) -> str | None:
    """The GGUF name of an HF tensor (None: not exported, e.g. a tied ``lm_head``)."""
    block = _BLOCK.search(hf_name)
    bid = int(block.group(1)) if block else None
    special = {
        "router.scale": (MODEL_TENSOR.FFN_GATE_INP, "scale"),
        "router.per_expert_scale": (MODEL_TENSOR.FFN_DOWN_EXP, "scale"),
        "layer_scalar": (MODEL_TENSOR.LAYER_OUT_SCALE, "weight"),
        "experts.gate_up_proj": (MODEL_TENSOR.FFN_GATE_UP_EXP, "weight"),
        "experts.down_proj": (MODEL_TENSOR.FFN_DOWN_EXP, "weight"),
    }
    for suffix, (tensor, kind) in special.items():
        if bid is not None and hf_name.endswith(f".{suffix}"):
            return f"{TENSOR_NAMES[tensor].format(bid=bid)}.{kind}"
    return name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))


def extra_tensors(config: Any) -> list[tuple[str, np.ndarray]]:
    """``rope_freqs``: 1 for the rotated pairs of full attention, 1e30 (no rotation) for the rest."""
    full = _full_attention(config)
    if full < 0:
        return []
    head_full = _layer(config, full).head_dim
    params = config.rope_parameters["full_attention"]
    if params.get("rope_type") != "proportional":
        raise ConfigError(f"full-attention rope {params.get('rope_type')!r} is not Gemma 4's 'proportional'")
    rotated = int(head_full * params["partial_rotary_factor"] / 2)
    values = np.array([1.0] * rotated + [1e30] * (head_full // 2 - rotated), dtype=np.float32)
    return [(f"{TENSOR_NAMES[MODEL_TENSOR.ROPE_FREQS]}.weight", values)]
