"""``coe verify``: prove a GGUF specialist in llama.cpp against its parent and mask.

Checks, in order:

* structure: the specialist's ``expert_count`` is the mask's K and its
  ``coe.mask`` provenance (when present) is the mask given;
* logits: for every prompt, the parent's routing is captured; on the longest
  prefix whose every token (BOS included) routes only to experts the mask
  keeps, the specialist's logits must equal the parent's. Gemma 4 renormalises
  over the top-k, so removing experts that were never picked changes nothing
  but float rounding (the softmax's normaliser cancels); any other difference
  means the cut is wrong;
* agreement: on held-out text, how often the specialist's next-token choice
  equals the parent's (reported; ``min_agreement`` can make it a check).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coe.errors import ConfigError
from coe.families import family_for_gguf_arch
from coe.gguf_file import architecture, field_value, moe_layout, open_gguf
from coe.llamacpp.routing import RoutingCapture
from coe.llamacpp.runtime import GGUFRuntime
from coe.mask.artifact import ExpertMask, dumps_mask

__all__ = ["VerifyReport", "verify_specialist", "LOGIT_TOLERANCE"]

# Relative to the largest logit magnitude. A softmax over K instead of E experts rounds differently
# (~1e-7), and ggml's CPU GELU reads an f16 table, which turns that into jumps of an f16 ulp (~5e-4)
# wherever an activation sits on a rounding boundary. A wrong cut differs by O(1).
LOGIT_TOLERANCE = 1e-3


@dataclass
class VerifyReport:
    """What ``coe verify`` found; ``ok`` when every check passed."""

    expert_count: int
    failures: list[str] = field(default_factory=list)
    covered_positions: int = 0  # prompt positions whose routing the mask keeps entirely
    total_positions: int = 0
    max_logit_diff: float = 0.0  # over covered positions, relative to the largest logit
    differing_positions: int = 0  # uncovered positions whose logits differ beyond the tolerance (informational)
    agreement: float | None = None  # next-token agreement on held-out text
    agreement_positions: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures

    def lines(self) -> list[str]:
        """A human-readable summary."""
        out = [f"expert_count: {self.expert_count}",
               f"logits: {self.covered_positions}/{self.total_positions} prompt positions route only to kept experts; "
               f"max relative difference there {self.max_logit_diff:.2e} (tolerance {LOGIT_TOLERANCE:.0e})",
               f"after a removed expert was routed to: {self.differing_positions}/"
               f"{self.total_positions - self.covered_positions} positions differ from the parent"]  # fmt: skip
        if self.agreement is not None:
            out.append(f"next-token agreement on held-out text: {self.agreement:.1%} of {self.agreement_positions} positions")
        out += [f"FAILED: {f}" for f in self.failures] or ["OK"]
        return out


def _covered_prefix(picks: np.ndarray, mask: ExpertMask, blocks: Sequence[int]) -> int:
    """Length of the longest prefix whose every token, in every MoE layer, picks only kept experts."""
    ok = np.ones(picks.shape[1], dtype=bool)
    for row, block in enumerate(blocks):
        kept = np.zeros(mask.num_experts, dtype=bool)
        kept[list(mask.layers[block])] = True
        ok &= kept[picks[row]].all(axis=1)
    bad = np.flatnonzero(~ok)
    return int(bad[0]) if bad.size else len(ok)


def _structure(specialist: Path, mask: ExpertMask) -> tuple[int, list[str]]:
    reader = open_gguf(specialist)
    arch = architecture(reader)
    count = int(field_value(reader, f"{arch}.expert_count") or 0)
    failures = []
    if count != mask.keep:
        failures.append(f"the specialist has {count} experts per layer, the mask keeps {mask.keep}")
    stored = field_value(reader, "coe.mask")
    if stored is not None and stored != dumps_mask(mask):
        failures.append("the specialist was cut with a different mask (its coe.mask provenance differs)")
    return count, failures


def verify_specialist(
    specialist: str | os.PathLike[str],
    parent: str | os.PathLike[str],
    mask: ExpertMask,
    prompts: Sequence[str],
    held_out: Sequence[str] = (),
    max_length: int = 256,
    min_agreement: float = 0.0,
) -> VerifyReport:
    """Run the checks of the module docstring; never raises on a failed check, only on unusable input."""
    specialist, parent = Path(specialist), Path(parent)
    if not prompts:
        raise ConfigError("verify needs at least one prompt")
    count, failures = _structure(specialist, mask)
    report = VerifyReport(expert_count=count, failures=failures)
    reader = open_gguf(parent)
    layout, _ = moe_layout(reader, family_for_gguf_arch(architecture(reader)))
    mask.check_fits(layout, what=str(parent))
    del reader
    capture = RoutingCapture(layout)
    common = dict(n_ctx=max_length, f32_cache=True)
    with GGUFRuntime(parent, callback=capture, want=capture.want, **common) as p, GGUFRuntime(specialist, **common) as s:
        agreed: dict[tuple[int, ...], int] = {}  # argmax agreement per prompt window, reused for held-out text
        for tokens in (window for text in prompts for window in _windows(p, text, max_length)):
            agreed[tuple(tokens)] = _compare_logits(report, p, s, capture, tokens, mask, layout.moe_layers)
        if report.max_logit_diff > LOGIT_TOLERANCE:
            report.failures.append(
                f"logits differ from the parent's where every routed expert is kept "
                f"(relative difference {report.max_logit_diff:.2e} > {LOGIT_TOLERANCE:.0e})"
            )
        if held_out:
            agree = 0
            for window in (window for text in held_out for window in _windows(p, text, max_length)):
                if tuple(window) not in agreed:  # the evaluate stage passes the same documents as both
                    agreed[tuple(window)] = int((p.decode(window, logits=True).argmax(-1) ==
                                                 s.decode(window, logits=True).argmax(-1)).sum())  # fmt: skip
                    capture.take(len(window))  # the parent's routing is not needed here
                agree += agreed[tuple(window)]
                report.agreement_positions += len(window)
            report.agreement = agree / max(report.agreement_positions, 1)
            if report.agreement < min_agreement:
                report.failures.append(f"next-token agreement {report.agreement:.1%} is below {min_agreement:.1%}")
    return report


def _compare_logits(report: VerifyReport, parent: GGUFRuntime, specialist: GGUFRuntime, capture: RoutingCapture,
                    tokens: list[int], mask: ExpertMask, blocks: Sequence[int]) -> int:  # fmt: skip
    """Decode ``tokens`` in both models and add the comparison to ``report``; the positions whose argmax agrees."""
    want = parent.decode(tokens, logits=True)
    covered = _covered_prefix(capture.take(len(tokens))[0], mask, blocks)
    got = specialist.decode(tokens, logits=True)
    relative = np.abs(got - want).max(axis=1) / np.maximum(np.abs(want).max(axis=1), 1e-30)  # per position
    report.total_positions += len(tokens)
    report.covered_positions += covered
    if covered:
        report.max_logit_diff = max(report.max_logit_diff, float(relative[:covered].max()))
    report.differing_positions += int((relative[covered:] > LOGIT_TOLERANCE).sum())
    return int((got.argmax(-1) == want.argmax(-1)).sum())


def _windows(runtime: GGUFRuntime, text: str, max_length: int) -> list[list[int]]:
    """``text``'s tokens in sequences of at most ``max_length``, each starting with BOS."""
    bos = [] if runtime.bos_id is None else [runtime.bos_id]
    ids, body = runtime.tokenize(text), max_length - len(bos)
    return [bos + ids[i : i + body] for i in range(0, len(ids), body)]
