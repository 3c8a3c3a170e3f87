"""Gemma 4 (transformers' ``Gemma4ForCausalLM`` / ``gemma4_text``; llama.cpp's ``gemma4``).

Every decoder layer of an MoE Gemma 4 (``enable_moe_block``) runs a dense FFN
(``mlp``, the always-on shared expert, never pruned) beside a routed expert
block. The router (``Gemma4TextRouter``) computes a softmax over all experts,
takes the top-k, renormalises those k weights to sum to one and multiplies
them by ``per_expert_scale``; it returns ``(probs, weights, index)``.
"""

from __future__ import annotations

from gguf.constants import MODEL_ARCH, MODEL_TENSOR

from coe.families.base import GGUFExpertTensor, HFExpertTensor, MoEFamily, RouterSemantics

__all__ = ["GEMMA4"]

GEMMA4 = MoEFamily(
    name="gemma4",
    hf_model_types=("gemma4_text", "gemma4"),
    gguf_arch=MODEL_ARCH.GEMMA4,
    layers_paths=("model.layers", "model.language_model.layers"),
    text_config_key="text_config",
    router_module="router",
    router_output=("probs", "weights", "index"),
    experts_module="experts",
    num_experts_key="num_experts",
    top_k_key="top_k_experts",
    moe_flag_key="enable_moe_block",
    router=RouterSemantics(scoring="softmax", renormalize_topk=True, per_expert_scale=True),
    hf_expert_tensors=(
        HFExpertTensor("router.proj.weight", expert_axis=0),
        HFExpertTensor("router.per_expert_scale", expert_axis=0),
        HFExpertTensor("experts.gate_up_proj", expert_axis=0),
        HFExpertTensor("experts.down_proj", expert_axis=0),
    ),
    gguf_expert_tensors=(
        GGUFExpertTensor(MODEL_TENSOR.FFN_GATE_INP),
        GGUFExpertTensor(MODEL_TENSOR.FFN_GATE_UP_EXP, optional=True),
        GGUFExpertTensor(MODEL_TENSOR.FFN_GATE_EXP, optional=True),
        GGUFExpertTensor(MODEL_TENSOR.FFN_UP_EXP, optional=True),
        GGUFExpertTensor(MODEL_TENSOR.FFN_DOWN_EXP),
        GGUFExpertTensor(MODEL_TENSOR.FFN_DOWN_EXP, suffix="scale", optional=True),
    ),
    shared_modules=("mlp",),
    fused_gate_up=True,
)
