"""Atomic writes: a failed write leaves neither a partial file nor a temporary."""

from __future__ import annotations

import hashlib

import pytest

from coe.io import atomic_writer, sha256_file, write_bytes_atomic


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "artifact.bin"
    write_bytes_atomic(target, b"complete")
    with pytest.raises(RuntimeError):
        with atomic_writer(target) as fh:
            fh.write(b"half")
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"complete"
    assert [p.name for p in tmp_path.iterdir()] == ["artifact.bin"]


def test_sha256_file(tmp_path):
    data = bytes(range(256)) * 5000
    path = tmp_path / "d"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_cached_sha256_rehashes_when_the_file_changes(tmp_path, monkeypatch):
    import os

    from coe.io import cached_sha256

    monkeypatch.setenv("COE_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "parent.gguf"
    path.write_bytes(b"one")
    assert cached_sha256(path) == hashlib.sha256(b"one").hexdigest()
    assert (tmp_path / "cache" / "sha256.json").is_file()
    path.write_bytes(b"two!")
    os.utime(path, ns=(1, 1))
    assert cached_sha256(path) == hashlib.sha256(b"two!").hexdigest()
    assert len((tmp_path / "cache" / "sha256.json").read_text().strip().splitlines()) == 3  # one entry per path
