"""Offline, deterministic corpora for the embedded demo: three domains and reasoning traces.

Built from material every Python install has, so the demo runs with no download:

* ``coding``  — Python standard-library sources;
* ``general`` — the prose of ``pydoc_data.topics`` (the language reference's help topics);
* ``math``    — generated arithmetic and algebra with worked steps;
* ``cot``     — generated word problems solved step by step (the reasoning-trace corpus of pass 3).

Each document goes to exactly one split by a hash of its text (``train`` ~80%,
``profile`` ~10%, ``heldout`` ~10%), so the splits never overlap and do not
depend on the order of generation.
"""

from __future__ import annotations

import hashlib
import random
import sysconfig
from collections.abc import Callable
from pathlib import Path

__all__ = ["DOMAINS", "SPLITS", "documents", "split_of"]

SPLITS = ("train", "profile", "heldout")


def _coding(budget: int, seed: int) -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    docs, total = [], 0
    for path in sorted(root.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for start in range(0, len(text), 2000):  # function-sized pieces, so the splits mix modules
            piece = text[start : start + 2000]
            docs.append(piece)
            total += len(piece)
            if total >= budget:
                return docs
    return docs


def _general(budget: int, seed: int) -> list[str]:
    from pydoc_data.topics import topics

    docs, total = [], 0
    for name in sorted(topics):
        for paragraph in topics[name].split("\n\n"):
            text = paragraph.strip()
            if len(text) < 200 or text.count("    ") > 3:  # prose paragraphs, not code listings
                continue
            docs.append(text)
            total += len(text)
            if total >= budget:
                return docs
    return docs


def _math_problem(rng: random.Random) -> str:
    a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 9)
    kind = rng.randrange(4)
    if kind == 0:
        return f"Compute {a} * {b}. {a} * {b} = {a} * {b // 10 * 10} + {a} * {b % 10} = {a * (b // 10 * 10)} + {a * (b % 10)} = {a * b}."
    if kind == 1:
        return f"Solve {c}x + {a} = {c * b + a}. Subtract {a}: {c}x = {c * b}. Divide by {c}: x = {b}."
    if kind == 2:
        return f"Compute ({a} + {b}) * {c}. First {a} + {b} = {a + b}. Then {a + b} * {c} = {(a + b) * c}."
    return f"Compute {a * c} / {c} - {b}. First {a * c} / {c} = {a}. Then {a} - {b} = {a - b}."


def _generated(problem: Callable[[random.Random], str], per_doc: int, sep: str, budget: int, seed: int) -> list[str]:
    """Documents of ``per_doc`` generated problems each, until ``budget`` characters."""
    rng = random.Random(seed)
    docs, total = [], 0
    while total < budget:
        text = sep.join(problem(rng) for _ in range(per_doc))
        docs.append(text)
        total += len(text)
    return docs


def _math(budget: int, seed: int) -> list[str]:
    return _generated(_math_problem, 8, " ", budget, seed)


_NAMES = ("Ada", "Ben", "Cleo", "Dev", "Eva", "Finn", "Gus", "Hana")
_THINGS = ("apples", "books", "coins", "marbles", "stamps", "tickets")


def _cot_problem(rng: random.Random) -> str:
    who, other = rng.sample(_NAMES, 2)
    thing = rng.choice(_THINGS)
    a, b, c = rng.randint(3, 30), rng.randint(2, 12), rng.randint(2, 5)
    return (
        f"Question: {who} has {a} {thing}. {other} gives {who} {b} more, then {who} shares them equally "
        f"with {c - 1} friends, keeping one share. How many {thing} does {who} keep? "
        f"Let's think step by step. First, {who} starts with {a} {thing}. After receiving {b} more, {who} has "
        f"{a} + {b} = {a + b}. Sharing among {c} people gives each {a + b} // {c} = {(a + b) // c}, with "
        f"{(a + b) % c} left over. So {who} keeps {(a + b) // c}. Therefore, the answer is {(a + b) // c}."
    )


def _cot(budget: int, seed: int) -> list[str]:
    return _generated(_cot_problem, 3, "\n", budget, seed + 1)


DOMAINS: dict[str, Callable[[int, int], list[str]]] = {
    "coding": _coding,
    "general": _general,
    "math": _math,
    "cot": _cot,
}


def split_of(text: str) -> str:
    """The split a document belongs to, from a hash of its text."""
    bucket = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") % 10
    return "train" if bucket < 8 else "profile" if bucket == 8 else "heldout"


def documents(domain: str, budget_chars: int, seed: int = 0) -> dict[str, list[str]]:
    """The domain's de-duplicated documents, split into train / profile / heldout."""
    if domain not in DOMAINS:
        from coe.errors import ConfigError

        raise ConfigError(f"unknown demo domain {domain!r}; known: {', '.join(DOMAINS)}")
    splits: dict[str, list[str]] = {s: [] for s in SPLITS}
    for text in dict.fromkeys(DOMAINS[domain](budget_chars, seed)):
        splits[split_of(text)].append(text)
    return splits
