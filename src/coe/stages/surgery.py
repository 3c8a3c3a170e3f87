"""Surgery stage: the specialist, as an HF directory (``hf/``) and, with ``model.gguf``, ``specialist.gguf``."""

from __future__ import annotations

from pathlib import Path

from coe.io import cached_sha256
from coe.mask import load_mask
from coe.stages.store import Artifact
from coe.surgery import prune

__all__ = ["params", "run"]


def params(gguf: Path | None) -> dict:
    return {"gguf": cached_sha256(gguf) if gguf else None}


def run(store, cfg: dict, parent: Artifact, mask: Artifact, gguf: Path | None = None, progress: bool = True) -> Artifact:
    """Prune the parent (and its GGUF, if the run has one: :func:`coe.stages.parent.gguf`) with the stage's mask."""

    def build(out: Path) -> None:
        the_mask = load_mask(mask.path / "mask.json")
        prune(parent.path, the_mask, out / "hf", progress=progress)
        if gguf:
            prune(gguf, the_mask, out / "specialist.gguf", progress=progress)

    return store.build("surgery", params(gguf), [parent, mask], build)
