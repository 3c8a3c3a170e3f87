"""`dvc repro` on a clean clone reproduces coe.run's mask byte for byte, then reports up to date (slow)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coe.pipeline import repo_root

from test_pipeline import TINY

pytestmark = pytest.mark.slow


def _sh(args: list[str], cwd: Path, env: dict) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_dvc_repro_matches_coe_run(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo_root()), str(clone)], check=True)
    # dvc.yaml's commands call `python`: the environment's, as with an activated virtualenv
    path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "PYTHONPATH": str(clone / "src"), "COE_CACHE_DIR": str(tmp_path / "cache")}
    python = sys.executable
    _sh([python, "-m", "coe.stage", "params", *TINY, "tracking.enabled=false"], clone, env)
    _sh([python, "-m", "dvc", "repro"], clone, env)
    assert "up to date" in _sh([python, "-m", "dvc", "repro"], clone, env)

    _sh([python, "-m", "coe.run", *TINY, "tracking.enabled=false"], clone, env)
    cached = list((clone / "data" / "cache" / "mask").glob("*/mask.json"))
    assert len(cached) == 1
    assert (clone / "data" / "dvc" / "mask" / "mask.json").read_bytes() == cached[0].read_bytes()
    assert (clone / "data" / "dvc" / "evaluate" / "metrics.json").is_file()
