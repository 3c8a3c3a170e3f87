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
