"""Corpus stage: the texts to profile on and to evaluate with, per domain and for CoT.

Its output always holds ``manifest.json``: ``{name: {"profile": [files], "heldout": [files]}}``
(plus ``"train"`` for the demo corpora, which train the demo parent).
"""

from __future__ import annotations

import json
from pathlib import Path

from coe.demo.corpora import DOMAINS, SPLITS, documents
from coe.errors import ConfigError
from coe.io import cached_sha256
from coe.stages.store import Artifact

__all__ = ["params", "run", "manifest"]


def _is_demo(cfg: dict) -> bool:
    return cfg["model"]["kind"] == "demo"


def params(cfg: dict) -> dict:
    """Demo: the corpus settings. Real parents: the user's files and their content hashes."""
    if _is_demo(cfg):
        return {"demo": cfg["corpus"], "seed": cfg["seed"]}
    domain = cfg["domain"]
    if not domain["corpus_files"]:
        raise ConfigError(f"domain.corpus_files is empty: give the {domain['name']} text to profile a real parent on")
    files = [*domain["corpus_files"], *domain["heldout_files"], *cfg["corpus"]["cot_files"]]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise ConfigError(f"corpus files not found: {missing}")
    return {"domain": domain["name"], "files": {f: cached_sha256(f) for f in files}}


def run(store, cfg: dict) -> Artifact:
    """Build (or reuse) the corpus artifact."""

    def build(out: Path) -> None:
        if _is_demo(cfg):
            manifest = _write_demo(out, cfg["corpus"]["budget_chars"], cfg["seed"])
        else:
            domain, corpus = cfg["domain"], cfg["corpus"]
            manifest = {domain["name"]: {"profile": domain["corpus_files"], "heldout": domain["heldout_files"]}}
            if corpus["cot_files"]:
                manifest["cot"] = {"profile": corpus["cot_files"], "heldout": []}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))

    return store.build("corpus", params(cfg), [], build)


def _write_demo(out: Path, budget: int, seed: int) -> dict:
    manifest = {}
    for name in DOMAINS:
        splits = documents(name, budget, seed)
        empty = [split for split in SPLITS if not splits[split]]
        if empty:
            raise ConfigError(f"demo corpus {name!r} has no {', '.join(empty)} documents: raise corpus.budget_chars ({budget})")
        manifest[name] = {}
        for split in SPLITS:
            path = out / name / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps({"text": t}) + "\n" for t in splits[split]))
            manifest[name][split] = [str(Path(name) / f"{split}.jsonl")]
    return manifest


def manifest(corpus: Artifact) -> dict[str, dict[str, list[Path]]]:
    """The manifest with every file as an absolute path."""
    data = json.loads((corpus.path / "manifest.json").read_text())
    return {name: {split: [corpus.path / f for f in files] for split, files in splits.items()}
            for name, splits in data.items()}  # fmt: skip


def texts(files: list[Path], limit: int | None = None) -> list[str]:
    """The documents of JSONL/text files (at most ``limit``)."""
    from coe.corpus import iter_segments

    docs: list[str] = []
    for segment in iter_segments(files):
        if segment.new_document or not docs:
            docs.append(segment.text)
        else:
            docs[-1] += segment.text
        if limit is not None and len(docs) > limit:
            return docs[:limit]
    return docs
