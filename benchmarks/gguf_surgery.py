"""GGUF surgery throughput and peak memory against a plain file copy, in one run.

Target (issue 4): on a synthetic Gemma-4-shaped Q4_K file of at least 2 GB,
surgery throughput (parent bytes per second) is at least 0.8x that of
``shutil.copyfile`` of the same file, and peak RSS stays under 300 MB.

    python benchmarks/gguf_surgery.py [--blocks 4] [--dir /tmp] [--repeats 3]

The parent has Gemma 4 26B-A4B's MoE shapes (hidden 2816, 128 experts of
width 704, fused gate/up in Q4_K; the down projection, whose rows of 704 are
not a multiple of Q4_K's 256, in Q8_0 as llama.cpp's Q4_K_M does), ``--blocks`` MoE blocks (4 ~ 2.2 GB). Q4_K
data is random bytes with each 144-byte block's two f16 scales (d, dmin) set
to small finite values, so dequantisation gives finite numbers. Surgery keeps
64 of 128 experts and runs in a child process that reports its own peak RSS
(VmHWM). Timed: the first surgery of the parent (which hashes it for
provenance), then later ones (the hash is cached, as it is in the pipeline,
whose parent stage hashes the parent before surgery), all with the default
``--verify`` (every byte compared with the parent and every kept quantisation
block checked for NaN/Inf), and once with ``--no-verify`` (bytes still
compared). Surgery fsyncs its output; copyfile does not.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from gguf import GGUFWriter
from gguf.constants import GGML_QUANT_SIZES, MODEL_TENSOR, TENSOR_NAMES
from gguf.constants import GGMLQuantizationType as Q

HIDDEN, EXPERT_FF, EXPERTS, TOP_K = 2816, 704, 128, 8

CHILD = """
import json, sys, time
from coe.mask.artifact import load_mask
from coe.surgery.gguf_slice import prune_gguf
start = time.perf_counter()
prune_gguf(sys.argv[1], load_mask(sys.argv[2]), sys.argv[3], verify=sys.argv[4] == "1", progress=False)
seconds = time.perf_counter() - start
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))  # this process, kB
print(json.dumps({"seconds": seconds, "peak_rss_mb": hwm / 1024}))
"""


# The leading f16 scales of each quantisation block: Q4_K has d and dmin, Q8_0 has d.
_SCALES = {Q.Q4_K: np.array([0.01, 0.001], dtype=np.float16), Q.Q8_0: np.array([0.01], dtype=np.float16)}


def _quantised(rng: np.random.Generator, rows: int, cols: int, qtype: Q) -> np.ndarray:
    block, size = GGML_QUANT_SIZES[qtype]
    data = np.frombuffer(rng.bytes(rows * cols // block * size), dtype=np.uint8).reshape(-1, size).copy()
    scales = _SCALES[qtype].view(np.uint8)
    data[:, : scales.size] = scales
    return data.reshape(rows, cols // block * size)


def _tensor_name(tensor: MODEL_TENSOR, suffix: str = "weight", *, block: int) -> str:
    return f"{TENSOR_NAMES[tensor].format(bid=block)}.{suffix}"


def write_parent(path: Path, blocks: int) -> None:
    """Stream a Gemma-4-shaped Q4_K GGUF to ``path``, one tensor in memory at a time."""
    rng = np.random.default_rng(0)
    writer = GGUFWriter(path, "gemma4")
    writer.add_block_count(blocks)
    writer.add_expert_count(EXPERTS)
    writer.add_expert_used_count(TOP_K)
    tensors = []
    for b in range(blocks):
        name = functools.partial(_tensor_name, block=b)
        tensors += [
            (name(MODEL_TENSOR.FFN_GATE_UP_EXP), lambda: _quantised(rng, EXPERTS * 2 * EXPERT_FF, HIDDEN, Q.Q4_K),
             (EXPERTS, 2 * EXPERT_FF, HIDDEN), Q.Q4_K),
            (name(MODEL_TENSOR.FFN_DOWN_EXP), lambda: _quantised(rng, EXPERTS * HIDDEN, EXPERT_FF, Q.Q8_0),
             (EXPERTS, HIDDEN, EXPERT_FF), Q.Q8_0),
            (name(MODEL_TENSOR.FFN_GATE_INP), lambda: rng.standard_normal((EXPERTS, HIDDEN), dtype=np.float32), None, None),
            (name(MODEL_TENSOR.FFN_DOWN_EXP, "scale"), lambda: np.ones(EXPERTS, dtype=np.float32), None, None),
        ]  # fmt: skip
    for tensor_name, make, shape, qtype in tensors:
        if shape is None:
            data = make()  # small float tensors: made twice, the second time for writing
            writer.add_tensor_info(tensor_name, data.shape, data.dtype, data.nbytes)
        else:
            block, size = GGML_QUANT_SIZES[qtype]
            nbytes = int(np.prod(shape[:-1])) * shape[-1] // block * size
            writer.add_tensor_info(tensor_name, shape, np.dtype(np.float32), nbytes, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _, make, _, _ in tensors:
        writer.write_tensor_data(make())
    writer.close()


def run_surgery(parent: Path, mask: Path, out: Path, verify: bool) -> tuple[float, float]:
    """(seconds inside prune_gguf, the child's own peak RSS in MB, read from its VmHWM)."""
    proc = subprocess.run([sys.executable, "-c", CHILD, str(parent), str(mask), str(out), "1" if verify else "0"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    out.unlink()
    result = json.loads(proc.stdout)
    return result["seconds"], result["peak_rss_mb"]


def run_copy(parent: Path, out: Path, fsync: bool = False) -> float:
    start = time.perf_counter()
    shutil.copyfile(parent, out)
    if fsync:
        with open(out, "rb+") as fh:
            os.fsync(fh.fileno())
    seconds = time.perf_counter() - start
    out.unlink()
    return seconds


def hash_seconds(path: Path) -> float:
    from coe.io import sha256_file

    start = time.perf_counter()
    sha256_file(path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--dir", default=None, help="Where to write the test files (default: system temp).")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from coe.mask import ExpertMask, save_mask

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        os.environ["COE_CACHE_DIR"] = str(tmp / "cache")  # starts empty: the first surgery hashes the parent
        parent = tmp / "parent.gguf"
        start = time.perf_counter()
        # written by a child, so this process stays small and its children's RSS is their own
        subprocess.run([sys.executable, __file__, "--write-parent", str(parent), "--blocks", str(args.blocks)], check=True)
        size = parent.stat().st_size
        print(f"parent: {size / 1e9:.2f} GB, {args.blocks} blocks x {EXPERTS} experts "
              f"({time.perf_counter() - start:.0f} s to write); keeping 64 of 128 experts")  # fmt: skip
        mask = tmp / "mask.json"
        save_mask(ExpertMask(EXPERTS, 64, {b: list(range(0, EXPERTS, 2)) for b in range(args.blocks)}), mask)

        run_copy(parent, tmp / "copy.gguf")  # warm the page cache
        cold = run_surgery(parent, mask, tmp / "s.gguf", verify=True)
        copies, synced, warm = [], [], []
        for _ in range(args.repeats):  # alternate, so drift in disk speed hits all alike
            copies.append(run_copy(parent, tmp / "copy.gguf"))
            synced.append(run_copy(parent, tmp / "copy.gguf", fsync=True))
            warm.append(run_surgery(parent, mask, tmp / "s.gguf", verify=True))
        unchecked = run_surgery(parent, mask, tmp / "s.gguf", verify=False)
        hashing = hash_seconds(parent)

    copy, copy_sync = min(copies), min(synced)
    best = min(warm)
    row = "{:<40}: {:6.2f} s  {:5.2f} GB/s  {:>5.2f}x of copy  {:>5.2f}x of copy+fsync  peak RSS {:4.0f} MB"
    print(f"{'shutil.copyfile (best)':<40}: {copy:6.2f} s  {size / copy / 1e9:5.2f} GB/s")
    print(f"{'shutil.copyfile + fsync (best)':<40}: {copy_sync:6.2f} s  {size / copy_sync / 1e9:5.2f} GB/s")
    for label, (seconds, peak) in [
        ("surgery, parent hash cached (best)", best),
        ("surgery --no-verify, parent hash cached", unchecked),
        ("surgery, first cut (hashes the parent)", cold),
    ]:
        print(row.format(label, seconds, size / seconds / 1e9, copy / seconds, copy_sync / seconds, peak))
    print(f"{'sha256 of the parent alone':<40}: {hashing:6.2f} s  (the floor of a first cut: provenance needs it)")
    print("targets: >= 0.8x of copy, peak RSS < 300 MB; throughput counts parent bytes; surgery fsyncs")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--write-parent":
        write_parent(Path(sys.argv[2]), int(sys.argv[4]))
    else:
        main()
