"""Prompts for code problems, generation through a backend, and the paired comparison of two models.

Prompts follow LiveCodeBench's: stdin problems ask for a full program reading
stdin; functional problems give the starter code; HumanEval gives the prompt
to complete. Generations are appended to a JSONL file as they finish (id,
messages or rendered prompt, raw output, finish reason, seconds), so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coe.backends.base import Backend, GenerationSettings, messages_for
from coe.codebench.problems import Problem

__all__ = ["problem_prompt", "generate_all", "compare_reports"]

_STDIN = ("You will be given a question (problem specification) and will generate a correct Python program that "
          "matches the specification and passes all tests.\n\nQuestion: {question}\n\nRead the inputs from stdin, "
          "solve the problem and write the answer to stdout (do not directly test on the sample inputs). Enclose your "
          "code within delimiters as follows.\n```python\n# YOUR CODE HERE\n```\n\n### Answer: (use the provided format with backticks)\n")  # fmt: skip
_FUNCTIONAL = ("You will be given a question (problem specification) and will generate a correct Python program that "
               "matches the specification and passes all tests.\n\nQuestion: {question}\n\nYou will use the following "
               "starter code to write the solution to the problem and enclose your code within delimiters.\n"
               "```python\n{starter}\n```\n\n### Answer: (use the provided format with backticks)\n")  # fmt: skip
_HUMANEVAL = ("Complete the following Python function. Answer with the whole function in a fenced code block.\n"
              "```python\n{prompt}\n```\n")  # fmt: skip


def problem_prompt(problem: Problem) -> str:
    """The user prompt for ``problem``."""
    if problem.mode == "humaneval":
        return _HUMANEVAL.format(prompt=problem.prompt)
    if problem.mode == "functional":
        return _FUNCTIONAL.format(question=problem.prompt, starter=problem.starter_code)
    return _STDIN.format(question=problem.prompt)


def generate_all(problems: list[Problem], backend: Backend, settings: GenerationSettings, out: Path,
                 samples: int = 1, workers: int = 4) -> list[dict]:  # fmt: skip
    """Generate ``samples`` outputs per problem, appending each to ``out``; already present ones are kept."""
    done: dict[str, int] = {}
    if out.is_file():
        for line in out.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                done[record["id"]] = done.get(record["id"], 0) + 1
    jobs = [p for p in problems for _ in range(samples - done.get(p.id, 0))]
    lock = threading.Lock()
    out.parent.mkdir(parents=True, exist_ok=True)

    def one(problem: Problem) -> None:
        gen = backend.generate(messages_for(problem_prompt(problem), settings))
        record = {"id": problem.id, "prompt": gen.prompt, "output": gen.output, "finish_reason": gen.finish_reason,
                  "seconds": gen.seconds}  # fmt: skip
        with lock, out.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, jobs))
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def compare_reports(a: dict, b: dict) -> dict:
    """Paired comparison of two reports on the same problems: a per-problem table, the pass@1 difference
    (a - b) with a 95% confidence interval, and McNemar's exact test on the problems where they disagree."""
    verdict_a = {p["id"]: p["verdict"] == "accepted" for p in a["problems"]}
    verdict_b = {p["id"]: p["verdict"] == "accepted" for p in b["problems"]}
    ids = sorted(set(verdict_a) & set(verdict_b))
    diffs = [int(verdict_a[i]) - int(verdict_b[i]) for i in ids]
    n = len(ids)
    mean = sum(diffs) / n if n else 0.0
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    half = 1.96 * math.sqrt(var / n) if n else 0.0
    only_a, only_b = diffs.count(1), diffs.count(-1)
    discordant = only_a + only_b
    tail = sum(math.comb(discordant, k) for k in range(min(only_a, only_b) + 1)) / 2**discordant if discordant else 1.0
    return {"problems": [{"id": i, "a": verdict_a[i], "b": verdict_b[i]} for i in ids], "n": n,
            "pass@1_a": sum(verdict_a[i] for i in ids) / n if n else 0.0, "pass@1_b": sum(verdict_b[i] for i in ids) / n if n else 0.0,
            "difference": mean, "ci95": [mean - half, mean + half], "only_a": only_a, "only_b": only_b,
            "mcnemar_p": min(1.0, 2 * tail)}  # fmt: skip
