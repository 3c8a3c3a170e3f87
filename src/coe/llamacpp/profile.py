"""Profile a GGUF parent's routers inside llama.cpp (``coe profile --model parent.gguf``).

llama.cpp's scheduler hands over each MoE layer's routing tensors as it
computes them (:mod:`coe.llamacpp.routing`); the weight summed is each pick's
softmax probability over all experts, before top-k renormalisation and the
per-expert scale: the same as the transformers backend's
(:data:`coe.profile.recorder.WEIGHT_SEMANTICS`). Every chunk is decoded as one
sequence from an empty cache, BOS first and uncounted, with tokens from the
GGUF's own tokenizer. Statistics accumulate in fixed [L, E*R] arrays: memory
is flat in corpus size.

By default llama.cpp runs with its own context defaults (F16 KV cache, flash
attention on auto). ``exact=True`` keeps the KV cache in F32 and flash
attention off, so that routing follows the reference implementation's as
closely as llama.cpp's kernels allow: on the tiny test model it cuts the picks
that differ from transformers' from about 2 in 1,000 to 1 in 10,000 (its CPU
GELU still rounds through an f16 table, so near-ties can go either way), at
about 15% more time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf.constants import LlamaFileType
from tqdm.auto import tqdm

from coe.corpus import corpus_digest, iter_chunks, iter_segments
from coe.errors import ConfigError
from coe.families import MoELayout, family_for_gguf_arch
from coe.gguf_file import architecture, field_value, moe_layout, open_gguf
from coe.io import cached_sha256
from coe.llamacpp.routing import RoutingCapture
from coe.llamacpp.runtime import GGUFRuntime
from coe.profile.artifact import ProfileMeta, RouterProfile
from coe.profile.recorder import WEIGHT_SEMANTICS
from coe.profile.runner import Checkpoint

__all__ = ["GGUFProfileSettings", "profile_gguf"]


@dataclass(frozen=True)
class GGUFProfileSettings:
    """How llama.cpp runs the parent over the corpus.

    Attributes:
        max_length: tokens per chunk, BOS included (the context size).
        n_ubatch: tokens per compute graph (default: max_length); smaller splits each chunk.
        n_threads: CPU threads (default: all cores).
        n_gpu_layers: layers offloaded to the GPU of a GPU build of llama.cpp.
        exact: F32 KV cache and no flash attention (see the module docstring).
    """

    max_length: int = 512
    n_ubatch: int | None = None
    n_threads: int | None = None
    n_gpu_layers: int = 0
    exact: bool = False

    def validate(self) -> None:
        """Raise ConfigError on a setting no run could use."""
        if self.max_length < 2:
            raise ConfigError(f"max_length must be >= 2 (BOS plus one token), got {self.max_length}")
        if self.n_ubatch is not None and self.n_ubatch < 1:
            raise ConfigError(f"n_ubatch must be >= 1, got {self.n_ubatch}")


class _Accumulator:
    """counts / weight_sum [L, E*R] over the counted tokens of every decoded sequence."""

    def __init__(self, layout: MoELayout) -> None:
        self.layout = layout
        size = layout.num_experts * layout.top_k
        self.counts = np.zeros((len(layout.moe_layers), size), dtype=np.int64)
        self.weight_sum = np.zeros((len(layout.moe_layers), size), dtype=np.float64)
        self.n_tokens = 0

    def add(self, picks: np.ndarray, weights: np.ndarray, counted: np.ndarray) -> None:
        """Add one sequence's ``picks`` / ``weights`` [L, T, R] at its ``counted`` [T] tokens."""
        index = picks[:, counted] * self.layout.top_k + np.arange(self.layout.top_k)  # [L, T', R] flat (e, r)
        for row in range(len(self.layout.moe_layers)):
            self.counts[row] += np.bincount(index[row].ravel(), minlength=self.counts.shape[1])
            self.weight_sum[row] += np.bincount(index[row].ravel(), weights=weights[row, counted].astype(np.float64).ravel(),
                                                minlength=self.counts.shape[1])  # fmt: skip
        self.n_tokens += int(counted.sum())

    def profile(self, meta: ProfileMeta) -> RouterProfile:
        shape = (len(self.layout.moe_layers), self.layout.num_experts, self.layout.top_k)
        return RouterProfile(self.counts.reshape(shape).copy(), self.weight_sum.reshape(shape).copy(), self.n_tokens, meta)


def _quantization(reader) -> str:
    file_type = field_value(reader, "general.file_type")
    try:
        return LlamaFileType(int(file_type)).name if file_type is not None else ""
    except ValueError:
        return str(file_type)


def profile_gguf(
    model: str | os.PathLike[str],
    corpus: Sequence[str | os.PathLike[str]],
    settings: GGUFProfileSettings = GGUFProfileSettings(),
    progress: bool = True,
    checkpoint: Checkpoint | None = None,
    model_id: str | None = None,
) -> RouterProfile:
    """Run the GGUF ``model`` over ``corpus`` in llama.cpp and return its RouterProfile.

    Tokens come from the GGUF's own tokenizer; every chunk starts with its BOS,
    which is not counted. ``checkpoint`` works as in
    :func:`coe.profile.runner.profile_model`; ``model_id`` names the model in
    the profile (default: the file's path).
    """
    settings.validate()
    model = Path(model)
    reader = open_gguf(model)
    family = family_for_gguf_arch(architecture(reader))
    layout, _ = moe_layout(reader, family)
    quantization = _quantization(reader)
    del reader
    digest = corpus_digest(corpus)
    stats = _Accumulator(layout)
    meta = ProfileMeta(
        model_id=model_id or str(model), revision=cached_sha256(model), family=family.name, moe_layers=layout.moe_layers,
        num_experts=layout.num_experts, top_k=layout.top_k, weight_semantics=WEIGHT_SEMANTICS,
        corpus_sha256=digest, backend="llama.cpp", quantization=quantization,
    )  # fmt: skip

    capture = RoutingCapture(layout)
    with GGUFRuntime(
        model, n_ctx=settings.max_length, n_ubatch=settings.n_ubatch, n_threads=settings.n_threads,
        n_gpu_layers=settings.n_gpu_layers, callback=capture, want=capture.want, f32_cache=settings.exact,
    ) as runtime, tqdm(desc="profiling (llama.cpp)", unit="tok", unit_scale=True, disable=not progress) as bar:  # fmt: skip
        bos = runtime.bos_id
        body = settings.max_length - (0 if bos is None else 1)
        for chunk in iter_chunks(iter_segments(corpus), runtime.tokenize, body):
            tokens = ([] if bos is None else [bos]) + chunk.ids
            runtime.decode(tokens)
            stats.add(*capture.take(len(tokens)), np.array(([] if bos is None else [False]) + chunk.counted, dtype=bool))
            bar.update(sum(chunk.counted))
            if checkpoint is not None and checkpoint(stats.n_tokens, lambda: stats.profile(meta)):
                break
    return stats.profile(meta)


def gguf_layout(model: str | os.PathLike[str]) -> MoELayout:
    """The MoE layout of a GGUF parent, read from its metadata (no weights loaded)."""
    reader = open_gguf(model)
    return moe_layout(reader, family_for_gguf_arch(architecture(reader)))[0]
