"""The registry and the Gemma 4 family adapter."""

from __future__ import annotations

import pytest

from coe.errors import ConfigError
from coe.families import FAMILIES, family_for_gguf_arch, family_for_model_type, layout_from_hf_config
from coe.registry import Registry


def test_registry_lazy_entry_imports_on_first_use():
    reg: Registry[object] = Registry("thing", {"dumps": "json:dumps"})
    import json

    assert reg.get("dumps") is json.dumps
    assert reg.names() == ["dumps"] and "dumps" in reg


def test_registry_decorator_duplicate_and_did_you_mean():
    reg: Registry[object] = Registry("scorer")

    @reg.register("frequency")
    def frequency():
        return 1

    assert reg.get("frequency") is frequency
    with pytest.raises(ConfigError, match="already registered"):
        reg.add("frequency", frequency)
    with pytest.raises(ConfigError, match=r"unknown scorer 'frequncy'; known: frequency\. Did you mean 'frequency'\?"):
        reg.get("frequncy")


def test_gemma4_lookup_by_hf_type_and_gguf_arch():
    gemma = FAMILIES.get("gemma4")
    assert family_for_model_type("gemma4_text") is gemma
    assert family_for_model_type("gemma4") is gemma
    assert family_for_gguf_arch("gemma4") is gemma
    with pytest.raises(ConfigError, match="known: gemma4"):
        family_for_model_type("llama")
    with pytest.raises(ConfigError, match="GGUF architecture 'qwen3moe'"):
        family_for_gguf_arch("qwen3moe")


def test_gemma4_declares_every_per_expert_tensor():
    gemma = FAMILIES.get("gemma4")
    assert {t.name for t in gemma.hf_expert_tensors} == {
        "router.proj.weight",
        "router.per_expert_scale",
        "experts.gate_up_proj",
        "experts.down_proj",
    }
    assert all(t.expert_axis == 0 for t in gemma.hf_expert_tensors)
    assert [t.name(3) for t in gemma.gguf_expert_tensors] == [
        "blk.3.ffn_gate_inp.weight",
        "blk.3.ffn_gate_up_exps.weight",
        "blk.3.ffn_gate_exps.weight",
        "blk.3.ffn_up_exps.weight",
        "blk.3.ffn_down_exps.weight",
        "blk.3.ffn_down_exps.scale",
    ]
    assert gemma.shared_modules == ("mlp",)
    assert gemma.router.describe() == (
        "softmax over all experts, top-k, renormalised over the top-k, times per_expert_scale"
    )


def test_layout_from_text_and_multimodal_configs():
    text = {"model_type": "gemma4_text", "enable_moe_block": True, "num_experts": 128, "top_k_experts": 8,
            "num_hidden_layers": 30}  # fmt: skip
    family, layout = layout_from_hf_config(text)
    assert family.name == "gemma4"
    assert (layout.moe_layers, layout.num_experts, layout.top_k) == (tuple(range(30)), 128, 8)
    _, nested = layout_from_hf_config({"model_type": "gemma4", "text_config": text})
    assert nested == layout


def test_dense_gemma4_is_refused():
    with pytest.raises(ConfigError, match="no experts"):
        layout_from_hf_config({"model_type": "gemma4_text", "enable_moe_block": False, "num_hidden_layers": 2})
