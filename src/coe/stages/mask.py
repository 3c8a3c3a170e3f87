"""Mask stage: the domain's ExpertMask, its report and figures, and (demo matrix) every other domain's mask."""

from __future__ import annotations

from pathlib import Path

from coe.mask import MaskSettings, build_mask, mask_sources, save_mask
from coe.mask.report import format_report, mask_report, plot_heatmap, plot_overlap
from coe.mask.scorers import score
from coe.profile import load_profile
from coe.stages.profile import domain_key
from coe.stages.store import Artifact

__all__ = ["params", "run", "mask_settings", "RANDOM"]

RANDOM = "random"  # the matrix's baseline: a seeded random mask of the same keep


def mask_settings(cfg: dict, scorer: str | None = None) -> MaskSettings:
    m = cfg["mask"]
    return MaskSettings(
        keep=m["keep"],
        scorer=scorer or m["scorer"],
        whitelist_max_mean_rank=m["whitelist"]["max_mean_rank"],
        whitelist_min_count=m["whitelist"]["min_count"],
        arbitrage_cap=m["arbitrage"]["cap"],
        seed=m["seed"],
    )


def params(cfg: dict) -> dict:
    return {"mask": cfg["mask"], "domain": domain_key(cfg)}


def _build_one(profile_path: Path, cot_path: Path | None, settings: MaskSettings):
    profile = load_profile(profile_path)
    cot = load_profile(cot_path) if cot_path is not None else None
    return build_mask([profile], settings, cot, sources=mask_sources([profile], cot))


def run(store, cfg: dict, profiles: Artifact) -> Artifact:
    """``mask.json``, ``report.txt``, ``heatmap.png``; with more profiles, ``matrix/<name>.json`` and overlaps."""
    settings = mask_settings(cfg)
    settings.validate()  # the model's bounds are checked by build_mask
    name = domain_key(cfg)
    cot = profiles.path / "cot.safetensors"
    cot = cot if cot.is_file() else None

    def build(out: Path) -> None:
        mask = _build_one(profiles.path / f"{name}.safetensors", cot, settings)
        save_mask(mask, out / "mask.json")
        profile = load_profile(profiles.path / f"{name}.safetensors")
        (out / "report.txt").write_text(format_report(mask_report(mask, profile), mask) + "\n")
        plot_heatmap(mask, score(settings.scorer, profile, settings.seed), list(profile.meta.moe_layers), out / "heatmap.png")
        others = sorted(p.stem for p in profiles.path.glob("*.safetensors") if p.stem not in (name, "cot"))
        if not others:
            return
        (out / "matrix").mkdir()
        for other in [name, *others]:
            matrix_mask = _build_one(profiles.path / f"{other}.safetensors", cot, settings)
            save_mask(matrix_mask, out / "matrix" / f"{other}.json")
            if other != name:
                plot_overlap(mask, matrix_mask, out / f"overlap-{other}.png", (name, other))
        baseline = _build_one(profiles.path / f"{name}.safetensors", None, mask_settings(cfg, scorer=RANDOM))
        save_mask(baseline, out / "matrix" / f"{RANDOM}.json")

    return store.build("mask", params(cfg), [profiles], build)
