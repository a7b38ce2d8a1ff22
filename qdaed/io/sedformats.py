"""The files the field's evaluation tools read: sed_eval's event lists and sed_scores_eval's
score tables (``qdaed detect --events-tsv / --scores-dir``, ``qdaed evaluate
--reference-tsv``).

Event list (sed_eval's reference and estimate format; DCASE's ``*.tsv`` annotations):
tab-separated, a header line ``filename onset offset event_label``, one row per event, times
in seconds. sed_eval (``sed_eval.io.load_event_list``) and sed_scores_eval
(``read_ground_truth_events``) read it as it is. A reference may list a file without events
as a row with the file name and empty fields (sed_scores_eval's convention); a header is
optional on reading (DCASE 2016-17 files have none), and extra columns are ignored.

Score table (sed_scores_eval's per-file format, ``sed_scores_eval.io.read_sed_scores``):
tab-separated, a header ``onset offset CLASS...``, one row per window: the stretch of the
file the window stands for (``qdaed.events.window_edges``: consecutive rows share their
boundary, from 0 s to the file's end) and the window's score per class, the numbers every
``qdaed detect --events`` thresholds. Values are written with Python's ``repr`` (the shortest
text that reads back as the same float64). A folder of them holds one ``NAME.tsv`` per audio
file, NAME its event-list file name without the audio extension — the key sed_scores_eval
matches against a reference's ``filename`` without its extension.

File names: the name a file gets in these files (:func:`file_names`) is its path relative
to the folder it was found in, or, for a file named on the command line, its base name —
what DCASE annotations write. Names are text that encodes to UTF-8 (``display_path``: bytes
that are not UTF-8 as ``\\xNN``), and a tab, carriage return or line feed in a name, which
would break a row, is written as ``\\x09``, ``\\x0d``, ``\\x0a`` the same way. In a score
folder, ``/`` (a file in a sub-folder) is written ``%2F``, so every table is one flat file of
the folder, as sed_scores_eval requires (which then matches it to a reference name with
``%2F`` in place of ``/``; names without ``/`` match as they are).
"""

from __future__ import annotations

import math
import os

from qdaed.errors import DataError, InputError
from qdaed.io.paths import display_path

EVENT_COLUMNS = ("filename", "onset", "offset", "event_label")
_ROW_BREAKERS = {"\t": "\\x09", "\r": "\\x0d", "\n": "\\x0a"}
MAX_NAME_BYTES = 255       # the longest file name of the usual file systems


def tsv_text(name):
    """``name`` as one field of a TSV row: UTF-8 text without tabs or line breaks."""
    text = display_path(name)
    for char, escape in _ROW_BREAKERS.items():
        text = text.replace(char, escape)
    return text


def file_names(entries):
    """[name] of ``entries`` = [(path, folder or None)]: the path relative to the folder it
    was found in, with ``/`` separators, or the base name of a file given by itself."""
    out = []
    for path, folder in entries:
        rel = os.path.relpath(path, folder) if folder is not None else os.path.basename(path)
        out.append(tsv_text(rel.replace(os.sep, "/")))
    return out


def score_file_name(name):
    """The score table's file name of the file named ``name`` (:func:`file_names`): the name
    without its extension, ``/`` written ``%2F``, then ``.tsv``."""
    stem = name.rsplit(".", 1)[0] if "." in name.rsplit("/", 1)[-1] else name
    return stem.replace("/", "%2F") + ".tsv"


def check_names(option, paths, names, score_files=False):
    """Refuse, before any work, names two files would share in ``option``'s output (the
    same event-list name, or with ``score_files`` the same table) or a table name too long
    for a file system. InputError naming both files."""
    seen = {}
    for path, name in zip(paths, names):
        key = score_file_name(name) if score_files else name
        if score_files and len(key.encode("utf-8")) > MAX_NAME_BYTES:
            raise InputError(f"{option}: the score table of {display_path(path)} would be named "
                             f"{key!r}, longer than {MAX_NAME_BYTES} bytes; rename the file")
        if key in seen and seen[key] != path:
            raise InputError(f"{option}: {display_path(seen[key])} and {display_path(path)} "
                             f"would both be named {key!r}; give their common folder instead, "
                             f"or score them apart")
        seen[key] = path


def _number(value):
    return repr(float(value))


def events_tsv(named_events):
    """The event list of ``named_events`` = [(name, [{"class", "onset", "offset"}])], in that
    order: header and one row per event."""
    rows = ["\t".join(EVENT_COLUMNS)]
    for name, events in named_events:
        field = tsv_text(name)
        rows += [f"{field}\t{_number(e['onset'])}\t{_number(e['offset'])}\t{tsv_text(e['class'])}"
                 for e in events]
    return "\n".join(rows) + "\n"


def score_table(edges, scores, classes):
    """A score table's text: ``edges`` (N + 1,) the window stretches' boundaries (s),
    ``scores`` (N, C) the window scores, ``classes`` the C column names."""
    if len(edges) != len(scores) + 1:
        raise InputError(f"edges: expected {len(scores) + 1} boundaries for {len(scores)} "
                         f"windows, got {len(edges)}")
    rows = ["\t".join(["onset", "offset", *map(tsv_text, classes)])]
    for k, row in enumerate(scores):
        rows.append("\t".join([_number(edges[k]), _number(edges[k + 1]),
                               *map(_number, row)]))
    return "\n".join(rows) + "\n"


def _float(text, path, line, what):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise DataError(f"{display_path(path)}: line {line}: {what} {text!r} is not a time in "
                        "seconds (a finite number >= 0)")
    return value


def read_events_tsv(path):
    """{filename: [{"class", "onset", "offset"}]} of an event list (module docstring), in
    file order; a file listed without events maps to []. DataError (file and line) for
    anything else."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise DataError(f"{display_path(path)}: unreadable ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise DataError(f"{display_path(path)}: not UTF-8 text") from None
    rows = [(i + 1, line.split("\t")) for i, line in enumerate(lines) if line.strip()]
    if not rows:
        raise DataError(f"{display_path(path)}: empty; expected a header "
                        f"'{' '.join(EVENT_COLUMNS)}' (tab-separated) and one row per event")
    head = [c.strip() for c in rows[0][1]]
    if set(EVENT_COLUMNS) <= set(head):
        cols = [head.index(c) for c in EVENT_COLUMNS]
        rows = rows[1:]
    elif "filename" in head or "event_label" in head:
        missing = [c for c in EVENT_COLUMNS if c not in head]
        raise DataError(f"{display_path(path)}: the header lacks the column(s) "
                        f"{', '.join(missing)} (sed_eval's format: "
                        f"{' '.join(EVENT_COLUMNS)}, tab-separated)")
    else:
        cols = [0, 1, 2, 3]
    out = {}
    for line, fields in rows:
        fields = fields + [""] * (max(cols) + 1 - len(fields))
        name, on, off, label = (fields[c].strip() for c in cols)
        if not name:
            raise DataError(f"{display_path(path)}: line {line}: no file name (tab-separated "
                            f"{' '.join(EVENT_COLUMNS)} expected)")
        events = out.setdefault(name, [])
        if not (on or off or label):
            continue                          # a file without events
        if not (on and off and label):
            raise DataError(f"{display_path(path)}: line {line}: expected onset, offset and "
                            f"event_label after the file name, got {fields[1:]!r}")
        onset = _float(on, path, line, "onset")
        offset = _float(off, path, line, "offset")
        if offset < onset:
            raise DataError(f"{display_path(path)}: line {line}: offset {off} is before onset "
                            f"{on}")
        events.append({"class": label, "onset": onset, "offset": offset})
    return out


__all__ = ["EVENT_COLUMNS", "check_names", "events_tsv", "file_names", "read_events_tsv",
           "score_file_name", "score_table", "tsv_text"]
