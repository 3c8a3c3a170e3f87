"""``python -m coe.run +domain=coding [overrides]``: the whole pipeline, tracked in MLflow.

Composes ``conf/`` with Hydra, runs :func:`coe.pipeline.run_pipeline` (reusing
every artifact whose inputs are unchanged), logs params, masks, figures and
metrics to the repository's MLflow store, prints a summary, and returns the
sweep objective (``search.objective.metric``).
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from coe.errors import exit_on_user_error

__all__ = ["main", "execute", "summary"]

log = logging.getLogger("coe")


def execute(cfg: dict, overrides: list[str], parent_run_id: str | None = None, progress: bool = True):
    """Run and log one pipeline from a plain config; used by ``coe.run`` and ``coe.tune`` (trials are nested runs)."""
    from coe.mask import load_mask
    from coe.mask.report import mask_report
    from coe.pipeline import resolve_root, run_pipeline, validate
    from coe.profile import load_profile
    from coe.stages.profile import domain_key
    from coe.tracking import log_result, start_run

    validate(cfg)
    root = resolve_root(cfg)
    if not cfg["tracking"]["enabled"]:
        return run_pipeline(cfg, progress=progress)
    with start_run(root, cfg, overrides, parent_run_id, system_metrics=parent_run_id is None) as run:
        result = run_pipeline(cfg, progress=progress)
        mask = load_mask(result.artifacts["mask"].path / "mask.json")
        report = mask_report(mask, load_profile(result.artifacts["profile"].path / f"{domain_key(cfg)}.safetensors"))
        swaps = {p: float(sum(s.pass_ == p for s in mask.swaps)) for p in ("whitelist", "arbitrage")}
        log_result(result, {"mask.coverage": report.coverage, **{f"mask.swaps_{p}": n for p, n in swaps.items()}})
        result.metrics["mask.coverage"] = report.coverage
        result.run_id = run.info.run_id
    return result


def summary(result, cfg: dict) -> str:
    """What a user wants to see at the end: where the specialist is and the key numbers."""
    m = result.metrics
    lines = [
        f"specialist : {result.artifacts['surgery'].path / 'hf'}",
        f"size       : {m['size.parent_bytes'] / 2**20:.2f} MiB -> {m['size.specialist_bytes'] / 2**20:.2f} MiB "
        f"({m['size.ratio']:.1%})",
    ]
    if "fidelity.kl" in m:
        lines.append(f"fidelity   : in-domain ppl {m['fidelity.ppl_parent']:.2f} -> {m['fidelity.ppl_specialist']:.2f}, "
                     f"KL {m['fidelity.kl']:.4f}, top-1 agreement {m['fidelity.top1']:.1%}")  # fmt: skip
    if "code.pass_at_1.specialist" in m:
        lines.append(f"code       : pass@1 {m['code.pass_at_1.parent']:.3f} (parent) -> {m['code.pass_at_1.specialist']:.3f}")
    if "mask.coverage" in m:
        lines.append(f"mask       : keep {cfg['mask']['keep']}, coverage {m['mask.coverage']:.1%}")
    if "matrix.own_best" in m:
        lines.append(f"matrix     : own-domain specialist best on {m['matrix.own_best']:.0f}/{m['matrix.domains']:.0f} domains")
    lines.append(f"reused     : {', '.join(result.reused) or 'nothing (all stages ran)'}")
    if cfg["tracking"]["enabled"]:
        lines.append("compare    : mlflow ui --backend-store-uri sqlite:///mlflow.db")
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path="../../conf", config_name="config")
def main(config: DictConfig) -> float:
    """Hydra entry point; returns the sweep objective."""
    from hydra.core.hydra_config import HydraConfig

    cfg = OmegaConf.to_container(config, resolve=True)
    overrides = list(HydraConfig.get().overrides.task)
    with exit_on_user_error():
        result = execute(cfg, overrides)
    print(summary(result, cfg))
    return result.metrics.get(cfg["search"]["objective"]["metric"], float("nan"))


if __name__ == "__main__":
    main()
