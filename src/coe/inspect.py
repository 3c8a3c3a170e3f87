"""``coe inspect``: the MoE layout of an HF model directory or a GGUF file.

Reads headers only (safetensors headers, GGUF tensor infos); never loads weights.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from safetensors import safe_open

from coe.errors import ConfigError, FormatError
from coe.families import MoEFamily, MoELayout, family_for_gguf_arch, layout_from_hf_config
from coe.gguf_file import architecture, is_gguf, moe_layout, open_gguf
from coe.hf_checkpoint import tensor_nbytes
from coe.profile.runner import read_hf_config

__all__ = ["ExpertTensorInfo", "ModelLayout", "inspect_path", "format_layout"]

_BLOCK = re.compile(r"\.(\d+)\.")


@dataclass(frozen=True)
class ExpertTensorInfo:
    """One per-expert tensor of one MoE block."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    num_experts: int

    @property
    def bytes_per_expert(self) -> int:
        """Bytes of one expert's slice (whole experts are contiguous along the expert axis)."""
        return self.nbytes // self.num_experts

    @property
    def pattern(self) -> str:
        """Name with the block index replaced by ``{bid}``."""
        return _BLOCK.sub(".{bid}.", self.name, count=1)


@dataclass
class ModelLayout:
    """What ``coe inspect`` reports."""

    path: str
    kind: str  # "hf" or "gguf"
    family: MoEFamily
    layout: MoELayout
    file_size: int
    expert_tensors: list[ExpertTensorInfo] = field(default_factory=list)

    def expert_bytes(self) -> int:
        """Bytes of all per-expert tensors together."""
        return sum(t.nbytes for t in self.expert_tensors)

    def size_at_keep(self, keep: int) -> int:
        """File size with ``keep`` experts per MoE layer (headers and alignment aside)."""
        if not self.layout.top_k <= keep <= self.layout.num_experts:
            raise ConfigError(
                f"--keep must be between top_k={self.layout.top_k} and num_experts={self.layout.num_experts}, got {keep}"
            )
        removed = self.layout.num_experts - keep
        return self.file_size - sum(t.bytes_per_expert * removed for t in self.expert_tensors)


def inspect_path(path: str | os.PathLike[str]) -> ModelLayout:
    """Inspect an HF model directory or a GGUF file.

    Raises:
        FormatError: neither a model directory nor a GGUF file, or a corrupt one.
        ConfigError: an architecture no family adapter knows.
    """
    path = Path(path)
    if path.is_dir():
        return _inspect_hf(path)
    if is_gguf(path):
        return _inspect_gguf(path)
    raise FormatError(f"{path} is neither a Hugging Face model directory nor a GGUF file")


def _inspect_hf(model_dir: Path) -> ModelLayout:
    family, layout = layout_from_hf_config(read_hf_config(model_dir))
    weight_files = sorted(model_dir.glob("*.safetensors"))
    if not weight_files:
        raise FormatError(f"{model_dir} has no *.safetensors weights")
    wanted = {name: block for block, name in _hf_expert_names(family, layout)}
    tensors = []
    for weights in weight_files:
        with safe_open(weights, framework="pt") as fh:
            for name in fh.keys():
                if name in wanted:
                    view = fh.get_slice(name)
                    shape = tuple(view.get_shape())
                    nbytes = tensor_nbytes(view.get_dtype(), shape)
                    tensors.append(ExpertTensorInfo(name, view.get_dtype(), shape, nbytes, layout.num_experts))
    size = sum(f.stat().st_size for f in weight_files)
    return ModelLayout(str(model_dir), "hf", family, layout, size, sorted(tensors, key=lambda t: t.name))


def _hf_expert_names(family: MoEFamily, layout: MoELayout) -> Iterator[tuple[int, str]]:
    for prefix in family.layers_paths:
        for block in layout.moe_layers:
            for tensor in family.hf_expert_tensors:
                yield block, f"{prefix}.{block}.{tensor.name}"


def _inspect_gguf(path: Path) -> ModelLayout:
    reader = open_gguf(path)
    family = family_for_gguf_arch(architecture(reader))
    layout, expert_names = moe_layout(reader, family)
    tensors = [
        ExpertTensorInfo(t.name, t.tensor_type.name, tuple(int(d) for d in t.shape), int(t.n_bytes), layout.num_experts)
        for t in reader.tensors
        if t.name in expert_names
    ]
    return ModelLayout(str(path), "gguf", family, layout, path.stat().st_size, tensors)


def format_layout(info: ModelLayout, keep: int | None = None) -> str:
    """Human-readable report of a model's MoE layout."""
    lay = info.layout
    lines = [
        f"{info.path} ({info.kind}, family {info.family.name})",
        f"  MoE layers   : {len(lay.moe_layers)} (blocks {_ranges(lay.moe_layers)})",
        f"  experts/layer: {lay.num_experts}, top-k {lay.top_k}",
        f"  router       : {info.family.router.describe()}",
        "  per-expert tensors (per MoE layer):",
    ]
    seen: dict[str, list[ExpertTensorInfo]] = {}
    for t in info.expert_tensors:
        seen.setdefault(t.pattern, []).append(t)
    for pattern, group in seen.items():
        t = group[0]
        lines.append(
            f"    {pattern:<48} {t.dtype:<8} {str(list(t.shape)):<18} {_human(t.bytes_per_expert):>10}/expert  x{len(group)} layers"
        )
    lines.append(f"  file size    : {_human(info.file_size)} (experts {_human(info.expert_bytes())})")
    if keep is not None:
        lines.append(f"  at --keep {keep:<3}: {_human(info.size_at_keep(keep))}")
    return "\n".join(lines)


def _ranges(blocks: tuple[int, ...]) -> str:
    if blocks and list(blocks) == list(range(blocks[0], blocks[-1] + 1)):
        return f"{blocks[0]}-{blocks[-1]}"
    return ",".join(map(str, blocks))


def _human(n: float) -> str:
    if abs(n) < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if abs(n) < 1024 or unit == "GiB":
            break
    return f"{n:.2f} {unit}"
