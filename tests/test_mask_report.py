"""Mask reports, figures and the ``coe mask`` CLI, checked against recomputation from the files."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from coe.errors import ConfigError
from coe.mask import MaskSettings, build_mask, load_mask, save_mask
from coe.mask.report import format_report, jaccard, mask_report, plot_heatmap, plot_overlap
from coe.profile import load_profile, save_profile

from profiles import make_profile


def coe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coe.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def random_profiles(tmp_path):
    rng = np.random.default_rng(7)
    paths = []
    for name in ("domain", "cot"):
        counts = rng.integers(0, 40, size=(4, 16, 4))
        path = tmp_path / f"{name}.safetensors"
        save_profile(make_profile(counts, counts * rng.random((4, 16, 4)), n_tokens=int(counts.sum()) // 4), path)
        paths.append(path)
    return paths


def test_coverage_by_hand():
    profile = make_profile([[2], [1], [1], [0]], [[0.5], [0.3], [0.2], [0.0]], n_tokens=4)
    mask = build_mask([profile], MaskSettings(keep=2, whitelist_min_count=10**9))
    report = mask_report(mask, profile)
    assert report.layers[0].coverage == pytest.approx(0.8)  # e0 + e1 carry 0.8 of 1.0
    assert report.coverage == pytest.approx(0.8)


def test_cli_mask_and_report_agree_with_recomputation(random_profiles, tmp_path):
    domain_path, cot_path = random_profiles
    out = tmp_path / "mask.json"
    built = coe("mask", "--profile", str(domain_path), "--cot-profile", str(cot_path), "--keep", "6", "--out", str(out))
    assert built.returncode == 0, built.stderr
    data = json.loads(out.read_text())
    profile = load_profile(domain_path)
    assert data["sources"]["profile_sha256"] and data["sources"]["cot_profile_sha256"]

    shown = coe("mask", "report", str(out), "--profile", str(domain_path), "--heatmap", str(tmp_path / "h.png"))
    assert shown.returncode == 0, shown.stderr
    mass = profile.weight_sum.sum(axis=2)
    kept = sum(mass[int(b), ids].sum() for b, ids in data["layers"].items())
    assert f"coverage: {kept / mass.sum():.4f}" in shown.stdout
    white = sum(s["pass"] == "whitelist" for s in data["swaps"])
    arb = sum(s["pass"] == "arbitrage" for s in data["swaps"])
    assert f"swaps: {white} whitelist, {arb} arbitrage" in shown.stdout
    for block, ids in data["layers"].items():
        row = re.search(rf"^\s+{block}\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)$", shown.stdout, re.M)
        assert int(row[1]) == len(ids)
        assert float(row[4]) == pytest.approx(mass[int(block), ids].sum() / mass[int(block)].sum(), abs=1e-4)
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_overlap_figure_and_jaccard(random_profiles, tmp_path):
    profile = load_profile(random_profiles[0])
    a = build_mask([profile], MaskSettings(keep=8, arbitrage_cap=0))
    b = build_mask([profile], MaskSettings(keep=8, scorer="random", seed=3, whitelist_min_count=10**9))
    overlap = jaccard(a, b)
    for block in a.layers:
        inter = len(set(a.layers[block]) & set(b.layers[block]))
        assert overlap[block] == pytest.approx(inter / (16 - inter))  # |A| = |B| = 8 of 16
    save_mask(a, tmp_path / "a.json")
    save_mask(b, tmp_path / "b.json")
    shown = coe("mask", "report", str(tmp_path / "a.json"), "--compare", str(tmp_path / "b.json"),
                "--overlap", str(tmp_path / "o.png"))  # fmt: skip
    assert shown.returncode == 0 and (tmp_path / "o.png").stat().st_size > 1000
    plot_heatmap(a, np.ones((4, 16)), [0, 1, 2, 3], tmp_path / "direct.png")
    plot_overlap(a, b, tmp_path / "direct-o.png")
    assert load_mask(tmp_path / "a.json").layers == a.layers


def test_report_refuses_a_mask_of_another_model(random_profiles):
    profile = load_profile(random_profiles[0])
    small = make_profile(np.ones((1, 8, 2)), np.ones((1, 8, 2)), n_tokens=4)
    mask = build_mask([small], MaskSettings(keep=4))
    with pytest.raises(ConfigError, match="does not fit the profile"):
        mask_report(mask, profile)
    assert "coverage" not in format_report(mask_report(mask), mask).splitlines()[-1]


def test_cli_mask_errors_are_clean(random_profiles, tmp_path):
    result = coe("mask", "--profile", str(random_profiles[0]), "--keep", "2", "--out", str(tmp_path / "m.json"))
    assert result.returncode == 1 and "below the model's top_k=4" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m.json").exists()
