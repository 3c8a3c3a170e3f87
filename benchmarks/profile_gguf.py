"""GGUF-native profiling against plain llama.cpp evaluation of the same tokens, in one run.

Target (issue 7): profiling through llama.cpp's eval callback costs at most
10% over evaluating the same tokens in llama.cpp without it.

    python benchmarks/profile_gguf.py [--layers 8 --experts 32 --top-k 4 --hidden 256 --type q8_0]

Builds a random Gemma 4 MoE, exports it to GGUF, writes a corpus of Python
standard-library source, and alternates, ``--repeats`` times:

* plain: tokenize and decode every chunk in llama.cpp, no callback;
* profile: ``profile_gguf`` over the same corpus (same chunks, same tokens);

each with llama.cpp's context defaults and with ``exact`` (F32 KV cache, no
flash attention). Reports the best time of each, tokens/s and the ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from coe.corpus import iter_chunks, iter_segments
from coe.demo.tiny import TinySpec, build_tiny_model, stdlib_corpus
from coe.export import export_gguf
from coe.llamacpp.profile import GGUFProfileSettings, profile_gguf
from coe.llamacpp.runtime import GGUFRuntime


def plain(model: Path, corpus: Path, max_length: int, f32_cache: bool) -> tuple[float, int]:
    """Seconds and tokens to tokenize and decode the corpus's chunks without a callback."""
    start, tokens = time.perf_counter(), 0
    with GGUFRuntime(model, n_ctx=max_length, f32_cache=f32_cache) as runtime:
        for chunk in iter_chunks(iter_segments([corpus]), runtime.tokenize, max_length - 1):
            runtime.decode([runtime.bos_id] + chunk.ids)
            tokens += len(chunk.ids) + 1
    return time.perf_counter() - start, tokens


def profiled(model: Path, corpus: Path, max_length: int, exact: bool) -> float:
    start = time.perf_counter()
    profile_gguf(model, [corpus], GGUFProfileSettings(max_length=max_length, exact=exact), progress=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--experts", type=int, default=32)
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--type", default="q8_0", choices=["f32", "f16", "q8_0"])
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--chars", type=int, default=60_000, help="Corpus size in characters.")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    spec = TinySpec(num_layers=args.layers, num_experts=args.experts, top_k=args.top_k, hidden_size=args.hidden,
                    intermediate_size=2 * args.hidden, moe_intermediate_size=args.hidden // 2, vocab_size=1024)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_tiny_model(tmp / "hf", spec, stdlib_corpus(max_files=10))
        model = tmp / "model.gguf"
        export_gguf(tmp / "hf", model, args.type, progress=False)
        corpus = tmp / "corpus.txt"
        corpus.write_text("".join(stdlib_corpus(max_files=60, max_chars=4000))[: args.chars])
        plain(model, corpus, args.max_length, False)  # warm-up: page cache, thread pool
        runs: dict[tuple[str, bool], list[float]] = {}
        for _ in range(args.repeats):  # alternate, so drift hits all alike
            for exact in (False, True):
                seconds, tokens = plain(model, corpus, args.max_length, f32_cache=exact)
                runs.setdefault(("plain", exact), []).append(seconds)
                runs.setdefault(("profile", exact), []).append(profiled(model, corpus, args.max_length, exact))
    best = {key: min(times) for key, times in runs.items()}
    print(f"model: {args.layers} layers x {args.experts} experts (top-{args.top_k}), hidden {args.hidden}, {args.type}; "
          f"{tokens} tokens in chunks of {args.max_length}, best of {args.repeats}")  # fmt: skip
    for exact in (False, True):
        mode = "exact" if exact else "llama.cpp defaults"
        for kind, label in (("plain", "plain llama.cpp"), ("profile", "coe profile (eval callback)")):
            seconds = best[(kind, exact)]
            print(f"{label + ', ' + mode:<48}: {seconds:6.2f} s  {tokens / seconds:8.0f} tok/s")
        print(f"  profiling / plain, {mode}: {best[('profile', exact)] / best[('plain', exact)]:.3f}x  (target <= 1.10x)")

if __name__ == "__main__":
    main()
