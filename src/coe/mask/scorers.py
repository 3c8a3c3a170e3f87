"""Scorers: a RouterProfile in, a utility per (layer, expert) out.

A scorer is a function ``(profile, seed) -> [layers, experts] float64``; higher
means more worth keeping. Adding a scorer is adding a function here and its
entry in ``SCORERS``.
"""

from __future__ import annotations

import numpy as np

from coe.errors import ConfigError
from coe.profile.artifact import RouterProfile
from coe.registry import Registry

__all__ = ["SCORERS", "utility", "frequency", "rank_weighted", "reap", "random", "score"]

SCORERS: Registry = Registry(
    "scorer",
    {
        "utility": "coe.mask.scorers:utility",
        "frequency": "coe.mask.scorers:frequency",
        "rank_weighted": "coe.mask.scorers:rank_weighted",
        "reap": "coe.mask.scorers:reap",
        "random": "coe.mask.scorers:random",
    },
)


def utility(profile: RouterProfile, seed: int = 0) -> np.ndarray:
    """The seed method: frequency-weighted mean router confidence.

    ``util[l,e] = sum_r (counts[l,e,r] / n_tokens) * (weight_sum[l,e,r] / max(counts[l,e,r], 1))``
    """
    counts = profile.counts.astype(np.float64)  # [L, E, R]
    mean_weight = profile.weight_sum / np.maximum(counts, 1.0)
    return ((counts / profile.n_tokens) * mean_weight).sum(axis=2)  # [L, E]


def frequency(profile: RouterProfile, seed: int = 0) -> np.ndarray:
    """Share of tokens that picked the expert at any rank."""
    return profile.counts.sum(axis=2) / profile.n_tokens


def rank_weighted(profile: RouterProfile, seed: int = 0) -> np.ndarray:
    """Picks weighted by rank: a rank-r pick (0-based) counts 1 / (r + 1)."""
    rank_weight = 1.0 / np.arange(1, profile.shape[2] + 1)  # [R]
    return (profile.counts * rank_weight).sum(axis=2) / profile.n_tokens


def reap(profile: RouterProfile, seed: int = 0) -> np.ndarray:
    """REAP: mean over routed tokens of gate weight x |expert output| (needs ``gate_out_norm_sum``)."""
    if "gate_out_norm_sum" not in profile.extras:
        raise ConfigError("the reap scorer needs gate_out_norm_sum: profile again with `coe profile --reap`")
    picks = profile.counts.sum(axis=2)  # [L, E]
    return profile.extras["gate_out_norm_sum"] / np.maximum(picks, 1)


def random(profile: RouterProfile, seed: int = 0) -> np.ndarray:
    """Uniform random utilities from ``seed``: the baseline every ablation needs."""
    return np.random.default_rng(seed).random(profile.shape[:2])


def score(name: str, profile: RouterProfile, seed: int = 0) -> np.ndarray:
    """Run the scorer called ``name`` on a non-empty profile."""
    if profile.n_tokens <= 0:
        raise ConfigError(f"profile of {profile.meta.model_id} is empty (n_tokens = 0): profile a non-empty corpus")
    return np.asarray(SCORERS.get(name)(profile, seed=seed), dtype=np.float64)
