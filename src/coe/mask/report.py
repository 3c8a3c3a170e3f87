"""Mask reports: per-layer coverage and swaps, a heat-map and a mask-overlap figure.

Coverage is the share of a profile's routing mass that the kept experts carry,
where routing mass is ``weight_sum`` summed over ranks (the router probability
behind every pick). Overall coverage sums kept mass over all layers and divides
by all mass, so it is the single number that says how much of the domain's
routing survives the cut.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from coe.errors import ConfigError
from coe.figures import pyplot
from coe.mask.artifact import ExpertMask
from coe.profile.artifact import RouterProfile

__all__ = ["LayerReport", "MaskReport", "mask_report", "format_report", "jaccard", "plot_heatmap", "plot_overlap"]


@dataclass(frozen=True)
class LayerReport:
    """One MoE layer of a mask."""

    block: int
    kept: int
    whitelist_swaps: int
    arbitrage_swaps: int
    coverage: float | None  # share of routing mass kept; None without a profile


@dataclass(frozen=True)
class MaskReport:
    """Per-layer rows and the overall coverage."""

    layers: list[LayerReport]
    coverage: float | None


def _check_mask_fits(mask: ExpertMask, profile: RouterProfile) -> None:
    if mask.num_experts != profile.meta.num_experts or sorted(mask.layers) != sorted(profile.meta.moe_layers):
        raise ConfigError(
            f"mask (blocks {sorted(mask.layers)}, {mask.num_experts} experts) does not fit the profile "
            f"(blocks {list(profile.meta.moe_layers)}, {profile.meta.num_experts} experts)"
        )


def kept_mass(mask: ExpertMask, profile: RouterProfile) -> tuple[np.ndarray, np.ndarray]:
    """(kept routing mass, total routing mass) per profile layer. Both [L]."""
    _check_mask_fits(mask, profile)
    mass = profile.weight_sum.sum(axis=2)  # [L, E]
    kept = np.array([mass[slot, mask.layers[block]].sum() for slot, block in enumerate(profile.meta.moe_layers)])
    return kept, mass.sum(axis=1)


def mask_report(mask: ExpertMask, profile: RouterProfile | None = None) -> MaskReport:
    """Per-layer kept counts, swaps by pass, and coverage (with a profile)."""
    coverage: dict[int, float] = {}
    overall = None
    if profile is not None:
        kept, total = kept_mass(mask, profile)
        for slot, block in enumerate(profile.meta.moe_layers):
            coverage[block] = float(kept[slot] / total[slot]) if total[slot] > 0 else 0.0
        overall = float(kept.sum() / total.sum()) if total.sum() > 0 else 0.0
    rows = [
        LayerReport(
            block=block,
            kept=len(kept_ids),
            whitelist_swaps=sum(s.layer == block and s.pass_ == "whitelist" for s in mask.swaps),
            arbitrage_swaps=sum(s.layer == block and s.pass_ == "arbitrage" for s in mask.swaps),
            coverage=coverage.get(block),
        )
        for block, kept_ids in sorted(mask.layers.items())
    ]
    return MaskReport(rows, overall)


def format_report(report: MaskReport, mask: ExpertMask) -> str:
    """The table ``coe mask report`` prints."""
    lines = [
        f"mask: keep {mask.keep} of {mask.num_experts} experts in {len(mask.layers)} layers, "
        f"scorer {mask.params.get('scorer', '?')}",
        f"{'block':>5} {'kept':>5} {'whitelist':>9} {'arbitrage':>9} {'coverage':>9}",
    ]
    for row in report.layers:
        cov = "-" if row.coverage is None else f"{row.coverage:.4f}"
        lines.append(f"{row.block:>5} {row.kept:>5} {row.whitelist_swaps:>9} {row.arbitrage_swaps:>9} {cov:>9}")
    white = sum(r.whitelist_swaps for r in report.layers)
    arb = sum(r.arbitrage_swaps for r in report.layers)
    lines.append(f"swaps: {white} whitelist, {arb} arbitrage")
    if report.coverage is not None:
        lines.append(f"coverage: {report.coverage:.4f} of the profile's routing mass is kept")
    lines += [f"note: {n}" for n in mask.notes]
    return "\n".join(lines)


def jaccard(a: ExpertMask, b: ExpertMask) -> dict[int, float]:
    """Per-layer Jaccard overlap |A & B| / |A | B| of two masks of the same model."""
    if sorted(a.layers) != sorted(b.layers):
        raise ConfigError("masks cover different layers; compare masks of the same model")
    return {block: len(set(a.layers[block]) & set(b.layers[block])) / len(set(a.layers[block]) | set(b.layers[block]))
            for block in sorted(a.layers)}  # fmt: skip


def plot_heatmap(mask: ExpertMask, utility: np.ndarray, blocks: list[int], path: str | os.PathLike[str]) -> None:
    """Layers x experts heat-map of utility; kept experts boxed, swapped-in experts starred."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, utility.shape[1] * 0.12), max(3, len(blocks) * 0.3)))
    image = ax.imshow(utility, aspect="auto", cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="utility")
    for slot, block in enumerate(blocks):
        for expert in mask.layers[block]:
            ax.add_patch(plt.Rectangle((expert - 0.5, slot - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.6))
    for swap in mask.swaps:
        marker = "*" if swap.pass_ == "whitelist" else "D"
        ax.plot(swap.added, blocks.index(swap.layer), marker, color="white", markersize=6)
    ax.set_xlabel("expert (boxed: kept; * whitelist, diamond: arbitrage)")
    ax.set_ylabel("MoE block")
    ax.set_yticks(range(len(blocks)), [str(b) for b in blocks])
    ax.set_title(f"utility and mask (keep {mask.keep}/{mask.num_experts})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_overlap(a: ExpertMask, b: ExpertMask, path: str | os.PathLike[str], labels: tuple[str, str] = ("A", "B")) -> None:
    """Bar chart of per-layer Jaccard overlap between two masks."""
    plt = pyplot()
    overlap = jaccard(a, b)
    fig, ax = plt.subplots(figsize=(max(5, len(overlap) * 0.3), 3))
    ax.bar([str(k) for k in overlap], list(overlap.values()), color="steelblue")
    ax.set_ylim(0, 1)
    ax.set_xlabel("MoE block")
    ax.set_ylabel("Jaccard")
    ax.set_title(f"mask overlap {labels[0]} vs {labels[1]} (mean {np.mean(list(overlap.values())):.3f})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
