"""A short text summary of a RouterProfile, for ``coe inspect profile.safetensors``."""

from __future__ import annotations

import json

import numpy as np

from coe.profile.artifact import RouterProfile

__all__ = ["layer_usage", "format_profile"]


def layer_usage(profile: RouterProfile) -> np.ndarray:
    """Share of each layer's picks that went to each expert. [L, E], rows sum to 1 (or 0)."""
    picks = profile.counts.sum(axis=2).astype(np.float64)  # [L, E]
    totals = picks.sum(axis=1, keepdims=True)
    return np.divide(picks, totals, out=np.zeros_like(picks), where=totals > 0)


def _stability_lines(stability: str) -> list[str]:
    if not stability:
        return []
    curve = json.loads(stability)
    steps = "  ".join(f"{p['tokens']}:{min(p['jaccard']) if p['jaccard'] else float('nan'):.2f}" for p in curve["points"])
    at = curve["converged_at"]
    return [f"  mask stability (keep {curve['keep']}, tokens:min Jaccard): {steps}",
            f"  converged at: {at if at else 'not yet (profile more text)'}"]  # fmt: skip


def format_profile(profile: RouterProfile, top: int = 4) -> str:
    """Metadata plus, per layer, the most-picked experts and the routing entropy."""
    meta = profile.meta
    usage = layer_usage(profile)
    lines = [
        f"RouterProfile of {meta.model_id} ({meta.family}, backend {meta.backend})",
        f"  tokens {profile.n_tokens}, layers {len(meta.moe_layers)}, experts {meta.num_experts}, top-k {meta.top_k}",
        f"  weight: {meta.weight_semantics}",
        f"  corpus sha256: {meta.corpus_sha256[:16]}...",
        f"  extras: {', '.join(sorted(profile.extras)) or '(none)'}",
        *_stability_lines(meta.stability),
        f"  {'block':>5}  {'entropy':>7}  most picked (share)",
    ]
    max_entropy = np.log(meta.num_experts)
    for slot, block in enumerate(meta.moe_layers):
        row = usage[slot]
        nz = row[row > 0]
        entropy = float(-(nz * np.log(nz)).sum() / max_entropy) if nz.size else 0.0
        best = np.argsort(-row, kind="stable")[:top]
        picks = ", ".join(f"{e} ({row[e]:.2f})" for e in best)
        lines.append(f"  {block:>5}  {entropy:>7.3f}  {picks}")
    return "\n".join(lines)
