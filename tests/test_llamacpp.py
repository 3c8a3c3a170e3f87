"""llama.cpp integration: export, GGUF-native profiling, specialists proven in llama.cpp.

Runs against a real llama.cpp (llama-cpp-python, installed by the README's test
command). Numerical notes that set the tolerances below: ggml's CPU GELU reads
an f16 lookup table, so llama.cpp's activations differ from transformers' by
about 1e-3 relative; Q8_0 matmuls also round activations to 8 bits.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("llama_cpp", reason="needs llama-cpp-python: pip install 'coe[llamacpp]'")

from click.testing import CliRunner  # noqa: E402
from gguf import GGUFReader  # noqa: E402
from gguf.constants import GGMLQuantizationType as Q  # noqa: E402
from gguf.quants import dequantize, quantize  # noqa: E402

from coe.cli import cli  # noqa: E402
from coe.demo.tiny import stdlib_corpus  # noqa: E402
from coe.errors import ConfigError, FormatError  # noqa: E402
from coe.export import export_gguf  # noqa: E402
from coe.llamacpp.profile import GGUFProfileSettings, profile_gguf  # noqa: E402
from coe.llamacpp.runtime import GGUFRuntime  # noqa: E402
from coe.llamacpp.verify import LOGIT_TOLERANCE, verify_specialist  # noqa: E402
from coe.mask import ExpertMask, MaskSettings, build_mask, save_mask  # noqa: E402
from coe.profile import load_profile  # noqa: E402
from coe.profile.runner import ProfileSettings, load_model, profile_model  # noqa: E402
from coe.surgery import prune_gguf  # noqa: E402

PROMPT = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
MAX_LENGTH = 64


@pytest.fixture(scope="module")
def hf_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def parent_gguf(tiny_model_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gguf") / "parent-f32.gguf"
    export_gguf(tiny_model_dir, out, "f32", progress=False)
    return out


def _hf_logits(model, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def _llama_logits(path: Path, ids: list[int]) -> np.ndarray:
    with GGUFRuntime(path, n_ctx=128, f32_cache=True) as runtime:
        return runtime.decode(ids, logits=True)


def _llama_tokens(path: Path, text: str) -> list[int]:
    with GGUFRuntime(path, n_ctx=16) as runtime:
        return runtime.tokenize(text)


def _ids(tokenizer, text: str) -> list[int]:
    return [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]


# --- export ---------------------------------------------------------------------------------------------------------


def test_export_loads_in_llama_cpp_with_the_same_tokenizer_and_shape(parent_gguf, hf_model, tiny_spec):
    _, tokenizer = hf_model
    texts = [PROMPT, "naïve — ✓ café\t\ttabs   and  spaces\n\n\nend", "x = {'a': [1, 2.5e-3]}  # comment"]
    with GGUFRuntime(parent_gguf, n_ctx=128) as runtime:
        assert runtime.meta("gemma4.expert_count") == str(tiny_spec.num_experts)
        assert runtime.meta("gemma4.expert_used_count") == str(tiny_spec.top_k)
        assert runtime.bos_id == tokenizer.bos_token_id
        assert runtime.n_vocab == len(tokenizer)
        for text in texts:
            assert runtime.tokenize(text) == tokenizer(text, add_special_tokens=False)["input_ids"]


def test_f32_export_gives_transformers_logits(parent_gguf, hf_model):
    model, tokenizer = hf_model
    ids = _ids(tokenizer, PROMPT)
    want, got = _hf_logits(model, ids), _llama_logits(parent_gguf, ids)
    assert np.abs(got - want).max() < 3e-3 * np.abs(want).max()  # f16 GELU table: ~1e-3 relative
    assert (got.argmax(-1) == want.argmax(-1)).all()


def test_q8_0_export_gives_the_logits_of_its_rounded_weights(tiny_model_dir, parent_gguf, hf_model, tmp_path):
    model, tokenizer = hf_model
    out = tmp_path / "parent-q8_0.gguf"
    result = export_gguf(tiny_model_dir, out, "q8_0", progress=False)
    assert result.types["Q8_0"] > 0 and result.nbytes == out.stat().st_size < 0.4 * parent_gguf.stat().st_size
    quantised = {t.name for t in GGUFReader(out).tensors if t.tensor_type == Q.Q8_0}
    assert "blk.0.ffn_gate_up_exps.weight" in quantised and "blk.0.ffn_gate_inp.weight" not in quantised
    ids = _ids(tokenizer, PROMPT)
    got, exact = _llama_logits(out, ids), _hf_logits(model, ids)
    rounded = type(model).from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    with torch.no_grad():  # the weights llama.cpp holds: every 2-D+ tensor but the router through Q8_0
        for name, param in rounded.named_parameters():
            if param.dim() >= 2 and "router" not in name and param.shape[-1] % 32 == 0:
                param.copy_(torch.from_numpy(dequantize(quantize(param.numpy(), Q.Q8_0), Q.Q8_0)))
    want = _hf_logits(rounded, ids)
    assert np.abs(got - want).max() < np.abs(got - exact).max()  # closer to its own weights than to the float model
    assert np.abs(got - want).max() < 0.3 * np.abs(want).max()  # 8-bit activations in every Q8_0 matmul
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.85
    corpus = tmp_path / "c.txt"
    corpus.write_text(PROMPT)
    profile = profile_gguf(out, [corpus], GGUFProfileSettings(max_length=MAX_LENGTH), progress=False)
    assert (profile.meta.quantization, profile.n_tokens) == ("MOSTLY_Q8_0", len(ids) - 1)


def test_f16_export_gives_the_logits_of_its_rounded_weights(tiny_model_dir, hf_model, tmp_path):
    from coe.inspect import inspect_path

    model, tokenizer = hf_model
    out = tmp_path / "parent-f16.gguf"
    export_gguf(tiny_model_dir, out, "f16", progress=False)
    assert inspect_path(out).layout.num_experts == 8
    rounded = type(model).from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    with torch.no_grad():  # every 2-D+ tensor but the router is F16 in the file
        for name, param in rounded.named_parameters():
            if param.dim() >= 2 and "router" not in name:
                param.copy_(param.half().float())
    ids = _ids(tokenizer, PROMPT)
    got, want = _llama_logits(out, ids), _hf_logits(rounded, ids)
    assert np.abs(got - want).max() < 1e-2 * np.abs(want).max()  # F16 matmuls round activations to F16 too
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.95


def test_export_refuses_an_unknown_type_and_a_missing_checkpoint(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match="--type"):
        export_gguf(tiny_model_dir, tmp_path / "x.gguf", "q4_k")
    with pytest.raises(FormatError, match="config.json"):
        export_gguf(tmp_path / "nothing", tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


# --- GGUF-native profiling ------------------------------------------------------------------------------------------


def _router_margin(model, ids: list[int]) -> float:
    """Smallest probability gap around the top-k picks over all tokens and layers (how decisive the routing is)."""
    probs = []
    hooks = [layer.router.register_forward_hook(lambda m, i, o: probs.append(o[0].reshape(-1, o[0].shape[-1])))
             for layer in model.model.layers]  # fmt: skip
    try:
        _hf_logits(model, ids)
    finally:
        for hook in hooks:
            hook.remove()
    top = torch.sort(torch.cat(probs), dim=-1, descending=True).values[:, : model.config.top_k_experts + 1]
    return float((top[:, :-1] - top[:, 1:]).min())


@pytest.fixture(scope="module")
def decisive_corpus(hf_model, tmp_path_factory) -> Path:
    """Documents on which no routing decision is within 1e-3 of a tie.

    Two float implementations can break a near-tie differently (llama.cpp's
    routing noise here is about 1e-5); every other pick must agree exactly.
    Includes prompt/response documents whose prompt is not counted.
    """
    model, tokenizer = hf_model
    lines = [line for text in stdlib_corpus(max_files=20, max_chars=4000) for line in text.splitlines() if len(line) > 20]
    docs = []
    for i, line in enumerate(lines):
        segments = [{"text": line + "\n", "count": True}]
        if i % 3 == 0 and i + 1 < len(lines):
            segments = [{"text": line + "\n", "count": False}, {"text": lines[i + 1] + "\n", "count": True}]
        ids = [tokenizer.bos_token_id]
        for segment in segments:
            ids += tokenizer(segment["text"], add_special_tokens=False)["input_ids"]
        if len(ids) <= MAX_LENGTH and _router_margin(model, ids) > 1e-3:
            docs.append({"segments": segments})
        if len(docs) == 40:
            break
    assert len(docs) == 40 and sum(len(d["segments"]) == 2 for d in docs) >= 5
    path = tmp_path_factory.mktemp("corpus") / "decisive.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def test_gguf_profile_equals_the_transformers_profile(parent_gguf, tiny_model_dir, decisive_corpus):
    settings = ProfileSettings(batch_size=4, max_length=MAX_LENGTH)
    want = profile_model(load_model(tiny_model_dir, settings), [decisive_corpus], settings, progress=False)
    # micro-batches of 8 tokens: every document is split across several compute graphs
    got = profile_gguf(parent_gguf, [decisive_corpus], GGUFProfileSettings(max_length=MAX_LENGTH, n_ubatch=8, exact=True),
                       progress=False)
    assert got.n_tokens == want.n_tokens > 300
    np.testing.assert_array_equal(got.counts, want.counts)
    np.testing.assert_allclose(got.weight_sum, want.weight_sum, rtol=1e-3)  # probabilities carry the GELU noise
    assert (got.meta.backend, got.meta.quantization, got.meta.weight_semantics) == (
        "llama.cpp", "ALL_F32", want.meta.weight_semantics)
    assert got.meta.corpus_sha256 == want.meta.corpus_sha256


def test_profile_cli_takes_a_gguf(parent_gguf, decisive_corpus, tmp_path):
    out = tmp_path / "profile.safetensors"
    result = CliRunner().invoke(cli, ["profile", "--model", str(parent_gguf), "--corpus", str(decisive_corpus),
                                      "--out", str(out), "--max-length", "64", "--threads", "2", "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    profile = load_profile(out)
    assert profile.meta.backend == "llama.cpp" and profile.counts.sum() == profile.n_tokens * 3 * 2
    refused = CliRunner().invoke(cli, ["profile", "--model", str(parent_gguf), "--corpus", str(decisive_corpus),
                                       "--out", str(out), "--reap"])  # fmt: skip
    assert refused.exit_code != 0 and "--reap" in refused.output


# --- specialists proven in llama.cpp ------------------------------------------------------------------------------


def _parent_routing(parent: Path, text: str, layers: int) -> list[set[int]]:
    """Experts each MoE layer picks for any token of ``text`` (BOS included), from llama.cpp."""
    from coe.llamacpp.profile import gguf_layout
    from coe.llamacpp.routing import RoutingCapture

    capture = RoutingCapture(gguf_layout(parent))
    with GGUFRuntime(parent, n_ctx=128, callback=capture, want=capture.want, f32_cache=True) as runtime:
        tokens = [runtime.bos_id] + runtime.tokenize(text)
        runtime.decode(tokens)
    picks, _ = capture.take(len(tokens))
    return [set(np.unique(picks[layer]).tolist()) for layer in range(layers)]


@pytest.fixture(scope="module")
def cut(parent_gguf, decisive_corpus, tmp_path_factory):
    """HF parent -> export -> GGUF profile -> mask -> GGUF surgery, keeping 7 of 8 experts.

    Every sequence starts with BOS, which also passes through the routers: a
    prefix can only match the parent if the experts BOS picks are kept. With 7
    of 8 they are (the test below says so if that changes); with 6 this model
    loses one of BOS's experts in block 0 and no prefix is left to compare.
    """
    work = tmp_path_factory.mktemp("specialist")
    profile = profile_gguf(parent_gguf, [decisive_corpus], GGUFProfileSettings(max_length=MAX_LENGTH), progress=False)
    mask = build_mask([profile], MaskSettings(keep=7, whitelist_min_count=1))
    save_mask(mask, work / "mask.json")
    prune_gguf(parent_gguf, mask, work / "specialist.gguf", progress=False)
    prompts = [json.loads(line)["segments"][-1]["text"] for line in decisive_corpus.read_text().splitlines()]
    return work, mask, prompts


def test_specialist_logits_equal_the_parents_where_no_routed_expert_was_removed(parent_gguf, cut):
    work, mask, prompts = cut
    report = verify_specialist(work / "specialist.gguf", parent_gguf, mask, prompts, held_out=[PROMPT * 3])
    assert report.ok, report.lines()
    assert report.expert_count == 7
    assert report.covered_positions >= 100, "the mask drops an expert BOS routes to: no prefix to compare"
    assert report.covered_positions < report.total_positions  # elsewhere a removed expert was routed to ...
    assert report.differing_positions > 0.5 * (report.total_positions - report.covered_positions)  # ... and it shows
    assert report.max_logit_diff <= LOGIT_TOLERANCE
    assert report.agreement_positions == 1 + len(_llama_tokens(parent_gguf, PROMPT * 3))
    assert 0 < report.agreement <= 1


def test_verify_fails_on_a_specialist_cut_with_a_wrong_mask(parent_gguf, cut, tmp_path):
    work, mask, prompts = cut
    used = _parent_routing(parent_gguf, prompts[0], layers=3)
    layer = next(i for i in range(3) if used[i] & set(mask.layers[i]))
    victim = sorted(used[layer] & set(mask.layers[layer]))[0]  # a kept expert the first prompt routes to
    spare = next(e for e in range(mask.num_experts) if e not in mask.layers[layer])
    wrong = ExpertMask(mask.num_experts, mask.keep,
                       {b: sorted(spare if (b == layer and e == victim) else e for e in kept) for b, kept in mask.layers.items()})  # fmt: skip
    prune_gguf(parent_gguf, wrong, tmp_path / "wrong.gguf", progress=False)
    report = verify_specialist(tmp_path / "wrong.gguf", parent_gguf, mask, prompts)
    assert not report.ok
    assert any("logits differ" in failure for failure in report.failures)
    assert any("different mask" in failure for failure in report.failures)


def test_verify_cli_exit_status(parent_gguf, cut, tmp_path):
    work, mask, prompts = cut
    (tmp_path / "prompts.txt").write_text("\n".join(prompts[:10]))
    (tmp_path / "held.txt").write_text(PROMPT * 3)
    args = ["verify", str(work / "specialist.gguf"), "--parent", str(parent_gguf), "--mask", str(work / "mask.json"),
            "--prompts-file", str(tmp_path / "prompts.txt"), "--held-out", str(tmp_path / "held.txt")]  # fmt: skip
    ok = CliRunner().invoke(cli, args)
    assert ok.exit_code == 0, ok.output
    assert "next-token agreement" in ok.output and "OK" in ok.output
    strict = CliRunner().invoke(cli, [*args, "--min-agreement", "1.01"])
    assert strict.exit_code == 1 and "FAILED" in strict.output


# --- llama.cpp as a generation backend ---------------------------------------------------------------------------

CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}"
                 "<assistant>{% if not enable_thinking %}<thought></thought>{% endif %}{% endif %}")  # fmt: skip


@pytest.fixture(scope="module")
def chat_gguf(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny parent with a chat template that shows whether thinking was switched off, as a GGUF."""
    import shutil

    from transformers import AutoTokenizer

    work = tmp_path_factory.mktemp("chat")
    shutil.copytree(tiny_model_dir, work / "hf")
    tokenizer = AutoTokenizer.from_pretrained(work / "hf")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(work / "hf")
    export_gguf(work / "hf", work / "chat.gguf", "f32", progress=False)
    return work / "chat.gguf"


def _greedy(path: Path, prompt: str, steps: int) -> list[int]:
    with GGUFRuntime(path, n_ctx=128) as runtime:
        tokens = [runtime.bos_id] + runtime.tokenize(prompt)
        for _ in range(steps):
            tokens.append(int(runtime.decode(tokens, logits=True)[-1].argmax()))
    return tokens[-steps:]


def test_in_process_backend_renders_the_gguf_template_thinking_off_and_samples_greedily(chat_gguf):
    from coe.backends import GenerationSettings, make_backend

    settings = GenerationSettings(model=str(chat_gguf), temperature=0.0, repeat_penalty=1.0, max_new_tokens=6, num_ctx=128)
    backend = make_backend("llamacpp-local", settings)
    try:
        generation = backend.generate([{"role": "user", "content": "def fib(n):"}])
        assert generation.prompt == "<user>def fib(n):\n<assistant><thought></thought>"
        assert generation.finish_reason == "length"
        want = backend.llm.detokenize(_greedy(chat_gguf, generation.prompt, 6)).decode(errors="ignore")
        assert generation.output == want
    finally:
        backend.close()
    with pytest.raises(ConfigError, match=".gguf"):
        make_backend("llamacpp-local", GenerationSettings(model="some/hf/dir"))


def test_openai_backend_against_llama_cpp_pythons_server(chat_gguf, tmp_path):
    """llama-cpp-python's OpenAI-compatible server, a real one, in a subprocess."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from coe.backends import GenerationSettings, make_backend

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(chat_gguf), "--host", "127.0.0.1",
                               "--port", str(port), "--n_ctx", "256", "--flash_attn", "true"], stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/v1/models", timeout=1)
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
                time.sleep(0.2)
        settings = GenerationSettings(model="chat", url=url, temperature=0.0, max_new_tokens=5, repeat_penalty=1.0)
        generation = make_backend("openai", settings).generate([{"role": "user", "content": "def fib(n):"}])
        assert isinstance(generation.output, str) and generation.finish_reason in {"stop", "length"}
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
