"""The mask-stability curve: increments at every doubling, Jaccard against the previous mask, early stop."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from coe.mask import MaskSettings, build_mask
from coe.profile import load_profile
from coe.profile.runner import ProfileSettings, load_model, profile_model
from coe.profile.stability import StabilityTracker

from profiles import make_profile


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_model(tiny_model_dir, ProfileSettings())


def test_curve_points_by_hand():
    tracker = StabilityTracker(MaskSettings(keep=2, whitelist_min_count=10**9), start_tokens=4, threshold=0.9)
    first = make_profile([[5], [3], [1], [0]], [[5], [3], [1], [0]], n_tokens=9)  # keeps 0, 1
    second = make_profile([[5], [3], [6], [0]], [[5], [3], [6], [0]], n_tokens=14)  # keeps 0, 2
    a, b = tracker.record(first), tracker.record(second)
    assert a.jaccard == [] and b.jaccard == [pytest.approx(1 / 3)]
    assert a.coverage == pytest.approx(8 / 9) and b.coverage == pytest.approx(11 / 14)
    p = np.array([5, 3, 1]) / 9
    assert a.entropy == [pytest.approx(float(-(p * np.log(p)).sum() / np.log(4)))]
    assert tracker.converged_at() is None
    tracker.record(make_profile([[9], [3], [7], [0]], [[9], [3], [7], [0]], n_tokens=19))  # keeps 0, 2 again
    assert tracker.converged_at() is None  # one stable increment is not enough (patience 2)
    tracker.record(make_profile([[9], [3], [8], [0]], [[9], [3], [8], [0]], n_tokens=20))
    assert tracker.converged_at() == 19
    tracker.record(make_profile([[9], [13], [8], [0]], [[9], [13], [8], [0]], n_tokens=40))  # keeps 0, 1: unstable
    assert tracker.converged_at() is None


def test_checkpoints_at_every_doubling_and_early_stop(loaded, corpus_file):
    settings = ProfileSettings(batch_size=2, max_length=64)
    full = profile_model(loaded, [corpus_file], settings, progress=False)
    tracker = StabilityTracker(MaskSettings(keep=4, whitelist_min_count=10**9), start_tokens=128)
    profile_model(loaded, [corpus_file], settings, progress=False, checkpoint=tracker)
    tokens = [p.tokens for p in tracker.points]
    assert tokens[0] >= 128 and all(b >= 2 * 128 * 2**i for i, b in enumerate(tokens[1:]))
    # the last increment's mask is the mask of the profile at that point
    stopper = StabilityTracker(MaskSettings(keep=4, whitelist_min_count=10**9), start_tokens=128, threshold=0.0, stop=True)
    early = profile_model(loaded, [corpus_file], settings, progress=False, checkpoint=stopper)
    assert early.n_tokens == stopper.points[-1].tokens < full.n_tokens
    assert len(stopper.points) == 3  # increments 2 and 3 have a Jaccard >= 0.0: patience 2 is reached


def test_cli_records_curve_in_metadata(tiny_model_dir, corpus_file, tmp_path):
    out = tmp_path / "p.safetensors"
    args = ["profile", "--model", str(tiny_model_dir), "--corpus", str(corpus_file), "--out", str(out), "--quiet",
            "--max-length", "64", "--keep", "4", "--start-tokens", "256", "--curve-plot", str(tmp_path / "c.png")]  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "coe.cli", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    curve = json.loads(load_profile(out).meta.stability)
    assert curve["keep"] == 4 and curve["points"][0]["tokens"] >= 256
    assert curve["points"][-1]["tokens"] == load_profile(out).n_tokens
    final_mask = build_mask([load_profile(out)], MaskSettings(keep=4, arbitrage_cap=0))
    assert final_mask.keep == 4 and (tmp_path / "c.png").stat().st_size > 1000
    assert "mask stable" in result.stdout or "not yet stable" in result.stdout
