"""The surgery stage: remove the experts a mask drops, from GGUF files and HF checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

from coe.errors import FormatError
from coe.gguf_file import is_gguf
from coe.mask.artifact import ExpertMask
from coe.surgery.gguf_slice import PROVENANCE_KEYS, SurgeryResult, prune_gguf

__all__ = ["PROVENANCE_KEYS", "SurgeryResult", "prune", "prune_gguf"]


def prune(
    parent: str | os.PathLike[str], mask: ExpertMask, out: str | os.PathLike[str], verify: bool = True, progress: bool = True
) -> SurgeryResult:
    """Prune a GGUF file or an HF directory, chosen by what ``parent`` is.

    The HF path imports torch; the GGUF path does not (it stays light in memory).
    """
    parent = Path(parent)
    if parent.is_dir():
        from coe.surgery.hf_prune import prune_hf

        return prune_hf(parent, mask, out, progress=progress)
    if is_gguf(parent):
        return prune_gguf(parent, mask, out, verify=verify, progress=progress)
    if not parent.exists():
        raise FormatError(f"parent {parent} does not exist")
    raise FormatError(f"{parent} is neither a GGUF file nor a Hugging Face model directory")
