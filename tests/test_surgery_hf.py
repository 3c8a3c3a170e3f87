"""HF surgery: a specialist that keeps every routed expert gives the parent's logits."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

from coe.demo.tiny import TinySpec, build_tiny_model, stdlib_corpus
from coe.errors import ConfigError, FormatError
from coe.inspect import inspect_path
from coe.mask import ExpertMask, load_mask
from coe.surgery import prune

PROMPT = "def add(a, b):"


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """16 experts, top-2: a short prompt routes to well under half of them."""
    spec = TinySpec(num_layers=3, num_experts=16, top_k=2, vocab_size=400, seed=1)
    return build_tiny_model(tmp_path_factory.mktemp("parent"), spec, stdlib_corpus(max_files=3))


def _logits_and_picks(model_dir, text=PROMPT) -> tuple[torch.Tensor, dict[int, set[int]]]:
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = AutoTokenizer.from_pretrained(model_dir)(text, return_tensors="pt")
    picks: dict[int, set[int]] = {}
    hooks = [
        layer.router.register_forward_hook(lambda m, a, out, b=b: picks.setdefault(b, set()).update(out[2].flatten().tolist()))
        for b, layer in enumerate(model.model.layers)
    ]
    with torch.no_grad():
        logits = model(**ids).logits
    for h in hooks:
        h.remove()
    return logits, picks


def _mask_keeping(picks: dict[int, set[int]], keep: int, num_experts: int = 16) -> ExpertMask:
    layers = {}
    for block, picked in picks.items():
        fill = [e for e in range(num_experts) if e not in picked][: keep - len(picked)]
        layers[block] = sorted(picked | set(fill))
    return ExpertMask(num_experts, keep, layers)


def test_keeping_every_routed_expert_keeps_the_logits(parent, tmp_path):
    logits, picks = _logits_and_picks(parent)
    keep = max(len(p) for p in picks.values())
    assert keep < 16
    out = tmp_path / "specialist"
    result = prune(parent, _mask_keeping(picks, keep), out, progress=False)
    assert result.sliced == 3 * 4 and result.out_bytes < result.parent_bytes

    pruned_logits, pruned_picks = _logits_and_picks(out)
    torch.testing.assert_close(pruned_logits, logits, rtol=1e-5, atol=1e-5)
    mask = load_mask(out / "mask.json")
    for block, picked in picks.items():  # the same experts fire, under their new ids
        assert {mask.layers[block][i] for i in pruned_picks[block]} == picked

    config = json.loads((out / "config.json").read_text())
    assert config["num_experts"] == keep and config["top_k_experts"] == 2
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (out / name).read_bytes() == (parent / name).read_bytes()
    model = AutoModelForCausalLM.from_pretrained(out)
    ids = AutoTokenizer.from_pretrained(out)(PROMPT, return_tensors="pt")
    assert model.generate(**ids, max_new_tokens=5, do_sample=False).shape[1] == ids["input_ids"].shape[1] + 5
    info = inspect_path(out)
    assert info.layout.num_experts == keep and info.file_size < inspect_path(parent).file_size


def test_removing_a_routed_expert_changes_the_logits(parent, tmp_path):
    logits, picks = _logits_and_picks(parent)
    keep = max(len(p) for p in picks.values())
    mask = _mask_keeping(picks, keep)
    victim = sorted(picks[0])[0]
    replacement = next(e for e in range(16) if e not in mask.layers[0])
    mask.layers[0] = sorted((set(mask.layers[0]) - {victim}) | {replacement})
    prune(parent, mask, tmp_path / "wrong", progress=False)
    wrong, _ = _logits_and_picks(tmp_path / "wrong")
    assert (wrong - logits).abs().max() > 1e-3


def test_sharded_checkpoint_is_pruned_shard_by_shard(parent, tmp_path):
    sharded = tmp_path / "sharded"
    AutoModelForCausalLM.from_pretrained(parent).save_pretrained(sharded, max_shard_size="300KB")
    AutoTokenizer.from_pretrained(parent).save_pretrained(sharded)
    assert len(list(sharded.glob("*.safetensors"))) > 1
    logits, picks = _logits_and_picks(sharded)
    keep = max(len(p) for p in picks.values())
    out = tmp_path / "sharded-specialist"
    prune(sharded, _mask_keeping(picks, keep), out, progress=False)

    index = json.loads((out / "model.safetensors.index.json").read_text())
    total = 0
    for shard in set(index["weight_map"].values()):
        with safe_open(out / shard, framework="pt") as fh:
            names = set(fh.keys())
            assert names == {n for n, s in index["weight_map"].items() if s == shard}
            total += sum(fh.get_tensor(n).numel() * fh.get_tensor(n).element_size() for n in names)
    assert index["metadata"]["total_size"] == total
    torch.testing.assert_close(_logits_and_picks(out)[0], logits, rtol=1e-5, atol=1e-5)


def test_refusals_leave_nothing(parent, tmp_path):
    out = tmp_path / "nothing"
    with pytest.raises(ConfigError, match="for 8 experts per layer"):
        prune(parent, ExpertMask(8, 4, {b: [0, 1, 2, 3] for b in range(3)}), out, progress=False)
    with pytest.raises(ConfigError, match=r"covers MoE blocks \[0, 1\]"):
        prune(parent, ExpertMask(16, 4, {b: [0, 1, 2, 3] for b in range(2)}), out, progress=False)
    with pytest.raises(FormatError, match="does not exist"):
        prune(tmp_path / "missing", ExpertMask(16, 4, {0: [0, 1, 2, 3]}), out, progress=False)
    assert not out.exists() and list(tmp_path.iterdir()) == []
