"""How much corpus is enough: the mask's stability as the profiled corpus doubles.

At every doubling of the counted tokens (``start_tokens``, 2x, 4x, ...) and at
the end of the corpus, the profile so far builds a mask (the configured scorer
and whitelist; no CoT arbitrage, which needs a second profile) and the curve
records, per increment:

* ``jaccard`` — per layer, the overlap of this mask with the previous
  increment's (``min`` over layers is the stopping statistic);
* ``coverage`` — the share of the utility mass the mask keeps;
* ``entropy`` — per layer, the normalised entropy of the utility distribution
  (1 = uniform over experts, 0 = all on one).

The mask has converged at the first increment from which ``jaccard_min``
stays at or above the threshold for at least ``patience`` increments (default
2) and never falls below it again. A single stable increment is not enough:
experts at the edge of the mask whose utilities nearly tie can swap in and
out as text accumulates. ``coe profile --until-stable`` stops after
``patience`` stable increments in a row.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, replace

import numpy as np

from coe.figures import pyplot
from coe.mask import MaskSettings, build_mask
from coe.mask.scorers import score
from coe.profile.artifact import RouterProfile

__all__ = ["StabilityPoint", "StabilityTracker", "plot_stability"]


@dataclass(frozen=True)
class StabilityPoint:
    """The mask after ``tokens`` counted tokens, compared with the previous increment's."""

    tokens: int
    jaccard: list[float]  # per layer; empty for the first increment
    coverage: float
    entropy: list[float]  # per layer

    @property
    def jaccard_min(self) -> float:
        return min(self.jaccard) if self.jaccard else float("nan")


class StabilityTracker:
    """A ``profile_model`` checkpoint that records the stability curve (and can stop when stable)."""

    def __init__(
        self, settings: MaskSettings, start_tokens: int = 1024, threshold: float = 0.95, stop: bool = False, patience: int = 2
    ):
        self.settings = replace(settings, arbitrage_cap=0)
        self.threshold = threshold
        self.stop = stop
        self.patience = patience
        self.points: list[StabilityPoint] = []
        self._next = start_tokens
        self._previous: dict[int, list[int]] | None = None

    def __call__(self, tokens: int, snapshot) -> bool:
        if tokens < self._next:
            return False
        while self._next <= tokens:
            self._next *= 2
        self.record(snapshot())
        return self.stop and self._stable_run() >= self.patience

    def record(self, profile: RouterProfile) -> StabilityPoint:
        """Add the increment of ``profile`` (skipped if it has no new tokens)."""
        if self.points and self.points[-1].tokens == profile.n_tokens:
            return self.points[-1]
        mask = build_mask([profile], self.settings)
        util = score(self.settings.scorer, profile, self.settings.seed)  # [L, E]
        blocks = list(profile.meta.moe_layers)
        kept = sum(util[i, mask.layers[b]].sum() for i, b in enumerate(blocks))
        jaccard = []
        if self._previous is not None:
            jaccard = [len(set(mask.layers[b]) & set(self._previous[b])) / len(set(mask.layers[b]) | set(self._previous[b]))
                       for b in blocks]  # fmt: skip
        point = StabilityPoint(profile.n_tokens, jaccard, float(kept / max(util.sum(), 1e-300)), _entropy(util))
        self.points.append(point)
        self._previous = mask.layers
        return point

    def _stable_run(self) -> int:
        """How many of the latest increments in a row are stable."""
        run = 0
        for point in reversed(self.points):
            if not (point.jaccard and point.jaccard_min >= self.threshold):
                break
            run += 1
        return run

    def converged_at(self) -> int | None:
        """Tokens from which the mask stayed stable (``patience`` increments at least), or None."""
        run = self._stable_run()
        return self.points[-run].tokens if run >= self.patience else None

    def to_json(self) -> str:
        """The curve as stored in profile metadata (``stability``)."""
        return json.dumps({"threshold": self.threshold, "patience": self.patience, "keep": self.settings.keep,
                           "scorer": self.settings.scorer, "converged_at": self.converged_at(),
                           "points": [asdict(p) for p in self.points]})  # fmt: skip


def _entropy(util: np.ndarray) -> list[float]:
    out = []
    for row in util:
        total = row.sum()
        p = row[row > 0] / total if total > 0 else np.array([])
        out.append(float(-(p * np.log(p)).sum() / math.log(len(row))) if p.size else 0.0)
    return out


def plot_stability(curves: dict[str, list[StabilityPoint]], threshold: float, path: str | os.PathLike[str]) -> None:
    """Min-layer Jaccard (solid) and coverage (dashed) against tokens, one colour per curve."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, points in curves.items():
        line = ax.plot([p.tokens for p in points[1:]], [p.jaccard_min for p in points[1:]], marker="o", label=f"{name} Jaccard (min over layers)")
        ax.plot([p.tokens for p in points], [p.coverage for p in points], linestyle="--", color=line[0].get_color(), label=f"{name} coverage")
    ax.axhline(threshold, color="grey", linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("profiled tokens")
    ax.set_title("mask stability as the corpus doubles")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
