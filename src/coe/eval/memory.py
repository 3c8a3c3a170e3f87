"""File sizes and an estimate of the memory a model needs to serve a context.

VRAM estimate = weight bytes + KV cache in f16 at the given context. Per layer
the cache holds keys and values (one tensor when ``attention_k_eq_v``) of
``num_key_value_heads x head_dim`` per token, over the whole context for
global layers and over ``sliding_window`` tokens for sliding ones; layers that
reuse another layer's cache (``num_kv_shared_layers``) add nothing. It is an
estimate that ranks models correctly; the evaluate stage also reports the
measured peak when it runs on a GPU.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["weights_bytes", "kv_cache_bytes", "vram_estimate"]

_KV_BYTES = 2  # f16 cache, as llama.cpp and transformers use by default


def weights_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes of a GGUF file, or of an HF directory's safetensors shards."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.glob("*.safetensors"))


def kv_cache_bytes(config, context: int) -> int:
    """KV-cache bytes of an HF text config at ``context`` tokens (see module docstring)."""
    layers = config.num_hidden_layers
    shared = getattr(config, "num_kv_shared_layers", 0) or 0
    per_layer = getattr(config, "per_layer_config", None)  # transformers 5: a per-layer view with overrides applied
    types = getattr(config, "layer_types", None) or ["full_attention"] * layers
    window = getattr(config, "sliding_window", None) or context
    tensors = 1 if getattr(config, "attention_k_eq_v", False) else 2
    total = 0
    for i in range(layers - shared):
        layer = per_layer[i] if per_layer is not None else config
        head_dim, kv_heads = layer.head_dim, layer.num_key_value_heads
        tokens = min(context, window) if types[i] == "sliding_attention" else context
        total += tensors * kv_heads * head_dim * tokens * _KV_BYTES
    return total


def vram_estimate(weights: int, config, context: int, overhead: int = 512 << 20) -> int:
    """Weights plus KV cache at ``context`` tokens plus the runtime overhead, in bytes."""
    return weights + kv_cache_bytes(config, context) + overhead
