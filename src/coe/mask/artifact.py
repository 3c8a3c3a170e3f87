"""The ExpertMask artifact (``mask.json``, format ``coe.mask/1``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from coe.errors import ConfigError, FormatError
from coe.families import MoELayout
from coe.io import write_bytes_atomic

__all__ = ["FORMAT", "Swap", "ExpertMask", "save_mask", "load_mask", "dumps_mask"]

FORMAT = "coe.mask/1"


@dataclass(frozen=True)
class Swap:
    """One expert forced or traded into a layer's mask, and the numbers why."""

    layer: int
    pass_: str  # "whitelist" or "arbitrage"
    added: int
    removed: int
    why: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "pass": self.pass_, "added": self.added, "removed": self.removed, "why": self.why}


@dataclass
class ExpertMask:
    """Which experts each MoE layer keeps (block index -> sorted expert ids)."""

    num_experts: int
    keep: int
    layers: dict[int, list[int]]
    swaps: list[Swap] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for block, kept in self.layers.items():
            if len(kept) != self.keep or len(set(kept)) != self.keep or sorted(kept) != list(kept):
                raise FormatError(f"mask layer {block} must list {self.keep} unique sorted expert ids, found {kept}")
            if kept and not (0 <= kept[0] and kept[-1] < self.num_experts):
                raise FormatError(f"mask layer {block} has expert ids outside 0..{self.num_experts - 1}")

    def check_fits(self, layout: MoELayout, what: str = "the model") -> None:
        """Raise ConfigError unless this mask fits a model of ``layout``."""
        if self.num_experts != layout.num_experts:
            raise ConfigError(f"the mask is for {self.num_experts} experts per layer; {what} has {layout.num_experts}")
        if sorted(self.layers) != sorted(layout.moe_layers):
            raise ConfigError(
                f"the mask covers MoE blocks {sorted(self.layers)}; {what} has MoE blocks {list(layout.moe_layers)}"
            )
        if self.keep < layout.top_k:
            raise ConfigError(f"the mask keeps {self.keep} experts, fewer than {what}'s top-k {layout.top_k}")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
            "num_experts": self.num_experts,
            "keep": self.keep,
            "layers": {str(b): list(map(int, kept)) for b, kept in sorted(self.layers.items())},
            "swaps": [s.to_json() for s in self.swaps],
            "params": self.params,
            "sources": self.sources,
        }
        if self.notes:
            out["notes"] = self.notes
        return out


def dumps_mask(mask: ExpertMask) -> str:
    """Canonical JSON text: fixed key order, one line per layer; same mask, same bytes."""
    data = mask.to_json()
    lines = ["{"]
    items = list(data.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if key == "layers":
            rows = [f"    {json.dumps(b)}: {json.dumps(kept)}" for b, kept in value.items()]
            lines.append('  "layers": {\n' + ",\n".join(rows) + f"\n  }}{comma}")
        elif key == "swaps":
            rows = [f"    {json.dumps(s, sort_keys=False)}" for s in value]
            body = ("\n" + ",\n".join(rows) + "\n  ") if rows else ""
            lines.append(f'  "swaps": [{body}]{comma}')
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, sort_keys=True)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def save_mask(mask: ExpertMask, path: str | os.PathLike[str]) -> None:
    """Write ``mask`` atomically as canonical JSON."""
    write_bytes_atomic(path, dumps_mask(mask).encode())


def load_mask(path: str | os.PathLike[str]) -> ExpertMask:
    """Read a mask written by :func:`save_mask`.

    Raises:
        FormatError: missing, not JSON, or not a coe mask.
    """
    if not os.path.isfile(path):
        raise FormatError(f"mask {path} does not exist; build one with `coe mask`")
    try:
        data = json.loads(open(path, encoding="utf-8").read())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise FormatError(f"{path} is not a coe mask (expected format {FORMAT!r})")
    try:
        swaps = [Swap(s["layer"], s["pass"], s["added"], s["removed"], s["why"]) for s in data["swaps"]]
        return ExpertMask(
            num_experts=int(data["num_experts"]),
            keep=int(data["keep"]),
            layers={int(b): list(kept) for b, kept in data["layers"].items()},
            swaps=swaps,
            params=data.get("params", {}),
            sources=data.get("sources", {}),
            notes=data.get("notes", []),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"{path}: malformed mask ({exc!r})") from exc
