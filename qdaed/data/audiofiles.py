"""Audio files named on a command line: files as given, folders searched recursively.

A folder stands for every file under it, at any depth, whose name ends in one of
``qdaed.data.audio.AUDIO_EXTENSIONS`` (any letter case: ``.wav``, ``.WAV``, ``.flac``,
``.ogg``), sorted by their path relative to the folder (code point order, ``/`` separators),
so the order does not depend on the file system. Symbolic links to files are followed;
symbolic links to folders are not descended into (no cycles). A file given by itself is
taken whatever its extension (the reader reports it if it is not audio), and so is a path
that does not exist (reported as missing).
"""

from __future__ import annotations

import dataclasses
import os

from qdaed.data.audio import AUDIO_EXTENSIONS


@dataclasses.dataclass
class Inputs:
    """entries: [(path, folder it was found in, or None for a file given by itself)];
    ignored: files under the folders that are not audio by their extension; empty: folders
    with no audio file; unreadable: [(folder, reason)] of folders that could not be listed."""

    entries: list = dataclasses.field(default_factory=list)
    ignored: int = 0
    empty: list = dataclasses.field(default_factory=list)
    unreadable: list = dataclasses.field(default_factory=list)


def is_audio_name(name, extensions=AUDIO_EXTENSIONS):
    return name.lower().endswith(tuple(e.lower() for e in extensions))


def find_audio(paths, extensions=AUDIO_EXTENSIONS):
    """:class:`Inputs` of the command line's ``paths`` (module docstring), in their order."""
    found = Inputs()
    for path in map(os.fspath, paths):
        if not os.path.isdir(path):
            found.entries.append((path, None))
            continue
        files = []

        def failed(exc, found=found):
            found.unreadable.append((exc.filename or path, exc.strerror or str(exc)))

        for folder, dirs, names in os.walk(path, onerror=failed):
            for name in names:
                full = os.path.join(folder, name)
                if is_audio_name(name, extensions):
                    files.append(full)
                else:
                    found.ignored += 1
        if not files:
            found.empty.append(path)
        files.sort(key=lambda f: os.path.relpath(f, path).replace(os.sep, "/"))
        found.entries += [(f, path) for f in files]
    return found


__all__ = ["Inputs", "find_audio", "is_audio_name"]
