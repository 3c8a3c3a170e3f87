"""GGUF surgery: remove experts by copying the kept experts' bytes, never requantising.

Whole experts are contiguous in GGUF: a per-expert tensor's expert axis is
ggml's outermost dimension (numpy axis 0 of ``GGUFReader`` arrays), so expert
``e`` of a tensor of ``n`` bytes and ``E`` experts is the byte range
``[e * n/E, (e + 1) * n/E)``. Surgery is a plan of byte ranges, executed with
the kernel's ``copy_file_range`` (memory flat in model size), and verified
before the output gets its final name.

Provenance keys: ``coe.mask`` (the mask JSON), ``coe.parent_sha256`` and
``coe.version``. The parent's sha256 is computed on a second thread while the
data is copied and patched into the header afterwards (its length is fixed);
it is cached by path, inode, size and mtime (:func:`coe.io.cached_sha256`), so
pruning the same parent again, as a sweep does, skips it. The NaN/Inf check
(:mod:`coe.surgery.finite`) runs on the parent bytes the byte comparison has
already read, so it costs no extra pass over the file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES, GGUFValueType, Keys
from tqdm.auto import tqdm

import coe
from coe.errors import ConfigError, FormatError
from coe.families import family_for_gguf_arch
from coe.gguf_file import architecture, field_value, moe_layout, open_gguf
from coe.io import atomic_path, cached_sha256
from coe.mask.artifact import ExpertMask, dumps_mask
from coe.surgery.finite import all_finite

__all__ = ["TensorPlan", "SurgeryResult", "prune_gguf", "PROVENANCE_KEYS"]

PROVENANCE_KEYS = ("coe.mask", "coe.parent_sha256", "coe.version")
_CHUNK = 8 << 20  # bytes per read when comparing with the parent
_PLACEHOLDER = "0" * 64


@dataclass(frozen=True)
class TensorPlan:
    """One output tensor: its ggml shape and type, and the parent byte ranges that make it."""

    name: str
    shape: tuple[int, ...]  # ggml order (ne0 first), as GGUFReader reports it
    qtype: object  # GGMLQuantizationType
    ranges: tuple[tuple[int, int], ...]  # (absolute parent offset, length)
    sliced: bool

    @property
    def nbytes(self) -> int:
        return sum(length for _, length in self.ranges)


@dataclass(frozen=True)
class SurgeryResult:
    """What surgery wrote (``parent_sha256`` is "" for HF checkpoints, which coe does not hash)."""

    path: Path
    parent_bytes: int
    out_bytes: int
    tensors: int
    sliced: int
    parent_sha256: str


def _coalesce(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[list[int]] = []
    for offset, length in ranges:
        if out and out[-1][0] + out[-1][1] == offset:
            out[-1][1] += length
        else:
            out.append([offset, length])
    return tuple((o, n) for o, n in out)


def plan_tensors(reader: GGUFReader, expert_blocks: dict[str, int], mask: ExpertMask) -> list[TensorPlan]:
    """Every parent tensor, kept whole or sliced to the mask's experts (strict: nothing skipped)."""
    plans = []
    for tensor in reader.tensors:
        shape = tuple(int(d) for d in tensor.shape)
        offset, nbytes = int(tensor.data_offset), int(tensor.n_bytes)
        block = expert_blocks.get(tensor.name)
        if block is None:
            plans.append(TensorPlan(tensor.name, shape, tensor.tensor_type, ((offset, nbytes),), sliced=False))
            continue
        if shape[-1] != mask.num_experts or nbytes % mask.num_experts:
            raise FormatError(f"{tensor.name}: outermost dimension {shape[-1]} is not the {mask.num_experts} experts")
        per_expert = nbytes // mask.num_experts
        kept = tuple(mask.layers[block])
        ranges = _coalesce([(offset + e * per_expert, per_expert) for e in kept])
        plans.append(TensorPlan(tensor.name, (*shape[:-1], mask.keep), tensor.tensor_type, ranges, sliced=True))
    return plans


def _copy_metadata(reader: GGUFReader, writer: GGUFWriter, expert_count_key: str, keep: int) -> None:
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == Keys.General.ARCHITECTURE or key in PROVENANCE_KEYS:
            continue  # the writer writes its own header and architecture; provenance describes this cut
        if key == expert_count_key:
            writer.add_uint32(key, keep)
            continue
        vtype = field.types[0]
        sub_type = None
        if vtype == GGUFValueType.ARRAY:
            sub_type = field.types[-1]
            if len(field.types) > 2:
                raise FormatError(f"metadata {key} is a nested array, which coe cannot copy yet")
        writer.add_key_value(key, field.contents(), vtype, sub_type)


def _write_header(reader: GGUFReader, arch: str, mask: ExpertMask, plans: list[TensorPlan], tmp: Path) -> GGUFWriter:
    writer = GGUFWriter(tmp, arch)
    alignment = field_value(reader, Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = int(alignment)
    _copy_metadata(reader, writer, Keys.LLM.EXPERT_COUNT.format(arch=arch), mask.keep)
    writer.add_string("coe.mask", dumps_mask(mask))
    writer.add_string("coe.parent_sha256", _PLACEHOLDER)
    writer.add_string("coe.version", coe.__version__)
    for plan in plans:
        numpy_shape = tuple(reversed(plan.shape))
        writer.add_tensor_info(plan.name, numpy_shape, np.dtype(np.float32), plan.nbytes, raw_dtype=plan.qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.flush()
    return writer


def _copy_range(src: int, dst: int, offset: int, length: int) -> None:
    """Append ``length`` bytes of ``src`` at ``offset`` to ``dst`` in the kernel where it can."""
    while length > 0:
        try:
            done = os.copy_file_range(src, dst, min(length, 1 << 30), offset)
        except OSError:  # cross-device on old kernels, or unsupported: copy through user space
            done = os.write(dst, os.pread(src, min(length, _CHUNK), offset))
        if done == 0:
            raise FormatError("the parent file ended early: it is truncated")
        offset += done
        length -= done


def _write_data(writer: GGUFWriter, parent: Path, plans: list[TensorPlan], progress: bool) -> None:
    fout = writer.fout[0]
    dst = fout.fileno()
    align = writer.data_alignment
    total = sum(p.nbytes for p in plans)
    with open(parent, "rb") as src_file, tqdm(total=total, unit="B", unit_scale=True, desc="surgery", disable=not progress) as bar:
        src = src_file.fileno()
        for plan in plans:
            position = os.lseek(dst, 0, os.SEEK_END)
            os.write(dst, bytes(-position % align))  # each tensor starts aligned
            for offset, length in plan.ranges:
                _copy_range(src, dst, offset, length)
                bar.update(length)
        position = os.lseek(dst, 0, os.SEEK_END)
        os.write(dst, bytes(-position % align))
    writer.close()


def _patch_parent_hash(path: Path, digest: str) -> None:
    reader = GGUFReader(path, "r+")
    field = reader.get_field("coe.parent_sha256")
    field.parts[field.data[0]][:] = np.frombuffer(digest.encode(), dtype=np.uint8)
    reader.data.flush()
    del reader


def _paired_chunks(
    src: int, dst: int, ranges: tuple[tuple[int, int], ...], dst_offset: int, unit: int
) -> Iterator[tuple[bytes, bytes]]:
    """(parent bytes, output bytes) pieces of about 8 MiB, whole ``unit``s each, walking both files in step."""
    step = max(unit, _CHUNK // unit * unit)
    for offset, length in ranges:
        end = offset + length
        while offset < end:
            size = min(step, end - offset)
            yield os.pread(src, size, offset), os.pread(dst, size, dst_offset)
            offset += size
            dst_offset += size


def _verify(out: Path, parent: Path, plans: list[TensorPlan], arch: str, keep: int, finite: bool) -> None:
    """Check tensor count, names, shapes, types and every byte against the parent; with ``finite``, refuse NaN/Inf."""
    reader = open_gguf(out)
    if field_value(reader, Keys.LLM.EXPERT_COUNT.format(arch=arch)) != keep:
        raise FormatError("verification failed: expert_count was not written")
    if len(reader.tensors) != len(plans):
        raise FormatError(f"verification failed: {len(reader.tensors)} tensors written, {len(plans)} planned")
    with open(parent, "rb") as p, open(out, "rb") as o:
        for tensor, plan in zip(reader.tensors, plans, strict=True):
            shape = tuple(int(d) for d in tensor.shape)
            if (tensor.name, shape, tensor.tensor_type) != (plan.name, plan.shape, plan.qtype):
                raise FormatError(f"verification failed: {tensor.name} {shape} does not match the plan {plan.shape}")
            unit = GGML_QUANT_SIZES[plan.qtype][1]  # bytes per quantisation block: ranges hold whole blocks
            for want, got in _paired_chunks(p.fileno(), o.fileno(), plan.ranges, int(tensor.data_offset), unit):
                if want != got:
                    raise FormatError(f"verification failed: {plan.name} bytes differ from the parent's")
                if finite and plan.sliced and not all_finite(want, plan.qtype):
                    raise FormatError(f"verification failed: {plan.name} holds NaN or Inf values (the parent's experts do)")


def prune_gguf(
    parent: str | os.PathLike[str], mask: ExpertMask, out: str | os.PathLike[str], verify: bool = True, progress: bool = True
) -> SurgeryResult:
    """Write ``out``: the parent GGUF with only the mask's experts.

    Args:
        parent: the parent GGUF file.
        mask: which experts each MoE block keeps.
        out: the specialist GGUF to write (atomically: no file on failure).
        verify: also refuse NaN/Inf in any sliced tensor's kept data (see :mod:`coe.surgery.finite`).
        progress: show a progress bar in bytes.

    Raises:
        FormatError: not GGUF, truncated, or verification failed.
        ConfigError: unknown architecture, or a mask that does not fit the file.
    """
    parent, out = Path(parent), Path(out)
    reader = open_gguf(parent)
    arch = architecture(reader)
    family = family_for_gguf_arch(arch)
    layout, expert_blocks = moe_layout(reader, family)
    mask.check_fits(layout, what=str(parent))
    if out.resolve() == parent.resolve():
        raise ConfigError("--out must differ from the parent file")
    plans = plan_tensors(reader, expert_blocks, mask)

    digest: list[str] = []
    hasher = threading.Thread(target=lambda: digest.append(cached_sha256(parent)), daemon=True)
    hasher.start()
    try:
        with atomic_path(out) as tmp:
            writer = _write_header(reader, arch, mask, plans, tmp)
            _write_data(writer, parent, plans, progress)
            _verify(tmp, parent, plans, arch, mask.keep, finite=verify)  # while the parent is still being hashed
            hasher.join()
            _patch_parent_hash(tmp, digest[0])  # atomic_path fsyncs these few bytes again
    finally:
        hasher.join()
    return SurgeryResult(out, parent.stat().st_size, out.stat().st_size, len(plans), sum(p.sliced for p in plans), digest[0])
