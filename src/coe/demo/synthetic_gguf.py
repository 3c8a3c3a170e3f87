"""Write synthetic Gemma-4-shaped GGUF files with ``gguf.GGUFWriter``.

Used by tests and benchmarks: real GGUF files, in the tensor layout llama.cpp
uses for a Gemma 4 MoE block, with random weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from gguf import GGUFWriter
from gguf.constants import MODEL_ARCH, MODEL_ARCH_NAMES, MODEL_TENSOR, TENSOR_NAMES, GGMLQuantizationType
from gguf.quants import quantize

__all__ = ["GGUFSpec", "write_gemma4_gguf"]


@dataclass(frozen=True)
class GGUFSpec:
    """Shape and encoding of a synthetic Gemma 4 GGUF."""

    blocks: int = 2
    experts: int = 8
    top_k: int = 2
    hidden: int = 64
    expert_ff: int = 32
    dense_ff: int = 64
    vocab: int = 128
    expert_type: GGMLQuantizationType = GGMLQuantizationType.F32
    fused_gate_up: bool = True
    alignment: int | None = None  # general.alignment; None keeps gguf's default (32)
    arch: str = MODEL_ARCH_NAMES[MODEL_ARCH.GEMMA4]
    seed: int = 0


def _name(tensor: MODEL_TENSOR, block: int | None = None, suffix: str = "weight") -> str:
    base = TENSOR_NAMES[tensor]
    return f"{base.format(bid=block) if block is not None else base}.{suffix}"


def _add(writer: GGUFWriter, name: str, data: np.ndarray, qtype: GGMLQuantizationType) -> None:
    if qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
        writer.add_tensor(name, data.astype(np.float32 if qtype == GGMLQuantizationType.F32 else np.float16))
    else:
        writer.add_tensor(name, quantize(data.astype(np.float32), qtype), raw_dtype=qtype)


def write_gemma4_gguf(path: str | os.PathLike[str], spec: GGUFSpec) -> None:
    """Write a GGUF with ``spec.blocks`` Gemma 4 MoE blocks to ``path``."""
    rng = np.random.default_rng(spec.seed)
    writer = GGUFWriter(os.fspath(path), spec.arch)
    if spec.alignment is not None:
        writer.add_custom_alignment(spec.alignment)
    writer.add_block_count(spec.blocks)
    writer.add_embedding_length(spec.hidden)
    writer.add_feed_forward_length(spec.dense_ff)
    writer.add_expert_count(spec.experts)
    writer.add_expert_used_count(spec.top_k)
    writer.add_expert_feed_forward_length(spec.expert_ff)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"t{i}" for i in range(spec.vocab)])
    writer.add_chat_template("{{ messages }}")
    f32 = GGMLQuantizationType.F32
    normal = lambda *shape: rng.standard_normal(shape, dtype=np.float32)  # noqa: E731
    _add(writer, _name(MODEL_TENSOR.TOKEN_EMBD), normal(spec.vocab, spec.hidden), f32)
    _add(writer, _name(MODEL_TENSOR.OUTPUT_NORM), normal(spec.hidden), f32)
    E, H, F = spec.experts, spec.hidden, spec.expert_ff
    for b in range(spec.blocks):
        _add(writer, _name(MODEL_TENSOR.ATTN_NORM, b), normal(H), f32)
        _add(writer, _name(MODEL_TENSOR.FFN_GATE, b), normal(spec.dense_ff, H), f32)  # shared dense FFN
        _add(writer, _name(MODEL_TENSOR.FFN_UP, b), normal(spec.dense_ff, H), f32)
        _add(writer, _name(MODEL_TENSOR.FFN_DOWN, b), normal(H, spec.dense_ff), f32)
        _add(writer, _name(MODEL_TENSOR.FFN_GATE_INP, b), normal(E, H), f32)  # router rows
        if spec.fused_gate_up:
            _add(writer, _name(MODEL_TENSOR.FFN_GATE_UP_EXP, b), normal(E, 2 * F, H), spec.expert_type)
        else:
            _add(writer, _name(MODEL_TENSOR.FFN_GATE_EXP, b), normal(E, F, H), spec.expert_type)
            _add(writer, _name(MODEL_TENSOR.FFN_UP_EXP, b), normal(E, F, H), spec.expert_type)
        _add(writer, _name(MODEL_TENSOR.FFN_DOWN_EXP, b), normal(E, H, F), spec.expert_type)
        _add(writer, _name(MODEL_TENSOR.FFN_DOWN_EXP, b, "scale"), rng.uniform(0.5, 1.5, E).astype(np.float32), f32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
