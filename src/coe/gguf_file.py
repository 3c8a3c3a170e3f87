"""Reading GGUF files with llama.cpp's ``gguf`` package, with user-facing errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gguf import GGUFReader
from gguf.constants import Keys

from coe.errors import FormatError

__all__ = ["open_gguf", "field_value", "is_gguf", "architecture"]

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
        return GGUFReader(path, "r")
    except (ValueError, IndexError, KeyError, OSError) as exc:
        raise FormatError(f"{path} is truncated or corrupt: {exc}") from exc


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
