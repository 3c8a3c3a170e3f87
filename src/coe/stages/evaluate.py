"""Evaluate stage: fidelity against the parent, sizes, VRAM estimates, and (demo) the domain x mask matrix.

``metrics.json`` (the EvalReport) holds: ``fidelity.in_domain`` and
``fidelity.off_domain`` (perplexity of parent and specialist, KL and top-1
agreement on held-out text), ``size`` and ``vram`` figures, and ``matrix``:
the held-out perplexity of every domain's specialist (and a random mask of the
same keep) on every domain, with whether each domain's own specialist is the
best mask there; with ``eval.code.enabled``, ``code``: pass@1 of parent and
specialist on the configured code benchmark (overall and per difficulty) and
their paired comparison; and with a GGUF specialist and llama-cpp-python,
``gguf``: ``coe verify`` of it against the parent's GGUF on held-out documents
(logits equal where the mask keeps every routed expert, next-token agreement).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from coe.errors import CoeError
from coe.eval.fidelity import fidelity, perplexity
from coe.io import cached_sha256
from coe.eval.memory import vram_estimate, weights_bytes
from coe.mask import load_mask
from coe.stages.corpus import manifest, texts
from coe.stages.mask import RANDOM
from coe.stages.profile import domain_key
from coe.stages.store import Artifact
from coe.surgery import prune

__all__ = ["params", "run", "flat_metrics"]

log = logging.getLogger(__name__)


def params(cfg: dict, gguf: Path | None = None) -> dict:
    return {"eval": cfg["eval"], "domain": domain_key(cfg), "dtype": cfg["backend"]["dtype"],
            "gguf": cached_sha256(gguf) if gguf else None}  # fmt: skip


def _load(path: Path, backend: dict):
    """A model for evaluation, on the backend's device and dtype."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, backend["dtype"]))
    return model.to(backend["device"]).eval()


def run(
    store, cfg: dict, parent: Artifact, mask: Artifact, specialist: Artifact, corpus: Artifact, gguf: Path | None = None
) -> Artifact:
    """Write ``metrics.json`` (and ``matrix.png`` for the demo matrix)."""
    from transformers import AutoTokenizer

    ev = cfg["eval"]
    name = domain_key(cfg)

    def build(out: Path) -> None:  # reads held-out text only when the evaluation is not cached
        heldout = {n: texts(s["heldout"], ev["max_docs"]) for n, s in manifest(corpus).items() if s.get("heldout")}
        tokenizer = AutoTokenizer.from_pretrained(parent.path)
        backend = cfg["backend"]
        parent_model, special_model = _load(parent.path, backend), _load(specialist.path / "hf", backend)
        fid = lambda docs: vars(fidelity(parent_model, special_model, tokenizer, docs, ev["max_length"], ev["batch_size"]))  # noqa: E731
        cuda = str(backend["device"]).startswith("cuda")
        if cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        report = {
            "domain": cfg["domain"]["name"],
            "fidelity": {
                "in_domain": fid(heldout[name]) if name in heldout else None,
                "off_domain": {n: fid(d) for n, d in sorted(heldout.items()) if n not in (name, "cot")},
            },
            "size": _sizes(parent, specialist, gguf),
            "vram": _vram(cfg, parent, specialist, gguf, parent_model.config, special_model.config),
            "mask": json.loads((mask.path / "mask.json").read_text())["params"],
        }
        if cuda:  # both models and the evaluation's activations, measured
            report["vram"]["measured_peak_bytes"] = torch.cuda.max_memory_allocated()
        matrix_dir = mask.path / "matrix"
        if matrix_dir.is_dir():
            report["matrix"] = _matrix(parent_model, parent.path, matrix_dir, tokenizer, heldout, ev, backend)
            _plot_matrix(report["matrix"], out / "matrix.png")
        if gguf and ev["gguf_verify_docs"] and name in heldout:
            report["gguf"] = _verify_gguf(gguf, specialist.path / "specialist.gguf", mask.path / "mask.json",
                                          heldout[name][: ev["gguf_verify_docs"]], ev["max_length"])  # fmt: skip
        if ev["code"]["enabled"]:
            del parent_model, special_model  # generation loads its own copies, one model at a time
            models = {"parent": parent.path, "specialist": specialist.path / "hf"}
            if ev["code"]["backend"] == "llamacpp-local":
                models = {"parent": gguf, "specialist": specialist.path / "specialist.gguf"}
            report["code"] = _code(cfg, models, out / "code")
        (out / "metrics.json").write_text(json.dumps(report, indent=1, sort_keys=True))

    return store.build("evaluate", params(cfg, gguf), [parent, mask, specialist, corpus], build)


def _code(cfg: dict, models: dict[str, Path], out: Path) -> dict:
    """Generate answers with each model, grade them in the sandbox, and compare specialist with parent."""
    import os

    from coe.backends import GenerationSettings, make_backend
    from coe.codebench.generate import compare_reports, generate_all
    from coe.codebench.grade import grade_all, report
    from coe.codebench.problems import filter_problems, load_problems
    from coe.codebench.sandbox import Sandbox

    code = cfg["eval"]["code"]
    problems = filter_problems(load_problems(code["problems"]), code["difficulty"])[: code["max_problems"]]
    reports = {}
    with Sandbox() as sandbox:
        for who, path in models.items():
            settings = GenerationSettings(model=str(path), system=cfg["domain"]["system_prompt"], seed=cfg["seed"],
                                          temperature=code["temperature"], max_new_tokens=code["max_new_tokens"])  # fmt: skip
            backend = make_backend(code["backend"], settings)
            try:
                generations = generate_all(problems, backend, settings, out / f"{who}.jsonl", code["samples"], workers=1)
            finally:
                backend.close()
            results = grade_all(problems, generations, sandbox, os.cpu_count() or 1)
            reports[who] = report(problems, results, k=1, window={"problems": code["problems"]})
            (out / f"{who}.json").write_text(json.dumps(reports[who], indent=1))
    comparison = compare_reports(reports["specialist"], reports["parent"])
    return {who: {k: r[k] for k in ("pass@1", "by_difficulty", "by_platform", "n_problems")} for who, r in reports.items()} | {
        "compare": {k: v for k, v in comparison.items() if k != "problems"}}  # fmt: skip


def _verify_gguf(parent: Path, specialist: Path, mask: Path, docs: list[str], max_length: int) -> dict:
    """``coe verify`` on held-out documents: prompts for the logit check and text for agreement."""
    from coe.llamacpp.verify import verify_specialist

    try:
        report = verify_specialist(specialist, parent, load_mask(mask), docs, docs, max_length)
    except CoeError as exc:  # no llama-cpp-python, or a GGUF it cannot load: say so, keep the other figures
        log.warning("GGUF verification skipped: %s", exc)
        return {"skipped": str(exc)}
    return {"ok": report.ok, "failures": report.failures, "expert_count": report.expert_count,
            "covered_positions": report.covered_positions, "total_positions": report.total_positions,
            "max_logit_diff": report.max_logit_diff, "agreement": report.agreement}  # fmt: skip


def _sizes(parent: Artifact, specialist: Artifact, gguf: Path | None) -> dict:
    sizes = {"parent_bytes": weights_bytes(parent.path), "specialist_bytes": weights_bytes(specialist.path / "hf")}
    sizes["ratio"] = sizes["specialist_bytes"] / sizes["parent_bytes"]
    if gguf:
        sizes["parent_gguf_bytes"] = weights_bytes(gguf)
        sizes["specialist_gguf_bytes"] = weights_bytes(specialist.path / "specialist.gguf")
    return sizes


def _vram(cfg: dict, parent: Artifact, specialist: Artifact, gguf: Path | None, parent_config, special_config) -> dict:
    weights = {
        "parent": weights_bytes(gguf) if gguf else weights_bytes(parent.path),
        "specialist": weights_bytes(specialist.path / ("specialist.gguf" if gguf else "hf")),
    }
    configs = {"parent": parent_config, "specialist": special_config}
    overhead = cfg["eval"]["runtime_overhead_mb"] << 20
    return {str(ctx): {who: vram_estimate(weights[who], configs[who], ctx, overhead) for who in weights}
            for ctx in cfg["eval"]["vram_contexts"]}  # fmt: skip


def _matrix(parent_model, parent_dir: Path, matrix_dir: Path, tokenizer, heldout: dict, ev: dict, backend: dict) -> dict:
    domains = sorted(n for n in heldout if n != "cot")
    masks = sorted(p.stem for p in matrix_dir.glob("*.json"))
    ppl = {"parent": {d: perplexity(parent_model, tokenizer, heldout[d], ev["max_length"], ev["batch_size"]) for d in domains}}
    with tempfile.TemporaryDirectory() as tmp:
        for mask_name in masks:
            prune(parent_dir, load_mask(matrix_dir / f"{mask_name}.json"), Path(tmp) / mask_name, progress=False)
            model = _load(Path(tmp) / mask_name, backend)
            ppl[mask_name] = {d: perplexity(model, tokenizer, heldout[d], ev["max_length"], ev["batch_size"]) for d in domains}
    own_best = {d: min((m for m in masks), key=lambda m: ppl[m][d]) == d for d in domains if d in masks}
    return {"domains": domains, "masks": masks, "ppl": ppl, "own_best": own_best, "baseline": RANDOM}


def _plot_matrix(matrix: dict, path: Path) -> None:
    import numpy as np

    from coe.figures import pyplot

    plt = pyplot()

    rows, cols = matrix["masks"], matrix["domains"]
    ratio = np.array([[matrix["ppl"][m][d] / matrix["ppl"]["parent"][d] for d in cols] for m in rows])
    fig, ax = plt.subplots(figsize=(1.6 * len(cols) + 2, 0.6 * len(rows) + 1.5))
    image = ax.imshow(ratio, cmap="magma_r", aspect="auto")
    fig.colorbar(image, ax=ax, label="held-out perplexity / parent's")
    for i, m in enumerate(rows):
        for j, d in enumerate(cols):
            best = min(rows, key=lambda r: matrix["ppl"][r][d]) == m
            ax.text(j, i, f"{ratio[i, j]:.3f}" + (" *" if best else ""), ha="center", va="center", color="white" if ratio[i, j] > ratio.mean() else "black")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), [f"{m} mask" for m in rows])
    ax.set_xlabel("held-out domain (* = best mask for it)")
    ax.set_title("domain x mask: specialist perplexity relative to the parent")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def flat_metrics(report: dict) -> dict[str, float]:
    """The report's numbers as flat MLflow metric names."""
    out: dict[str, float] = {}
    if report["fidelity"]["in_domain"]:
        out.update({f"fidelity.{k}": v for k, v in report["fidelity"]["in_domain"].items()})
    for domain, fid in report["fidelity"]["off_domain"].items():
        out.update({f"off_domain.{domain}.{k}": v for k, v in fid.items()})
    out.update({f"size.{k}": v for k, v in report["size"].items()})
    for ctx, figures in report["vram"].items():
        if isinstance(figures, dict):
            out.update({f"vram.{who}_{int(ctx) // 1024}k_bytes": v for who, v in figures.items()})
        else:
            out[f"vram.{ctx}"] = figures
    if "code" in report:
        for who in ("parent", "specialist"):
            out[f"code.pass_at_1.{who}"] = report["code"][who]["pass@1"]  # MLflow names allow no "@"
            out.update({f"code.pass_at_1.{who}.{d}": v for d, v in report["code"][who]["by_difficulty"].items()})
        out["code.pass_at_1.difference"] = report["code"]["compare"]["difference"]
    if report.get("gguf", {}).get("expert_count") is not None:
        g = report["gguf"]
        out.update({f"gguf.{k}": g[k] for k in ("covered_positions", "total_positions", "max_logit_diff", "agreement")})
        out["gguf.ok"] = float(g["ok"])
    if "matrix" in report:
        m = report["matrix"]
        out.update({f"matrix.{mask}.{d}.ppl": v for mask, row in m["ppl"].items() for d, v in row.items()})
        out["matrix.own_best"] = float(sum(m["own_best"].values()))
        out["matrix.domains"] = float(len(m["own_best"]))
    return {k: float(v) for k, v in out.items()}
