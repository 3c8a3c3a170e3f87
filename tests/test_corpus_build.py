"""Corpus sources, chat formatting, response-only counting, splits, de-duplication and budgets."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from transformers import AutoTokenizer

from coe.corpus.build import build_corpus
from coe.corpus.format import render
from coe.corpus.sources import Document, read_source
from coe.errors import ConfigError, FormatError
from coe.profile.runner import ProfileSettings, load_model, profile_model

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<turn>{{ m['role'] }}\n{{ m['content'] }}</turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<turn>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def chat_tokenizer(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = TEMPLATE
    return tokenizer


def _pairs(tmp_path, n=12):
    path = tmp_path / "qa.jsonl"
    rows = [{"q": f"What is {i} + {i}?", "a": f"It is {2 * i}, since {i} + {i} = {2 * i}."} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def test_files_source_dirs_globs_and_extensions(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("print(1)\n")
    (tmp_path / "src" / "b.md").write_text("# title\n")
    (tmp_path / "src" / "c.bin").write_text("skip")
    docs = list(read_source({"kind": "files", "paths": [str(tmp_path / "src")], "name": "code"}))
    assert [d.text for d in docs] == ["print(1)\n", "# title\n"] and docs[0].source == "code"
    globbed = list(read_source({"kind": "files", "paths": [str(tmp_path / "src" / "*.md")]}))
    assert [d.text for d in globbed] == ["# title\n"]
    with pytest.raises(FormatError, match="nothing matches"):
        list(read_source({"kind": "files", "paths": [str(tmp_path / "nope")]}))


def test_jsonl_fields_and_missing_column(tmp_path):
    path, rows = _pairs(tmp_path, 2)
    docs = list(read_source({"kind": "jsonl", "path": str(path), "prompt": "q", "response": "a"}))
    assert docs[1] == Document("jsonl", prompt=rows[1]["q"], response=rows[1]["a"])
    with pytest.raises(FormatError, match=r"qa.jsonl:1: no field 'text'"):
        list(read_source({"kind": "jsonl", "path": str(path)}))
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"conv": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}) + "\n")
    (doc,) = read_source({"kind": "jsonl", "path": str(chat), "messages": "conv"})
    assert doc.messages[1] == {"role": "assistant", "content": "yo"}
    with pytest.raises(FormatError, match="does not exist"):
        list(read_source({"kind": "jsonl", "path": str(tmp_path / "missing.jsonl")}))


def test_local_hf_datasets(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetDict

    data = {"body": ["alpha text", "beta text"], "other": [1, 2]}
    Dataset.from_dict(data).save_to_disk(str(tmp_path / "ds"))
    DatasetDict({"train": Dataset.from_dict(data)}).save_to_disk(str(tmp_path / "dd"))
    pq.write_table(pa.table(data), tmp_path / "d.parquet")
    with pa.OSFile(str(tmp_path / "d.arrow"), "wb") as sink, pa.ipc.new_stream(sink, pa.table(data).schema) as w:
        w.write_table(pa.table(data))
    for path, extra in [("ds", {}), ("dd", {"split": "train"}), ("d.parquet", {}), ("d.arrow", {})]:
        docs = list(read_source({"kind": "hf", "path": str(tmp_path / path), "text": "body", **extra}))
        assert [d.text for d in docs] == ["alpha text", "beta text"], path
    with pytest.raises(FormatError, match="set 'split' to one of"):
        list(read_source({"kind": "hf", "path": str(tmp_path / "dd"), "text": "body"}))
    with pytest.raises(FormatError, match="no field 'nope'"):
        list(read_source({"kind": "hf", "path": str(tmp_path / "d.parquet"), "text": "nope"}))


def test_humaneval_prompts_offline():
    docs = list(read_source({"kind": "humaneval"}))
    assert len(docs) == 164 and docs[0].text.startswith("from typing import List")
    with_solutions = list(read_source({"kind": "humaneval", "solutions": True}))
    assert with_solutions[0].response and with_solutions[0].prompt == docs[0].text


def test_mmlu_pro_stratified_sampling_is_deterministic(tmp_path):
    path = tmp_path / "mmlu.jsonl"
    rows = [{"question": f"q{c}{i}", "options": ["x", "y"], "category": c, "answer": "A", "cot_content": f"because {i}"}
            for c in ("computer science", "law") for i in range(6)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"kind": "mmlu_pro", "path": str(path), "categories": {"computer science": 2, "law": 3}, "seed": 1}
    docs = list(read_source(spec))
    assert [d.prompt.split("\n")[0][:12] for d in docs].count("Question: qc") == 2 and len(docs) == 5
    assert docs == list(read_source(spec))
    assert docs[0].prompt.endswith("Options:\nA. x\nB. y\nAnswer:") and docs[0].response.startswith("because")
    other = list(read_source({**spec, "seed": 2}))
    assert {d.prompt for d in other} != {d.prompt for d in docs}
    with pytest.raises(FormatError, match="no category"):
        list(read_source({**spec, "categories": ["physics"]}))


def test_chat_rendering_with_thinking_off_and_response_segments(chat_tokenizer):
    doc = Document("s", prompt="Add 2 and 2.", response="4")
    prompt, response = render(doc, "chat", "response", chat_tokenizer)
    assert prompt == {"text": "<turn>user\nAdd 2 and 2.</turn>\n<turn>assistant\n", "count": False}  # BOS stripped
    assert response == {"text": "4</turn>\n", "count": True}
    assert render(doc, "raw", "all") == [{"text": "Add 2 and 2.\n", "count": True}, {"text": "4", "count": True}]
    with pytest.raises(ConfigError, match="chat template"):
        render(doc, "chat", "all", None)


def test_response_only_profile_counts_exactly_the_response_tokens(tiny_model_dir, chat_tokenizer, tmp_path):
    path, rows = _pairs(tmp_path)
    spec = {"sources": [{"kind": "jsonl", "path": str(path), "prompt": "q", "response": "a"}],
            "format": "chat", "count": "response", "heldout": 0.0}  # fmt: skip
    manifest = build_corpus(spec, tmp_path / "corpus", chat_tokenizer, "tiny")
    loaded = load_model(tiny_model_dir, ProfileSettings())
    profile = profile_model(loaded, [tmp_path / "corpus" / "profile.jsonl"], ProfileSettings(max_length=32), progress=False)
    expected = sum(len(chat_tokenizer(f"{r['a']}</turn>\n", add_special_tokens=False)["input_ids"]) for r in rows)
    assert profile.n_tokens == expected == manifest["sources"]["jsonl"]["profile"]["counted_tokens"]
    assert manifest["sources"]["jsonl"]["profile"]["tokens"] > expected


def test_splits_dedup_determinism_and_budget(tmp_path, chat_tokenizer):
    docs = tmp_path / "docs.jsonl"
    texts = [f"document number {i} " * (1 + i % 5) for i in range(200)]
    docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts + texts[:7]))  # 7 exact duplicates
    spec = {"sources": [{"kind": "jsonl", "path": str(docs), "name": "d"},
                        {"kind": "generated", "generator": "math", "budget_chars": 20000, "name": "m"}],
            "heldout": 0.2, "seed": 3}  # fmt: skip
    first = build_corpus(spec, tmp_path / "a")
    again = build_corpus(spec, tmp_path / "b")
    assert (tmp_path / "a" / "profile.jsonl").read_bytes() == (tmp_path / "b" / "profile.jsonl").read_bytes()
    assert first["outputs_sha256"] == again["outputs_sha256"]
    assert first["sources"]["d"]["duplicates_removed"] == 7
    split = {s: {json.dumps(json.loads(l)["segments"]) for l in (tmp_path / "a" / f"{s}.jsonl").read_text().splitlines()}
             for s in ("profile", "heldout")}  # fmt: skip
    assert not split["profile"] & split["heldout"] and len(split["profile"]) + len(split["heldout"]) == 200 + len(
        [1 for _ in read_source(spec["sources"][1])])
    assert 0.1 < len([1 for l in (tmp_path / "a" / "heldout.jsonl").read_text().splitlines() if '"d"' in l]) / 200 < 0.3

    budgeted = build_corpus({**spec, "budget_tokens": 3000}, tmp_path / "c", chat_tokenizer)
    full = build_corpus(spec, tmp_path / "e", chat_tokenizer)
    total = lambda m, s: sum(m["sources"][s][k]["tokens"] for k in ("profile", "heldout"))  # noqa: E731
    assert total(budgeted, "d") + total(budgeted, "m") <= 3000
    share = total(full, "d") / (total(full, "d") + total(full, "m"))
    assert abs(total(budgeted, "d") / 3000 - share) < 0.05  # each source keeps its share
    with pytest.raises(ConfigError, match="needs a tokenizer"):
        build_corpus({**spec, "budget_tokens": 10}, tmp_path / "f")


def test_cli_build_and_stats(tmp_path):
    path, _ = _pairs(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"sources:\n  - {{kind: jsonl, path: {path}, prompt: q, response: a, name: qa}}\nheldout: 0.25\n")
    run = lambda *a: subprocess.run([sys.executable, "-m", "coe.cli", "corpus", *a], capture_output=True, text=True)  # noqa: E731
    built = run("build", str(spec), "--out", str(tmp_path / "c"))
    assert built.returncode == 0, built.stderr
    stats = run("stats", str(tmp_path / "c"))
    assert stats.returncode == 0 and "qa" in stats.stdout and "profile" in stats.stdout
    missing = run("stats", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "manifest.json" in missing.stderr


def test_corpus_stage_key_follows_source_contents(tmp_path):
    from coe.stage import compose
    from coe.stages import corpus

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("first")
    cfg = compose(["+domain=coding", "model=gemma4-26b-a4b", "model.path=/m"])
    cfg["domain"]["sources"] = [{"kind": "files", "paths": [str(tmp_path / "docs"), str(tmp_path / "*.txt")]}]
    before = corpus.params(cfg)
    (tmp_path / "docs" / "a.md").write_text("edited")
    edited = corpus.params(cfg)
    (tmp_path / "b.txt").write_text("new file matching the glob")
    globbed = corpus.params(cfg)
    assert before != edited != globbed
    assert corpus.params(cfg) == globbed
