"""Build RouterProfiles from literal arrays for mask tests."""

from __future__ import annotations

import numpy as np

from coe.profile import ProfileMeta, RouterProfile


def make_profile(counts, weight_sum, n_tokens: int, model_id: str = "m", **extras) -> RouterProfile:
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim == 2:  # a single layer given as [E, R]
        counts = counts[None]
        weight_sum = np.asarray(weight_sum, dtype=np.float64)[None]
    L, E, R = counts.shape
    meta = ProfileMeta(model_id=model_id, family="gemma4", moe_layers=tuple(range(L)), num_experts=E, top_k=R,
                       weight_semantics="test", corpus_sha256="0" * 64, backend="test")  # fmt: skip
    return RouterProfile(counts, np.asarray(weight_sum, dtype=np.float64), n_tokens, meta, dict(extras))
