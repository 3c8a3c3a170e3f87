"""Fidelity of a specialist against its parent on held-out text.

On the same batches (the corpus chunking of :mod:`coe.corpus`), over every
next-token position whose target is a counted corpus token:

* ``ppl``  — perplexity of a model;
* ``kl``   — mean KL(parent || specialist) of the next-token distributions;
* ``top1`` — share of positions where both models' most likely next token agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from coe.corpus import Segment, iter_batches, iter_chunks

__all__ = ["Fidelity", "perplexity", "fidelity"]


@dataclass(frozen=True)
class Fidelity:
    """Specialist vs parent on one text set."""

    ppl_parent: float
    ppl_specialist: float
    kl: float
    top1: float
    tokens: int


def _batches(tokenizer, texts: Sequence[str], max_length: int, batch_size: int) -> Iterable:
    encode = lambda t: tokenizer(t, add_special_tokens=False, verbose=False)["input_ids"]  # noqa: E731
    bos = tokenizer.bos_token_id
    body = max_length - (0 if bos is None else 1)
    pad = tokenizer.pad_token_id or 0
    return iter_batches(iter_chunks((Segment(t, True) for t in texts), encode, body), batch_size, pad, bos)


def _shifted(model, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log-probs [B, T-1, V], targets [B, T-1], mask [B, T-1]) for next-token prediction."""
    ids = torch.from_numpy(batch.input_ids).to(model.device)
    mask = torch.from_numpy(batch.attention_mask).to(model.device)
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    return logits[:, :-1].float().log_softmax(-1), ids[:, 1:], torch.from_numpy(batch.count_mask[:, 1:]).to(model.device)


@torch.inference_mode()
def perplexity(model, tokenizer, texts: Sequence[str], max_length: int = 256, batch_size: int = 8) -> float:
    """Perplexity of ``model`` on ``texts`` (counted tokens only)."""
    nll, n = 0.0, 0
    for batch in _batches(tokenizer, texts, max_length, batch_size):
        logp, targets, mask = _shifted(model, batch)
        nll -= float(logp.gather(-1, targets[..., None])[..., 0][mask].sum())
        n += int(mask.sum())
    return math.exp(nll / max(n, 1))


@torch.inference_mode()
def fidelity(parent, specialist, tokenizer, texts: Sequence[str], max_length: int = 256, batch_size: int = 8) -> Fidelity:
    """Perplexities, KL and top-1 agreement of ``specialist`` against ``parent``."""
    nll_p = nll_s = kl = 0.0
    agree = n = 0
    for batch in _batches(tokenizer, texts, max_length, batch_size):
        logp, targets, mask = _shifted(parent, batch)
        logq, _, _ = _shifted(specialist, batch)
        nll_p -= float(logp.gather(-1, targets[..., None])[..., 0][mask].sum())
        nll_s -= float(logq.gather(-1, targets[..., None])[..., 0][mask].sum())
        kl += float((logp.exp() * (logp - logq)).sum(-1)[mask].sum())
        agree += int((logp.argmax(-1) == logq.argmax(-1))[mask].sum())
        n += int(mask.sum())
    n = max(n, 1)
    return Fidelity(math.exp(nll_p / n), math.exp(nll_s / n), kl / n, agree / n, n)
