"""Backends against local HTTP servers that speak each protocol: the exact requests coe sends, and parsing."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from transformers import AutoTokenizer

from coe.backends import GenerationSettings, make_backend
from coe.backends.base import SEED_PREFILL, with_retries
from coe.codebench.generate import compare_reports, generate_all, problem_prompt
from coe.codebench.problems import Problem, load_problems
from coe.errors import CoeError

REPLIES = {
    "/api/chat": {"message": {"role": "assistant", "content": "```python\nprint(1)\n```"}, "done_reason": "stop"},
    "/api/generate": {"response": "print(2)", "done_reason": "length"},
    "/v1/chat/completions": {"choices": [{"message": {"content": "print(3)"}, "finish_reason": "stop"}]},
    "/completion": {"content": "print(4)", "stop_type": "eos"},
}
TEMPLATE = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% if not enable_thinking %}<thought></thought>{% endif %}{% endif %}"


class Recorder(BaseHTTPRequestHandler):
    requests: list = []
    failures: int = 0

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.path, body))
        if type(self).failures:
            type(self).failures -= 1
            self.send_response(503)
            self.end_headers()
            return
        payload = json.dumps(REPLIES[self.path]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Recorder.requests, Recorder.failures = [], 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def template_dir(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = TEMPLATE
    tokenizer.save_pretrained(out)
    return str(out)


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say 1."}]
SAMPLING = {"temperature": 0.6, "repeat_penalty": 1.05, "num_ctx": 8192, "num_predict": 16384, "seed": 0}


def test_ollama_chat_thinking_off(server):
    gen = make_backend("ollama", GenerationSettings(model="spec", url=server)).generate(MESSAGES)
    assert Recorder.requests == [("/api/chat", {"model": "spec", "messages": MESSAGES, "think": False, "stream": False,
                                                "options": SAMPLING})]  # fmt: skip
    assert gen.output == "```python\nprint(1)\n```" and gen.finish_reason == "stop"


def test_ollama_prefill_uses_raw_generate_with_the_rendered_template(server, template_dir):
    settings = GenerationSettings(model="spec", url=server, tokenizer=template_dir, prefill=SEED_PREFILL)
    gen = make_backend("ollama", settings).generate(MESSAGES)
    prompt = "<system>Be brief.\n<user>Say 1.\n<assistant><thought></thought><think></think>\n"
    assert Recorder.requests == [("/api/generate", {"model": "spec", "prompt": prompt, "raw": True, "stream": False,
                                                    "options": SAMPLING})]  # fmt: skip
    assert gen.output == SEED_PREFILL + "print(2)" and gen.finish_reason == "length" and gen.prompt == prompt


def test_openai_compatible_sends_thinking_off_and_prefill(server):
    make_backend("openai", GenerationSettings(model="m", url=server + "/")).generate(MESSAGES)
    make_backend("openai", GenerationSettings(model="m", url=server, prefill="```python\n")).generate(MESSAGES)
    plain, prefilled = (body for _, body in Recorder.requests)
    assert plain == {"model": "m", "messages": MESSAGES, "temperature": 0.6, "max_tokens": 16384, "seed": 0,
                     "repetition_penalty": 1.05, "chat_template_kwargs": {"enable_thinking": False}}  # fmt: skip
    assert prefilled["messages"][-1] == {"role": "assistant", "content": "```python\n"}
    assert prefilled["continue_final_message"] is True and prefilled["add_generation_prompt"] is False


def test_llamacpp_server_completion(server, template_dir):
    gen = make_backend("llamacpp", GenerationSettings(url=server, tokenizer=template_dir)).generate(MESSAGES)
    path, body = Recorder.requests[0]
    assert path == "/completion" and body["prompt"] == "<system>Be brief.\n<user>Say 1.\n<assistant><thought></thought>"
    assert {k: body[k] for k in ("temperature", "repeat_penalty", "n_predict", "n_ctx")} == {
        "temperature": 0.6, "repeat_penalty": 1.05, "n_predict": 16384, "n_ctx": 8192}  # fmt: skip
    assert gen.output == "print(4)" and gen.finish_reason == "eos"


def test_retries_with_backoff_then_gives_up(server, monkeypatch):
    slept = []
    monkeypatch.setattr("coe.backends.base.time.sleep", slept.append)
    Recorder.failures = 2
    gen = make_backend("ollama", GenerationSettings(model="m", url=server, retries=3)).generate(MESSAGES)
    assert gen.output.startswith("```") and slept == [1.0, 2.0] and len(Recorder.requests) == 3
    Recorder.failures = 10
    with pytest.raises(CoeError, match="failed after 2 attempts"):
        make_backend("ollama", GenerationSettings(model="m", url=server, retries=1)).generate(MESSAGES)
    with pytest.raises(CoeError, match="gave up"):
        with_retries(lambda: (_ for _ in ()).throw(CoeError("gave up")), 3, "x")


def test_generate_all_appends_and_resumes(server, tmp_path):
    problems = [p for p in load_problems("humaneval")[:3]]
    settings = GenerationSettings(model="m", url=server, system="Be brief.")
    backend = make_backend("ollama", settings)
    out = tmp_path / "gen.jsonl"
    records = generate_all(problems[:2], backend, settings, out, workers=2)
    assert sorted(r["id"] for r in records) == ["HumanEval/0", "HumanEval/1"]
    records = generate_all(problems, backend, settings, out, workers=2)
    assert len(records) == 3 and len(Recorder.requests) == 3  # the first two were not asked again
    first = Recorder.requests[0][1]["messages"]
    assert first[0] == {"role": "system", "content": "Be brief."} and "```python" in first[1]["content"]


def test_transformers_backend_generates_from_a_tiny_model(tiny_model_dir):
    settings = GenerationSettings(model=str(tiny_model_dir), max_new_tokens=6, temperature=0.0)
    backend = make_backend("transformers", settings)
    gen = backend.generate([{"role": "user", "content": "def add(a, b):"}])
    assert isinstance(gen.output, str) and gen.finish_reason in ("stop", "length") and gen.prompt.startswith("def add")
    backend.close()


def test_prompts_and_paired_comparison():
    stdin = Problem("s", "Sum.", "stdin")
    functional = Problem("f", "Pairs.", "functional", starter_code="class Solution:\n    def f(self):")
    assert "Read the inputs from stdin" in problem_prompt(stdin) and "class Solution" in problem_prompt(functional)
    a = {"problems": [{"id": str(i), "verdict": "accepted" if i < 8 else "wrong_answer"} for i in range(10)]}
    b = {"problems": [{"id": str(i), "verdict": "accepted" if i < 5 else "wrong_answer"} for i in range(10)]}
    result = compare_reports(a, b)
    assert (result["pass@1_a"], result["pass@1_b"], result["only_a"], result["only_b"]) == (0.8, 0.5, 3, 0)
    assert result["difference"] == pytest.approx(0.3) and result["ci95"][0] < 0.3 < result["ci95"][1]
    assert result["mcnemar_p"] == pytest.approx(0.25)  # 3 discordant pairs, all one way: 2 * 0.5**3


def test_modelfile_and_cli_compare(tmp_path):
    import subprocess
    import sys

    from coe.eval.ollama import modelfile

    text = modelfile(tmp_path / "s.gguf", "Write code.")
    assert text.splitlines() == [f"FROM {tmp_path / 's.gguf'}", "PARAMETER temperature 0.6", "PARAMETER repeat_penalty 1.05",
                                 "PARAMETER num_ctx 8192", "PARAMETER num_predict 16384", 'SYSTEM "Write code."']  # fmt: skip
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"problems": [{"id": "1", "verdict": "accepted"}, {"id": "2", "verdict": "accepted"}]}))
    b.write_text(json.dumps({"problems": [{"id": "1", "verdict": "accepted"}, {"id": "2", "verdict": "time_limit"}]}))
    result = subprocess.run([sys.executable, "-m", "coe.cli", "eval", "compare", str(a), str(b)], capture_output=True, text=True)
    assert result.returncode == 0 and "pass@1 1.000 vs 0.500" in result.stdout and "only by A 1" in result.stdout


def test_cli_generate_then_grade(server, tmp_path):
    import subprocess
    import sys

    problems = tmp_path / "p.jsonl"
    problems.write_text(json.dumps({"id": "one", "prompt": "Print 1.", "tests": [{"input": "", "output": "1"}]}) + "\n")
    out = tmp_path / "gen.jsonl"
    cli = lambda *a: subprocess.run([sys.executable, "-m", "coe.cli", "eval", *a], capture_output=True, text=True)  # noqa: E731
    made = cli("generate", "--problems", str(problems), "--backend", "ollama", "--model", "m", "--url", server, "--out", str(out))
    assert made.returncode == 0, made.stderr
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["output"] == "```python\nprint(1)\n```" and record["finish_reason"] == "stop"
    graded = cli("code", "--problems", str(problems), "--solutions", str(out), "--out", str(tmp_path / "r.json"))
    assert graded.returncode == 0 and json.loads((tmp_path / "r.json").read_text())["pass@1"] == 1.0
