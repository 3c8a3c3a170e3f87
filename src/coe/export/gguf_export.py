"""Export a Hugging Face MoE checkpoint to GGUF, streaming one tensor at a time.

Tensor names come from gguf-py's name map plus the family's own renames;
keys from its constants. Types follow llama.cpp's converter: 1-D tensors,
norms, routers (``ffn_gate_inp``) and non-``.weight`` tensors stay F32; the rest
take the requested type, and Q8_0 falls back to F16 for rows that are not a
multiple of its 32-value blocks. Quantisation uses ``gguf.quants`` (numpy):
fine for the demo and tests, slow for a 26B model, whose users already hold
its GGUF.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, get_tensor_name_map
from gguf.constants import GGML_QUANT_SIZES, LlamaFileType, MODEL_TENSOR, TENSOR_NAMES
from gguf.constants import GGMLQuantizationType as Q
from gguf.quants import quantize
from tqdm.auto import tqdm

import coe
from coe.errors import ConfigError, FormatError
from coe.export import gemma4
from coe.export.vocab import write_vocab
from coe.families import MoEFamily, family_for_model_type
from coe.hf_checkpoint import weight_shards
from coe.io import atomic_path

__all__ = ["OUT_TYPES", "ExportResult", "export_gguf"]

OUT_TYPES = {"f32": (Q.F32, LlamaFileType.ALL_F32), "f16": (Q.F16, LlamaFileType.MOSTLY_F16),
             "q8_0": (Q.Q8_0, LlamaFileType.MOSTLY_Q8_0)}  # fmt: skip
_EXPORTERS = {"gemma4": gemma4}  # family name -> module with write_metadata, rename, extra_tensors


@dataclass(frozen=True)
class ExportResult:
    """What was written: the file, its tensor count and size, and tensors per ggml type."""

    out: Path
    tensors: int
    nbytes: int
    types: dict[str, int]  # ggml type name -> tensor count


@dataclass(frozen=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]  # numpy order
    qtype: Q
    load: Callable[[], np.ndarray]  # float32 values

    @property
    def nbytes(self) -> int:
        block, size = GGML_QUANT_SIZES[self.qtype]
        return int(np.prod(self.shape[:-1], dtype=np.int64)) * self.shape[-1] // block * size


def _target_type(name: str, shape: tuple[int, ...], wanted: Q) -> Q:
    router = name.startswith("blk.") and ".ffn_gate_inp." in name
    if len(shape) <= 1 or name.endswith("_norm.weight") or router or not name.endswith(".weight"):
        return Q.F32
    if wanted == Q.Q8_0 and shape[-1] % GGML_QUANT_SIZES[Q.Q8_0][0]:
        return Q.F16
    return wanted


def _loader(shard: Path, key: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from safetensors import safe_open

        with safe_open(shard, "pt") as f:
            return f.get_tensor(key).float().numpy()

    return load


def _plan(model_dir: Path, config, family: MoEFamily, wanted: Q) -> list[_Tensor]:
    from safetensors import safe_open

    exporter = _EXPORTERS[family.name]
    name_map = get_tensor_name_map(family.gguf_arch, config.num_hidden_layers)
    tensors = []
    for shard in weight_shards(model_dir):
        with safe_open(shard, "pt") as f:
            for key in f.keys():
                if key == "lm_head.weight" and config.tie_word_embeddings:
                    continue
                name = exporter.rename(key, name_map)
                if name is None:
                    raise ConfigError(f"{key}: no GGUF name for this tensor (unsupported variant of {config.model_type})")
                shape = tuple(f.get_slice(key).get_shape())
                tensors.append(_Tensor(name, shape, _target_type(name, shape, wanted), _loader(shard, key)))
    for name, values in exporter.extra_tensors(config):
        tensors.append(_Tensor(name, values.shape, Q.F32, lambda v=values: v))
    return tensors


def _encode(tensor: _Tensor) -> np.ndarray:
    data = tensor.load()
    if data.shape != tensor.shape:
        raise FormatError(f"{tensor.name}: shape {data.shape} changed while exporting (expected {tensor.shape})")
    if tensor.qtype == Q.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if tensor.qtype == Q.F16:
        return data.astype(np.float16)
    return quantize(data, tensor.qtype)


def export_gguf(
    model_dir: str | os.PathLike[str], out: str | os.PathLike[str], out_type: str = "f32", progress: bool = True
) -> ExportResult:
    """Write ``out``, a GGUF of the HF checkpoint in ``model_dir``, that llama.cpp loads.

    Raises:
        ConfigError: an unknown ``out_type``, a family or variant without an exporter.
        FormatError: ``model_dir`` is not an HF checkpoint, or has no safetensors weights.
    """
    from transformers import AutoConfig

    if out_type not in OUT_TYPES:
        raise ConfigError(f"--type must be one of {sorted(OUT_TYPES)}, got {out_type!r}")
    model_dir, out = Path(model_dir), Path(out)
    if not (model_dir / "config.json").is_file():
        raise FormatError(f"{model_dir} is not a Hugging Face checkpoint directory (no config.json)")
    config = AutoConfig.from_pretrained(model_dir)
    config = getattr(config, "text_config", None) or config
    family = family_for_model_type(config.model_type)
    if family.name not in _EXPORTERS:
        raise ConfigError(f"no GGUF exporter for the {family.name} family (known: {sorted(_EXPORTERS)})")
    exporter = _EXPORTERS[family.name]
    wanted, file_type = OUT_TYPES[out_type]
    tensors = _plan(model_dir, config, family, wanted)
    embedding = next((t for t in tensors if t.name == f"{TENSOR_NAMES[MODEL_TENSOR.TOKEN_EMBD]}.weight"), None)
    if embedding is None:
        raise FormatError(f"{model_dir}: no token embedding")

    with atomic_path(out) as tmp:
        writer = GGUFWriter(tmp, family.gguf_arch_name)
        writer.add_name(model_dir.name)
        writer.add_file_type(file_type)
        writer.add_string("coe.version", coe.__version__)
        exporter.write_metadata(writer, config)
        write_vocab(writer, model_dir, n_vocab=embedding.shape[0])
        for t in tensors:
            writer.add_tensor_info(t.name, t.shape, np.dtype(np.float32), t.nbytes, raw_dtype=t.qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in tqdm(tensors, desc="export", unit="tensor", disable=not progress):
            writer.write_tensor_data(_encode(t))
        writer.close()
    types: dict[str, int] = {}
    for t in tensors:
        types[t.qtype.name] = types.get(t.qtype.name, 0) + 1
    return ExportResult(out, len(tensors), out.stat().st_size, types)
