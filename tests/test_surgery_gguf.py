"""GGUF surgery on synthetic Gemma-4-shaped files: bytes, metadata, provenance, refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, GGUFWriter
from gguf.constants import GGMLQuantizationType as Q

from coe.demo.synthetic_gguf import GGUFSpec, write_gemma4_gguf
from coe.errors import CoeError, ConfigError, FormatError
from coe.inspect import inspect_path
from coe.mask import ExpertMask, load_mask
from coe.surgery import PROVENANCE_KEYS, prune_gguf

KEPT = {0: [0, 2, 3, 7], 1: [1, 2, 5, 6], 2: [4, 5, 6, 7]}
EXPERT_SUFFIXES = ("ffn_gate_inp.weight", "_exps.weight", "_exps.scale")


def _mask(layers=KEPT, num_experts=8) -> ExpertMask:
    return ExpertMask(num_experts, len(next(iter(layers.values()))), dict(layers))


def _fields(reader: GGUFReader) -> dict:
    return {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}


def _is_expert_tensor(name: str) -> bool:
    return name.endswith(EXPERT_SUFFIXES)


@pytest.mark.parametrize(
    ("fused", "qtype"),
    [(True, Q.F32), (False, Q.Q8_0), (True, Q.Q4_0), (False, Q.BF16), (True, Q.MXFP4), (True, Q.F16)],
)
def test_kept_experts_bytes_equal_parent_and_everything_else_is_identical(tmp_path, fused, qtype):
    parent, out = tmp_path / "parent.gguf", tmp_path / "out" / "specialist.gguf"
    write_gemma4_gguf(parent, GGUFSpec(blocks=3, experts=8, top_k=2, expert_type=qtype, fused_gate_up=fused))
    result = prune_gguf(parent, _mask(), out, progress=False)
    src, dst = GGUFReader(parent), GGUFReader(out)

    assert [t.name for t in dst.tensors] == [t.name for t in src.tensors]
    sliced = 0
    for a, b in zip(src.tensors, dst.tensors, strict=True):
        assert b.tensor_type == a.tensor_type
        if _is_expert_tensor(a.name):
            block = int(a.name.split(".")[1])
            kept = KEPT[block]
            assert list(b.shape) == [*a.shape[:-1], 4]
            np.testing.assert_array_equal(b.data, a.data[kept])  # expert axis is numpy axis 0
            assert b.data.tobytes() == b"".join(a.data[e].tobytes() for e in kept)
            sliced += 1
        else:
            assert b.data.tobytes() == a.data.tobytes() and list(b.shape) == list(a.shape)
    assert sliced == result.sliced == 3 * (4 if fused else 5)

    before, after = _fields(src), _fields(dst)
    assert after.pop("gemma4.expert_count") == 4 and before.pop("gemma4.expert_count") == 8
    provenance = {k: after.pop(k) for k in PROVENANCE_KEYS}
    assert after == before  # tokenizer, chat template, everything else carried over
    assert json.loads(provenance["coe.mask"])["layers"] == {str(b): ids for b, ids in KEPT.items()}
    assert provenance["coe.parent_sha256"] == hashlib.sha256(parent.read_bytes()).hexdigest() == result.parent_sha256
    assert result.out_bytes < result.parent_bytes
    assert sorted(p.name for p in out.parent.iterdir()) == ["specialist.gguf"]


def test_inspect_shows_k_experts_and_smaller_size(tmp_path):
    parent, out = tmp_path / "p.gguf", tmp_path / "s.gguf"
    write_gemma4_gguf(parent, GGUFSpec(blocks=3, expert_type=Q.Q8_0))
    prune_gguf(parent, _mask(), out, progress=False)
    before, after = inspect_path(parent), inspect_path(out)
    assert after.layout.num_experts == 4 and after.layout.moe_layers == (0, 1, 2)
    assert after.file_size < before.file_size
    assert abs(after.file_size - before.size_at_keep(4)) < 4096  # headers and alignment aside


def test_alignment_is_honoured(tmp_path):
    parent, out = tmp_path / "p.gguf", tmp_path / "s.gguf"
    write_gemma4_gguf(parent, GGUFSpec(blocks=3, alignment=256, expert_type=Q.Q8_0))
    prune_gguf(parent, _mask(), out, progress=False)
    reader = GGUFReader(out)
    assert reader.get_field("general.alignment").contents() == 256
    assert all(t.data_offset % 256 == 0 for t in reader.tensors)


def _assert_refused(tmp_path: Path, parent: Path, mask: ExpertMask, error: type[CoeError], match: str) -> None:
    out = tmp_path / "refused" / "s.gguf"
    with pytest.raises(error, match=match):
        prune_gguf(parent, mask, out, progress=False)
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        (_mask({0: [0, 1], 1: [0, 1]}), r"covers MoE blocks \[0, 1\]"),
        (_mask({b: [0, 1, 2, 3] for b in range(3)}, num_experts=16), "for 16 experts per layer"),
        (_mask({b: [5] for b in range(3)}), "fewer than .* top-k 2"),
    ],
)
def test_mismatched_masks_are_refused(tmp_path, mask, match):
    parent = tmp_path / "p.gguf"
    write_gemma4_gguf(parent, GGUFSpec(blocks=3))
    _assert_refused(tmp_path, parent, mask, ConfigError, match)


def test_bad_files_are_refused(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGML not really")
    _assert_refused(tmp_path, junk, _mask(), FormatError, "truncated or corrupt|not a GGUF")
    full = tmp_path / "full.gguf"
    write_gemma4_gguf(full, GGUFSpec(blocks=3))
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(full.read_bytes()[:-1000])
    _assert_refused(tmp_path, cut, _mask(), FormatError, "truncated")
    llama = tmp_path / "llama.gguf"
    write_gemma4_gguf(llama, GGUFSpec(blocks=3, arch="llama"))
    _assert_refused(tmp_path, llama, _mask(), ConfigError, "no family adapter knows GGUF architecture 'llama'")


def _with_nan_in_expert(path: Path, expert: int) -> None:
    """Rewrite a synthetic parent so that one expert of blk.0's down projection holds a NaN."""
    src = GGUFReader(path)
    writer = GGUFWriter(path.with_suffix(".nan.gguf"), "gemma4")
    for key, field in src.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        sub = field.types[-1] if len(field.types) > 1 else None
        writer.add_key_value(key, field.contents(), field.types[0], sub)
    for t in src.tensors:
        data = np.array(t.data)
        if t.name == "blk.0.ffn_down_exps.weight":
            data[expert, 0, 0] = np.nan
        writer.add_tensor(t.name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_nan_in_a_kept_expert_aborts_with_no_output(tmp_path):
    parent = tmp_path / "p.gguf"
    write_gemma4_gguf(parent, GGUFSpec(blocks=3, expert_type=Q.F32))
    _with_nan_in_expert(parent, expert=2)  # kept in block 0
    poisoned = parent.with_suffix(".nan.gguf")
    _assert_refused(tmp_path, poisoned, _mask(), FormatError, "NaN or Inf")
    prune_gguf(poisoned, _mask(), tmp_path / "unchecked.gguf", verify=False, progress=False)  # bytes still verified
    _with_nan_in_expert(parent, expert=1)  # removed from block 0: the specialist is clean
    prune_gguf(parent.with_suffix(".nan.gguf"), _mask(), tmp_path / "clean.gguf", progress=False)


def test_mask_round_trips_through_provenance(tmp_path):
    parent, out = tmp_path / "p.gguf", tmp_path / "s.gguf"
    write_gemma4_gguf(parent, GGUFSpec(blocks=3))
    mask = _mask()
    prune_gguf(parent, mask, out, progress=False)
    stored = GGUFReader(out).get_field("coe.mask").contents()
    (tmp_path / "m.json").write_text(stored)
    assert load_mask(tmp_path / "m.json").layers == mask.layers


def test_nan_scale_of_a_quantised_kept_expert_aborts(tmp_path):
    parent = tmp_path / "p.gguf"
    write_gemma4_gguf(parent, GGUFSpec(blocks=3, expert_type=Q.Q8_0))
    prune_gguf(parent, _mask(), tmp_path / "clean.gguf", progress=False)
    reader = GGUFReader(parent, "r+")
    down = next(t for t in reader.tensors if t.name == "blk.1.ffn_down_exps.weight")
    down.data[2, 3, 0:2] = np.array([np.inf], dtype=np.float16).view(np.uint8)  # a Q8_0 block's d, in expert 2
    reader.data.flush()
    del reader, down
    _assert_refused(tmp_path, parent, _mask(), FormatError, "blk.1.ffn_down_exps.weight holds NaN or Inf")
