"""Corpus stage: the texts to profile on and to evaluate with, per domain and for CoT.

Its output always holds ``manifest.json``: ``{name: {"profile": [files], "heldout": [files]}}``
(plus ``"train"`` for the demo corpora, which train the demo parent).
"""

from __future__ import annotations

import glob
import hashlib
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
    """Demo: the corpus settings. Real parents: the user's files or source specs, with content hashes."""
    if _is_demo(cfg):
        return {"demo": cfg["corpus"], "seed": cfg["seed"]}
    domain = cfg["domain"]
    if not domain["corpus_files"] and not domain.get("sources"):
        raise ConfigError(
            f"give the {domain['name']} text to profile a real parent on: domain.corpus_files (.txt/.jsonl) "
            "or domain.sources (source specs, as for `coe corpus build`)"
        )
    specs = [*domain.get("sources", []), *cfg["corpus"].get("cot_sources", [])]
    files = [*domain["corpus_files"], *domain["heldout_files"], *cfg["corpus"]["cot_files"]]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise ConfigError(f"corpus files not found: {missing}")
    inputs = {f: cached_sha256(f) for f in files}
    for spec in specs:  # the content behind every source path, so that edited inputs rebuild the corpus
        for pattern in [spec["path"]] if "path" in spec else spec.get("paths", []):
            inputs[pattern] = _content_digest(pattern)
    return {"domain": domain["name"], "sources": specs, "corpus": cfg["corpus"], "inputs": inputs}


def _content_digest(pattern: str) -> str:
    """sha256 over the names and contents of the files a path, directory or glob names ("" if none)."""
    path = Path(pattern)
    if path.is_file():
        return cached_sha256(path)
    matches = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else sorted(
        Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())  # fmt: skip
    return hashlib.sha256("".join(f"{m}:{cached_sha256(m)}\n" for m in matches).encode()).hexdigest() if matches else ""


def run(store, cfg: dict) -> Artifact:
    """Build (or reuse) the corpus artifact."""

    def build(out: Path) -> None:
        if _is_demo(cfg):
            manifest = _write_demo(out, cfg["corpus"]["budget_chars"], cfg["seed"])
        else:
            manifest = _real(out, cfg)
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))

    return store.build("corpus", params(cfg), [], build)


def _real(out: Path, cfg: dict) -> dict:
    """Manifest for a real parent: the user's files as given, plus corpora built from source specs."""
    domain, corpus = cfg["domain"], cfg["corpus"]
    manifest = {domain["name"]: {"profile": list(domain["corpus_files"]), "heldout": list(domain["heldout_files"])}}
    if corpus["cot_files"] or corpus.get("cot_sources"):
        manifest["cot"] = {"profile": list(corpus["cot_files"]), "heldout": []}
    for name, sources in ((domain["name"], domain.get("sources")), ("cot", corpus.get("cot_sources"))):
        if sources:
            from coe.corpus.build import build_corpus

            spec = {"sources": sources, **{k: corpus[k] for k in ("format", "count", "heldout", "budget_tokens")},
                    "seed": cfg["seed"]}  # fmt: skip
            build_corpus(spec, out / name, _tokenizer(cfg, spec), cfg["model"].get("path") or "")
            manifest[name]["profile"].append(str(Path(name) / "profile.jsonl"))
            manifest[name]["heldout"].append(str(Path(name) / "heldout.jsonl"))
    return manifest


def _tokenizer(cfg: dict, spec: dict):
    """The parent's tokenizer, when the chat template or token counts need it."""
    if spec["format"] != "chat" and not spec["budget_tokens"]:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(cfg["model"]["path"])


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
