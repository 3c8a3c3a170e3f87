"""NaN/Inf check of quantised GGUF data, as exact as dequantising it and at the speed of reading it.

A quantised block's values are its integer codes times a few float fields
(``d``, ``dmin``, ``m``, an e8m0 exponent) from a bounded table. With f16
fields the largest product is about 65504 * 127 * 32, far inside float32, so a
block dequantises to finite numbers exactly when its float fields are finite.
:func:`finite_blocks` therefore reads only those fields and dequantises, with
``gguf.quants``, just the blocks that fail that test (or whose exponent is
large enough to overflow, for MXFP4), so its answer equals a full
dequantisation's block for block (``tests/test_finite.py`` checks this for every
type below on random bytes). Types without a known layout are dequantised in
full: numpy dequantisation runs at 40-100 MB/s per core, the field test at
memory speed.
"""

from __future__ import annotations

import numpy as np
from gguf.constants import GGML_QUANT_SIZES
from gguf.constants import GGMLQuantizationType as Q
from gguf.quants import dequantize

__all__ = ["finite_blocks", "all_finite", "SCREENED"]

# Byte offsets of each block's f16 float fields (gguf.quants / ggml-common.h block layouts).
_F16_FIELDS: dict[Q, tuple[int, ...]] = {
    Q.Q4_0: (0,), Q.Q4_1: (0, 2), Q.Q5_0: (0,), Q.Q5_1: (0, 2), Q.Q8_0: (0,),
    Q.Q2_K: (80, 82), Q.Q3_K: (108,), Q.Q4_K: (0, 2), Q.Q5_K: (0, 2), Q.Q6_K: (208,),
    Q.TQ1_0: (52,), Q.TQ2_0: (64,),
    Q.IQ2_XXS: (0,), Q.IQ2_XS: (0,), Q.IQ2_S: (0,), Q.IQ3_XXS: (0,), Q.IQ3_S: (0,), Q.IQ1_S: (0,),
    Q.IQ4_NL: (0,), Q.IQ4_XS: (0,),
}  # fmt: skip
# MXFP4's e8m0 exponent e scales by 2**(e - 128); times its largest code (12) that overflows float32 from e = 253.
_MXFP4_SAFE_EXPONENT = 253
# IEEE exponent bits: all ones means Inf or NaN.
_FLOAT_EXPONENT = {Q.F16: (np.uint16, 0x7C00), Q.BF16: (np.uint16, 0x7F80), Q.F32: (np.uint32, 0x7F800000)}
SCREENED = frozenset(_F16_FIELDS) | {Q.MXFP4} | frozenset(_FLOAT_EXPONENT)


def _screen(blocks: np.ndarray, qtype: Q) -> np.ndarray | None:
    """Per block: True where its values are certainly finite; None for a type without a known layout."""
    if qtype in _FLOAT_EXPONENT:
        dtype, exponent = _FLOAT_EXPONENT[qtype]
        return (blocks.view(dtype)[:, 0] & exponent) != exponent
    if qtype == Q.MXFP4:
        return blocks[:, 0] < _MXFP4_SAFE_EXPONENT
    if qtype in _F16_FIELDS:
        ok = np.ones(len(blocks), dtype=bool)
        for offset in _F16_FIELDS[qtype]:
            ok &= (blocks[:, offset : offset + 2].view(np.uint16)[:, 0] & 0x7C00) != 0x7C00
        return ok
    return None


def _dequantised_finite(blocks: np.ndarray, qtype: Q) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.isfinite(dequantize(blocks, qtype)).reshape(len(blocks), -1).all(axis=1)


def finite_blocks(blocks: np.ndarray, qtype: Q) -> np.ndarray:
    """Per block of ``blocks`` (uint8, one row per block): do all its values dequantise to finite numbers?"""
    if blocks.ndim != 2 or blocks.shape[1] != GGML_QUANT_SIZES[qtype][1]:
        raise ValueError(f"expected rows of {GGML_QUANT_SIZES[qtype][1]} bytes for {qtype.name}, got {blocks.shape}")
    ok = _screen(blocks, qtype)
    if ok is None:
        return _dequantised_finite(blocks, qtype)
    if qtype in _FLOAT_EXPONENT:
        return ok
    suspects = np.flatnonzero(~ok)
    if suspects.size:
        ok[suspects] = _dequantised_finite(blocks[suspects], qtype)
    return ok


def all_finite(data: bytes | memoryview, qtype: Q) -> bool:
    """Do whole blocks of ``qtype`` in ``data`` dequantise to finite numbers only?"""
    blocks = np.frombuffer(data, dtype=np.uint8).reshape(-1, GGML_QUANT_SIZES[qtype][1])
    return bool(finite_blocks(blocks, qtype).all())
