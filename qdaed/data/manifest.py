"""Manifests: CSV files that list clips, their labels and their split.

Format (a header line, then one clip per line; UTF-8; extra columns are ignored)::

    path,labels,split
    dogs/a.wav,dog,train
    street/b.flac,,test                      <- empty labels: a negative clip
    mixed/c.wav,dog;gunshot,validation

or, for AudioSet-style lists, ``ytid`` + ``start_seconds`` (``end_seconds`` optional) instead
of ``path``::

    ytid,start_seconds,end_seconds,labels,split
    --4gqARaEJE,0.000,10.000,dog,test

Columns:

* ``path``: audio file relative to the audio root (``--audio-root``); absolute paths are used
  as they are.
* ``ytid``, ``start_seconds``: used when ``path`` is absent or empty. The audio file is looked
  up in the audio root under these names, first match wins, each with extension ``.wav``,
  ``.flac`` or ``.ogg`` (in that order):

  1. ``{ytid}_{start_seconds:.3f}``   e.g. ``--4gqARaEJE_0.000.wav`` (one file per segment)
  2. ``{ytid}``                       e.g. ``--4gqARaEJE.wav`` (AudioSet has one segment per id)
  3. ``Y{ytid}``                      e.g. ``Y--4gqARaEJE.wav`` (the PANNs downloader's names)

* ``labels``: ``;``-separated class names from ``CLASSES`` (dog, baby_cry, gunshot); empty for
  a negative. Unknown or repeated names are errors. Training and validation use these.
* ``clean_labels``: optional, same form: the ground truth when ``labels`` are noisy (``qdaed
  synth`` writes both; corpus v2's ``labels`` are the observed, noisy ones). Read into
  ``Clip.clean_labels`` (None without the column; ``Clip.clean_targets`` then falls back to
  ``labels``); the pipeline's test metrics use them.
* ``split``: optional; one of train, validation, test, or ``unlabeled`` for a transfer set
  (its labels are ignored: such clips enter only distillation's soft term). ``SPLITS`` lists
  the three labelled splits; ``unlabeled`` is ``UNLABELED``, apart from them.
* ``group``: optional; the source recording (clips cut from one recording share it). The
  pipeline refuses a manifest in which a group has rows in two splits
  (:func:`qdaed.data.splits.check_manifest_groups`), and its seeded split of a manifest
  without a full ``split`` column keeps each group whole.

Anything malformed raises ``DataError`` naming the file and the line number (the header is
line 1).

Shipped manifests: the repository's ``data_manifests/*.csv`` (``audioset``, ``real_audio``,
``real_corpus``, ``real_corpus_transfer``)
are installed with the package, under ``qdaed/manifests/`` (setup.cfg maps the one folder
there; there is no second copy). :func:`manifests_dir` finds them in an install and in a
checkout; :func:`resolve_manifest` turns a command-line ``--manifest`` value into a path (an
existing file, else a shipped manifest's name); ``qdaed manifests path [NAME]`` prints where
they are.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os

from qdaed.data.audio import AUDIO_EXTENSIONS
from qdaed.errors import DataError, InputError
from qdaed.io.atomic import atomic_write_text

CLASSES = ("dog", "baby_cry", "gunshot")
SPLITS = ("train", "validation", "test")
UNLABELED = "unlabeled"   # a transfer set: used only in distillation's soft term
LABEL_SEPARATOR = ";"
SHIPPED_SUFFIX = ".csv"


@dataclasses.dataclass(frozen=True)
class Clip:
    """One manifest row. ``line`` is its line number in the CSV (the header is line 1)."""

    line: int
    labels: tuple
    path: str | None = None
    ytid: str | None = None
    start_seconds: float | None = None
    end_seconds: float | None = None
    split: str | None = None
    clean_labels: tuple | None = None    # the ground truth, when given apart from ``labels``
    group: str | None = None             # the source recording (``group`` column), if given

    @property
    def name(self):
        """How reports refer to the clip: its path, or ytid@start."""
        return self.path if self.path else f"{self.ytid}@{self.start_seconds:.3f}"

    def targets(self, classes=CLASSES):
        """Multi-hot tuple of 0/1 over ``classes`` (of ``labels``)."""
        return tuple(int(c in self.labels) for c in classes)

    def clean_targets(self, classes=CLASSES):
        """Multi-hot tuple over ``classes`` of ``clean_labels`` (``labels`` if None)."""
        truth = self.labels if self.clean_labels is None else self.clean_labels
        return tuple(int(c in truth) for c in classes)


def parse_labels(text, classes=CLASSES):
    """``"dog;gunshot"`` → ``("dog", "gunshot")``; ``ValueError`` on unknown or repeated names."""
    text = (text or "").strip()
    if not text:
        return ()
    names = [t.strip() for t in text.split(LABEL_SEPARATOR)]
    for n in names:
        if n not in classes:
            raise ValueError(f"unknown label {n!r} (known: {', '.join(classes)}; "
                             f"separate several with '{LABEL_SEPARATOR}')")
    if len(set(names)) != len(names):
        raise ValueError(f"label repeated in {text!r}")
    return tuple(names)


def read_manifest(path, classes=CLASSES):
    """Parse a manifest CSV into a list of :class:`Clip`; ``DataError`` naming file and line."""
    path = os.fspath(path)
    try:
        with open(path, "r", encoding="utf-8-sig", newline="") as fh:   # a BOM is dropped
            text = fh.read()
    except FileNotFoundError:
        raise DataError(f"{path}: manifest not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the manifest ({exc})") from None
    return parse_manifest(text, path, classes)


def parse_manifest(text, name="<manifest>", classes=CLASSES):
    """Parse manifest CSV text (see the module docstring); ``name`` is used in errors."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{name}: empty manifest (expected a header line)") from None
    except csv.Error as exc:
        raise DataError(f"{name}, line 1: {exc}") from None
    cols = {h.strip(): i for i, h in enumerate(header)}
    if "labels" not in cols:
        raise DataError(f"{name}, line 1: no 'labels' column in the header {header}")
    if "path" not in cols and not {"ytid", "start_seconds"} <= cols.keys():
        raise DataError(f"{name}, line 1: the header needs a 'path' column or 'ytid' and "
                        f"'start_seconds' columns, got {header}")

    clips, first_line = [], {}
    try:
        while True:
            line = reader.line_num + 1       # a record's first line (a quoted field may span
            try:                             # several; line_num is then its last)
                row = next(reader)
            except StopIteration:
                break
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < len(header):
                raise DataError(f"{name}, line {line}: {len(row)} field(s), the header has "
                                f"{len(header)}")
            clip = _parse_row(row, cols, classes, f"{name}, line {line}", line)
            if clip.name in first_line:
                raise DataError(f"{name}, line {line}: {clip.name!r} is listed again (first at "
                                f"line {first_line[clip.name]}); a clip may appear once, or it "
                                f"could land in two splits")
            first_line[clip.name] = line
            clips.append(clip)
    except csv.Error as exc:
        raise DataError(f"{name}, line {reader.line_num}: {exc}") from None
    return clips


def _parse_row(row, cols, classes, where, line):
    def get(col):
        return row[cols[col]].strip() if col in cols else ""

    try:
        labels = parse_labels(get("labels"), classes)
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None
    clean = None
    if "clean_labels" in cols:
        try:
            clean = parse_labels(get("clean_labels"), classes)
        except ValueError as exc:
            raise DataError(f"{where}: clean_labels: {exc}") from None
    split = get("split") or None
    if split is not None and split not in (*SPLITS, UNLABELED):
        raise DataError(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}, "
                        f"{UNLABELED}")
    path = get("path") or None
    ytid = get("ytid") or None
    start = end = None
    if path is None:
        if ytid is None:
            raise DataError(f"{where}: neither 'path' nor 'ytid' is given")
        start = _seconds(get("start_seconds"), "start_seconds", where, required=True)
        end = _seconds(get("end_seconds"), "end_seconds", where, required=False)
        if end is not None and end <= start:
            raise DataError(f"{where}: end_seconds {end} is not after start_seconds {start}")
    return Clip(line=line, labels=labels, path=path, ytid=ytid, start_seconds=start,
                end_seconds=end, split=split, clean_labels=clean, group=get("group") or None)


def _seconds(text, column, where, required):
    if not text:
        if required:
            raise DataError(f"{where}: '{column}' is empty")
        return None
    try:
        v = float(text)
    except ValueError:
        raise DataError(f"{where}: '{column}' should be a number of seconds, got {text!r}") \
            from None
    if not (v >= 0 and v < float("inf")):
        raise DataError(f"{where}: '{column}' should be a finite number >= 0, got {text!r}")
    return v


def candidate_names(clip):
    """File names tried, in order, for a ytid clip (see the module docstring)."""
    stems = (f"{clip.ytid}_{clip.start_seconds:.3f}", clip.ytid, f"Y{clip.ytid}")
    return [stem + ext for stem in stems for ext in AUDIO_EXTENSIONS]


def resolve_audio(clip, audio_root):
    """Path of the clip's audio file under ``audio_root``.

    For a ``path`` clip this is root/path whether or not it exists (the reader reports a
    missing file). For a ytid clip it is the first existing candidate, or the first
    candidate name when none exists, so the report says which name was expected.
    """
    root = os.fspath(audio_root)
    if clip.path:
        return os.path.join(root, clip.path)
    names = candidate_names(clip)
    for n in names:
        p = os.path.join(root, n)
        if os.path.isfile(p):
            return p
    return os.path.join(root, names[0])


def write_manifest(path, rows, columns):
    """Write dict rows to a CSV with the given column order, atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_text(path, buf.getvalue())


def manifests_dir() -> str:
    """Folder of the manifests shipped with qdaed.

    In an installed wheel it is ``qdaed/manifests`` (setup.cfg maps the repository's
    ``data_manifests/`` to that package folder); in a checkout or an unpacked sdist, where the
    package is imported from the source tree, it is ``data_manifests/`` beside ``qdaed/``.
    ``DataError`` if neither exists (a broken install).
    """
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates = (os.path.join(package, "manifests"),
                  os.path.join(os.path.dirname(package), "data_manifests"))
    for d in candidates:
        if os.path.isdir(d):
            return d
    raise DataError(f"the manifests shipped with qdaed are missing: neither {candidates[0]} "
                    f"nor {candidates[1]} exists (reinstall qdaed)")


def shipped_manifests() -> dict:
    """``{name: path}`` of the shipped manifests (``audioset``, ``real_audio``, …), by name."""
    d = manifests_dir()
    return {f[:-len(SHIPPED_SUFFIX)]: os.path.join(d, f) for f in sorted(os.listdir(d))
            if f.endswith(SHIPPED_SUFFIX) and os.path.isfile(os.path.join(d, f))}


def shipped_manifest(name: str) -> str:
    """Path of the shipped manifest ``name``; ``InputError`` listing the names otherwise."""
    found = shipped_manifests()
    if name not in found:
        raise InputError(f"no manifest named {name!r} is shipped with qdaed (shipped: "
                         f"{', '.join(found) or 'none'}; in {manifests_dir()})")
    return found[name]


def resolve_manifest(value: str | os.PathLike[str], option: str = "--manifest") -> str:
    """A command line's manifest value as a path: an existing file as it is, else the name of
    a shipped manifest (``audioset``, ``real_audio``, ``real_corpus``, ``real_corpus_transfer``).

    A file wins over a name, so every path that worked before still does. Anything else is a
    ``DataError`` that names ``option``, the value and the shipped names, raised before any
    work starts.
    """
    value = os.fspath(value)
    if os.path.isfile(value):
        return value
    found = shipped_manifests()
    if value in found:
        return found[value]
    raise DataError(f"{option} {value}: no such file, and not the name of a manifest shipped "
                    f"with qdaed ({', '.join(found)}; `qdaed manifests path` shows where "
                    f"they are)")
