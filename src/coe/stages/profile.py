"""Profile stage: RouterProfiles of the parent on the domain corpus, the CoT corpus and (demo matrix) the other domains."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from coe.io import cached_sha256
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


def _tracker(stability: dict, layout) -> StabilityTracker | None:
    if not stability.get("keep"):
        return None
    settings = MaskSettings(keep=stability["keep"])
    settings.validate(layout.num_experts, layout.top_k)
    return StabilityTracker(settings, stability["start_tokens"], stability["threshold"],
                            stop=stability["until_stable"], patience=stability["patience"])  # fmt: skip


def params(cfg: dict, names: list[str], gguf: Path | None) -> dict:
    out = {"profile": cfg["profile"], "device": cfg["backend"]["device"], "dtype": cfg["backend"]["dtype"], "names": names}
    if cfg["profile"]["backend"] == "llama.cpp":
        out["gguf"] = cached_sha256(gguf)
    return out


def _profiler(cfg: dict, parent: Artifact, gguf: Path | None, progress: bool):
    """(layout, profile(corpus files, checkpoint)) for the configured backend."""
    p = cfg["profile"]
    if p["backend"] == "llama.cpp":
        from coe.llamacpp.profile import GGUFProfileSettings, gguf_layout, profile_gguf

        gguf_settings = GGUFProfileSettings(max_length=p["max_length"], exact=p["exact"])
        return gguf_layout(gguf), lambda files, checkpoint: profile_gguf(gguf, files, gguf_settings, progress, checkpoint,
                                                                  model_id=cfg["model"]["name"])
    profile_settings = settings(cfg)
    loaded = load_model(parent.path, profile_settings, model_id=cfg["model"]["name"])
    return loaded.layout, lambda files, checkpoint: profile_model(loaded, files, profile_settings, progress, checkpoint)


def run(store, cfg: dict, parent: Artifact, corpus: Artifact, gguf: Path | None = None, progress: bool = True) -> Artifact:
    """Profile the parent (or, with ``profile.backend=llama.cpp``, its GGUF) on each needed corpus."""
    files = manifest(corpus)
    names = profiled_names(cfg, list(files))
    settings(cfg).validate()

    def build(out: Path) -> None:
        layout, profile_files = _profiler(cfg, parent, gguf, progress)
        curves = {}
        for name in names:
            tracker = _tracker(cfg["profile"]["stability"], layout)
            result = profile_files(files[name]["profile"], tracker)
            if tracker is not None:
                tracker.record(result)
                result.meta = dataclasses.replace(result.meta, stability=tracker.to_json())
                curves[name] = tracker.points
            save_profile(result, out / f"{name}.safetensors")
        if curves:
            plot_stability(curves, cfg["profile"]["stability"]["threshold"], out / "stability.png")

    return store.build("profile", params(cfg, names, gguf), [parent, corpus], build)
