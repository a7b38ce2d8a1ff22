"""Atomic file writes: a reader sees the old file or the complete new one, never a part.

The data goes to a temporary file in the target's directory (same file system, so the rename
is atomic), which is flushed and fsync'ed, then ``os.replace``'d over the target; finally the
directory is fsync'ed so that the rename itself survives a crash. If anything fails before the
rename — including an exception raised by the caller inside :func:`atomic_open` — the temporary
file is removed and an existing target is left untouched.

The new file gets the permissions an ordinary ``open(path, "w")`` would give it (0666 minus
the umask), or the old file's permissions when it replaces one. Errors of the file system
(missing directory, no permission, disk full) propagate as ``OSError``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile

from qdaed.validate import check_choice


def _new_file_mode(path):
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)       # the only portable way to read the umask is to set it
        os.umask(umask)
        return 0o666 & ~umask


def fsync_directory(directory):
    """fsync a directory, so that a rename in it survives a crash (a no-op where a directory
    cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:               # e.g. Windows cannot open a directory; nothing to sync there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path, mode="wb"):
    """``with atomic_open(path, "wb") as f: f.write(...)`` — the file appears at ``path`` only
    when the block completes. mode: "wb" (bytes) or "w" (UTF-8 text, "\\n" newlines)."""
    check_choice("mode", mode, ("wb", "w"))
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    file_mode = _new_file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=directory)
    try:
        text = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
        with os.fdopen(fd, mode, **text) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_directory(directory)


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes-like) to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` atomically, UTF-8 encoded."""
    with atomic_open(path, "w") as f:
        f.write(text)


__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text"]
