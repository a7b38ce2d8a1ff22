"""Output paths checked before any work, and file names printed the same way everywhere.

Every option that names a file a command writes (``detect --csv``, ``export --torch/--onnx``,
``import --out``, ``manifests build --out``, ``vectors check --json``) goes through
:func:`check_output_file` before the command reads or computes anything, so a mistake costs
nothing and never destroys a user's file. A path is refused (``InputError`` naming the option,
exit status 2) when it is:

- empty (``--csv ''``);
- one of the command's inputs (the model, an audio file, a manifest): the same file by device
  and inode, so a second name or a symbolic link is caught too;
- named twice among the command's outputs;
- an existing directory, FIFO, socket or device (only a regular file is ever replaced; the
  replacement is atomic, :mod:`qdaed.io.atomic`);
- in a folder that does not exist, is not a folder, or cannot be written.

Options that name an output *folder* (``--out`` of pipeline, ablate, features, synth; ``vectors
export DIR``) go through :func:`check_output_dir`: not empty, not an existing non-directory,
and the nearest existing ancestor a writable folder (missing folders are created).

File names that are not valid UTF-8 (POSIX allows any bytes but ``/`` and NUL) reach Python
as strings with surrogate escapes; they cannot be written to a UTF-8 CSV, JSON or terminal as
they are. :func:`display_path` writes each such byte as the four characters ``\\xNN`` (Python's
``backslashreplace``), so ``caf\\xe9.wav`` stands for the file whose name is the bytes
``c a f 0xE9 . w a v``. Valid UTF-8 names are written unchanged.
"""

from __future__ import annotations

import os
import stat

from qdaed.errors import InputError


def display_path(path) -> str:
    """``path`` as text that encodes to UTF-8: bytes that are not UTF-8 become ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _identity(path):
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _check_text(option, path):
    if path is None or os.fspath(path) == "":
        raise InputError(f"{option}: an empty path; give a file name")
    path = os.fspath(path)
    if "\0" in path:
        raise InputError(f"{option}: {display_path(path)!r} contains a NUL character")
    return path


def _writable_folder(option, path, folder):
    if not os.path.exists(folder):
        raise InputError(f"{option} {display_path(path)}: the folder {display_path(folder)} "
                         f"does not exist; create it first")
    if not os.path.isdir(folder):
        raise InputError(f"{option} {display_path(path)}: {display_path(folder)} is not a "
                         f"folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{option} {display_path(path)}: the folder {display_path(folder)} "
                         f"is not writable")


def check_output_file(option, path, inputs=(), others=()):
    """Refuse an output file path that a command must not write (see the module docstring).

    option: the option's name for the message (``"--csv"``).
    inputs: paths the same command reads; the output may not be any of them.
    others: ``(option, path)`` pairs of the command's other output files.
    Returns ``path`` (as ``str``).
    """
    path = _check_text(option, path)
    if os.path.lexists(path):
        try:
            mode = os.stat(path).st_mode
        except OSError:          # a dangling symbolic link: replaced like a missing file
            mode = None
        if mode is not None and stat.S_ISDIR(mode):
            raise InputError(f"{option} {display_path(path)}: is a directory; give a file "
                             f"name")
        if mode is not None and not stat.S_ISREG(mode):
            kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                    else "a device")
            raise InputError(f"{option} {display_path(path)}: is {kind}, not a regular file; "
                             f"qdaed writes only regular files")
        me = _identity(path)
        if me is not None:
            for other in inputs:
                if other is not None and _identity(other) == me:
                    raise InputError(f"{option} {display_path(path)}: is an input of this "
                                     f"command ({display_path(other)}); writing it would "
                                     f"destroy it — give another file name")
    folder = os.path.dirname(os.path.abspath(path))
    _writable_folder(option, path, folder)
    target = os.path.abspath(path)
    for other_option, other in others:
        if other is not None and os.fspath(other) != "" and (
                os.path.abspath(os.fspath(other)) == target
                or (_identity(other) is not None and _identity(other) == _identity(path))):
            raise InputError(f"{option} and {other_option}: both name "
                             f"{display_path(path)}; give two files")
    return path


def check_output_dir(option, path, inputs=()):
    """Refuse an output folder that cannot be one: empty, an existing non-directory, an input
    of the command, or under a folder that is missing at no writable ancestor."""
    path = _check_text(option, path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise InputError(f"{option} {display_path(path)}: exists and is not a folder")
    me = _identity(path)
    if me is not None:
        for other in inputs:
            if other is not None and _identity(other) == me:
                raise InputError(f"{option} {display_path(path)}: is an input of this "
                                 f"command ({display_path(other)})")
    if os.path.isdir(path):
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError(f"{option} {display_path(path)}: the folder is not writable")
        return path
    ancestor = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(ancestor):
        ancestor = os.path.dirname(ancestor)
    _writable_folder(option, path, ancestor)
    return path


__all__ = ["check_output_dir", "check_output_file", "display_path"]
