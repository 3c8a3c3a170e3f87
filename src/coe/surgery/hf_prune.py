"""Hugging Face surgery: slice per-expert tensors of a safetensors checkpoint, shard by shard.

Only one shard's tensors are in memory at a time. Every tensor is either
copied or sliced on purpose (the family adapter names the per-expert ones and
their expert axis), shapes are asserted, the weight index is rewritten, the
config's expert count is patched, and every other file (tokenizer, generation
config, chat template) is copied. The mask is stored as ``mask.json``. The
output directory is built beside the target and renamed into place at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from coe.errors import ConfigError, FormatError
from coe.families import MoEFamily, MoELayout, layout_from_hf_config
from coe.hf_checkpoint import tensor_nbytes, weight_shards
from coe.mask.artifact import ExpertMask, dumps_mask
from coe.profile.runner import read_hf_config
from coe.surgery.gguf_slice import SurgeryResult

__all__ = ["prune_hf"]

_INDEX = "model.safetensors.index.json"


def _expert_axes(family: MoEFamily, layout: MoELayout) -> dict[str, tuple[int, int]]:
    """Per-expert parameter name -> (block, expert axis), for every layers path the family knows."""
    return {
        f"{prefix}.{block}.{tensor.name}": (block, tensor.expert_axis)
        for prefix in family.layers_paths
        for block in layout.moe_layers
        for tensor in family.hf_expert_tensors
    }


def _patched_config(config: dict, family: MoEFamily, keep: int) -> dict:
    patched = json.loads(json.dumps(config))
    target = patched
    if family.text_config_key and isinstance(patched.get(family.text_config_key), dict):
        target = patched[family.text_config_key]
    target[family.num_experts_key] = keep
    return patched


def _slice_shard(shard: Path, out: Path, axes: dict[str, tuple[int, int]], mask: ExpertMask) -> tuple[int, int]:
    """Write one shard with per-expert tensors sliced. Returns (tensors, sliced)."""
    tensors: dict[str, torch.Tensor] = {}
    sliced = 0
    with safe_open(shard, framework="pt") as fh:
        metadata = fh.metadata()
        for name in fh.keys():
            tensor = fh.get_tensor(name)
            if name in axes:
                block, axis = axes[name]
                if tensor.shape[axis] != mask.num_experts:
                    raise FormatError(f"{name} has {tensor.shape[axis]} experts on axis {axis}, expected {mask.num_experts}")
                index = torch.tensor(mask.layers[block], dtype=torch.long)
                tensor = tensor.index_select(axis, index).contiguous()
                sliced += 1
            tensors[name] = tensor
    save_file(tensors, out / shard.name, metadata=metadata)
    return len(tensors), sliced


def prune_hf(parent: str | os.PathLike[str], mask: ExpertMask, out: str | os.PathLike[str], progress: bool = True) -> SurgeryResult:
    """Write ``out``: the parent HF checkpoint with only the mask's experts.

    Raises:
        FormatError: not an HF safetensors checkpoint, or tensors of unexpected shape.
        ConfigError: the mask does not fit the model, or ``out`` is the parent.
    """
    parent, out = Path(parent), Path(out)
    config = read_hf_config(parent)
    family, layout = layout_from_hf_config(config)
    mask.check_fits(layout, what=str(parent))
    if out.resolve() == parent.resolve():
        raise ConfigError("--out must differ from the parent directory")
    shards = weight_shards(parent)
    axes = _expert_axes(family, layout)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        n_tensors = n_sliced = 0
        for shard in tqdm(shards, desc="surgery", unit="shard", disable=not progress):
            count, sliced = _slice_shard(shard, tmp, axes, mask)
            n_tensors, n_sliced = n_tensors + count, n_sliced + sliced
        expected = len(layout.moe_layers) * len(family.hf_expert_tensors)
        if n_sliced != expected:
            raise FormatError(f"found {n_sliced} per-expert tensors, expected {expected}: is the checkpoint complete?")
        _copy_side_files(parent, tmp)
        (tmp / "config.json").write_text(json.dumps(_patched_config(config, family, mask.keep), indent=2) + "\n")
        (tmp / "mask.json").write_text(dumps_mask(mask))
        _rewrite_index(parent, tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = lambda d: sum(f.stat().st_size for f in d.glob("*.safetensors"))  # noqa: E731
    return SurgeryResult(out, size(parent), size(out), n_tensors, n_sliced, parent_sha256="")


def _copy_side_files(parent: Path, out: Path) -> None:
    """Copy tokenizer, generation config, chat template and every other non-weight file."""
    for item in parent.iterdir():
        if item.suffix == ".safetensors" or item.name in (_INDEX, "config.json", "mask.json"):
            continue
        if item.is_dir():
            shutil.copytree(item, out / item.name)
        else:
            shutil.copy2(item, out / item.name)


def _rewrite_index(parent: Path, out: Path) -> None:
    index_path = parent / _INDEX
    if not index_path.is_file():
        return
    index = json.loads(index_path.read_text())
    total = 0
    for shard in sorted(set(index["weight_map"].values())):
        with safe_open(out / shard, framework="pt") as fh:
            for name in fh.keys():
                view = fh.get_slice(name)
                total += tensor_nbytes(view.get_dtype(), view.get_shape())
    index.setdefault("metadata", {})["total_size"] = total
    (out / _INDEX).write_text(json.dumps(index, indent=2) + "\n")
