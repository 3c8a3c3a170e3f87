"""Build tiny, random Gemma 4 MoE checkpoints and a byte-level tokenizer offline.

These serve the tests, the benchmarks and the quick start on machines with no
model download: a real ``Gemma4ForCausalLM`` in a real HF directory, only small.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TinySpec", "build_tokenizer", "tiny_config", "build_tiny_model", "stdlib_corpus"]

SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>")  # ids 0..3, Gemma's pad/eos/bos order


@dataclass(frozen=True)
class TinySpec:
    """Shape of a tiny Gemma 4 MoE."""

    num_layers: int = 3
    num_experts: int = 8
    top_k: int = 2
    hidden_size: int = 64
    intermediate_size: int = 128
    moe_intermediate_size: int = 32
    vocab_size: int = 512
    seed: int = 0


def build_tokenizer(texts: Iterable[str], vocab_size: int):
    """Train a byte-level BPE tokenizer (deterministic) and wrap it for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )


def tiny_config(spec: TinySpec, vocab_size: int | None = None):
    """A ``Gemma4TextConfig`` with every MoE block on and small dimensions."""
    from transformers import Gemma4TextConfig

    vocab = vocab_size or spec.vocab_size
    layer_types = ["sliding_attention"] * (spec.num_layers - 1) + ["full_attention"]
    return Gemma4TextConfig(
        vocab_size=vocab,
        vocab_size_per_layer_input=vocab,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        global_head_dim=32,
        hidden_size_per_layer_input=0,
        sliding_window=64,
        layer_types=layer_types,
        max_position_embeddings=4096,
        enable_moe_block=True,
        num_experts=spec.num_experts,
        top_k_experts=spec.top_k,
        moe_intermediate_size=spec.moe_intermediate_size,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )


def build_tiny_model(out_dir: str | os.PathLike[str], spec: TinySpec, tokenizer_texts: Iterable[str]) -> Path:
    """Save a random tiny Gemma 4 MoE with a trained tokenizer to ``out_dir``.

    Router projections are drawn wider than the default init so that routing is
    decisive (no near-ties), as in a trained model.
    """
    import torch
    from transformers import Gemma4ForCausalLM

    tokenizer = build_tokenizer(tokenizer_texts, spec.vocab_size)
    torch.manual_seed(spec.seed)
    model = Gemma4ForCausalLM(tiny_config(spec, vocab_size=len(tokenizer))).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.router.proj.weight.normal_(0.0, 1.0)
            layer.router.per_expert_scale.uniform_(0.5, 1.5)
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def stdlib_corpus(max_files: int = 20, max_chars: int = 20_000) -> list[str]:
    """Deterministic coding text: Python standard-library sources, sorted by name."""
    import sysconfig

    root = Path(sysconfig.get_paths()["stdlib"])
    texts = []
    for path in sorted(root.glob("*.py"))[:max_files]:
        texts.append(path.read_text(encoding="utf-8", errors="replace")[:max_chars])
    return texts
