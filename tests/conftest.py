"""Shared fixtures: a tiny random Gemma 4 MoE and small corpora, built offline once per session."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from coe.demo.tiny import TinySpec, build_tiny_model, stdlib_corpus


# coe's hash cache goes to a throw-away directory, never the user's ~/.cache (subprocesses inherit it).
os.environ["COE_CACHE_DIR"] = tempfile.mkdtemp(prefix="coe-test-cache-")


@pytest.fixture(scope="session")
def tiny_spec() -> TinySpec:
    return TinySpec(num_layers=3, num_experts=8, top_k=2, vocab_size=400, seed=0)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_spec: TinySpec) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-gemma4"), tiny_spec, stdlib_corpus(max_files=5))


@pytest.fixture(scope="session")
def documents() -> list[str]:
    """Twelve documents of uneven length: padding and chunk boundaries both occur."""
    texts = stdlib_corpus(max_files=12, max_chars=1500)
    return [text[: 200 + 113 * i] for i, text in enumerate(texts)]


def write_jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


@pytest.fixture
def corpus_file(tmp_path: Path, documents: list[str]) -> Path:
    return write_jsonl(tmp_path / "corpus.jsonl", documents)
