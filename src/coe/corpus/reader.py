"""Stream corpus files into fixed-size token batches, with memory independent of corpus size.

Input formats:
    ``*.jsonl``  one JSON object per line, one document each: either ``text``
                 (every token counted) or ``segments``, a list of
                 ``{"text": ..., "count": true|false}`` (``coe corpus build``
                 writes these for response-only counting: the prompt's tokens
                 are seen by the model but not counted).
    anything else  UTF-8 text; the whole file is one document, read in
                   line-aligned blocks of about 64 KiB.

Chunking decisions (documented here because the profile counts depend on them):
    * every document starts a new chunk; a long document continues over as many
      chunks as it needs, so nothing is ever truncated;
    * every chunk starts with the tokenizer's BOS token (if it has one), because
      the model expects one; the BOS is not corpus text and is not counted
      (``count_mask`` is 0 there), and neither is padding.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coe.errors import ConfigError, FormatError
from coe.io import sha256_file

__all__ = ["Segment", "Chunk", "Batch", "iter_segments", "iter_chunks", "iter_batches", "corpus_digest"]

_BLOCK_CHARS = 1 << 16


@dataclass(frozen=True)
class Segment:
    """A piece of text; ``new_document`` marks the first piece of a document, ``count`` whether its tokens count."""

    text: str
    new_document: bool
    count: bool = True


@dataclass(frozen=True)
class Chunk:
    """Token ids of one model input (BOS aside) and, per token, whether the profile counts it."""

    ids: list[int]
    counted: list[bool]


@dataclass(frozen=True)
class Batch:
    """A right-padded batch. All arrays are [batch, seq]."""

    input_ids: np.ndarray  # int64
    attention_mask: np.ndarray  # int64, 1 for real tokens (BOS included)
    count_mask: np.ndarray  # bool, True for tokens the profile counts


def iter_segments(paths: Sequence[str | os.PathLike[str]]) -> Iterator[Segment]:
    """Yield the text of every file in ``paths`` as segments, in order.

    Raises:
        FormatError: a path is missing, or a JSONL line is invalid or lacks ``text``.
    """
    for path in map(Path, paths):
        if not path.is_file():
            raise FormatError(f"corpus file {path} does not exist")
        if path.suffix == ".jsonl":
            yield from _jsonl_segments(path)
        else:
            yield from _text_segments(path)


def _jsonl_segments(path: Path) -> Iterator[Segment]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                pieces = record["segments"] if "segments" in record else [{"text": record["text"], "count": True}]
                segments = [Segment(p["text"], i == 0, bool(p.get("count", True))) for i, p in enumerate(pieces)]
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                raise FormatError(f"{path}:{lineno}: expected a JSON object with 'text' or 'segments' ({exc!r})") from exc
            for segment in segments:
                if not isinstance(segment.text, str):
                    raise FormatError(f"{path}:{lineno}: text must be a string, found {type(segment.text).__name__}")
            yield from segments


def _text_segments(path: Path) -> Iterator[Segment]:
    first = True
    block: list[str] = []
    size = 0
    try:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                block.append(line)
                size += len(line)
                if size >= _BLOCK_CHARS:
                    yield Segment("".join(block), new_document=first)
                    first, block, size = False, [], 0
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path} is not UTF-8 text ({exc})") from exc
    if block:
        yield Segment("".join(block), new_document=first)


def iter_chunks(
    segments: Iterable[Segment], encode: Callable[[str], list[int]], body_length: int
) -> Iterator[Chunk]:
    """Cut segments into chunks of at most ``body_length`` tokens.

    A chunk never spans two documents; a document longer than ``body_length``
    continues in the next chunk. Each segment is tokenized on its own, so a
    counted segment's tokens are exactly the tokens of its text.
    """
    if body_length < 1:
        raise ConfigError(f"chunk length must be at least 1 token, got {body_length}")
    ids: list[int] = []
    counted: list[bool] = []
    for segment in segments:
        if segment.new_document and ids:
            yield Chunk(ids, counted)
            ids, counted = [], []
        tokens = encode(segment.text)
        ids.extend(tokens)
        counted.extend([segment.count] * len(tokens))
        while len(ids) >= body_length:
            yield Chunk(ids[:body_length], counted[:body_length])
            ids, counted = ids[body_length:], counted[body_length:]
    if ids:
        yield Chunk(ids, counted)


def iter_batches(chunks: Iterable[Chunk], batch_size: int, pad_id: int, bos_id: int | None) -> Iterator[Batch]:
    """Group chunks into right-padded batches, prefixing each chunk with BOS."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    pending: list[Chunk] = []
    for chunk in chunks:
        pending.append(chunk)
        if len(pending) == batch_size:
            yield _pad(pending, pad_id, bos_id)
            pending = []
    if pending:
        yield _pad(pending, pad_id, bos_id)


def _pad(chunks: list[Chunk], pad_id: int, bos_id: int | None) -> Batch:
    prefix = [] if bos_id is None else [bos_id]
    width = len(prefix) + max(len(c.ids) for c in chunks)
    input_ids = np.full((len(chunks), width), pad_id, dtype=np.int64)
    attention = np.zeros((len(chunks), width), dtype=np.int64)
    count = np.zeros((len(chunks), width), dtype=bool)
    for row, chunk in enumerate(chunks):
        tokens = prefix + chunk.ids
        input_ids[row, : len(tokens)] = tokens
        attention[row, : len(tokens)] = 1
        count[row, len(prefix) : len(tokens)] = chunk.counted
    return Batch(input_ids=input_ids, attention_mask=attention, count_mask=count)


def corpus_digest(paths: Sequence[str | os.PathLike[str]]) -> str:
    """sha256 of one file, or of the newline-joined sha256s of several, in order."""
    hashes = [sha256_file(p) for p in paths]
    if len(hashes) == 1:
        return hashes[0]
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()
