"""The whole pipeline as one function of a plain config dict: corpus -> parent -> profile -> mask -> surgery -> evaluate.

Front doors (``coe.run``, ``coe.tune``, the DVC stages) compose the config and
log; this module only runs stages and collects what they produced.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from coe.errors import ConfigError
from coe.stages import corpus, evaluate, mask, parent, profile, surgery
from coe.stages.store import Artifact, ContentStore

__all__ = ["PipelineResult", "run_pipeline", "repo_root", "resolve_root", "validate"]

log = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    """Every stage's artifact, the evaluation report and its flat metrics."""

    artifacts: dict[str, Artifact]
    report: dict
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None  # the MLflow run, when tracked

    @property
    def reused(self) -> list[str]:
        return [name for name, a in self.artifacts.items() if a.reused]


def repo_root() -> Path:
    """The repository this package runs from (``src/coe`` -> two levels up)."""
    return Path(__file__).resolve().parents[2]


def resolve_root(cfg: dict) -> Path:
    """``paths.root`` if set, else the repository root: relative paths never depend on the working directory."""
    return Path(cfg["paths"]["root"]).resolve() if cfg["paths"].get("root") else repo_root()


def validate(cfg: dict) -> None:
    """Check the composed config before any work."""
    if "domain" not in cfg or not cfg["domain"]:
        raise ConfigError("no domain chosen: run with +domain=coding (or math, general); see conf/domain/")
    if cfg["model"]["kind"] not in ("demo", "hf"):
        raise ConfigError(f"model.kind must be demo or hf, got {cfg['model']['kind']!r}")
    if cfg["profile"]["backend"] not in ("transformers", "llama.cpp"):
        raise ConfigError(f"profile.backend must be transformers or llama.cpp, got {cfg['profile']['backend']!r}")
    has_gguf = cfg["model"].get("gguf") or cfg["model"].get("gguf_export")
    if cfg["eval"]["code"]["backend"] not in ("transformers", "llamacpp-local"):
        raise ConfigError(f"eval.code.backend must be transformers or llamacpp-local, got {cfg['eval']['code']['backend']!r}")
    if not has_gguf and (cfg["profile"]["backend"] == "llama.cpp" or cfg["eval"]["code"]["backend"] == "llamacpp-local"):
        raise ConfigError("profile.backend=llama.cpp and eval.code.backend=llamacpp-local need the parent's GGUF: "
                          "set model.gguf, or model.gguf_export for the demo")  # fmt: skip
    if cfg["model"].get("gguf_export") and cfg["model"]["kind"] != "demo":
        raise ConfigError("model.gguf_export exports the demo parent; for a real parent set model.gguf to its GGUF")
    if cfg["model"]["kind"] == "demo" and cfg["mask"]["keep"] > cfg["model"]["train"]["experts"]:
        raise ConfigError(f"mask.keep={cfg['mask']['keep']} exceeds the demo's {cfg['model']['train']['experts']} experts")
    mask.mask_settings(cfg).validate()


def run_pipeline(cfg: dict, progress: bool = True) -> PipelineResult:
    """Run every stage, reusing cached outputs whose inputs are unchanged."""
    validate(cfg)
    root = resolve_root(cfg)
    store = ContentStore(root / cfg["paths"]["cache"])
    arts: dict[str, Artifact] = {}
    arts["corpus"] = _stage("corpus", corpus.run(store, cfg))
    arts["parent"] = _stage("parent", parent.run(store, cfg, arts["corpus"], progress=progress))
    gguf = parent.gguf(store, cfg, arts["parent"], progress=progress)
    arts["profile"] = _stage("profile", profile.run(store, cfg, arts["parent"], arts["corpus"], gguf, progress=progress))
    arts["mask"] = _stage("mask", mask.run(store, cfg, arts["profile"]))
    arts["surgery"] = _stage("surgery", surgery.run(store, cfg, arts["parent"], arts["mask"], gguf, progress=progress))
    arts["evaluate"] = _stage(
        "evaluate", evaluate.run(store, cfg, arts["parent"], arts["mask"], arts["surgery"], arts["corpus"], gguf)
    )
    report = json.loads((arts["evaluate"].path / "metrics.json").read_text())
    return PipelineResult(arts, report, evaluate.flat_metrics(report))


def _stage(name: str, artifact: Artifact) -> Artifact:
    log.info("%-8s %s %s", name, "reused" if artifact.reused else "built ", artifact.path)
    return artifact
