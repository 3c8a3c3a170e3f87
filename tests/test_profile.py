"""Router profiling on a tiny random Gemma 4 MoE, checked against brute force."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from coe.errors import ConfigError, FormatError
from coe.profile import load_profile, merge_profiles, save_profile
from coe.profile.recorder import RouterRecorder, find_moe_layers
from coe.profile.runner import ProfileSettings, load_model, profile_model

from conftest import write_jsonl


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_model(tiny_model_dir, ProfileSettings())


def _content_tokens(loaded, texts: list[str]) -> int:
    return sum(len(loaded.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)


@torch.no_grad()
def _brute_force(router: torch.nn.Module, inputs: torch.Tensor, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Recompute Gemma 4's routing in float64 from a router's input, independently of transformers."""
    x = inputs.double()  # [N, H]
    x = x * (x.pow(2).mean(-1, keepdim=True) + router.eps).pow(-0.5)
    x = x * router.scale.double() * router.hidden_size**-0.5
    probs = torch.softmax(x @ router.proj.weight.double().T, dim=-1)  # [N, E]
    weights, index = probs.topk(top_k, dim=-1)  # [N, R], sorted: rank 0 = largest
    return index.numpy(), weights.numpy()


def test_counts_and_weights_equal_brute_force(loaded, corpus_file, monkeypatch):
    routers = [layer.router for layer in find_moe_layers(loaded.model, loaded.family, loaded.layout)]
    inputs: list[list[torch.Tensor]] = [[] for _ in routers]
    masks: list[torch.Tensor] = []
    handles = [
        r.register_forward_pre_hook(lambda m, args, slot=slot: inputs[slot].append(args[0].detach().clone()))
        for slot, r in enumerate(routers)
    ]
    original = RouterRecorder.counting
    monkeypatch.setattr(RouterRecorder, "counting", lambda self, m: (masks.append(m.reshape(-1)), original(self, m)))
    try:
        profile = profile_model(loaded, [corpus_file], ProfileSettings(batch_size=4, max_length=96), progress=False)
    finally:
        for h in handles:
            h.remove()

    L, E, R = profile.shape
    counts = np.zeros((L, E, R), dtype=np.int64)
    weight_sum = np.zeros((L, E, R))
    for slot, router in enumerate(routers):
        for x, mask in zip(inputs[slot], masks, strict=True):
            index, weights = _brute_force(router, x, R)
            keep = mask.numpy()
            for r in range(R):
                np.add.at(counts[slot, :, r], index[keep, r], 1)
                np.add.at(weight_sum[slot, :, r], index[keep, r], weights[keep, r])
    np.testing.assert_array_equal(profile.counts, counts)
    np.testing.assert_allclose(profile.weight_sum, weight_sum, rtol=1e-5)
    assert profile.n_tokens == sum(int(m.sum()) for m in masks)
    assert (profile.counts.sum(axis=(1, 2)) == profile.n_tokens * R).all()  # every counted token picks R experts


def test_reap_gate_out_norm_equals_brute_force(loaded, corpus_file, monkeypatch):
    experts = [layer.experts for layer in find_moe_layers(loaded.model, loaded.family, loaded.layout)]
    calls: list[list[tuple]] = [[] for _ in experts]
    masks: list[torch.Tensor] = []
    handles = [
        e.register_forward_pre_hook(lambda m, args, slot=slot: calls[slot].append(tuple(a.clone() for a in args[:3])))
        for slot, e in enumerate(experts)
    ]
    original = RouterRecorder.counting
    monkeypatch.setattr(RouterRecorder, "counting", lambda self, m: (masks.append(m.reshape(-1)), original(self, m)))
    settings = ProfileSettings(batch_size=4, max_length=64, reap=True)
    try:
        profile = profile_model(loaded, [corpus_file], settings, progress=False)
    finally:
        for h in handles:
            h.remove()

    expected = np.zeros(profile.shape[:2])
    with torch.no_grad():
        for slot, module in enumerate(experts):
            gate_up, down = module.gate_up_proj.double(), module.down_proj.double()
            for (hidden, index, weights), mask in zip(calls[slot], masks, strict=True):
                for token in torch.nonzero(mask).flatten().tolist():
                    for k, e in enumerate(index[token].tolist()):
                        gate, up = (gate_up[e] @ hidden[token].double()).chunk(2)
                        out = down[e] @ (module.act_fn(gate) * up)
                        expected[slot, e] += float(weights[token, k]) * float(out.norm())
    np.testing.assert_allclose(profile.extras["gate_out_norm_sum"], expected, rtol=1e-4)
    plain = profile_model(loaded, [corpus_file], dataclasses.replace(settings, reap=False), progress=False)
    assert plain.extras == {}
    np.testing.assert_array_equal(plain.counts, profile.counts)


def test_padding_and_bos_are_not_counted(loaded, corpus_file, documents):
    unpadded = profile_model(loaded, [corpus_file], ProfileSettings(batch_size=1, max_length=96), progress=False)
    padded = profile_model(loaded, [corpus_file], ProfileSettings(batch_size=5, max_length=96), progress=False)
    np.testing.assert_array_equal(padded.counts, unpadded.counts)
    np.testing.assert_allclose(padded.weight_sum, unpadded.weight_sum, rtol=1e-6)
    assert padded.n_tokens == unpadded.n_tokens == _content_tokens(loaded, documents)


def test_long_documents_are_chunked_not_truncated(loaded, tmp_path, documents):
    long_doc = "\n".join(documents)
    path = write_jsonl(tmp_path / "long.jsonl", [long_doc])
    profile = profile_model(loaded, [path], ProfileSettings(batch_size=2, max_length=32), progress=False)
    assert profile.n_tokens == _content_tokens(loaded, [long_doc]) > 32


def test_plain_text_file_is_one_document(loaded, tmp_path, documents):
    text = "\n".join(documents)
    path = tmp_path / "corpus.txt"
    path.write_text(text)
    profile = profile_model(loaded, [path], ProfileSettings(batch_size=3, max_length=64), progress=False)
    assert profile.n_tokens == _content_tokens(loaded, [text])
    assert profile.meta.corpus_sha256 != ""


def test_shards_merged_equal_whole(loaded, tmp_path, documents):
    settings = ProfileSettings(batch_size=1, max_length=80)
    whole = profile_model(loaded, [write_jsonl(tmp_path / "all.jsonl", documents)], settings, progress=False)
    shards = [
        profile_model(loaded, [write_jsonl(tmp_path / f"s{i}.jsonl", part)], settings, progress=False)
        for i, part in enumerate((documents[:5], documents[5:]))
    ]
    merged = merge_profiles(shards)
    np.testing.assert_array_equal(merged.counts, whole.counts)
    np.testing.assert_allclose(merged.weight_sum, whole.weight_sum, rtol=1e-12)
    assert merged.n_tokens == whole.n_tokens
    assert merged.meta.corpus_sha256 == "+".join(s.meta.corpus_sha256 for s in shards)


def test_save_load_round_trip_is_bit_exact(loaded, corpus_file, tmp_path):
    profile = profile_model(loaded, [corpus_file], ProfileSettings(batch_size=4, max_length=64), progress=False)
    profile.extras["gate_out_norm_sum"] = np.random.default_rng(0).random(profile.shape[:2])
    path = tmp_path / "out" / "profile.safetensors"
    save_profile(profile, path)
    back = load_profile(path)
    assert back.counts.dtype == np.int64 and back.weight_sum.dtype == np.float64
    assert back.counts.tobytes() == profile.counts.tobytes()
    assert back.weight_sum.tobytes() == profile.weight_sum.tobytes()
    assert back.extras["gate_out_norm_sum"].tobytes() == profile.extras["gate_out_norm_sum"].tobytes()
    assert back.n_tokens == profile.n_tokens
    assert back.meta == profile.meta
    assert back.meta.moe_layers == (0, 1, 2) and back.meta.family == "gemma4" and back.meta.backend == "transformers"
    assert [p.name for p in path.parent.iterdir()] == ["profile.safetensors"]  # no temporary left behind


def test_merge_refuses_other_models(loaded, corpus_file):
    profile = profile_model(loaded, [corpus_file], ProfileSettings(batch_size=4, max_length=64), progress=False)
    other = dataclasses.replace(profile, meta=dataclasses.replace(profile.meta, model_id="elsewhere"))
    with pytest.raises(ConfigError, match="model_id"):
        merge_profiles([profile, other])


@pytest.mark.parametrize(
    "content", [b"", b"not a safetensors file at all", b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "]
)
def test_corrupt_profile_is_a_user_error(tmp_path: Path, content: bytes):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(FormatError):
        load_profile(path)


def test_foreign_safetensors_is_a_user_error(tmp_path: Path):
    from safetensors.numpy import save_file

    path = tmp_path / "weights.safetensors"
    save_file({"w": np.zeros(3, dtype=np.float32)}, path)
    with pytest.raises(FormatError, match="not a coe profile"):
        load_profile(path)


def test_bad_settings_are_refused_before_loading(tiny_model_dir):
    with pytest.raises(ConfigError, match="batch_size"):
        load_model(tiny_model_dir, ProfileSettings(batch_size=0))
    with pytest.raises(FormatError, match="config.json"):
        load_model(tiny_model_dir / "missing", ProfileSettings())


def test_missing_corpus_is_a_user_error(loaded, tmp_path):
    with pytest.raises(FormatError, match="does not exist"):
        profile_model(loaded, [tmp_path / "nope.jsonl"], ProfileSettings(), progress=False)
