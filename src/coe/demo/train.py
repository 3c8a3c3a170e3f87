"""Train the embedded demo parent: a small Gemma 4 MoE that learns several domains on CPU.

The parent is a real ``Gemma4ForCausalLM`` (every layer MoE, plus the dense
shared FFN), trained from scratch on the demo corpora's train splits with a
Switch-style load-balancing loss, so that every expert is used and experts can
specialise by domain. A few minutes on two cores.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from coe.demo.tiny import TinySpec, build_tokenizer, tiny_config

__all__ = ["DemoSpec", "train_demo_parent"]


@dataclass(frozen=True)
class DemoSpec:
    """Shape and training budget of the demo parent."""

    layers: int = 4
    experts: int = 16
    top_k: int = 4
    hidden: int = 128
    dense_ff: int = 128
    expert_ff: int = 64
    vocab: int = 2048
    seq: int = 128
    batch: int = 16
    steps: int = 400
    lr: float = 3e-3
    aux_coef: float = 0.01
    seed: int = 0


def _token_streams(tokenizer, corpora: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Each domain's train documents as one token stream, EOS between documents."""
    eos = tokenizer.eos_token_id
    streams = {}
    for domain, docs in sorted(corpora.items()):
        ids: list[int] = []
        for doc in docs:
            ids += tokenizer(doc, add_special_tokens=False, verbose=False)["input_ids"] + [eos]
        streams[domain] = np.asarray(ids, dtype=np.int64)
    return streams


def _batch(streams: dict[str, np.ndarray], spec: DemoSpec, bos: int, rng: np.random.Generator) -> torch.Tensor:
    """Rows of BOS + seq-1 tokens, domains in turn so every batch mixes them all."""
    domains = sorted(streams)
    rows = []
    for i in range(spec.batch):
        stream = streams[domains[i % len(domains)]]
        start = int(rng.integers(0, len(stream) - spec.seq))
        rows.append(np.concatenate([[bos], stream[start : start + spec.seq - 1]]))
    return torch.from_numpy(np.stack(rows))


def _load_balancing(router_outputs: list[tuple[torch.Tensor, torch.Tensor]], num_experts: int) -> torch.Tensor:
    """Switch Transformer's auxiliary loss, averaged over layers: E * sum_e f_e * P_e."""
    loss = torch.zeros(())
    for probs, index in router_outputs:  # [N, E], [N, R]
        fraction = torch.zeros(num_experts).index_add_(0, index.reshape(-1), torch.ones(index.numel())) / index.numel()
        loss = loss + num_experts * (fraction * probs.mean(0)).sum()
    return loss / max(len(router_outputs), 1)


def train_demo_parent(out_dir: str | os.PathLike[str], corpora: dict[str, list[str]], spec: DemoSpec, progress: bool = True) -> dict:
    """Train and save the demo parent to ``out_dir``. Returns the final losses.

    Deterministic: the same corpora and spec give the same weights, byte for
    byte, on the same machine (``torch.use_deterministic_algorithms`` during
    training; without it CPU backward passes reduce in varying order).
    """
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        return _train(out_dir, corpora, spec, progress)
    finally:
        torch.use_deterministic_algorithms(previous)


def _train(out_dir: str | os.PathLike[str], corpora: dict[str, list[str]], spec: DemoSpec, progress: bool) -> dict:
    from transformers import Gemma4ForCausalLM

    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    tokenizer = build_tokenizer([d for docs in corpora.values() for d in docs], spec.vocab)
    streams = _token_streams(tokenizer, corpora)
    shape = TinySpec(num_layers=spec.layers, num_experts=spec.experts, top_k=spec.top_k, hidden_size=spec.hidden,
                     intermediate_size=spec.dense_ff, moe_intermediate_size=spec.expert_ff, seed=spec.seed)  # fmt: skip
    model = Gemma4ForCausalLM(tiny_config(shape, vocab_size=len(tokenizer)))
    model.train()

    captured: list[tuple[torch.Tensor, torch.Tensor]] = []
    hooks = [layer.router.register_forward_hook(lambda m, a, out: captured.append((out[0], out[2])))
             for layer in model.model.layers]  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)
    warmup = max(1, spec.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, spec.steps) / max(spec.steps, 1)))
    )
    losses = {"lm": float("nan"), "aux": float("nan")}
    try:
        for _ in tqdm(range(spec.steps), desc="training demo parent", disable=not progress):
            captured.clear()
            batch = _batch(streams, spec, tokenizer.bos_token_id, rng)
            lm = model(input_ids=batch, labels=batch, use_cache=False).loss
            aux = _load_balancing(captured, spec.experts)
            (lm + spec.aux_coef * aux).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses = {"lm": float(lm.detach()), "aux": float(aux.detach())}
    finally:
        for hook in hooks:
            hook.remove()
    model.eval()
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {**losses, **{f"spec.{k}": v for k, v in asdict(spec).items()}}
