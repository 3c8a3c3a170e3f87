"""Profile stage: RouterProfiles of the parent on the domain corpus, the CoT corpus and (demo matrix) the other domains."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from coe.mask import MaskSettings
from coe.profile import save_profile
from coe.profile.runner import ProfileSettings, load_model, profile_model
from coe.profile.stability import StabilityTracker, plot_stability
from coe.stages.corpus import manifest
from coe.stages.store import Artifact

__all__ = ["params", "run", "domain_key", "profiled_names", "settings"]


def domain_key(cfg: dict) -> str:
    """The corpus manifest entry that stands for the chosen domain."""
    domain = cfg["domain"]
    return domain["demo_corpus"] if cfg["model"]["kind"] == "demo" else domain["name"]


def profiled_names(cfg: dict, available: list[str]) -> list[str]:
    """The domain first, then (demo matrix) the other domains, then the CoT corpus if there is one."""
    names = [domain_key(cfg)]
    if cfg["model"]["kind"] == "demo" and cfg["eval"]["matrix"]:
        names += sorted(n for n in available if n not in names and n != "cot")
    if "cot" in available:
        names.append("cot")
    return names


def settings(cfg: dict) -> ProfileSettings:
    p, backend = cfg["profile"], cfg["backend"]
    return ProfileSettings(p["batch_size"], p["max_length"], backend["device"], backend["dtype"], p["reap"])


def _tracker(stability: dict, loaded) -> StabilityTracker | None:
    if not stability.get("keep"):
        return None
    settings = MaskSettings(keep=stability["keep"])
    settings.validate(loaded.layout.num_experts, loaded.layout.top_k)
    return StabilityTracker(settings, stability["start_tokens"], stability["threshold"],
                            stop=stability["until_stable"], patience=stability["patience"])  # fmt: skip


def params(cfg: dict, names: list[str]) -> dict:
    return {"profile": cfg["profile"], "device": cfg["backend"]["device"], "dtype": cfg["backend"]["dtype"], "names": names}


def run(store, cfg: dict, parent: Artifact, corpus: Artifact, progress: bool = True) -> Artifact:
    """Profile the parent on each needed corpus; one ``<name>.safetensors`` per corpus."""
    files = manifest(corpus)
    names = profiled_names(cfg, list(files))
    profile_settings = settings(cfg)
    profile_settings.validate()

    def build(out: Path) -> None:
        loaded = load_model(parent.path, profile_settings, model_id=cfg["model"]["name"])
        curves = {}
        for name in names:
            tracker = _tracker(cfg["profile"]["stability"], loaded)
            result = profile_model(loaded, files[name]["profile"], profile_settings, progress=progress, checkpoint=tracker)
            if tracker is not None:
                tracker.record(result)
                result.meta = dataclasses.replace(result.meta, stability=tracker.to_json())
                curves[name] = tracker.points
            save_profile(result, out / f"{name}.safetensors")
        if curves:
            plot_stability(curves, cfg["profile"]["stability"]["threshold"], out / "stability.png")

    return store.build("profile", params(cfg, names), [parent, corpus], build)
