"""Facts about safetensors checkpoints that need no weights loaded."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from coe.errors import FormatError

__all__ = ["tensor_nbytes", "weight_shards"]

_ITEMSIZE = {
    "F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
    "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1, "BOOL": 1,
}  # fmt: skip


def tensor_nbytes(dtype: str, shape: Sequence[int]) -> int:
    """Bytes of a safetensors tensor of ``dtype`` (its header name, e.g. "BF16") and ``shape``."""
    if dtype not in _ITEMSIZE:
        raise FormatError(f"unsupported safetensors dtype {dtype!r}")
    return _ITEMSIZE[dtype] * math.prod(shape)


def weight_shards(model_dir: Path) -> list[Path]:
    """The checkpoint's ``*.safetensors`` files, sorted.

    Raises:
        FormatError: there are none.
    """
    shards = sorted(Path(model_dir).glob("*.safetensors"))
    if not shards:
        raise FormatError(f"{model_dir} has no *.safetensors weights")
    return shards
