"""Profiling overhead: the same model and batches with and without router hooks, in one run.

Target (issue 2): profiling costs at most 5% over the plain forward pass on CPU.

    python benchmarks/profile_overhead.py [--layers 6 --experts 32 --top-k 4 --batches 12]

Builds a random Gemma 4 MoE (Gemma-4-like proportions, small), runs warm-up
passes, then alternates plain and profiled passes over identical batches and
reports the best time of each and their ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from coe.corpus import Chunk, iter_batches
from coe.demo.tiny import TinySpec, build_tiny_model, stdlib_corpus
from coe.profile.recorder import RouterRecorder, find_moe_layers
from coe.profile.runner import ProfileSettings, load_model


def _forward(model, batch) -> None:
    model(input_ids=batch[0], attention_mask=batch[1], use_cache=False, logits_to_keep=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--experts", type=int, default=32)
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args()
    torch.manual_seed(0)

    spec = TinySpec(num_layers=args.layers, num_experts=args.experts, top_k=args.top_k, hidden_size=args.hidden,
                    intermediate_size=2 * args.hidden, moe_intermediate_size=args.hidden // 2, vocab_size=1024)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        build_tiny_model(tmp, spec, stdlib_corpus(max_files=10))
        loaded = load_model(tmp, ProfileSettings())
    vocab = loaded.model.config.vocab_size
    chunks = [Chunk(torch.randint(4, vocab, (args.seq,)).tolist(), [True] * args.seq) for _ in range(args.batches * args.batch_size)]
    batches = [
        (torch.from_numpy(b.input_ids), torch.from_numpy(b.attention_mask), torch.from_numpy(b.count_mask))
        for b in iter_batches(chunks, args.batch_size, pad_id=0, bos_id=2)
    ]
    layers = find_moe_layers(loaded.model, loaded.family, loaded.layout)
    recorder = RouterRecorder(layers, loaded.family, loaded.layout, torch.device("cpu"))

    def plain() -> float:
        start = time.perf_counter()
        for batch in batches:
            _forward(loaded.model, batch)
        return time.perf_counter() - start

    def profiled() -> float:
        start = time.perf_counter()
        with recorder:
            for batch in batches:
                recorder.counting(batch[2])
                _forward(loaded.model, batch)
        return time.perf_counter() - start

    with torch.inference_mode():
        plain(), profiled()  # warm-up
        plain_times, profiled_times = [], []
        for i in range(args.repeats):  # alternate the order so drift hits both sides alike
            order = (plain, profiled) if i % 2 == 0 else (profiled, plain)
            for run in order:
                (plain_times if run is plain else profiled_times).append(run())
    tokens = sum(int(b[2].sum()) for b in batches)
    p, q = min(plain_times), min(profiled_times)  # min: the least noisy estimate on a shared CPU
    print(f"model: {args.layers} layers x {args.experts} experts, top-{args.top_k}, hidden {args.hidden}; "
          f"{len(batches)} batches of {args.batch_size}x{args.seq + 1} tokens; torch threads {torch.get_num_threads()}")  # fmt: skip
    print(f"plain forward   : {p:.3f} s  ({tokens / p:,.0f} tok/s)")
    print(f"with profiling  : {q:.3f} s  ({tokens / q:,.0f} tok/s)")
    print(f"overhead ratio  : {q / p:.3f}x  (target <= 1.05x)")


if __name__ == "__main__":
    main()
