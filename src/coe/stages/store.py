"""Where stage outputs live, and when they can be reused.

Two stores with one interface:

* :class:`ContentStore` (``coe.run``, ``coe.tune``): a stage's output goes to
  ``<cache>/<stage>/<key>``, where the key hashes the stage's config section and
  its upstream artifacts' digests; an existing complete output is reused.
* :class:`FixedStore` (DVC stages): outputs go to fixed paths that ``dvc.yaml``
  declares, and every call rebuilds (DVC decides what runs).

A stage writes into a temporary directory that is renamed into place only when
the stage finishes, so a crash never leaves an output that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Artifact", "ContentStore", "FixedStore", "digest_dir", "hash_json", "CACHE_VERSION"]

CACHE_VERSION = 2  # bump when a stage's outputs change meaning, to invalidate old caches
_DONE = ".coe-done.json"


@dataclass(frozen=True)
class Artifact:
    """A stage's output directory, the digest downstream stages key on, and whether it was reused."""

    stage: str
    path: Path
    digest: str
    reused: bool


def hash_json(payload: Any) -> str:
    """sha256 of a JSON-able value, keys sorted."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def digest_dir(path: Path) -> str:
    """sha256 over the names and bytes of every file under ``path`` (content, not timestamps)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != _DONE):
        digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def _build_into(final: Path, build: Callable[[Path], None], replace: bool = True) -> None:
    """Run ``build`` into a temporary directory beside ``final`` and rename it into place.

    With ``replace=False`` an output that another process completed meanwhile
    (two tuning workers building the same mask) is kept and ours discarded.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        build(tmp)
        if final.exists():
            if not replace and (final / _DONE).is_file():
                shutil.rmtree(tmp)
                return
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class ContentStore:
    """Content-addressed stage outputs under ``root``, reused when their inputs are unchanged."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def key(self, stage: str, params: Any, upstream: Sequence[Artifact]) -> str:
        """Hash of the stage name, its config, its upstream digests and the cache version."""
        return hash_json({"stage": stage, "params": params, "upstream": [a.digest for a in upstream], "v": CACHE_VERSION})

    def build(self, stage: str, params: Any, upstream: Sequence[Artifact], build: Callable[[Path], None]) -> Artifact:
        """Reuse ``<root>/<stage>/<key>`` if complete, else run ``build(tmpdir)`` and keep its output."""
        key = self.key(stage, params, upstream)
        final = self.root / stage / key[:16]
        marker = final / _DONE
        if marker.is_file():
            return Artifact(stage, final, json.loads(marker.read_text())["digest"], reused=True)

        def build_and_mark(tmp: Path) -> None:
            build(tmp)
            record = {"digest": digest_dir(tmp), "key": key, "params": params, "upstream": [a.digest for a in upstream]}
            (tmp / _DONE).write_text(json.dumps(record, indent=1, sort_keys=True, default=str))

        _build_into(final, build_and_mark, replace=False)
        return Artifact(stage, final, json.loads(marker.read_text())["digest"], reused=False)


class FixedStore:
    """Stage outputs at ``<root>/<stage>``, always rebuilt (DVC tracks and caches them)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def build(self, stage: str, params: Any, upstream: Sequence[Artifact], build: Callable[[Path], None]) -> Artifact:
        final = self.root / stage
        _build_into(final, build)
        return Artifact(stage, final, digest_dir(final), reused=False)

    def existing(self, stage: str) -> Artifact:
        """An upstream stage's output that DVC already produced."""
        final = self.root / stage
        if not final.is_dir():
            from coe.errors import ConfigError

            raise ConfigError(f"{final} is missing: run `dvc repro` so that the {stage} stage runs first")
        return Artifact(stage, final, digest_dir(final), reused=True)
