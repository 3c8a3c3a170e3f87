"""Stream corpus files into fixed-size token batches, with memory independent of corpus size.

Input formats:
    ``*.jsonl``  one JSON object per line; its ``text`` field is one document.
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

__all__ = ["Segment", "Batch", "iter_segments", "iter_chunks", "iter_batches", "corpus_digest"]

_BLOCK_CHARS = 1 << 16


@dataclass(frozen=True)
class Segment:
    """A piece of text; ``new_document`` marks the first piece of a document."""

    text: str
    new_document: bool


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
                text = record["text"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise FormatError(f"{path}:{lineno}: expected a JSON object with a 'text' field ({exc})") from exc
            if not isinstance(text, str):
                raise FormatError(f"{path}:{lineno}: 'text' must be a string, found {type(text).__name__}")
            yield Segment(text, new_document=True)


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
) -> Iterator[list[int]]:
    """Cut segments into token chunks of at most ``body_length`` tokens.

    A chunk never spans two documents; a document longer than ``body_length``
    continues in the next chunk.
    """
    if body_length < 1:
        raise ConfigError(f"chunk length must be at least 1 token, got {body_length}")
    buffer: list[int] = []
    for segment in segments:
        if segment.new_document and buffer:
            yield buffer
            buffer = []
        buffer.extend(encode(segment.text))
        while len(buffer) >= body_length:
            yield buffer[:body_length]
            buffer = buffer[body_length:]
    if buffer:
        yield buffer


def iter_batches(
    chunks: Iterable[list[int]], batch_size: int, pad_id: int, bos_id: int | None
) -> Iterator[Batch]:
    """Group chunks into right-padded batches, prefixing each chunk with BOS."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    pending: list[list[int]] = []
    for chunk in chunks:
        pending.append(chunk)
        if len(pending) == batch_size:
            yield _pad(pending, pad_id, bos_id)
            pending = []
    if pending:
        yield _pad(pending, pad_id, bos_id)


def _pad(chunks: list[list[int]], pad_id: int, bos_id: int | None) -> Batch:
    prefix = [] if bos_id is None else [bos_id]
    width = len(prefix) + max(len(c) for c in chunks)
    input_ids = np.full((len(chunks), width), pad_id, dtype=np.int64)
    attention = np.zeros((len(chunks), width), dtype=np.int64)
    count = np.zeros((len(chunks), width), dtype=bool)
    for row, chunk in enumerate(chunks):
        tokens = prefix + chunk
        input_ids[row, : len(tokens)] = tokens
        attention[row, : len(tokens)] = 1
        count[row, len(prefix) : len(tokens)] = True
    return Batch(input_ids=input_ids, attention_mask=attention, count_mask=count)


def corpus_digest(paths: Sequence[str | os.PathLike[str]]) -> str:
    """sha256 of one file, or of the newline-joined sha256s of several, in order."""
    hashes = [sha256_file(p) for p in paths]
    if len(hashes) == 1:
        return hashes[0]
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()
