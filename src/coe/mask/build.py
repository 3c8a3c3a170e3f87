"""Mask construction: the seed's three passes, exactly as DESIGN.md specifies.

Definitions used below (all per MoE layer):

* ``util`` — the domain utility from the configured scorer. With several
  domain profiles, each profile's utility is normalised to sum to 1 per layer,
  then combined with the given weights.
* mean pick rank — ``sum_r r * counts[e, r] / sum_r counts[e, r]``, 0-based
  (0 = the router's top choice), from the domain profiles' summed counts.
* Pass 1 — the top-``keep`` experts by ``util``.
* Pass 2, whitelist — experts with at least ``min_count`` picks and mean pick
  rank below ``max_mean_rank`` are forced in, strongest ``util`` first, each
  displacing the kept non-whitelisted expert of lowest ``util``. With more
  whitelisted experts than ``keep``, the ``keep`` of highest ``util`` are kept
  and a note says so.
* Pass 3, CoT arbitrage — the CoT profile *rates* an expert by its CoT utility
  (the same scorer, on the CoT profile). Candidates are the experts in the CoT
  profile's own top-``keep`` that are outside the mask, strongest CoT utility
  first. Each candidate is compared with the kept expert it would displace: the
  lowest-``util`` expert that pass 2 did not force in and pass 3 did not add.
  It is swapped in if its CoT utility is strictly higher than that expert's;
  the first candidate that is not stops the pass (later ones rate lower still).
  At most ``cap`` swaps per layer.

Ties always break towards the lower expert id: of two equal experts, the lower
id ranks as stronger, so it is kept first and displaced last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coe.errors import ConfigError
from coe.mask.artifact import ExpertMask, Swap
from coe.mask.scorers import SCORERS, score
from coe.profile.artifact import RouterProfile

__all__ = ["MaskSettings", "build_mask", "check_compatible", "mean_rank", "mask_sources"]


@dataclass(frozen=True)
class MaskSettings:
    """Every setting that decides a mask (all of them land in ``params``)."""

    keep: int
    scorer: str = "utility"
    whitelist_max_mean_rank: float = 2.0
    whitelist_min_count: int = 10
    arbitrage_cap: int = 3
    seed: int = 0

    def validate(self, num_experts: int | None = None, top_k: int | None = None) -> None:
        """Raise ConfigError for invalid settings (and, given the model's shape, for settings it cannot satisfy)."""
        if self.keep < 1:
            raise ConfigError(f"keep must be >= 1, got {self.keep}")
        if top_k is not None and self.keep < top_k:
            raise ConfigError(f"keep={self.keep} is below the model's top_k={top_k}: the router must still find {top_k} experts")
        if num_experts is not None and self.keep > num_experts:
            raise ConfigError(f"keep={self.keep} exceeds the model's {num_experts} experts per layer")
        if self.arbitrage_cap < 0 or self.whitelist_min_count < 0:
            raise ConfigError("arbitrage_cap and whitelist_min_count must be >= 0")
        if self.scorer not in SCORERS:
            SCORERS.get(self.scorer)  # raises with the known names and a suggestion

    def to_params(self) -> dict:
        """The settings as ``mask.json`` params, grouped like the ``mask`` config."""
        return {
            "keep": self.keep,
            "scorer": self.scorer,
            "whitelist": {"max_mean_rank": self.whitelist_max_mean_rank, "min_count": self.whitelist_min_count},
            "arbitrage": {"cap": self.arbitrage_cap},
            "seed": self.seed,
        }


def mask_sources(profiles: Sequence[RouterProfile], cot_profile: RouterProfile | None) -> dict[str, str]:
    """Provenance for ``mask.json``: the content sha256 of each profile ("+"-joined for several)."""
    sources = {"profile_sha256": "+".join(p.content_sha256() for p in profiles)}
    if cot_profile is not None:
        sources["cot_profile_sha256"] = cot_profile.content_sha256()
    return sources


def check_compatible(reference: RouterProfile, other: RouterProfile, what: str) -> None:
    """Raise ConfigError unless ``other`` profiles the same model layout as ``reference``."""
    a, b = reference.meta, other.meta
    for key in ("family", "moe_layers", "num_experts", "top_k"):
        if getattr(a, key) != getattr(b, key):
            raise ConfigError(f"{what} is for another model: {key} {getattr(b, key)!r} vs {getattr(a, key)!r}")
    if a.revision and b.revision and a.revision != b.revision:
        raise ConfigError(f"{what} is for another checkpoint: revision {b.revision[:12]} vs {a.revision[:12]}")
    if other.n_tokens <= 0:
        raise ConfigError(f"{what} is empty (n_tokens = 0): profile a non-empty corpus")


def mean_rank(counts: np.ndarray) -> np.ndarray:
    """Mean 0-based pick rank per (layer, expert); +inf for never-picked experts. [L, E]"""
    picks = counts.sum(axis=-1)
    ranks = (counts * np.arange(counts.shape[-1])).sum(axis=-1)
    return np.divide(ranks, picks, out=np.full(picks.shape, np.inf), where=picks > 0)


def _order(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``ids`` strongest first: higher value, then lower id."""
    return ids[np.lexsort((ids, -values[ids]))]


def _weakest(values: np.ndarray, ids: list[int]) -> int:
    """The weakest of ``ids``: lowest value, then higher id."""
    return min(ids, key=lambda e: (values[e], -e))


def _combined_utility(profiles: Sequence[RouterProfile], weights: Sequence[float], settings: MaskSettings) -> np.ndarray:
    if len(profiles) == 1:
        return score(settings.scorer, profiles[0], settings.seed)
    total = np.zeros(profiles[0].shape[:2])
    for profile, weight in zip(profiles, weights, strict=True):
        util = score(settings.scorer, profile, settings.seed)
        sums = util.sum(axis=1, keepdims=True)
        total += weight * np.divide(util, sums, out=np.zeros_like(util), where=sums > 0)
    return total


def build_mask(
    profiles: Sequence[RouterProfile],
    settings: MaskSettings,
    cot_profile: RouterProfile | None = None,
    weights: Sequence[float] | None = None,
    sources: dict[str, str] | None = None,
) -> ExpertMask:
    """Build the ExpertMask from one or more domain profiles and an optional CoT profile.

    Args:
        profiles: domain profiles of the same model (several = a multi-domain specialist).
        settings: keep, scorer, whitelist and arbitrage settings.
        cot_profile: reasoning-trace profile for pass 3 (skipped when None or cap is 0).
        weights: one weight per domain profile (default equal).
        sources: provenance (profile sha256s) copied into the mask.

    Raises:
        ConfigError: invalid settings, or profiles of different models, or an empty one.
    """
    if not profiles:
        raise ConfigError("give at least one domain profile")
    reference = profiles[0]
    for i, other in enumerate(profiles):
        check_compatible(reference, other, f"profile {i + 1}")
    if cot_profile is not None:
        check_compatible(reference, cot_profile, "the CoT profile")
    weights = list(weights) if weights is not None else [1.0] * len(profiles)
    if len(weights) != len(profiles) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"give one non-negative weight per profile ({len(profiles)}), not all zero; got {weights}")
    meta = reference.meta
    settings.validate(meta.num_experts, meta.top_k)

    util = _combined_utility(profiles, weights, settings)  # [L, E]
    counts = sum((p.counts for p in profiles[1:]), reference.counts)  # [L, E, R]
    picks, ranks = counts.sum(axis=-1), mean_rank(counts)
    whitelisted = (picks >= settings.whitelist_min_count) & (ranks < settings.whitelist_max_mean_rank)  # [L, E]
    cot_util = None
    if cot_profile is not None and settings.arbitrage_cap > 0:
        cot_util = score(settings.scorer, cot_profile, settings.seed)

    layers, swaps, notes = {}, [], []
    for slot, block in enumerate(meta.moe_layers):
        kept, layer_swaps, note = _mask_layer(
            block, util[slot], whitelisted[slot], picks[slot], ranks[slot],
            None if cot_util is None else cot_util[slot], settings,
        )  # fmt: skip
        layers[block] = kept
        swaps += layer_swaps
        notes += [note] if note else []

    params = {**settings.to_params(), "weights": weights, "cot": cot_profile is not None}
    return ExpertMask(meta.num_experts, settings.keep, layers, swaps, params, dict(sources or {}), notes)


def _mask_layer(
    block: int,
    util: np.ndarray,
    whitelisted: np.ndarray,
    picks: np.ndarray,
    ranks: np.ndarray,
    cot_util: np.ndarray | None,
    settings: MaskSettings,
) -> tuple[list[int], list[Swap], str | None]:
    """Run the three passes on one layer. Returns (sorted kept ids, swaps, note)."""
    ids = np.arange(util.shape[0])
    keep = settings.keep
    kept = [int(e) for e in _order(util, ids)[:keep]]  # pass 1
    swaps: list[Swap] = []
    note = None

    white = [int(e) for e in _order(util, np.flatnonzero(whitelisted))]
    if len(white) > keep:
        note = f"layer {block}: {len(white)} whitelisted experts exceed keep={keep}; kept the {keep} of highest utility"
        white = white[:keep]
    protected = set(white)
    for expert in white:  # pass 2
        if expert in kept:
            continue
        victim = _weakest(util, [e for e in kept if e not in protected])
        kept[kept.index(victim)] = expert
        why = {"added_utility": float(util[expert]), "added_mean_rank": float(ranks[expert]),
               "added_picks": int(picks[expert]), "removed_utility": float(util[victim])}  # fmt: skip
        swaps.append(Swap(block, "whitelist", expert, victim, why))

    if cot_util is not None:  # pass 3
        outside = [int(e) for e in _order(cot_util, ids)[:keep] if int(e) not in kept]
        for candidate in outside:
            if sum(s.pass_ == "arbitrage" for s in swaps) >= settings.arbitrage_cap:
                break
            open_slots = [e for e in kept if e not in protected]
            if not open_slots:
                break
            victim = _weakest(util, open_slots)
            if not cot_util[candidate] > cot_util[victim]:
                break
            kept[kept.index(victim)] = candidate
            protected.add(candidate)
            why = {"added_cot_utility": float(cot_util[candidate]), "removed_cot_utility": float(cot_util[victim]),
                   "added_utility": float(util[candidate]), "removed_utility": float(util[victim])}  # fmt: skip
            swaps.append(Swap(block, "arbitrage", candidate, victim, why))
    return sorted(kept), swaps, note
