"""The NaN/Inf screen of quantised data answers exactly as a full gguf.quants dequantisation, block for block."""

from __future__ import annotations

import numpy as np
import pytest
from gguf.constants import GGML_QUANT_SIZES
from gguf.constants import GGMLQuantizationType as Q
from gguf.quants import dequantize

from coe.surgery.finite import SCREENED, _F16_FIELDS, all_finite, finite_blocks

QUANTISED = sorted((t for t in SCREENED if GGML_QUANT_SIZES[t][0] > 1), key=lambda t: t.name)
FLOATS = [Q.F32, Q.F16, Q.BF16]


def _reference(blocks: np.ndarray, qtype: Q) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.isfinite(dequantize(blocks, qtype)).reshape(len(blocks), -1).all(axis=1)


def _blocks(qtype: Q, n: int, seed: int) -> np.ndarray:
    """Random blocks, a third with their float fields forced to the largest finite f16 (the overflow case)."""
    size = GGML_QUANT_SIZES[qtype][1]
    blocks = np.random.default_rng(seed).integers(0, 256, (n, size), dtype=np.uint8)
    largest = np.array([65504.0, -65504.0], dtype=np.float16).view(np.uint8).reshape(2, 2)
    for offset in _F16_FIELDS.get(qtype, ()):
        blocks[: n // 3, offset : offset + 2] = largest[np.arange(n // 3) % 2]
    if qtype == Q.MXFP4:
        blocks[: n // 3, 0] = np.arange(n // 3) % 8 + 248  # exponents around the overflow threshold
        blocks[: n // 3, 1:] = 0x77  # codes of 12, the largest magnitude
    return blocks


@pytest.mark.parametrize("qtype", QUANTISED, ids=lambda t: t.name)
def test_screen_equals_full_dequantisation_block_for_block(qtype):
    blocks = _blocks(qtype, 3000, seed=int(qtype))
    want = _reference(blocks, qtype)
    assert not want.all() and want.any()  # random bytes give both kinds
    np.testing.assert_array_equal(finite_blocks(blocks, qtype), want)


@pytest.mark.parametrize("qtype", FLOATS, ids=lambda t: t.name)
def test_float_types(qtype):
    width = GGML_QUANT_SIZES[qtype][1]
    blocks = np.random.default_rng(1).integers(0, 256, (20000, width), dtype=np.uint8)
    np.testing.assert_array_equal(finite_blocks(blocks, qtype), _reference(blocks, qtype))


def test_a_type_without_a_known_layout_is_dequantised_in_full():
    assert Q.IQ1_M not in SCREENED
    blocks = np.random.default_rng(2).integers(0, 256, (500, GGML_QUANT_SIZES[Q.IQ1_M][1]), dtype=np.uint8)
    np.testing.assert_array_equal(finite_blocks(blocks, Q.IQ1_M), _reference(blocks, Q.IQ1_M))


def test_one_nan_scale_in_clean_q4_k_data_is_found():
    data = np.zeros((100, 144), dtype=np.uint8)
    data[:, :4] = np.array([0.01, 0.001], dtype=np.float16).view(np.uint8)
    assert all_finite(data.tobytes(), Q.Q4_K)
    data[57, 2:4] = np.array([np.nan], dtype=np.float16).view(np.uint8)
    assert not all_finite(data.tobytes(), Q.Q4_K)


def test_rows_of_the_wrong_width_are_refused():
    with pytest.raises(ValueError, match="144 bytes"):
        finite_blocks(np.zeros((2, 10), dtype=np.uint8), Q.Q4_K)
