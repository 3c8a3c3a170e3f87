"""The code benchmark harness: problems, extraction, grading, pass@k and the sandbox."""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import zlib

import pytest

from coe.codebench.extract import extract_code, strip_thinking
from coe.codebench.grade import grade, grade_all, outputs_match, pass_at_k, report
from coe.codebench.problems import Problem, TestCase, decode_tests, filter_problems, load_problems
from coe.codebench.sandbox import Limits, Sandbox, namespaces_available
from coe.errors import FormatError

needs_namespaces = pytest.mark.skipif(not namespaces_available(), reason="no unprivileged user namespaces here")


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(Limits(timeout_s=2.0, memory_mb=512)) as box:
        yield box


def _pickled(tests: list[dict]) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def test_humaneval_canonical_accepted_and_broken_rejected(sandbox):
    problems = load_problems("humaneval")
    assert len(problems) == 164
    good = [{"id": p.id, "output": p.humaneval["canonical_solution"]} for p in problems]
    broken = [{"id": p.id, "output": "    raise ValueError('broken')\n"} for p in problems]
    workers = os.cpu_count() or 1
    assert all(v[0].verdict == "accepted" for v in grade_all(problems, good, sandbox, workers).values())
    rejected = grade_all(problems, broken, sandbox, workers)
    assert len(rejected) == 164 and all(v[0].verdict == "runtime_error" for v in rejected.values())


def test_humaneval_full_function_in_a_fence_and_wrong_answer(sandbox):
    (problem,) = [p for p in load_problems("humaneval") if p.id == "HumanEval/0"]
    fenced = "<think>long thoughts</think>Here:\n```python\ndef has_close_elements(numbers, threshold):\n" \
             "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n```\n"  # fmt: skip
    assert grade(problem, fenced, sandbox).verdict == "accepted"
    assert grade(problem, "    return True\n", sandbox).verdict == "wrong_answer"


STDIN_PROBLEM = {
    "question_id": "abc001_a", "question_content": "Sum the numbers.", "starter_code": "", "difficulty": "easy",
    "platform": "atcoder", "contest_date": "2024-08-01T00:00:00",
    "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
    "private_test_cases": _pickled([{"input": "0.1 0.2\n", "output": "0.3\n", "testtype": "stdin"},
                                    {"input": "5 5\n", "output": "10\n", "testtype": "stdin"}]),
    "metadata": "{}",
}  # fmt: skip
FUNCTIONAL_PROBLEM = {
    "question_id": "lc1", "question_content": "Return the pair sums.", "difficulty": "medium", "platform": "leetcode",
    "contest_date": "2024-09-15T00:00:00", "starter_code": "class Solution:\n    def pairs(self, a: List[int], k: int):",
    "public_test_cases": json.dumps([{"input": "[1, 2]\n3", "output": "[[1, 2]]", "testtype": "functional"}]),
    "private_test_cases": json.dumps([{"input": "[0.5, 1.0]\n1.5", "output": "[[0.5, 1.0]]", "testtype": "functional"}]),
    "metadata": json.dumps({"func_name": "pairs"}),
}  # fmt: skip


@pytest.fixture
def lcb_file(tmp_path):
    path = tmp_path / "lcb.jsonl"
    path.write_text(json.dumps(STDIN_PROBLEM) + "\n" + json.dumps(FUNCTIONAL_PROBLEM) + "\n")
    return path


def test_livecodebench_stdin_problem(lcb_file, sandbox):
    problem = load_problems(str(lcb_file))[0]
    assert problem.mode == "stdin" and len(problem.tests) == 3
    buffer_solution = "```python\nimport sys\na, b = map(float, sys.stdin.buffer.read().split())\nprint(a + b)\n```"
    assert grade(problem, buffer_solution, sandbox).verdict == "accepted"  # 3.0 vs 3, 0.30000000000000004 vs 0.3
    global_state = "TOTAL = 0\ndef add(x):\n    global TOTAL\n    TOTAL += x\nfor v in input().split():\n    add(int(float(v)))\nprint(TOTAL)\n"
    verdict = grade(problem, global_state, sandbox)
    assert verdict.verdict == "wrong_answer" and verdict.first_failing_test == 1  # int(0.1) + int(0.2) = 0
    assert grade(problem, buffer_solution, sandbox, strict=True).verdict == "wrong_answer"  # "3.0" is not "3"


def test_livecodebench_functional_problem(lcb_file, sandbox):
    problem = load_problems(str(lcb_file))[1]
    assert problem.mode == "functional" and problem.func_name == "pairs"
    solution = "class Solution:\n    def pairs(self, a, k):\n        return [(x, y) for i, x in enumerate(a) for y in a[i+1:] if x + y == k]\n"
    assert grade(problem, solution, sandbox).verdict == "accepted"  # tuples as lists
    assert grade(problem, solution.replace("x + y == k", "x + y != k"), sandbox).verdict == "wrong_answer"
    plain = "def pairs(a, k):\n    return [[a[0], a[1]]]\n"
    assert grade(problem, plain, sandbox).verdict == "accepted"


def test_malicious_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    blob = base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode()
    with pytest.raises(FormatError, match="refused"):
        decode_tests(blob)
    assert not marker.exists()


def test_filters_and_window(lcb_file):
    problems = load_problems(str(lcb_file))
    assert [p.id for p in filter_problems(problems, difficulties=["easy"])] == ["abc001_a"]
    assert [p.id for p in filter_problems(problems, platforms=["leetcode"])] == ["lc1"]
    assert [p.id for p in filter_problems(problems, start="2024-09-01", end="2024-12-31")] == ["lc1"]


def test_extraction():
    assert strip_thinking("a<|channel>thought\nhmm<channel|>b") == "ab"
    assert strip_thinking("a<think>unclosed") == "a"
    assert extract_code("x\n```python\nfirst\n```\ny\n```\nsecond = 2\n```\n") == "second = 2\n"
    assert extract_code("print(1)") == "print(1)"
    assert extract_code("Sure! Here is how you do it.") is None
    problem = Problem("p", "prompt", "stdin", (TestCase("", ""),))
    assert grade(problem, "I cannot do that.", Sandbox(isolate=False)).verdict == "extraction_failure"


def test_outputs_match_tolerance():
    assert outputs_match("3.0000001\n", "3\n") and outputs_match("1  2\n3", "1 2 3")
    assert not outputs_match("3.01", "3") and not outputs_match("1 2", "1 2 3")
    assert outputs_match("a\nb  \n\n", "a\nb", strict=True) and not outputs_match("a b", "a\nb", strict=True)


def test_pass_at_k_and_report():
    assert pass_at_k(10, 0, 1) == 0.0 and pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3) and pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)
    problems = [Problem("a", "", "stdin", difficulty="easy"), Problem("b", "", "stdin", difficulty="hard")]
    from coe.codebench.grade import Verdict

    results = {"a": [Verdict("a", "accepted", None, 1, 0.1), Verdict("a", "wrong_answer", 0, 1, 0.1)]}
    data = report(problems, results)
    assert data["pass@1"] == pytest.approx(0.25) and data["by_difficulty"] == {"easy": 0.5, "hard": 0.0}
    assert [p["verdict"] for p in data["problems"]] == ["accepted", "harness_error"]


@needs_namespaces
@pytest.mark.parametrize(
    ("program", "verdict"),
    [
        ("while True:\n    pass\n", "time_limit"),
        ("x = bytearray(3 * 1024 ** 3)\n", "memory_limit"),
        ("import os\nfor _ in range(300):\n    if os.fork() == 0:\n        os.execv('/bin/sleep', ['sleep', '987651'])\nprint(1)\n", "accepted"),
        ("import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        os.execv('/bin/sleep', ['sleep', '987652'])\n    os._exit(0)\nprint(1)\n", "accepted"),
        ("open('/tmp/coe-sandbox-escape', 'w').write('x')\nprint(1)\n", "runtime_error"),
        ("import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)\nprint(1)\n", "runtime_error"),
    ],
    ids=["infinite-loop", "memory-bomb", "fork-storm", "setsid-double-fork", "write-outside", "network"],
)  # fmt: skip
def test_sandbox_contains(program, verdict, sandbox):
    problem = Problem("p", "", "stdin", (TestCase("", "1\n"),))
    assert grade(problem, program, sandbox).verdict == verdict
    leftovers = subprocess.run(["pgrep", "-f", "^sleep 98765[12]$"], capture_output=True, text=True).stdout
    assert leftovers == "" and not os.path.exists("/tmp/coe-sandbox-escape")


@needs_namespaces
def test_sandbox_hides_the_parent_environment(sandbox, monkeypatch):
    monkeypatch.setenv("COE_SECRET_TOKEN", "hunter2")
    program = "import os\nprint('COE_SECRET_TOKEN' in os.environ, sum(p.isdigit() for p in os.listdir('/proc')))\n"
    result = sandbox.run(program)
    assert result.stdout.split() == ["False", "2"]  # the jail server and the program, nothing else


def test_cli_grades_solutions(lcb_file, tmp_path):
    solutions = tmp_path / "solutions.jsonl"
    solutions.write_text(json.dumps({"id": "abc001_a", "output": "```python\nprint(sum(map(float, input().split())))\n```"})
                         + "\n" + json.dumps({"id": "lc1", "output": "no code here"}) + "\n")  # fmt: skip
    out = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "coe.cli", "eval", "code", "--problems", str(lcb_file),
                             "--solutions", str(solutions), "--out", str(out)], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert {p["id"]: p["verdict"] for p in data["problems"]} == {"abc001_a": "accepted", "lc1": "extraction_failure"}
    assert data["pass@1"] == 0.5 and data["by_difficulty"] == {"easy": 1.0, "medium": 0.0}


def test_unisolated_fallback_runs_with_rlimits(caplog):
    box = Sandbox(Limits(timeout_s=1.0, memory_mb=512), isolate=False)
    assert box.run("print(input()[::-1])", "abc\n").stdout == "cba\n"
    assert box.run("while True:\n    pass\n").status == "timeout"
    assert box.run("x = bytearray(2 * 1024 ** 3)\n").status == "memory"
