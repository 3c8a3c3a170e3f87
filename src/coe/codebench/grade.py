"""Grade solutions: verdicts per problem, pass@k overall, per difficulty and per platform.

Verdicts: accepted, wrong_answer, time_limit, runtime_error, memory_limit,
extraction_failure, harness_error. Each test runs in a fresh sandboxed process.

* stdin problems: the program reads the test input; its output is compared
  token by token, numbers within 1e-6 (relative or absolute). ``strict``
  compares line by line after stripping trailing whitespace, as LiveCodeBench
  does, for leaderboard parity.
* functional problems: each input line is one JSON argument; the harness calls
  ``Solution().<func_name>(*args)`` (or the function ``func_name``) and prints
  the JSON of the result, compared as decoded values (tuples as lists, floats
  within 1e-6).
* HumanEval: the problem's own ``check(entry_point)``.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from coe.codebench.extract import extract_code
from coe.codebench.problems import Problem, TestCase
from coe.codebench.sandbox import RunResult, Sandbox

__all__ = ["VERDICTS", "PRELUDE", "grade", "grade_all", "pass_at_k", "report", "outputs_match"]

VERDICTS = ("accepted", "wrong_answer", "time_limit", "runtime_error", "memory_limit", "extraction_failure", "harness_error")
PRELUDE = (
    "import sys, os, re, math, json, string, random, heapq, bisect, itertools, functools, collections, operator\n"
    "from typing import *\nfrom collections import *\nfrom itertools import *\nfrom functools import *\n"
    "from heapq import *\nfrom bisect import *\nfrom math import *\nsys.setrecursionlimit(50000)\n"
)
_HARNESS = """
import json as _coe_json, sys as _coe_sys
_coe_args = [_coe_json.loads(_l) for _l in _coe_sys.stdin.read().splitlines() if _l.strip()]
_coe_f = Solution().{name} if "Solution" in globals() else {name}
print(_coe_json.dumps(_coe_f(*_coe_args)))
"""
_TOL = 1e-6
_STATUS = {"timeout": "time_limit", "memory": "memory_limit", "error": "runtime_error"}


@dataclass(frozen=True)
class Verdict:
    """One solution's grade."""

    id: str
    verdict: str
    first_failing_test: int | None
    tests: int
    seconds: float
    detail: str = ""

    def to_json(self) -> dict:
        return vars(self).copy()


def _numbers_close(a: str, b: str) -> bool:
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=_TOL, abs_tol=_TOL)


def outputs_match(got: str, want: str, strict: bool = False) -> bool:
    """Whether a stdin program's output matches the expected output."""
    if strict:
        lines = lambda s: [line.rstrip() for line in s.rstrip().splitlines()]  # noqa: E731
        return lines(got) == lines(want)
    a, b = got.split(), want.split()
    return len(a) == len(b) and all(x == y or _numbers_close(x, y) for x, y in zip(a, b, strict=True))


def _values_match(got, want) -> bool:
    if isinstance(got, float | int) and isinstance(want, float | int) and not isinstance(got, bool):
        return math.isclose(got, want, rel_tol=_TOL, abs_tol=_TOL)
    if isinstance(got, list) and isinstance(want, list):
        return len(got) == len(want) and all(_values_match(x, y) for x, y in zip(got, want, strict=True))
    if isinstance(got, dict) and isinstance(want, dict):
        return got.keys() == want.keys() and all(_values_match(got[k], want[k]) for k in got)
    return got == want


def _tail(run: RunResult) -> str:
    return "\n".join(run.stderr.strip().splitlines()[-3:])


def _run_tests(problem: Problem, code: str, sandbox: Sandbox, strict: bool) -> Verdict:
    seconds = 0.0
    program = PRELUDE + code + (_HARNESS.format(name=problem.func_name) if problem.mode == "functional" else "")
    for i, test in enumerate(problem.tests):
        run = sandbox.run(program, test.input)
        seconds += run.seconds
        if run.status != "ok":
            return Verdict(problem.id, _STATUS[run.status], i, len(problem.tests), seconds, _tail(run))
        if not _test_passes(problem, test, run.stdout, strict):
            return Verdict(problem.id, "wrong_answer", i, len(problem.tests), seconds, run.stdout[-200:])
    return Verdict(problem.id, "accepted", None, len(problem.tests), seconds)


def _test_passes(problem: Problem, test: TestCase, stdout: str, strict: bool) -> bool:
    if problem.mode != "functional":
        return outputs_match(stdout, test.output, strict)
    try:
        return _values_match(json.loads(stdout.strip().splitlines()[-1]), json.loads(test.output))
    except (json.JSONDecodeError, IndexError):
        return False


def _humaneval_program(problem: Problem, code: str) -> str:
    """The prompt's imports plus a full solution, or the prompt plus a completion; then the problem's check."""
    spec = problem.humaneval
    if f"def {spec['entry_point']}(" in code:
        imports = "".join(line + "\n" for line in spec["prompt"].splitlines() if line.startswith(("import ", "from ")))
        program = imports + code
    else:
        program = spec["prompt"] + code
    return f"{program}\n\n{spec['test']}\n\ncheck({spec['entry_point']})\n"


def grade(problem: Problem, output: str, sandbox: Sandbox, strict: bool = False) -> Verdict:
    """Grade one raw model output (or bare code) for ``problem``."""
    code = extract_code(output, problem.humaneval.get("prompt", ""))
    if code is None:
        return Verdict(problem.id, "extraction_failure", None, len(problem.tests), 0.0)
    try:
        if problem.mode != "humaneval":
            return _run_tests(problem, code, sandbox, strict)
        run = sandbox.run(_humaneval_program(problem, code))
        verdict = "accepted" if run.status == "ok" else _STATUS[run.status]
        if verdict == "runtime_error" and "AssertionError" in run.stderr:
            verdict = "wrong_answer"
        return Verdict(problem.id, verdict, None if verdict == "accepted" else 0, 1, run.seconds, _tail(run))
    except OSError as exc:  # the harness itself failed (no unshare, no temp space, ...)
        return Verdict(problem.id, "harness_error", None, len(problem.tests), 0.0, repr(exc))


def grade_all(problems: list[Problem], solutions: Iterable[dict], sandbox: Sandbox, workers: int, strict: bool = False) -> dict[str, list[Verdict]]:
    """Grade every ``{"id", "output"}`` solution in parallel; verdicts per problem id (samples in file order)."""
    by_id = {p.id: p for p in problems}
    jobs = [(by_id[s["id"]], s["output"]) for s in solutions if s["id"] in by_id]
    results: dict[str, list[Verdict]] = defaultdict(list)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for verdict in pool.map(lambda job: grade(job[0], job[1], sandbox, strict), jobs):
            results[verdict.id].append(verdict)
    return results


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator: 1 - C(n - c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def report(problems: list[Problem], results: dict[str, list[Verdict]], k: int = 1, window: dict | None = None) -> dict:
    """The JSON report: every problem's verdict, pass@k overall, per difficulty and per platform."""
    rows, scores = [], {}
    for p in problems:
        verdicts = results.get(p.id, [])
        if not verdicts:
            rows.append({"id": p.id, "verdict": "harness_error", "detail": "no solution given", "difficulty": p.difficulty})
            scores[p.id] = 0.0
            continue
        correct = sum(v.verdict == "accepted" for v in verdicts)
        scores[p.id] = pass_at_k(len(verdicts), correct, min(k, len(verdicts)))
        rows.append({**verdicts[0].to_json(), "difficulty": p.difficulty, "platform": p.platform,
                     "samples": len(verdicts), "correct": correct})  # fmt: skip
    mean = lambda ids: sum(scores[i] for i in ids) / len(ids) if ids else 0.0  # noqa: E731
    group = lambda attr: {v: mean([p.id for p in problems if getattr(p, attr) == v])  # noqa: E731
                          for v in sorted({getattr(p, attr) for p in problems})}  # fmt: skip
    return {"problems": rows, f"pass@{k}": mean([p.id for p in problems]), "by_difficulty": group("difficulty"),
            "by_platform": group("platform"), "n_problems": len(problems), "window": window or {}}  # fmt: skip
