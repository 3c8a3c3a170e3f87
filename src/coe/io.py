"""Atomic file writes and content hashing shared by every artifact writer."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_path", "atomic_writer", "write_bytes_atomic", "sha256_file", "cached_sha256", "cache_dir"]

_HASH_BLOCK = 1 << 20


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success fsync it and rename it to ``target``.

    For writers that open the file themselves. A crash or an exception inside
    the block removes the temporary file, so a file at ``target`` is always
    complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_writer(target: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``target`` for writing; see :func:`atomic_path`."""
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        yield fh


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem allows it
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_writer(target) as fh:
        fh.write(data)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    """coe's cache directory: ``$COE_CACHE_DIR``, else ``$XDG_CACHE_HOME/coe``, else ``~/.cache/coe``."""
    if os.environ.get("COE_CACHE_DIR"):
        return Path(os.environ["COE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "coe"


def cached_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a (large, rarely changing) file, remembered by path, inode, size and mtime.

    Hashing a 17 GB parent takes many seconds and a sweep prunes the same
    parent once per trial; like DVC's hash cache, a changed inode, size or
    mtime means the file is hashed again.
    """
    stat = os.stat(path)
    key = f"{os.path.realpath(path)}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"
    store = cache_dir() / "sha256.json"
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known = {k: v for k, v in known.items() if not k.startswith(f"{os.path.realpath(path)}:")}
        known[key] = sha256_file(path)
        with contextlib.suppress(OSError):  # a read-only cache only costs time
            write_bytes_atomic(store, json.dumps(known, indent=0, sort_keys=True).encode())
    return known[key]
