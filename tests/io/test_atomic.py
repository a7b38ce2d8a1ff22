"""qdaed.io.atomic: complete file or old file, never a part; no temporary file left behind."""

import os
import stat

import pytest

from qdaed.errors import InputError
from qdaed.io import atomic
from qdaed.io.atomic import atomic_open, atomic_write_bytes, atomic_write_text


def _listing(d):
    return sorted(os.listdir(d))


def test_write_bytes_creates_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "a.bin"
    atomic_write_bytes(p, b"\x00\x01hello")
    assert p.read_bytes() == b"\x00\x01hello"
    assert _listing(tmp_path) == ["a.bin"]


def test_write_text_is_utf8_with_newlines(tmp_path):
    p = tmp_path / "r.md"
    atomic_write_text(p, "EER ≤ 5 %\nline 2\n")
    assert p.read_bytes() == "EER ≤ 5 %\nline 2\n".encode("utf-8")


def test_replaces_existing_file(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"old")
    with atomic_open(p, "wb") as f:
        f.write(b"new ")
        f.write(b"content")
    assert p.read_bytes() == b"new content"
    assert _listing(tmp_path) == ["a.bin"]


def test_exception_inside_block_keeps_old_file_and_removes_temporary(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="midway"):
        with atomic_open(p, "wb") as f:
            f.write(b"half of the new")
            raise RuntimeError("midway")
    assert p.read_bytes() == b"old"
    assert _listing(tmp_path) == ["a.bin"]


def test_exception_on_new_path_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(tmp_path / "new.bin", "wb") as f:
            f.write(b"x")
            raise KeyboardInterrupt
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("broken", ["fsync", "replace"])
def test_failing_fsync_or_rename_keeps_old_file(tmp_path, monkeypatch, broken):
    p = tmp_path / "a.bin"
    p.write_bytes(b"old")

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, broken, fail)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(p, b"new")
    monkeypatch.undo()
    assert p.read_bytes() == b"old"
    assert _listing(tmp_path) == ["a.bin"]


def test_file_and_directory_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def record(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", record)
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    assert synced == [False, True]          # the file's data, then the rename


def test_new_file_gets_umask_permissions_and_replacement_keeps_old_ones(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "new.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.bin").st_mode) == 0o640
    p = tmp_path / "private.bin"
    p.write_bytes(b"old")
    os.chmod(p, 0o600)
    atomic_write_bytes(p, b"new")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600


def test_missing_directory_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "no" / "such" / "dir.bin", b"x")


def test_bad_mode_refused(tmp_path):
    with pytest.raises(InputError, match="mode"):
        with atomic_open(tmp_path / "a", "ab"):
            pass
    assert _listing(tmp_path) == []
