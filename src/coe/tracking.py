"""MLflow at the front doors: one store per repository, runs logged from a PipelineResult.

MLflow 3 refuses a plain ``mlruns/`` file store, so metadata goes to
``sqlite:///<root>/mlflow.db`` and artifacts under ``<root>/mlruns/``, both
anchored to the repository root (or ``paths.root``), whatever the working
directory. ``mlflow ui --backend-store-uri sqlite:///mlflow.db`` shows them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from coe.pipeline import PipelineResult
from coe.profile import load_profile
from coe.profile.summary import format_profile

__all__ = ["tracking_uri", "experiment_id", "flatten", "run_name", "start_run", "log_result"]


def tracking_uri(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def experiment_id(root: Path, name: str) -> str:
    """Point MLflow at the repository's store and return the experiment's id (created with artifacts under mlruns/).

    coe needs no network at run time, so MLflow's usage telemetry is off unless
    the user set ``MLFLOW_DISABLE_TELEMETRY`` themselves.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(root))
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    return mlflow.create_experiment(name, artifact_location=(root / "mlruns").as_uri())


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """Nested config -> {"mask.whitelist.min_count": "10", ...}."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value) if isinstance(value, list | tuple) else str(value)
    return out


def run_name(overrides: list[str]) -> str:
    """A run name from the command-line overrides, e.g. ``domain=coding,mask.keep=8``."""
    return ",".join(o.lstrip("+~") for o in overrides) or "defaults"


@contextmanager
def start_run(
    root: Path, cfg: dict, overrides: list[str], parent_run_id: str | None = None, system_metrics: bool = True
) -> Iterator:
    """An MLflow run with the config logged as params, YAML and overrides, tagged with domain and model.

    With ``parent_run_id`` it is a nested run (an Optuna trial under its study's run, even in another process).
    """
    import mlflow
    import yaml

    exp = experiment_id(root, cfg["tracking"]["experiment"])
    tags = {"domain": cfg.get("domain", {}).get("name", ""), "model": cfg["model"]["name"]}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    with mlflow.start_run(experiment_id=exp, run_name=run_name(overrides), parent_run_id=parent_run_id,
                          nested=parent_run_id is not None, tags=tags, log_system_metrics=system_metrics) as run:  # fmt: skip
        mlflow.log_params({k: v[:6000] for k, v in flatten(cfg).items()})
        mlflow.log_text(yaml.safe_dump(cfg, sort_keys=False), "config/config.yaml")
        mlflow.log_text("\n".join(overrides) + "\n", "config/overrides.txt")
        yield run


def log_result(result: PipelineResult, extra_metrics: dict[str, float] | None = None) -> None:
    """Log the artifacts and metrics of a finished pipeline into the active run."""
    import mlflow

    mask_dir, eval_dir = result.artifacts["mask"].path, result.artifacts["evaluate"].path
    for path in [mask_dir / "mask.json", mask_dir / "report.txt", *sorted(mask_dir.glob("*.png"))]:
        mlflow.log_artifact(str(path), "mask")
    for path in [eval_dir / "metrics.json", *sorted(eval_dir.glob("*.png"))]:
        mlflow.log_artifact(str(path), "eval")
    for path in sorted(result.artifacts["profile"].path.glob("*.png")):
        mlflow.log_artifact(str(path), "profile")
    for path in sorted(result.artifacts["profile"].path.glob("*.safetensors")):
        mlflow.log_text(format_profile(load_profile(path)), f"profile/{path.stem}.txt")
    if "matrix" in result.report:
        m = result.report["matrix"]
        rows = [{"mask": mask, **{d: m["ppl"][mask][d] for d in m["domains"]}} for mask in ["parent", *m["masks"]]]
        mlflow.log_table({k: [r[k] for r in rows] for k in rows[0]}, artifact_file="eval/matrix_table.json")
    mlflow.set_tag("reused_stages", ",".join(result.reused) or "none")
    mlflow.log_metrics({**result.metrics, **(extra_metrics or {})})
