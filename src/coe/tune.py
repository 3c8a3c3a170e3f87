"""``python -m coe.tune +domain=coding [search.n_trials=8] [search.workers=2]``: an Optuna study over mask settings.

* The search space, objective, trial budget and storage come from ``conf/search/``.
* Every trial is an override set (``mask.keep=6 mask.scorer=frequency ...``)
  that ``python -m coe.run`` accepts unchanged; the trial's config is composed
  from ``conf/`` with the study's overrides plus the trial's.
* Upstream stages (corpus, parent, profile) run once, before any worker
  starts; trials reuse them from the stage cache, so only masking, surgery and
  evaluation run per trial.
* The study lives on disk (a journal file under ``data/optuna/`` by default, or
  ``search.storage``: an RDB URL such as ``sqlite:///optuna.db`` or, for several
  machines, ``postgresql://user:pass@host/db``), so studies resume and several
  workers (``search.workers``, or the same command started again) share it.
* One parent MLflow run per invocation; each trial is a nested run. At the end
  the best trial, its overrides, and Optuna's history and importance plots are
  logged to the parent run.
"""

from __future__ import annotations

import logging
import multiprocessing
import tempfile
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from coe.errors import CoeError, ConfigError, exit_on_user_error

__all__ = ["main", "suggest", "storage", "tune"]

log = logging.getLogger("coe.tune")
_KINDS = ("int", "float", "categorical")


def suggest(trial, space: dict) -> list[str]:
    """Sample the search space; return the trial's Hydra overrides (``key=value``)."""
    overrides = []
    for key, spec in space.items():
        kind = spec.get("type")
        if kind == "int":
            value = trial.suggest_int(key, spec["low"], spec["high"], step=spec.get("step", 1))
        elif kind == "float":
            value = trial.suggest_float(key, spec["low"], spec["high"], log=spec.get("log", False))
        elif kind == "categorical":
            value = trial.suggest_categorical(key, spec["choices"])
        else:
            raise ConfigError(f"search.space.{key}: type must be one of {_KINDS}, got {kind!r}")
        overrides.append(f"{key}={value}")
    return overrides


def storage(cfg: dict, root: Path):
    """The study's storage: ``search.storage`` if set, else a journal file under ``data/optuna/``."""
    import optuna

    if cfg["search"]["storage"]:
        return cfg["search"]["storage"]
    path = root / cfg["paths"]["data"] / "optuna" / f"{cfg['search']['study_name']}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = optuna.storages.journal.JournalFileBackend(str(path))
    return optuna.storages.JournalStorage(backend)


def _study(cfg: dict, root: Path, create: bool):
    import optuna

    search = cfg["search"]
    sampler = optuna.samplers.TPESampler(
        seed=search["sampler_seed"], constraints_func=_constraints if search["max_size_ratio"] else None
    )
    if create:
        return optuna.create_study(study_name=search["study_name"], storage=storage(cfg, root), sampler=sampler,
                                   direction=search["objective"]["direction"], load_if_exists=True)  # fmt: skip
    return optuna.load_study(study_name=search["study_name"], storage=storage(cfg, root), sampler=sampler)


def _constraints(trial) -> list[float]:
    return [trial.user_attrs.get("size_over_limit", 0.0)]


def _objective(base: list[str], cfg: dict, parent_run_id: str | None):
    from coe.run import execute
    from coe.stage import compose

    search = cfg["search"]

    def objective(trial) -> float:
        overrides = suggest(trial, search["space"])
        trial.set_user_attr("overrides", " ".join(overrides))
        trial_cfg = compose([*base, *overrides])
        result = execute(trial_cfg, [*base, *overrides], parent_run_id=parent_run_id, progress=False)
        if search["max_size_ratio"]:
            trial.set_user_attr("size_over_limit", result.metrics["size.ratio"] - search["max_size_ratio"])
        metric = search["objective"]["metric"]
        if metric not in result.metrics:
            raise ConfigError(f"search.objective.metric {metric!r} is not a metric; known: {sorted(result.metrics)}")
        return result.metrics[metric]

    return objective


def _worker(base: list[str], cfg: dict, root: str, parent_run_id: str | None, n_trials: int) -> None:
    """One worker process: load the shared study and run its share of the trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _study(cfg, Path(root), create=False)
    study.optimize(_objective(base, cfg, parent_run_id), n_trials=n_trials)


def tune(cfg: dict, base: list[str]):
    """Prepare shared artifacts, create the study and its parent run, run the workers, log the outcome."""
    from coe.pipeline import resolve_root, validate
    from coe.stages import corpus, parent, profile
    from coe.stages.store import ContentStore

    validate(cfg)
    root = resolve_root(cfg)
    store = ContentStore(root / cfg["paths"]["cache"])
    corpus_art = corpus.run(store, cfg)
    parent_art = parent.run(store, cfg, corpus_art)
    profile.run(store, cfg, parent_art, corpus_art, parent.gguf(store, cfg, parent_art))  # once, before the workers
    study = _study(cfg, root, create=True)
    workers = max(1, int(cfg["search"].get("workers", 1)))
    shares = [cfg["search"]["n_trials"] // workers + (i < cfg["search"]["n_trials"] % workers) for i in range(workers)]
    parent_run = _start_parent_run(cfg, root, base) if cfg["tracking"]["enabled"] else None
    try:
        if workers == 1:
            _worker(base, cfg, str(root), parent_run, shares[0])
        else:
            context = multiprocessing.get_context("spawn")
            procs = [context.Process(target=_worker, args=(base, cfg, str(root), parent_run, n)) for n in shares if n]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            failed = [p.exitcode for p in procs if p.exitcode]
            if failed:
                raise CoeError(f"{len(failed)} tuning worker(s) failed (exit codes {failed}); see their output above")
    finally:
        if parent_run:
            _finish_parent_run(study, parent_run)
    return study


def _start_parent_run(cfg: dict, root: Path, base: list[str]) -> str:
    import mlflow

    from coe.tracking import experiment_id, run_name

    exp = experiment_id(root, cfg["tracking"]["experiment"])
    run = mlflow.start_run(experiment_id=exp, run_name=f"tune:{cfg['search']['study_name']}:{run_name(base)}",
                           tags={"study": cfg["search"]["study_name"], "domain": cfg["domain"]["name"]})  # fmt: skip
    mlflow.log_params({"study_name": cfg["search"]["study_name"], "n_trials": cfg["search"]["n_trials"],
                       "objective": cfg["search"]["objective"]["metric"], "direction": cfg["search"]["objective"]["direction"]})  # fmt: skip
    mlflow.end_run()
    return run.info.run_id


def _finish_parent_run(study, run_id: str) -> None:
    import mlflow
    import optuna
    from optuna.trial import TrialState

    from coe.figures import pyplot

    pyplot()  # Optuna's plots draw with matplotlib: headless
    done = study.get_trials(states=(TrialState.COMPLETE,))
    with mlflow.start_run(run_id=run_id), tempfile.TemporaryDirectory() as tmp:
        if not done:
            return
        best = study.best_trial
        mlflow.log_metric("best_value", best.value)
        mlflow.set_tag("best_overrides", best.user_attrs.get("overrides", ""))
        mlflow.log_text(best.user_attrs.get("overrides", "") + "\n", "best_overrides.txt")
        plots = {"history.png": optuna.visualization.matplotlib.plot_optimization_history}
        if len(done) > 1:
            plots["importance.png"] = optuna.visualization.matplotlib.plot_param_importances
        for name, plot in plots.items():
            try:
                axes = plot(study)
            except (ValueError, RuntimeError) as exc:  # e.g. every trial had the same value
                log.warning("skipped %s: %s", name, exc)
                continue
            axes.figure.savefig(Path(tmp) / name, dpi=110, bbox_inches="tight")
            mlflow.log_artifact(str(Path(tmp) / name), "optuna")


@hydra.main(version_base="1.3", config_path="../../conf", config_name="config")
def main(config: DictConfig) -> None:
    """Hydra entry point."""
    from hydra.core.hydra_config import HydraConfig

    cfg = OmegaConf.to_container(config, resolve=True)
    base = list(HydraConfig.get().overrides.task)
    with exit_on_user_error():
        study = tune(cfg, base)
    best = study.best_trial
    print(f"study {study.study_name}: {len(study.trials)} trials; best {cfg['search']['objective']['metric']} = {best.value:.6g}")
    print(f"best overrides: {best.user_attrs.get('overrides', '')}")
    print(f"reproduce: python -m coe.run {' '.join(base)} {best.user_attrs.get('overrides', '')}")


if __name__ == "__main__":
    main()
