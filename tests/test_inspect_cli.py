"""``coe inspect`` on HF directories and GGUF files, and the CLI's error contract."""

from __future__ import annotations

import subprocess
import sys

import pytest
from gguf.constants import GGMLQuantizationType as Q

from coe.demo.synthetic_gguf import GGUFSpec, write_gemma4_gguf
from coe.errors import ConfigError, FormatError
from coe.inspect import inspect_path
from coe.profile import load_profile


def coe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coe.cli", *args], capture_output=True, text=True, timeout=120)


def test_inspect_hf_bytes_per_expert(tiny_model_dir, tiny_spec):
    info = inspect_path(tiny_model_dir)
    H, F, E, L = tiny_spec.hidden_size, tiny_spec.moe_intermediate_size, tiny_spec.num_experts, tiny_spec.num_layers
    per_expert = {t.pattern: t.bytes_per_expert for t in info.expert_tensors}
    assert per_expert == {
        "model.layers.{bid}.experts.down_proj": H * F * 4,
        "model.layers.{bid}.experts.gate_up_proj": 2 * F * H * 4,
        "model.layers.{bid}.router.per_expert_scale": 4,
        "model.layers.{bid}.router.proj.weight": H * 4,
    }
    assert len(info.expert_tensors) == 4 * L
    removed_per_expert = L * (H * F * 4 + 2 * F * H * 4 + 4 + H * 4)
    assert info.size_at_keep(4) == info.file_size - (E - 4) * removed_per_expert
    with pytest.raises(ConfigError, match="between top_k=2 and num_experts=8"):
        info.size_at_keep(1)


@pytest.mark.parametrize("fused", [True, False])
def test_inspect_gguf_quantised_layout(tmp_path, fused):
    spec = GGUFSpec(blocks=3, experts=8, top_k=2, hidden=64, expert_ff=32, expert_type=Q.Q8_0, fused_gate_up=fused)
    path = tmp_path / "m.gguf"
    write_gemma4_gguf(path, spec)
    info = inspect_path(path)
    assert info.kind == "gguf" and info.family.name == "gemma4"
    assert (info.layout.moe_layers, info.layout.num_experts, info.layout.top_k) == ((0, 1, 2), 8, 2)
    q8_row = 64 // 32 * 34  # Q8_0: 34 bytes per 32 values
    by_pattern = {t.pattern: (t.dtype, t.bytes_per_expert) for t in info.expert_tensors}
    expected = {
        "blk.{bid}.ffn_gate_inp.weight": ("F32", 64 * 4),
        "blk.{bid}.ffn_down_exps.weight": ("Q8_0", 64 * (32 // 32 * 34)),
        "blk.{bid}.ffn_down_exps.scale": ("F32", 4),
    }
    if fused:
        expected["blk.{bid}.ffn_gate_up_exps.weight"] = ("Q8_0", 2 * 32 * q8_row)
    else:
        expected["blk.{bid}.ffn_gate_exps.weight"] = ("Q8_0", 32 * q8_row)
        expected["blk.{bid}.ffn_up_exps.weight"] = ("Q8_0", 32 * q8_row)
    assert by_pattern == expected


def test_inspect_refuses_non_models(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a model")
    with pytest.raises(FormatError, match="neither"):
        inspect_path(junk)
    truncated = tmp_path / "cut.gguf"
    write_gemma4_gguf(tmp_path / "full.gguf", GGUFSpec())
    truncated.write_bytes((tmp_path / "full.gguf").read_bytes()[:300])
    with pytest.raises(FormatError, match="truncated or corrupt"):
        inspect_path(truncated)


def test_cli_user_error_has_no_traceback(tmp_path):
    result = coe("inspect", str(tmp_path / "missing.gguf"))
    assert result.returncode == 1
    assert "Error:" in result.stderr and "Traceback" not in result.stderr


def test_cli_profile_merge_and_inspect(tiny_model_dir, corpus_file, tmp_path):
    out = tmp_path / "p.safetensors"
    args = ["profile", "--model", str(tiny_model_dir), "--corpus", str(corpus_file), "--out", str(out)]
    result = coe(*args, "--max-length", "64", "--batch-size", "4", "--quiet")
    assert result.returncode == 0, result.stderr
    single = load_profile(out)
    assert coe("profile", "merge", str(out), str(out), "--out", str(tmp_path / "m.safetensors")).returncode == 0
    merged = load_profile(tmp_path / "m.safetensors")
    assert merged.n_tokens == 2 * single.n_tokens
    assert (merged.counts == 2 * single.counts).all()
    shown = coe("inspect", str(out))
    assert shown.returncode == 0 and f"tokens {single.n_tokens}" in shown.stdout
    layout = coe("inspect", str(tiny_model_dir), "--keep", "4")
    assert "experts/layer: 8, top-k 2" in layout.stdout and "at --keep 4" in layout.stdout


def test_cli_profile_reports_missing_arguments():
    result = coe("profile", "--out", "x.safetensors")
    assert result.returncode == 2 and "missing --model, --corpus" in result.stderr
