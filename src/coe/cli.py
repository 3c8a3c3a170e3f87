"""The ``coe`` command line. Each subcommand parses arguments and calls library code.

User errors (:class:`coe.errors.CoeError`) print as one line, without a
traceback, and exit with status 1.
"""

from __future__ import annotations

from pathlib import Path

import click

from coe.errors import CoeError

__all__ = ["main", "cli"]


class _CoeGroup(click.Group):
    """A click group that turns CoeError into a clean CLI error."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CoeError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_CoeGroup)
@click.version_option(package_name="coe")
def cli() -> None:
    """coe: activation-directed expert surgery for Mixture-of-Experts LLMs."""


@cli.group(cls=_CoeGroup, invoke_without_command=True)
@click.option("--model", "model_dir", type=click.Path(path_type=Path), help="HF model directory, or a .gguf file (llama.cpp).")
@click.option("--corpus", multiple=True, type=click.Path(path_type=Path), help="Corpus file (.txt or .jsonl); repeatable.")
@click.option("--out", type=click.Path(path_type=Path), help="Where to write profile.safetensors.")
@click.option("--batch-size", default=8, show_default=True, help="Chunks per forward pass (transformers).")
@click.option("--max-length", default=512, show_default=True, help="Tokens per chunk, BOS included.")
@click.option("--device", default="cpu", show_default=True, help="torch device (transformers).")
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "bfloat16", "float16"]),
              help="Model dtype (transformers).")
@click.option("--threads", type=int, help="CPU threads (llama.cpp; default all cores).")
@click.option("--n-gpu-layers", default=0, show_default=True, help="Layers offloaded to a GPU build of llama.cpp.")
@click.option("--ubatch", type=int, help="Tokens per llama.cpp compute graph (default --max-length).")
@click.option("--exact", is_flag=True, help="llama.cpp: F32 KV cache, no flash attention (closest to transformers; slower).")
@click.option("--reap", is_flag=True, help="Also record gate_out_norm_sum for the reap scorer (slower; transformers).")
@click.option("--keep", type=int, help="Record the mask-stability curve for masks of this keep (each doubling of tokens).")
@click.option("--until-stable", is_flag=True, help="Stop once the mask stops changing (needs --keep).")
@click.option("--threshold", default=0.95, show_default=True, help="Stable: Jaccard to the previous mask >= this in every layer.")
@click.option("--start-tokens", default=1024, show_default=True, help="First stability checkpoint; then every doubling.")
@click.option("--curve-plot", type=click.Path(path_type=Path), help="Write the stability curve as a PNG.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def profile(ctx: click.Context, model_dir, corpus, out, batch_size, max_length, device, dtype, threads, n_gpu_layers, ubatch,
            exact, reap, keep, until_stable, threshold, start_tokens, curve_plot, quiet) -> None:  # fmt: skip
    """Record what a MoE model's routers do on a corpus (RouterProfile).

    \b
    coe profile --model DIR --corpus FILE --out profile.safetensors
    coe profile --model parent.gguf --corpus FILE --out profile.safetensors
    coe profile merge A B --out C
    """
    if ctx.invoked_subcommand is not None:
        return
    missing = [flag for flag, value in (("--model", model_dir), ("--corpus", corpus), ("--out", out)) if not value]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)}")
    if (until_stable or curve_plot) and keep is None:
        raise click.UsageError("--until-stable and --curve-plot need --keep")
    from coe.profile import save_profile

    if model_dir.suffix == ".gguf":
        if reap:
            raise click.UsageError("--reap needs expert outputs, which only the transformers backend records")
        from coe.llamacpp.profile import GGUFProfileSettings, gguf_layout, profile_gguf

        settings = GGUFProfileSettings(max_length=max_length, n_ubatch=ubatch, n_threads=threads,
                                       n_gpu_layers=n_gpu_layers, exact=exact)  # fmt: skip
        settings.validate()
        layout = gguf_layout(model_dir)
        run = lambda checkpoint: profile_gguf(model_dir, list(corpus), settings, not quiet, checkpoint)  # noqa: E731
    else:
        from coe.profile.runner import ProfileSettings, load_model, profile_model

        settings = ProfileSettings(batch_size=batch_size, max_length=max_length, device=device, dtype=dtype, reap=reap)
        settings.validate()
        loaded = load_model(model_dir, settings)
        layout = loaded.layout
        run = lambda checkpoint: profile_model(loaded, list(corpus), settings, not quiet, checkpoint)  # noqa: E731
    tracker = None
    if keep is not None:
        from coe.mask import MaskSettings
        from coe.profile.stability import StabilityTracker

        mask_settings = MaskSettings(keep=keep)
        mask_settings.validate(layout.num_experts, layout.top_k)
        tracker = StabilityTracker(mask_settings, start_tokens, threshold, stop=until_stable)
    result = run(tracker)
    if tracker is not None:
        import dataclasses

        tracker.record(result)
        result.meta = dataclasses.replace(result.meta, stability=tracker.to_json())
        _echo_curve(tracker)
        if curve_plot:
            from coe.profile.stability import plot_stability

            plot_stability({"mask": tracker.points}, threshold, curve_plot)
    save_profile(result, out)
    click.echo(f"profiled {result.n_tokens} tokens over {len(result.meta.moe_layers)} MoE layers -> {out}")


def _echo_curve(tracker) -> None:
    click.echo(f"{'tokens':>10} {'jaccard min':>11} {'coverage':>9}")
    for p in tracker.points:
        click.echo(f"{p.tokens:>10} {p.jaccard_min:>11.3f} {p.coverage:>9.3f}")
    at = tracker.converged_at()
    click.echo(f"mask stable (Jaccard >= {tracker.threshold} in every layer) from {at} tokens" if at else
               f"mask not yet stable at {tracker.points[-1].tokens} tokens: profile more text")  # fmt: skip


@profile.command("merge")
@click.argument("profiles", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path))
def profile_merge(profiles, out) -> None:
    """Sum profiles of the same model (corpus shards profiled apart)."""
    from coe.profile import load_profile, merge_profiles, save_profile

    merged = merge_profiles([load_profile(p) for p in profiles])
    save_profile(merged, out)
    click.echo(f"merged {len(profiles)} profiles ({merged.n_tokens} tokens) -> {out}")


@cli.command("inspect")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--keep", type=int, default=None, help="Also print the size with this many experts per layer.")
def inspect_cmd(path, keep) -> None:
    """Print the MoE layout of an HF model directory, a GGUF file or a profile."""
    if path.suffix == ".safetensors" and path.is_file():
        from coe.profile import load_profile
        from coe.profile.summary import format_profile

        click.echo(format_profile(load_profile(path)))
        return
    from coe.inspect import format_layout, inspect_path

    click.echo(format_layout(inspect_path(path), keep=keep))


@cli.group(cls=_CoeGroup, invoke_without_command=True)
@click.option("--profile", "profiles", multiple=True, type=click.Path(path_type=Path), help="Domain profile; repeatable.")
@click.option("--weight", "weights", multiple=True, type=float, help="Weight per --profile (default equal).")
@click.option("--cot-profile", type=click.Path(path_type=Path), help="Reasoning-trace profile for pass 3.")
@click.option("--keep", type=int, help="Experts kept per MoE layer.")
@click.option("--scorer", default="utility", show_default=True, help="utility, frequency, rank_weighted, reap, random.")
@click.option("--whitelist-max-mean-rank", default=2.0, show_default=True, help="Pass 2: mean 0-based pick rank below this.")
@click.option("--whitelist-min-count", default=10, show_default=True, help="Pass 2: at least this many picks.")
@click.option("--arbitrage-cap", default=3, show_default=True, help="Pass 3: swaps per layer at most (0 disables).")
@click.option("--seed", default=0, show_default=True, help="Seed of the random scorer.")
@click.option("--out", type=click.Path(path_type=Path), help="Where to write mask.json.")
@click.pass_context
def mask(ctx: click.Context, profiles, weights, cot_profile, keep, scorer, whitelist_max_mean_rank,
         whitelist_min_count, arbitrage_cap, seed, out) -> None:  # fmt: skip
    """Build the ExpertMask: which experts each MoE layer keeps.

    \b
    coe mask --profile P [--cot-profile C] --keep K --out mask.json
    coe mask report mask.json [--profile P] [--heatmap h.png] [--compare other.json --overlap o.png]
    """
    if ctx.invoked_subcommand is not None:
        return
    missing = [flag for flag, value in (("--profile", profiles), ("--keep", keep), ("--out", out)) if not value]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)}")
    from coe.mask import MaskSettings, build_mask, mask_sources, save_mask
    from coe.profile import load_profile

    settings = MaskSettings(keep, scorer, whitelist_max_mean_rank, whitelist_min_count, arbitrage_cap, seed)
    loaded = [load_profile(p) for p in profiles]
    cot = load_profile(cot_profile) if cot_profile else None
    result = build_mask(loaded, settings, cot, list(weights) if weights else None, mask_sources(loaded, cot))
    save_mask(result, out)
    passes = {p: sum(s.pass_ == p for s in result.swaps) for p in ("whitelist", "arbitrage")}
    click.echo(f"kept {keep}/{result.num_experts} experts in {len(result.layers)} layers "
               f"({passes['whitelist']} whitelist, {passes['arbitrage']} arbitrage swaps) -> {out}")  # fmt: skip
    for note in result.notes:
        click.echo(f"note: {note}", err=True)


@mask.command("report")
@click.argument("mask_path", type=click.Path(path_type=Path))
@click.option("--profile", type=click.Path(path_type=Path), help="Profile for coverage (and the heat-map).")
@click.option("--heatmap", type=click.Path(path_type=Path), help="Write a layers x experts heat-map PNG (needs --profile).")
@click.option("--compare", type=click.Path(path_type=Path), help="Another mask to compare with.")
@click.option("--overlap", type=click.Path(path_type=Path), help="Write the per-layer Jaccard figure (needs --compare).")
def mask_report_cmd(mask_path, profile, heatmap, compare, overlap) -> None:
    """Per-layer kept counts, swaps, coverage; optional figures."""
    from coe.mask import load_mask
    from coe.mask.report import format_report, jaccard, mask_report, plot_heatmap, plot_overlap
    from coe.mask.scorers import score
    from coe.profile import load_profile

    if heatmap and not profile:
        raise click.UsageError("--heatmap needs --profile")
    if overlap and not compare:
        raise click.UsageError("--overlap needs --compare")
    the_mask = load_mask(mask_path)
    prof = load_profile(profile) if profile else None
    click.echo(format_report(mask_report(the_mask, prof), the_mask))
    if heatmap:
        util = score(the_mask.params.get("scorer", "utility"), prof, the_mask.params.get("seed", 0))
        plot_heatmap(the_mask, util, list(prof.meta.moe_layers), heatmap)
        click.echo(f"heat-map -> {heatmap}")
    if compare:
        other = load_mask(compare)
        overlap_by_layer = jaccard(the_mask, other)
        click.echo("jaccard vs " + str(compare) + ": " + " ".join(f"{b}:{j:.3f}" for b, j in overlap_by_layer.items()))
        if overlap:
            plot_overlap(the_mask, other, overlap, (mask_path.stem, compare.stem))
            click.echo(f"overlap figure -> {overlap}")


@cli.command("prune")
@click.option("--mask", "mask_path", required=True, type=click.Path(path_type=Path), help="mask.json from `coe mask`.")
@click.option("--in", "parent", required=True, type=click.Path(path_type=Path), help="Parent: a .gguf file or an HF directory.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Specialist: .gguf file or directory.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="GGUF: refuse NaN/Inf in every sliced tensor (byte checks always run).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def prune_cmd(mask_path, parent, out, verify, quiet) -> None:
    """Remove the experts a mask drops from a GGUF file or an HF checkpoint."""
    from coe.mask import load_mask
    from coe.surgery import prune

    result = prune(parent, load_mask(mask_path), out, verify=verify, progress=not quiet)
    ratio = result.out_bytes / result.parent_bytes
    click.echo(f"{result.sliced} per-expert tensors sliced, {result.tensors} tensors in all; "
               f"{result.parent_bytes:,} -> {result.out_bytes:,} bytes ({ratio:.1%}) -> {out}")  # fmt: skip


@cli.command("export-gguf")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--type", "out_type", default="f32", show_default=True, type=click.Choice(["f32", "f16", "q8_0"]))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def export_gguf_cmd(model_dir, out, out_type, quiet) -> None:
    """Write an HF MoE checkpoint as a GGUF that llama.cpp and Ollama load."""
    from coe.export import export_gguf

    result = export_gguf(model_dir, out, out_type, progress=not quiet)
    types = ", ".join(f"{n} {name}" for name, n in sorted(result.types.items()))
    click.echo(f"{result.tensors} tensors ({types}), {result.nbytes:,} bytes -> {out}")


@cli.command("verify")
@click.argument("specialist", type=click.Path(path_type=Path))
@click.option("--parent", required=True, type=click.Path(path_type=Path), help="The parent GGUF the specialist was cut from.")
@click.option("--mask", "mask_path", required=True, type=click.Path(path_type=Path), help="The mask it was cut with.")
@click.option("--prompt", "prompts", multiple=True, help="Prompt for the logit check; repeatable.")
@click.option("--prompts-file", type=click.Path(path_type=Path), help="Text file, one prompt per non-empty line.")
@click.option("--held-out", type=click.Path(path_type=Path), help="Text for next-token agreement.")
@click.option("--min-agreement", default=0.0, show_default=True, help="Fail below this next-token agreement (0-1).")
@click.option("--max-length", default=256, show_default=True, help="Tokens per sequence, BOS included.")
def verify_cmd(specialist, parent, mask_path, prompts, prompts_file, held_out, min_agreement, max_length) -> None:
    """Prove a GGUF specialist in llama.cpp: expert count, logits equal to the parent's, agreement."""
    from coe.llamacpp.verify import verify_specialist
    from coe.mask import load_mask

    prompts = list(prompts)
    if prompts_file:
        prompts += [line for line in _read_text(prompts_file).splitlines() if line.strip()]
    if not prompts:
        raise click.UsageError("give --prompt or --prompts-file")
    held = [_read_text(held_out)] if held_out else []
    report = verify_specialist(specialist, parent, load_mask(mask_path), prompts, held, max_length, min_agreement)
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        raise SystemExit(1)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}") from None


@cli.group(cls=_CoeGroup)
def corpus() -> None:
    """Build corpora from files, JSONL, local HF datasets, HumanEval and MMLU-Pro-style sets."""


@corpus.command("build")
@click.argument("spec_path", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option("--tokenizer", type=click.Path(path_type=Path), help="HF model/tokenizer dir: chat template and token counts.")
def corpus_build(spec_path, out, tokenizer) -> None:
    """Build a corpus from a YAML spec (sources, format, count, heldout, seed, budget_tokens)."""
    import yaml

    from coe.corpus.build import build_corpus, format_stats
    from coe.errors import FormatError

    if not spec_path.is_file():
        raise FormatError(f"corpus spec {spec_path} does not exist")
    spec = yaml.safe_load(spec_path.read_text())
    tok = None
    if tokenizer:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer)
    click.echo(format_stats(build_corpus(spec, out, tok, str(tokenizer or ""))))


@corpus.command("stats")
@click.argument("corpus_dir", type=click.Path(path_type=Path))
def corpus_stats(corpus_dir) -> None:
    """Print a built corpus's manifest: documents and tokens per source and split."""
    import json

    from coe.corpus.build import format_stats
    from coe.errors import FormatError

    path = corpus_dir / "manifest.json"
    if not path.is_file():
        raise FormatError(f"{corpus_dir} has no manifest.json; build it with `coe corpus build`")
    click.echo(format_stats(json.loads(path.read_text())))


@cli.group("eval", cls=_CoeGroup)
def eval_group() -> None:
    """Evaluate specialists: code benchmarks graded in a sandbox."""


@eval_group.command("code")
@click.option("--problems", "source", required=True, help="LiveCodeBench or coe JSONL path, or: humaneval.")
@click.option("--solutions", required=True, type=click.Path(path_type=Path), help='JSONL of {"id", "output"}.')
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Where to write report.json.")
@click.option("--difficulty", multiple=True, help="Keep only these difficulties; repeatable.")
@click.option("--platform", multiple=True, help="Keep only these platforms; repeatable.")
@click.option("--start", help="Contest date window start (YYYY-MM-DD).")
@click.option("--end", help="Contest date window end (YYYY-MM-DD).")
@click.option("--k", default=1, show_default=True, help="pass@k.")
@click.option("--timeout", default=6.0, show_default=True, help="CPU seconds per test.")
@click.option("--workers", default=0, help="Parallel sandboxes (default: CPU count).")
@click.option("--strict", is_flag=True, help="LiveCodeBench's line comparison for stdin problems.")
def eval_code(source, solutions, out, difficulty, platform, start, end, k, timeout, workers, strict) -> None:
    """Grade given solutions with no model at all."""
    import json
    import os

    from coe.codebench.grade import grade_all, report
    from coe.codebench.problems import filter_problems, load_problems
    from coe.codebench.sandbox import Limits, Sandbox
    from coe.errors import FormatError
    from coe.io import write_bytes_atomic

    problems = filter_problems(load_problems(source), list(difficulty), list(platform), start, end)
    if not solutions.is_file():
        raise FormatError(f"solutions file {solutions} does not exist")
    try:
        answers = [json.loads(line) for line in solutions.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise FormatError(f"{solutions}: every line must be a JSON object {{id, output}} ({exc})") from exc
    with Sandbox(Limits(timeout_s=timeout)) as sandbox:
        results = grade_all(problems, answers, sandbox, workers or os.cpu_count() or 1, strict)
    window = {"difficulty": list(difficulty), "platform": list(platform), "start": start, "end": end}
    data = report(problems, results, k, window) | {"isolation": "namespaces" if sandbox.isolated else "rlimits only"}
    write_bytes_atomic(out, (json.dumps(data, indent=1) + "\n").encode())
    click.echo(f"pass@{k} {data[f'pass@{k}']:.3f} on {len(problems)} problems (window {window}) -> {out}")


@eval_group.command("generate")
@click.option("--problems", "source", required=True, help="LiveCodeBench or coe JSONL path, or: humaneval.")
@click.option("--backend", required=True, type=click.Choice(["transformers", "ollama", "openai", "llamacpp", "llamacpp-local"]))
@click.option("--model", default="", help="Model name on the server; the HF dir (transformers); the .gguf (llamacpp-local).")
@click.option("--url", default="", help="Server URL (ollama, openai, llamacpp).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="generations.jsonl (appended; resumes).")
@click.option("--tokenizer", help="HF dir whose chat template renders prompts (llamacpp, prefills).")
@click.option("--system", default=None, help="System prompt.")
@click.option("--prefill", default=None, help='Assistant prefill; "seed" for the seed\'s "<think></think>\\n".')
@click.option("--temperature", default=0.6, show_default=True)
@click.option("--max-new-tokens", default=16384, show_default=True)
@click.option("--num-ctx", default=8192, show_default=True)
@click.option("--samples", default=1, show_default=True, help="Outputs per problem (pass@k).")
@click.option("--workers", default=4, show_default=True, help="Concurrent requests.")
@click.option("--difficulty", multiple=True, help="Keep only these difficulties; repeatable.")
def eval_generate(source, backend, model, url, out, tokenizer, system, prefill, temperature, max_new_tokens, num_ctx,
                  samples, workers, difficulty) -> None:  # fmt: skip
    """Generate answers with thinking off; grade them with `coe eval code --solutions OUT`."""
    from coe.backends import GenerationSettings, make_backend
    from coe.backends.base import SEED_PREFILL
    from coe.codebench.generate import generate_all
    from coe.codebench.problems import filter_problems, load_problems

    problems = filter_problems(load_problems(source), list(difficulty))
    settings = GenerationSettings(model=model, url=url, tokenizer=tokenizer, system=system, temperature=temperature,
                                  prefill=SEED_PREFILL if prefill == "seed" else prefill,
                                  max_new_tokens=max_new_tokens, num_ctx=num_ctx)  # fmt: skip
    engine = make_backend(backend, settings)
    try:
        records = generate_all(problems, engine, settings, out, samples, workers)
    finally:
        engine.close()
    click.echo(f"{len(records)} generations for {len(problems)} problems -> {out}")


@eval_group.command("compare")
@click.argument("report_a", type=click.Path(path_type=Path))
@click.argument("report_b", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Write the comparison as JSON.")
def eval_compare(report_a, report_b, out) -> None:
    """Paired comparison of two reports (e.g. specialist vs parent) on the same problems."""
    import json

    from coe.codebench.generate import compare_reports
    from coe.errors import FormatError

    for path in (report_a, report_b):
        if not path.is_file():
            raise FormatError(f"report {path} does not exist; write one with `coe eval code`")
    result = compare_reports(json.loads(report_a.read_text()), json.loads(report_b.read_text()))
    low, high = result["ci95"]
    click.echo(f"{result['n']} problems: pass@1 {result['pass@1_a']:.3f} vs {result['pass@1_b']:.3f}; "
               f"difference {result['difference']:+.3f} (95% CI {low:+.3f} .. {high:+.3f}); "
               f"solved only by A {result['only_a']}, only by B {result['only_b']}; McNemar p = {result['mcnemar_p']:.3g}")  # fmt: skip
    if out:
        out.write_text(json.dumps(result, indent=1))


@cli.command("modelfile")
@click.option("--gguf", required=True, type=click.Path(path_type=Path), help="The specialist GGUF.")
@click.option("--name", required=True, help="Name to register with Ollama.")
@click.option("--system", default="You are an expert programmer. Answer with correct, idiomatic code.", show_default=True)
@click.option("--out", default="Modelfile", show_default=True, type=click.Path(path_type=Path))
def modelfile_cmd(gguf, name, system, out) -> None:
    """Write an Ollama Modelfile with the seed's settings, and print the `ollama create` line."""
    from coe.eval.ollama import modelfile

    out.write_text(modelfile(gguf, system))
    click.echo(f"ollama create {name} -f {out}")


@cli.group(cls=_CoeGroup)
def demo() -> None:
    """Build the small offline models and corpora that need no download."""


@demo.command("tiny-model")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--layers", default=3, show_default=True)
@click.option("--experts", default=8, show_default=True)
@click.option("--top-k", default=2, show_default=True)
@click.option("--seed", default=0, show_default=True)
def demo_tiny_model(out, layers, experts, top_k, seed) -> None:
    """A random tiny Gemma 4 MoE with a byte-level BPE tokenizer."""
    from coe.demo.tiny import TinySpec, build_tiny_model, stdlib_corpus

    spec = TinySpec(num_layers=layers, num_experts=experts, top_k=top_k, seed=seed)
    build_tiny_model(out, spec, stdlib_corpus())
    click.echo(f"tiny Gemma 4 MoE ({layers} layers, {experts} experts, top-{top_k}) -> {out}")


@demo.command("stdlib-corpus")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--files", default=40, show_default=True, help="How many standard-library modules.")
def demo_stdlib_corpus(out, files) -> None:
    """A coding corpus (JSONL) from Python's standard library sources."""
    import json

    from coe.demo.tiny import stdlib_corpus
    from coe.io import write_bytes_atomic

    lines = [json.dumps({"text": text}) for text in stdlib_corpus(max_files=files)]
    write_bytes_atomic(out, ("\n".join(lines) + "\n").encode())
    click.echo(f"{len(lines)} documents -> {out}")


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
