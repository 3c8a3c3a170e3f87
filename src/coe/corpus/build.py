"""``coe corpus build``: sources -> rendered, de-duplicated, split, budgeted corpus with a manifest.

Output directory:
    profile.jsonl   the profiling split, one ``{"source", "segments"}`` record per document
    heldout.jsonl   the held-out split (never overlaps the profiling split; fidelity uses it)
    manifest.json   the spec, per source and split: documents, tokens and counted tokens (for the
                    named tokenizer), duplicates removed; sha256 of file inputs and of each output

Decisions: a document's split is decided by a hash of its rendered content, so
it never depends on source order and the same document never lands in both
splits; exact duplicates (same rendered content) are removed, first one kept.
With ``budget_tokens``, every source keeps the share of the budget it had of
all tokens, filled with its documents in hash order (deterministic stratified
truncation). Documents are held in memory while building (corpora of a few
hundred MB at most); the profiler streams the output.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from pathlib import Path

from coe.corpus.format import render
from coe.corpus.sources import read_source
from coe.errors import ConfigError
from coe.io import sha256_file, write_bytes_atomic

__all__ = ["build_corpus", "format_stats", "SPLITS"]

SPLITS = ("profile", "heldout")


def _hash(segments: list[dict]) -> str:
    return hashlib.sha256(json.dumps(segments, sort_keys=True).encode()).hexdigest()


def _split(digest: str, heldout: float, seed: int) -> str:
    bucket = int(hashlib.sha256(f"{seed}:{digest}".encode()).hexdigest()[:8], 16) / 16**8
    return "heldout" if bucket < heldout else "profile"


def _token_counts(segments: list[dict], tokenizer) -> tuple[int, int]:
    if tokenizer is None:
        return 0, 0
    total = counted = 0
    for segment in segments:
        n = len(tokenizer(segment["text"], add_special_tokens=False, verbose=False)["input_ids"])
        total += n
        counted += n if segment["count"] else 0
    return total, counted


def _budgeted(records: list[dict], budget: int) -> list[dict]:
    by_source: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_source[record["source"]].append(record)
    total = sum(r["tokens"] for r in records)
    kept = []
    for items in by_source.values():
        share = budget * sum(r["tokens"] for r in items) / max(total, 1)
        used = 0
        for record in sorted(items, key=lambda r: r["digest"]):
            if used + record["tokens"] > share:
                break
            kept.append(record)
            used += record["tokens"]
    return sorted(kept, key=lambda r: r["order"])


def build_corpus(spec: dict, out: str | os.PathLike[str], tokenizer=None, tokenizer_name: str = "") -> dict:
    """Build the corpus artifact described by ``spec`` in ``out``; returns the manifest.

    Spec keys: ``sources`` (list of source specs), ``format`` (raw | chat),
    ``count`` (all | response), ``heldout`` (fraction, default 0.1), ``seed``,
    ``budget_tokens`` (needs a tokenizer).
    """
    sources = spec.get("sources") or []
    if not sources:
        raise ConfigError("the corpus spec has no sources")
    if spec.get("budget_tokens") and tokenizer is None:
        raise ConfigError("budget_tokens needs a tokenizer to count tokens: give --tokenizer")
    heldout, seed = float(spec.get("heldout", 0.1)), int(spec.get("seed", 0))
    seen: set[str] = set()
    records, duplicates = [], defaultdict(int)
    for source_spec in sources:
        for doc in read_source(source_spec):
            segments = render(doc, spec.get("format", "raw"), spec.get("count", "all"), tokenizer)
            digest = _hash(segments)
            if digest in seen:
                duplicates[doc.source] += 1
                continue
            seen.add(digest)
            tokens, counted = _token_counts(segments, tokenizer)
            records.append({"source": doc.source, "segments": segments, "digest": digest, "order": len(records),
                            "split": _split(digest, heldout, seed), "tokens": tokens, "counted": counted})  # fmt: skip
    if spec.get("budget_tokens"):
        records = _budgeted(records, int(spec["budget_tokens"]))
    return _write(Path(out), spec, records, duplicates, sources, tokenizer_name)


def _write(out: Path, spec: dict, records: list[dict], duplicates: dict, sources: list[dict], tokenizer_name: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    stats: dict[str, dict] = defaultdict(lambda: {s: {"documents": 0, "tokens": 0, "counted_tokens": 0} for s in SPLITS})
    outputs = {}
    for split in SPLITS:
        rows = [r for r in records if r["split"] == split]
        for r in rows:
            entry = stats[r["source"]][split]
            entry["documents"] += 1
            entry["tokens"] += r["tokens"]
            entry["counted_tokens"] += r["counted"]
        text = "".join(json.dumps({"source": r["source"], "segments": r["segments"]}) + "\n" for r in rows)
        write_bytes_atomic(out / f"{split}.jsonl", text.encode())
        outputs[f"{split}.jsonl"] = sha256_file(out / f"{split}.jsonl")
    inputs = {p: sha256_file(p) for s in sources for p in _input_files(s)}
    manifest = {"format": "coe.corpus/1", "spec": spec, "tokenizer": tokenizer_name or None, "seed": spec.get("seed", 0),
                "sources": {name: {**splits, "duplicates_removed": duplicates.get(name, 0)} for name, splits in stats.items()},
                "inputs_sha256": inputs, "outputs_sha256": outputs}  # fmt: skip
    write_bytes_atomic(out / "manifest.json", (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return manifest


def _input_files(source: dict) -> list[str]:
    if "path" in source and Path(source["path"]).is_file():
        return [source["path"]]
    return [p for p in source.get("paths", []) if Path(p).is_file()]


def format_stats(manifest: dict) -> str:
    """The table ``coe corpus stats`` prints."""
    tokenizer = manifest.get("tokenizer") or "no tokenizer: tokens not counted"
    lines = [f"corpus (format {manifest['spec'].get('format', 'raw')}, count {manifest['spec'].get('count', 'all')}, "
             f"seed {manifest['seed']}, tokens for {tokenizer})",
             f"{'source':<20} {'split':<8} {'docs':>7} {'tokens':>10} {'counted':>10} {'dups':>6}"]  # fmt: skip
    for name, splits in sorted(manifest["sources"].items()):
        for split in SPLITS:
            s = splits[split]
            dups = splits["duplicates_removed"] if split == "profile" else ""
            lines.append(f"{name:<20} {split:<8} {s['documents']:>7} {s['tokens']:>10} {s['counted_tokens']:>10} {dups:>6}")
    return "\n".join(lines)
