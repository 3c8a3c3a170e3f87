"""The experiment pipeline end to end on a tiny demo: configs, coe.run, artifact reuse, MLflow, coe.tune."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from coe.errors import ConfigError
from coe.pipeline import repo_root, validate
from coe.stage import compose

CONF = repo_root() / "conf"
# A demo small enough for a test: 2 layers x 8 experts, 30 training steps, small corpora.
TINY = [
    "+domain=coding", "model.train.layers=2", "model.train.experts=8", "model.train.top_k=2",
    "model.train.hidden=64", "model.train.dense_ff=64", "model.train.expert_ff=32", "model.train.vocab=400",
    "model.train.steps=30", "model.train.batch=8", "model.train.seq=64", "corpus.budget_chars=40000",
    "profile.max_length=64", "profile.stability.keep=4", "profile.stability.start_tokens=256", "eval.max_docs=4",
    "eval.max_length=64", "mask.keep=4",
]  # fmt: skip


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["domain", "model", "corpus", "profile", "mask", "eval", "backend", "search", "paths"])
def test_every_config_option_composes(group):
    for option in _options(group):
        prefix = "+" if group == "domain" else ""
        overrides = [f"{prefix}{group}={option}"] + ([] if group == "domain" else ["+domain=coding"])
        cfg = compose(overrides + (["model.path=/nowhere"] if option == "gemma4-26b-a4b" else []))
        validate(cfg)
        assert "${" not in json.dumps(cfg)  # fully resolved, no interpolation left


@pytest.mark.parametrize("preset", _options("experiment"))
def test_every_experiment_preset_composes(preset):
    cfg = compose([f"+experiment={preset}", "model.path=/nowhere"])
    validate(cfg)
    assert cfg["domain"]["name"] == "coding"


def test_seed_preset_is_the_seed_recipe():
    cfg = compose(["+experiment=seed-gemma4-coding", "model.path=/m"])
    assert cfg["model"]["name"] == "gemma4-26b-a4b" and cfg["mask"]["keep"] == 64
    assert cfg["mask"]["whitelist"] == {"max_mean_rank": 2.0, "min_count": 10} and cfg["mask"]["arbitrage"]["cap"] == 3


def test_no_time_or_env_interpolation_outside_hydra():
    for path in CONF.rglob("*.yaml"):
        text = path.read_text()
        body = text.split("\nhydra:")[0]
        assert "${now:" not in body and "oc.env" not in body, path


def test_missing_domain_says_how_to_pick_one(tmp_path):
    with pytest.raises(ConfigError, match=r"\+domain=coding"):
        validate(compose([]))
    command = [sys.executable, "-m", "coe.run", f"hydra.run.dir={tmp_path}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "+domain=coding" in result.stderr and "Traceback" not in result.stderr


def test_params_yaml_matches_conf_and_dvc_params_exist():
    committed = yaml.safe_load((repo_root() / "params.yaml").read_text())
    assert committed == compose(["+domain=coding"]), "regenerate with: python -m coe.stage params"
    stages = yaml.safe_load((repo_root() / "dvc.yaml").read_text())["stages"]
    for stage in stages.values():
        for key in stage.get("params", []):
            node = committed
            for part in key.split("."):
                node = node[part]  # KeyError = dvc.yaml names a param that params.yaml lacks


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("coe-root")


def _run(root: Path, extra: list[str] = ()):
    from coe.run import execute

    overrides = [*TINY, f"paths.root={root}", *extra]
    return execute(compose(overrides), overrides, progress=False)


def test_pipeline_end_to_end_logs_to_mlflow_and_reuses_artifacts(tiny_root):
    import mlflow

    first = _run(tiny_root)
    assert first.reused == []
    m = first.metrics
    assert 0 < m["size.ratio"] < 1 and m["fidelity.kl"] >= 0 and 0 <= m["fidelity.top1"] <= 1
    assert m["vram.specialist_16k_bytes"] < m["vram.parent_16k_bytes"]
    assert {"matrix.coding.coding.ppl", "matrix.random.math.ppl", "matrix.own_best"} <= set(m)
    assert 0 < m["mask.coverage"] <= 1

    client = mlflow.MlflowClient(f"sqlite:///{tiny_root / 'mlflow.db'}")
    run = client.get_run(first.run_id)
    assert run.data.params["mask.keep"] == "4" and run.data.tags["domain"] == "coding"
    assert run.data.metrics["fidelity.kl"] == pytest.approx(m["fidelity.kl"])
    artifacts = {a.path for folder in ("mask", "eval", "config", "profile") for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"mask/mask.json", "mask/heatmap.png", "mask/report.txt", "eval/metrics.json", "eval/matrix.png",
            "config/config.yaml", "config/overrides.txt", "profile/coding.txt", "profile/stability.png"} <= artifacts  # fmt: skip
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(tiny_root / "mlruns")

    again = _run(tiny_root)
    assert sorted(again.reused) == sorted(first.artifacts)
    assert again.metrics["fidelity.kl"] == m["fidelity.kl"]

    changed = _run(tiny_root, ["mask.keep=6"])
    assert sorted(changed.reused) == ["corpus", "parent", "profile"]
    assert changed.metrics["size.ratio"] > m["size.ratio"]


def test_demo_runs_gguf_end_to_end_in_llama_cpp(tiny_root):
    """Export the demo parent, profile its GGUF in llama.cpp, cut the GGUF and verify the specialist there."""
    pytest.importorskip("llama_cpp", reason="needs llama-cpp-python: pip install 'coe[llamacpp]'")
    from coe.profile import load_profile

    _run(tiny_root)  # the transformers run (reused when the test above ran)
    run = _run(tiny_root, ["model.gguf_export=q8_0", "profile.backend=llama.cpp"])
    assert "parent" in run.reused  # the export is a stage of its own: the trained parent is kept
    profile = load_profile(run.artifacts["profile"].path / "coding.safetensors")
    assert (profile.meta.backend, profile.meta.quantization, profile.meta.model_id) == ("llama.cpp", "MOSTLY_Q8_0", "demo")
    m = run.metrics
    assert m["size.specialist_gguf_bytes"] < m["size.parent_gguf_bytes"]
    assert m["gguf.ok"] == 1.0 and m["gguf.max_logit_diff"] <= 1e-3 and 0 < m["gguf.agreement"] <= 1
    assert (run.artifacts["surgery"].path / "specialist.gguf").is_file()

    coded = _run(tiny_root, ["model.gguf_export=q8_0", "profile.backend=llama.cpp", "eval.code.enabled=true",
                             "eval.code.backend=llamacpp-local", "eval.code.max_problems=2", "eval.code.max_new_tokens=4"])  # fmt: skip
    assert sorted(coded.reused) == ["corpus", "mask", "parent", "profile", "surgery"]
    assert 0 <= coded.metrics["code.pass_at_1.specialist"] <= 1
    assert len((coded.artifacts["evaluate"].path / "code" / "specialist.jsonl").read_text().splitlines()) == 2


def test_gguf_options_need_a_gguf(tmp_path):
    for option in ("profile.backend=llama.cpp", "eval.code.backend=llamacpp-local"):
        with pytest.raises(ConfigError, match="model.gguf_export"):
            validate(compose(["+domain=coding", option]))


def test_code_pass_rates_of_parent_and_specialist(tiny_root):
    coded = _run(tiny_root, ["eval.code.enabled=true", "eval.code.max_problems=2", "eval.code.max_new_tokens=4"])
    assert sorted(coded.reused) == ["corpus", "mask", "parent", "profile", "surgery"]
    m = coded.metrics
    assert 0 <= m["code.pass_at_1.specialist"] <= 1 and 0 <= m["code.pass_at_1.parent"] <= 1  # a 30-step demo: 0 in practice
    assert "code.pass_at_1.difference" in m
    code_dir = coded.artifacts["evaluate"].path / "code"
    assert len((code_dir / "specialist.jsonl").read_text().splitlines()) == 2
    assert json.loads((code_dir / "parent.json").read_text())["n_problems"] == 2


def test_tune_two_workers_share_one_study(tiny_root):
    import mlflow
    import optuna

    from coe.tune import tune

    overrides = [*TINY, f"paths.root={tiny_root}", "search.n_trials=3", "search.workers=2", "search.study_name=t"]
    study = tune(compose(overrides), overrides)
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 3
    for trial in trials:  # each trial's overrides are accepted by coe.run unchanged
        compose([*TINY, *trial.user_attrs["overrides"].split()])
    client = mlflow.MlflowClient(f"sqlite:///{tiny_root / 'mlflow.db'}")
    parent = client.search_runs([client.get_experiment_by_name("coe").experiment_id], "tags.study = 't'")[0]
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 3
    assert parent.data.tags["best_overrides"] == study.best_trial.user_attrs["overrides"]
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "optuna")} >= {"optuna/history.png"}


def test_real_parent_path_with_corpus_sources(tiny_model_dir, tmp_path, documents):
    """A local HF checkpoint (and its GGUF) as the parent, the corpus built from a source spec."""
    from coe.export import export_gguf
    from coe.run import execute

    corpus = tmp_path / "coding.jsonl"
    corpus.write_text("".join(json.dumps({"text": d}) + "\n" for d in documents * 3))
    gguf_parent = tmp_path / "parent.gguf"
    export_gguf(tiny_model_dir, gguf_parent, "q8_0", progress=False)
    overrides = ["+domain=coding", "model=gemma4-26b-a4b", f"model.path={tiny_model_dir}", f"model.gguf={gguf_parent}",
                 f"paths.root={tmp_path}", "mask.keep=4", "eval.matrix=false", "eval.max_docs=3",
                 "profile.stability.keep=4"]  # fmt: skip
    cfg = compose(overrides)
    cfg["domain"]["sources"] = [{"kind": "jsonl", "path": str(corpus), "name": "coding"}]
    cfg["corpus"]["heldout"] = 0.3
    result = execute(cfg, overrides, progress=False)
    manifest = json.loads((result.artifacts["corpus"].path / "coding" / "manifest.json").read_text())
    assert manifest["sources"]["coding"]["heldout"]["documents"] > 0
    assert result.artifacts["parent"].path == tiny_model_dir
    assert 0 < result.metrics["size.ratio"] < 1 and "fidelity.kl" in result.metrics and "matrix.own_best" not in result.metrics
    assert json.loads((result.artifacts["mask"].path / "mask.json").read_text())["keep"] == 4
    specialist_gguf = result.artifacts["surgery"].path / "specialist.gguf"
    assert result.metrics["size.specialist_gguf_bytes"] == specialist_gguf.stat().st_size < result.metrics["size.parent_gguf_bytes"]
    from coe.inspect import inspect_path

    assert inspect_path(specialist_gguf).layout.num_experts == 4


def test_real_parent_needs_a_corpus(tiny_model_dir, tmp_path):
    from coe.run import execute

    overrides = ["+domain=coding", "model=gemma4-26b-a4b", f"model.path={tiny_model_dir}", f"paths.root={tmp_path}",
                 "tracking.enabled=false", "mask.keep=4"]  # fmt: skip
    with pytest.raises(ConfigError, match="domain.corpus_files"):
        execute(compose(overrides), overrides, progress=False)


def test_content_store_keeps_an_output_another_worker_completed(tmp_path):
    from coe.stages.store import ContentStore

    store = ContentStore(tmp_path)
    calls = []

    def build(out: Path) -> None:
        calls.append(out)
        (out / "x.txt").write_text(str(len(calls)))
        if len(calls) == 1:  # while we build, a second worker completes the same key
            store.build("mask", {"k": 1}, [], lambda o: (o / "x.txt").write_text("other"))

    first = store.build("mask", {"k": 1}, [], build)
    assert (first.path / "x.txt").read_text() == "other" and not first.reused
    assert [p.name for p in (tmp_path / "mask").iterdir()] == [first.path.name]  # no temporary left
    assert store.build("mask", {"k": 1}, [], build).reused and len(calls) == 1


def test_front_doors_run_as_commands(tiny_root):
    """`python -m coe.run` and `python -m coe.tune` as a user types them (Hydra's own entry points)."""
    common = [*TINY, f"paths.root={tiny_root}", f"hydra.run.dir={tiny_root}/hydra"]
    run = subprocess.run([sys.executable, "-m", "coe.run", *common], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "specialist :" in run.stdout and "mlflow ui" in run.stdout
    tune = subprocess.run([sys.executable, "-m", "coe.tune", *common, "search.n_trials=1", "search.study_name=cmd"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert tune.returncode == 0, tune.stderr[-2000:]
    assert "best overrides: mask.keep=" in tune.stdout and "reproduce: python -m coe.run" in tune.stdout
