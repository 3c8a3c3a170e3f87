"""The tokenizer of an HF checkpoint as GGUF ``tokenizer.ggml.*`` keys, with gguf-py's own vocab readers.

Byte-level BPE tokenizers (GPT-2 style, as the embedded demo's) are written as
llama.cpp's ``gpt2`` model with the ``gpt-2`` pre-tokenizer, which splits text
with the same regex as the Hugging Face ``ByteLevel`` pre-tokenizer, so
llama.cpp and transformers produce the same token ids. Special tokens become
CONTROL tokens. Other tokenizer kinds are refused: llama.cpp's
``convert_hf_to_gguf.py`` knows their many variants.
"""

from __future__ import annotations

import json
from pathlib import Path

from gguf import GGUFWriter, SpecialVocab, TokenType
from gguf.vocab import BpeVocab

from coe.errors import ConfigError

__all__ = ["write_vocab"]


def write_vocab(writer: GGUFWriter, model_dir: Path, n_vocab: int) -> None:
    """Write the tokenizer, padded with unused tokens to the embedding's ``n_vocab`` rows."""
    try:
        vocab = BpeVocab(model_dir)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{model_dir}: export supports byte-level BPE tokenizers (tokenizer.json); "
            "convert other tokenizers with llama.cpp's convert_hf_to_gguf.py"
        ) from exc
    tokens, types = [], []
    for text, _, kind in vocab.all_tokens():
        tokens.append(text)
        types.append(kind)
    special = {t["id"] for t in json.loads((model_dir / "tokenizer.json").read_text()).get("added_tokens", []) if t.get("special")}
    types = [TokenType.CONTROL if i in special else kind for i, kind in enumerate(types)]
    if len(tokens) > n_vocab:
        raise ConfigError(f"{model_dir}: the tokenizer has {len(tokens)} tokens, the embedding only {n_vocab} rows")
    for i in range(len(tokens), n_vocab):
        tokens.append(f"[PAD{i}]".encode())
        types.append(TokenType.UNUSED)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    SpecialVocab(model_dir, load_merges=True, n_vocab=n_vocab).add_to_gguf(writer)
    writer.add_add_bos_token(True)  # Gemma expects BOS; coe's profiler adds it itself
