"""Manifests of real corpora: the shipped ``real_corpus*.csv`` and the official layouts of
UrbanSound8K, ESC-50 and the donateacry-corpus in a user's copy.

Every builder returns manifest rows (dicts) with a ``group`` column naming the source
recording, so that no recording is in two splits (qdaed.data.splits):

* :func:`real_corpus_rows`: ``../shared/data/real_corpus/labels.csv`` → rows split train /
  validation / test by :func:`~qdaed.data.splits.stratified_group_split`, optionally with an
  ``unlabeled`` part carved from the training groups (:func:`~qdaed.data.splits.carve_unlabeled`);
  ``data_manifests/README.md`` documents the procedure and the counts.
* :func:`urbansound8k_rows`: ``ROOT/metadata/UrbanSound8K.csv`` + ``ROOT/audio/fold1..10/``;
  dog_bark → dog, gun_shot → gunshot, the other eight classes negatives; group
  ``freesound:{fsID}``; split by official fold.
* :func:`esc50_rows`: ``ROOT/meta/esc50.csv`` + ``ROOT/audio/``; dog → dog, crying_baby →
  baby_cry, the other 48 categories negatives (ESC-50 has no gunshot class); group
  ``freesound:{src_file}``; split by official fold.
* :func:`donateacry_rows`: ``ROOT/donateacry_corpus_cleaned_and_updated_data/{reason}/*.wav``
  (every file a baby cry; no negatives); group ``donateacry:{uuid}`` (the app install, the
  first 36 characters of the file name); no official folds, so a seeded split by group.

Splits by fold: a Freesound recording whose slices the official metadata puts in folds of two
different splits (UrbanSound8K lists five fsIDs in two folds) is moved whole to the split that
holds most of its slices (ties: the earlier of train, validation, test); the builders return
these moves so the command can print them.

Audio: each official ``.wav`` name is looked up as ``.wav``, then ``.flac``, then ``.ogg``
(a copy converted to FLAC works as it is); a file found under none of them keeps its official
name in the manifest and is counted as missing (the feature store lists it when the pipeline
runs). A missing dataset root, metadata file or audio folder is a ``DataError`` naming it.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter, defaultdict

from qdaed.data.audio import AUDIO_EXTENSIONS
from qdaed.data.manifest import CLASSES, SPLITS, UNLABELED, parse_labels, write_manifest
from qdaed.data.splits import carve_unlabeled, stratified_group_split
from qdaed.errors import DataError, InputError
from qdaed.validate import check_int

REAL_CORPUS_COLUMNS = ("path", "labels", "split", "group", "source", "source_class",
                       "us8k_fold", "salience", "license")
REAL_CORPUS_FRACTIONS = (0.6, 0.2, 0.2)
REAL_CORPUS_SEED = 0
REAL_CORPUS_UNLABELED = 0.2     # real_corpus_transfer.csv: share of the training clips

US8K_METADATA = os.path.join("metadata", "UrbanSound8K.csv")
US8K_FOLDS = tuple(range(1, 11))
US8K_CLASSES = ("air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
                "engine_idling", "gun_shot", "jackhammer", "siren", "street_music")
US8K_MAP = {"dog_bark": "dog", "gun_shot": "gunshot"}
US8K_COLUMNS = ("path", "labels", "split", "group", "source_class", "fold", "salience")

ESC50_METADATA = os.path.join("meta", "esc50.csv")
ESC50_FOLDS = tuple(range(1, 6))
ESC50_MAP = {"dog": "dog", "crying_baby": "baby_cry"}
ESC50_COLUMNS = ("path", "labels", "split", "group", "source_class", "fold", "esc10", "take")

DONATEACRY_DIR = "donateacry_corpus_cleaned_and_updated_data"
DONATEACRY_COLUMNS = ("path", "labels", "split", "group", "source_class")
_UUID = re.compile(r"^([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                   r"[0-9A-Fa-f]{12})-")

SPLIT_ORDER = (*SPLITS, UNLABELED)


# --------------------------------------------------------------------------- shared helpers

def read_table(path, required):
    """Rows (dicts, with ``_line``, the file's line number) of a CSV with a header; a
    ``DataError`` naming the file when it is missing or lacks a ``required`` column, or the file
    and line when a row is short."""
    path = os.fspath(path)
    try:
        with open(path, "r", encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(f"{path}, line 1: no column(s) {', '.join(missing)} in the "
                                f"header {header}")
            rows = []
            for row in reader:
                if None in row.values() or None in row:
                    raise DataError(f"{path}, line {reader.line_num}: expected "
                                    f"{len(header)} fields")
                rows.append({**{k: v.strip() for k, v in row.items()},
                             "_line": reader.line_num})
    except FileNotFoundError:
        raise DataError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read it ({exc})") from None
    return rows


def _need_dir(path, what):
    if not os.path.isdir(path):
        raise DataError(f"{path}: {what} not found (no such folder)")


def _need_file(path, what):
    if not os.path.isfile(path):
        raise DataError(f"{path}: {what} not found")


def resolve_audio_name(root, relative):
    """(path relative to ``root``, found?) of an official file name: its stem with the first
    of ``AUDIO_EXTENSIONS`` that exists, else the official name unchanged."""
    stem = os.path.splitext(relative)[0]
    for ext in AUDIO_EXTENSIONS:
        if os.path.isfile(os.path.join(root, stem + ext)):
            return stem + ext, True
    return relative, False


def _fold(row, path, folds):
    try:
        f = int(row["fold"])
    except ValueError:
        f = None
    if f not in folds:
        raise DataError(f"{path}, line {row['_line']}: fold {row['fold']!r} is not one of "
                        f"{folds[0]}..{folds[-1]}")
    return f


def fold_splits(folds, validation_fold, test_fold, all_folds):
    """{fold: split}: ``test_fold`` → test, ``validation_fold`` → validation, the rest train."""
    validation_fold = check_int("validation fold", validation_fold, lo=all_folds[0],
                                hi=all_folds[-1])
    test_fold = check_int("test fold", test_fold, lo=all_folds[0], hi=all_folds[-1])
    if validation_fold == test_fold:
        raise InputError(f"validation fold and test fold: expected two different folds, got "
                         f"{test_fold} for both")
    return {f: "test" if f == test_fold else "validation" if f == validation_fold else "train"
            for f in folds}


def _settle_straddles(rows):
    """Move every group whose rows are in two splits to the split holding most of them (ties:
    the earlier split); returns [(group, {split: rows before}, split after)]."""
    by_group = defaultdict(Counter)
    for r in rows:
        by_group[r["group"]][r["split"]] += 1
    moves = []
    for g, count in sorted(by_group.items()):
        if len(count) > 1:
            to = max(count, key=lambda s: (count[s], -SPLIT_ORDER.index(s)))
            moves.append((g, dict(count), to))
    settled = {g: to for g, _, to in moves}
    for r in rows:
        if r["group"] in settled:
            r["split"] = settled[r["group"]]
    return moves


class Built:
    """A builder's result: ``rows`` (manifest dicts), ``columns``, ``missing`` (official audio
    names found under no extension) and ``moves`` (groups moved whole to one split)."""

    def __init__(self, rows, columns, missing=(), moves=()):
        self.rows, self.columns = rows, columns
        self.missing, self.moves = list(missing), list(moves)

    def write(self, path):
        write_manifest(path, self.rows, self.columns)


def split_counts(rows, classes=CLASSES):
    """{split: {class or "negative" or "all": (clips, groups)}} of manifest rows (splits in the
    order train, validation, test, unlabeled, those present)."""
    clips, groups = defaultdict(Counter), defaultdict(lambda: defaultdict(set))
    for r in rows:
        labels = parse_labels(r["labels"], classes)
        for key in (*labels, *(() if labels else ("negative",)), "all"):
            clips[r["split"]][key] += 1
            groups[r["split"]][key].add(r["group"])
    return {s: {k: (clips[s][k], len(groups[s][k])) for k in (*classes, "negative", "all")}
            for s in SPLIT_ORDER if s in clips}


def check_positives(rows, where, classes=CLASSES):
    """``DataError`` when a class has no positive clip in a labelled split present in rows."""
    counts = split_counts(rows, classes)
    empty = [f"{c} in {s}" for s in SPLITS if s in counts for c in classes
             if counts[s][c][0] == 0]
    if empty:
        raise DataError(f"{where}: no positive clip of {', '.join(empty)}; every class needs "
                        f"positives in every labelled split (try another seed)")


# --------------------------------------------------------------------------- real corpus

REAL_CORPUS_REQUIRED = ("path", "labels", "group_id", "source", "source_class", "us8k_fold",
                        "salience", "license")


def real_corpus_stratum(row):
    """The stratum of a real-corpus row: its label and source, and for a negative its
    UrbanSound8K class (so every negative class and both baby-cry sources reach every split)."""
    return (row["labels"], row["source"], "" if row["labels"] else row["source_class"])


def real_corpus_rows(labels_csv, *, seed=REAL_CORPUS_SEED, fractions=REAL_CORPUS_FRACTIONS,
                     unlabeled_fraction=0.0):
    """Manifest rows of the real corpus, in ``labels.csv``'s order (qdaed.data.splits has the
    procedure): train / validation / test by group and stratum, then ``unlabeled_fraction`` of
    each stratum's training clips moved as whole groups to ``unlabeled``. ``DataError`` when a
    class ends with no positive in a labelled split."""
    table = read_table(labels_csv, REAL_CORPUS_REQUIRED)
    if not table:
        raise DataError(f"{labels_csv}: lists no clips")
    for r in table:
        try:
            parse_labels(r["labels"])
        except ValueError as exc:
            raise DataError(f"{labels_csv}, line {r['_line']}: {exc}") from None
        if not r["group_id"] or not r["path"]:
            raise DataError(f"{labels_csv}, line {r['_line']}: empty path or group_id")
    groups = [r["group_id"] for r in table]
    strata = [real_corpus_stratum(r) for r in table]
    splits = stratified_group_split(groups, strata, tuple(fractions), seed)
    splits = carve_unlabeled(groups, strata, splits, unlabeled_fraction, seed)
    rows = [{"path": r["path"], "labels": r["labels"], "split": s, "group": r["group_id"],
             "source": r["source"], "source_class": r["source_class"],
             "us8k_fold": r["us8k_fold"], "salience": r["salience"], "license": r["license"]}
            for r, s in zip(table, splits)]
    check_positives(rows, f"{labels_csv} (seed {seed})")
    return Built(rows, REAL_CORPUS_COLUMNS)


# --------------------------------------------------------------------------- official layouts

def urbansound8k_rows(root, *, validation_fold=9, test_fold=10):
    """Manifest rows of UrbanSound8K in its official layout under ``root`` (module docstring):
    paths ``audio/fold{f}/{slice}`` relative to ``root``; fold ``test_fold`` → test,
    ``validation_fold`` → validation, the other eight → train."""
    root = os.fspath(root)
    _need_dir(root, "the UrbanSound8K folder")
    meta = os.path.join(root, US8K_METADATA)
    _need_file(meta, "UrbanSound8K's metadata (metadata/UrbanSound8K.csv)")
    missing_dirs = [f"audio/fold{f}" for f in US8K_FOLDS
                    if not os.path.isdir(os.path.join(root, "audio", f"fold{f}"))]
    if missing_dirs:
        raise DataError(f"{root}: UrbanSound8K's audio folder(s) {', '.join(missing_dirs)} not "
                        f"found (expected audio/fold1 … audio/fold10)")
    table = read_table(meta, ("slice_file_name", "fsID", "salience", "fold", "class"))
    to_split = fold_splits(US8K_FOLDS, validation_fold, test_fold, US8K_FOLDS)
    rows, missing = [], []
    for r in table:
        if r["class"] not in US8K_CLASSES:
            raise DataError(f"{meta}, line {r['_line']}: class {r['class']!r} is not one of "
                            f"UrbanSound8K's ten classes")
        fold = _fold(r, meta, US8K_FOLDS)
        path, found = resolve_audio_name(root, f"audio/fold{fold}/{r['slice_file_name']}")
        if not found:
            missing.append(path)
        rows.append({"path": path, "labels": US8K_MAP.get(r["class"], ""),
                     "split": to_split[fold], "group": f"freesound:{r['fsID']}",
                     "source_class": r["class"], "fold": fold, "salience": r["salience"]})
    moves = _settle_straddles(rows)
    return Built(rows, US8K_COLUMNS, missing, moves)


def esc50_rows(root, *, validation_fold=4, test_fold=5):
    """Manifest rows of ESC-50 in its official layout under ``root`` (module docstring): paths
    ``audio/{filename}``; fold ``test_fold`` → test, ``validation_fold`` → validation, the other
    three → train."""
    root = os.fspath(root)
    _need_dir(root, "the ESC-50 folder")
    meta = os.path.join(root, ESC50_METADATA)
    _need_file(meta, "ESC-50's metadata (meta/esc50.csv)")
    _need_dir(os.path.join(root, "audio"), "ESC-50's audio folder (audio/)")
    table = read_table(meta, ("filename", "fold", "target", "category", "esc10", "src_file",
                              "take"))
    to_split = fold_splits(ESC50_FOLDS, validation_fold, test_fold, ESC50_FOLDS)
    rows, missing = [], []
    for r in table:
        fold = _fold(r, meta, ESC50_FOLDS)
        path, found = resolve_audio_name(root, f"audio/{r['filename']}")
        if not found:
            missing.append(path)
        rows.append({"path": path, "labels": ESC50_MAP.get(r["category"], ""),
                     "split": to_split[fold], "group": f"freesound:{r['src_file']}",
                     "source_class": r["category"], "fold": fold, "esc10": r["esc10"],
                     "take": r["take"]})
    moves = _settle_straddles(rows)
    return Built(rows, ESC50_COLUMNS, missing, moves)


def donateacry_rows(root, *, seed=0, fractions=REAL_CORPUS_FRACTIONS):
    """Manifest rows of the donateacry-corpus's cleaned data under ``root`` (module
    docstring): paths ``donateacry_corpus_cleaned_and_updated_data/{reason}/{file}``, every
    clip ``baby_cry``, ``source_class`` the reason folder; split by group (the app install's
    uuid) with :func:`~qdaed.data.splits.stratified_group_split` (one stratum)."""
    root = os.fspath(root)
    _need_dir(root, "the donateacry-corpus folder")
    data = os.path.join(root, DONATEACRY_DIR)
    _need_dir(data, f"the donateacry-corpus's cleaned audio ({DONATEACRY_DIR}/)")
    rows = []
    for reason in sorted(os.listdir(data)):
        folder = os.path.join(data, reason)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if os.path.splitext(name)[1].lower() not in AUDIO_EXTENSIONS:
                continue
            m = _UUID.match(name)
            if m is None:
                raise DataError(f"{os.path.join(folder, name)}: the file name does not start "
                                f"with the app install's uuid (8-4-4-4-12 hex digits, then "
                                f"'-'), the corpus's naming")
            rows.append({"path": f"{DONATEACRY_DIR}/{reason}/{name}", "labels": "baby_cry",
                         "group": f"donateacry:{m.group(1)}", "source_class": reason})
    if not rows:
        raise DataError(f"{data}: no audio files in its reason folders (belly_pain, burping, "
                        f"discomfort, hungry, tired)")
    groups = [r["group"] for r in rows]
    for r, s in zip(rows, stratified_group_split(groups, [""] * len(rows), tuple(fractions),
                                                 seed)):
        r["split"] = s
    return Built(rows, DONATEACRY_COLUMNS)
