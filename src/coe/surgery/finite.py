"""The NaN/Inf check of GGUF surgery: dequantise kept experts with ``gguf.quants``, remembering what passed.

A specialist's kept experts are byte-identical to the parent's (surgery checks
that first), so an expert found finite once is finite in every specialist of
that parent. Results are remembered per parent sha256 and tensor in
``$COE_CACHE_DIR/finite/<sha256>.json``: a sweep that cuts the same parent
with many masks dequantises each expert once. gguf-py dequantises in numpy at
roughly 40-100 MB/s per core, so the first check of a large parent is slow; it
runs on every core, each worker holding one piece of at most 4 MiB.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

from coe.io import cache_dir, write_bytes_atomic

__all__ = ["ExpertSlices", "check_finite"]

_PIECE = 4 << 20  # bytes per dequantisation job

# (tensor name, parent data offset, bytes per expert, kept expert ids, quantisation type)
ExpertSlices = tuple[str, int, int, tuple[int, ...], object]


def _cache_path(parent_sha256: str) -> Path:
    return cache_dir() / "finite" / f"{parent_sha256}.json"


def _load(parent_sha256: str) -> dict[str, set[int]]:
    try:
        return {name: set(ids) for name, ids in json.loads(_cache_path(parent_sha256).read_text()).items()}
    except (OSError, ValueError):
        return {}


def _jobs(parent: Path, tensors: list[ExpertSlices], known: dict[str, set[int]]) -> list[tuple]:
    jobs = []
    for name, offset, per_expert, experts, qtype in tensors:
        unit = GGML_QUANT_SIZES[qtype][1]
        step = max(unit, _PIECE // unit * unit)
        for expert in experts:
            if expert in known.get(name, ()):
                continue
            start, end = offset + expert * per_expert, offset + (expert + 1) * per_expert
            jobs += [(name, expert, str(parent), s, min(step, end - s), qtype) for s in range(start, end, step)]
    return jobs


def _job(job: tuple) -> tuple[str, int, bool]:
    """Dequantise one piece; (tensor, expert, finite)."""
    name, expert, path, offset, length, qtype = job
    with open(path, "rb") as fh:
        data = os.pread(fh.fileno(), length, offset)
    blocks = np.frombuffer(data, dtype=np.uint8).reshape(-1, GGML_QUANT_SIZES[qtype][1])  # blocks are independent
    with np.errstate(all="ignore"):
        return name, expert, bool(np.isfinite(dequantize(blocks, qtype)).all())


def check_finite(parent: Path, parent_sha256: str, tensors: list[ExpertSlices]) -> str | None:
    """Dequantise every kept expert not known to be finite; the first tensor holding NaN/Inf, or None."""
    known = _load(parent_sha256)
    jobs = _jobs(parent, tensors, known)
    workers = min(len(jobs), os.cpu_count() or 1)
    if len(jobs) < 4 or workers < 2:
        results = list(map(_job, jobs))
    else:  # spawn, not fork: the caller may hold threads (the hasher, progress bars)
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_job, jobs, chunksize=4))
    bad: dict[str, set[int]] = defaultdict(set)
    checked: dict[str, set[int]] = defaultdict(set)
    for name, expert, finite in results:
        (checked if finite else bad)[name].add(expert)
    if bad:
        return sorted(bad)[0]
    for name, experts in checked.items():
        known.setdefault(name, set()).update(experts)
    if checked:
        data = {name: sorted(ids) for name, ids in sorted(known.items())}
        try:
            write_bytes_atomic(_cache_path(parent_sha256), json.dumps(data).encode())
        except OSError:  # a read-only cache only costs time
            pass
    return None
