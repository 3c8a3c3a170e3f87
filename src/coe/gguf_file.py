"""Reading GGUF files with llama.cpp's ``gguf`` package, with user-facing errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gguf import GGUFReader
from gguf.constants import Keys

from coe.errors import FormatError
from coe.families import MoEFamily, MoELayout

__all__ = ["open_gguf", "field_value", "is_gguf", "architecture", "moe_layout"]

_MAGIC = b"GGUF"


def is_gguf(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file that starts with the GGUF magic."""
    path = Path(path)
    if not path.is_file():
        return False
    with path.open("rb") as fh:
        return fh.read(4) == _MAGIC


def open_gguf(path: str | os.PathLike[str]) -> GGUFReader:
    """Memory-map a GGUF file for reading.

    Raises:
        FormatError: the file is missing, not GGUF, truncated or corrupt.
    """
    if not Path(path).is_file():
        raise FormatError(f"GGUF file {path} does not exist")
    if not is_gguf(path):
        raise FormatError(f"{path} is not a GGUF file (no GGUF magic at the start)")
    try:
        reader = GGUFReader(path, "r")
    except (ValueError, IndexError, KeyError, OSError) as exc:
        raise FormatError(f"{path} is truncated or corrupt: {exc}") from exc
    size = Path(path).stat().st_size
    for tensor in reader.tensors:
        if tensor.data_offset + tensor.n_bytes > size:
            raise FormatError(f"{path} is truncated: tensor {tensor.name} ends past the end of the file")
    return reader


def field_value(reader: GGUFReader, key: str, default: Any = None) -> Any:
    """The decoded value of metadata ``key`` (``default`` if absent)."""
    field = reader.get_field(key)
    if field is None:
        return default
    return field.contents()


def architecture(reader: GGUFReader) -> str:
    """``general.architecture`` of an open GGUF file."""
    arch = field_value(reader, Keys.General.ARCHITECTURE)
    if not isinstance(arch, str):
        raise FormatError("GGUF file has no general.architecture")
    return arch


def moe_layout(reader: GGUFReader, family: MoEFamily) -> tuple[MoELayout, dict[str, int]]:
    """The file's MoE layout, and a map from each per-expert tensor name to its block.

    Raises:
        FormatError: expert keys missing, or an MoE block lacks a required tensor.
    """
    arch = family.gguf_arch_name
    num_experts = field_value(reader, Keys.LLM.EXPERT_COUNT.format(arch=arch))
    top_k = field_value(reader, Keys.LLM.EXPERT_USED_COUNT.format(arch=arch))
    blocks = field_value(reader, Keys.LLM.BLOCK_COUNT.format(arch=arch))
    if not num_experts or not top_k or blocks is None:
        raise FormatError(f"{arch} file lacks {arch}.expert_count, expert_used_count or block_count")
    names = {t.name for t in reader.tensors}
    expert_tensors: dict[str, int] = {}
    moe_layers = []
    for block in range(int(blocks)):
        present = [spec for spec in family.gguf_expert_tensors if spec.name(block) in names]
        if not present:
            continue
        missing = [spec.name(block) for spec in family.gguf_expert_tensors if not spec.optional and spec not in present]
        if missing:
            raise FormatError(f"MoE block {block} lacks {missing}")
        moe_layers.append(block)
        expert_tensors.update({spec.name(block): block for spec in present})
    return MoELayout(tuple(moe_layers), int(num_experts), int(top_k)), expert_tensors
