"""AudioSet subset manifests for the paper's three events, built from the official CSVs.

Input: a folder holding the AudioSet v1 segment lists (``balanced_train_segments.csv``,
``eval_segments.csv``, and ``unbalanced_train_segments.csv`` or the 41 parts
``unbalanced_partial_csvs/unbalanced_train_segments_part*.csv``) and ``ontology.json``.
Each data line reads ``YTID, start_seconds, end_seconds, "mid,mid,…"``; lines starting with
``#`` (the original headers) and lines reading ``empty`` (the headers of the 41 parts) are
skipped; any other malformed line is a ``DataError`` naming the file and line.

Classes (AudioSet MID → qdaed name): Dog ``/m/0bt9lr`` → dog; Baby cry, infant cry
``/t/dd00002`` → baby_cry; Gunshot, gunfire ``/m/032s66`` → gunshot.

Definition of a positive (the default, ``with_descendants=False``): the segment carries the
class's own MID. This is the definition closest to the paper's counts (see
``data_manifests/README.md``); ``with_descendants=True`` also counts segments that carry only a
descendant in the ontology (Bark, Howl, … for Dog; Machine gun, Cap gun, … for Gunshot).

Negatives: segments that carry none of the three MIDs *and none of their descendants* (a
segment labelled only "Bark" is not a clean negative for dog, whatever the positive
definition). From each source list, ``round(negative_ratio × positives in that list)`` of them
are drawn uniformly without replacement with ``numpy.random.default_rng(seed)``.

Splits: ``eval_segments`` → test. The balanced and unbalanced training lists together → train
and validation: clips are grouped by their label set (e.g. ``dog``, ``dog;gunshot``, negative),
each group is shuffled by the same generator and its first ``round(validation_fraction × n)``
clips go to validation, so every class keeps about that fraction in validation.

The output manifest has the columns ``ytid,start_seconds,end_seconds,labels,split,source``
(``source`` = balanced / unbalanced / eval; an extra column the manifest reader ignores).
"""

from __future__ import annotations

import csv
import glob
import json
import os
from collections import Counter, defaultdict

import numpy as np

from qdaed.data.manifest import CLASSES, write_manifest
from qdaed.errors import DataError
from qdaed.validate import check_float, check_int

TARGET_MIDS = {"dog": "/m/0bt9lr", "baby_cry": "/t/dd00002", "gunshot": "/m/032s66"}
SOURCES = ("balanced", "unbalanced", "eval")
COLUMNS = ("ytid", "start_seconds", "end_seconds", "labels", "split", "source")


def source_files(audioset_dir):
    """{source: [csv paths]} of the three lists in ``audioset_dir``; ``DataError`` if missing."""
    d = os.fspath(audioset_dir)
    files = {"balanced": [os.path.join(d, "balanced_train_segments.csv")],
             "eval": [os.path.join(d, "eval_segments.csv")]}
    single = os.path.join(d, "unbalanced_train_segments.csv")
    parts = sorted(glob.glob(os.path.join(d, "unbalanced_partial_csvs",
                                          "unbalanced_train_segments_part*.csv")))
    files["unbalanced"] = [single] if os.path.isfile(single) else parts
    if not files["unbalanced"]:
        raise DataError(f"{d}: no unbalanced_train_segments.csv nor "
                        "unbalanced_partial_csvs/unbalanced_train_segments_part*.csv")
    for paths in files.values():
        for p in paths:
            if not os.path.isfile(p):
                raise DataError(f"{p}: AudioSet list not found")
    return {s: files[s] for s in SOURCES}


def read_segments(path):
    """Yield (line number, ytid, start, end, tuple of MIDs) for each data line of a list."""
    with open(path, "r", encoding="utf-8", newline="") as fh:
        for number, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#") or text == "empty":
                continue
            try:
                fields = next(csv.reader([text], skipinitialspace=True))
            except csv.Error as exc:
                raise DataError(f"{path}, line {number}: {exc}") from None
            if len(fields) != 4:
                raise DataError(f"{path}, line {number}: expected 4 fields (YTID, start, end, "
                                f"\"labels\"), got {len(fields)}: {text[:80]!r}")
            ytid, start, end, mids = (f.strip() for f in fields)
            try:
                start_s, end_s = float(start), float(end)
            except ValueError:
                raise DataError(f"{path}, line {number}: start/end are not numbers: "
                                f"{start!r}, {end!r}") from None
            if not ytid or not mids:
                raise DataError(f"{path}, line {number}: empty YTID or label list")
            yield number, ytid, start_s, end_s, tuple(m.strip() for m in mids.split(","))


def load_descendants(ontology_path):
    """{mid: frozenset of all descendant MIDs} from AudioSet's ``ontology.json``."""
    try:
        with open(ontology_path, "r", encoding="utf-8") as fh:
            nodes = json.load(fh)
        children = {n["id"]: list(n.get("child_ids", [])) for n in nodes}
    except FileNotFoundError:
        raise DataError(f"{ontology_path}: ontology not found") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{ontology_path}: not an AudioSet ontology ({exc})") from None

    def walk(mid, seen):
        for c in children.get(mid, ()):
            if c not in seen:
                seen.add(c)
                walk(c, seen)
        return seen

    return {mid: frozenset(walk(mid, set())) for mid in children}


def class_matchers(descendants, with_descendants):
    """{class: set of MIDs that make a positive}, and the set of MIDs that bar a negative."""
    positive, barred = {}, set()
    for name, mid in TARGET_MIDS.items():
        family = {mid} | set(descendants.get(mid, ()))
        positive[name] = family if with_descendants else {mid}
        barred |= family
    return positive, barred


def count_classes(audioset_dir):
    """Per source list: rows, and per class the exact and with-descendants positive counts.

    Returns {source: {"rows": n, "dog": (exact, with_descendants), …}}, plus "all" and
    "train" (balanced + unbalanced) totals — the table of ``data_manifests/README.md``.
    """
    files = source_files(audioset_dir)
    desc = load_descendants(os.path.join(os.fspath(audioset_dir), "ontology.json"))
    exact, _ = class_matchers(desc, False)
    wide, _ = class_matchers(desc, True)
    table = {}
    for source, paths in files.items():
        counts = Counter()
        for p in paths:
            for _, _, _, _, mids in read_segments(p):
                counts["rows"] += 1
                m = set(mids)
                for c in CLASSES:
                    counts[(c, 0)] += bool(m & exact[c])
                    counts[(c, 1)] += bool(m & wide[c])
        table[source] = counts
    table["all"] = sum((table[s] for s in SOURCES), Counter())
    table["train"] = table["balanced"] + table["unbalanced"]
    return {k: {"rows": v["rows"], **{c: (v[(c, 0)], v[(c, 1)]) for c in CLASSES}}
            for k, v in table.items()}


def build_manifest(audioset_dir, *, negative_ratio=1.0, validation_fraction=0.1, seed=0,
                   with_descendants=False):
    """Rows (dicts with ``COLUMNS``) of the subset manifest; see the module docstring."""
    negative_ratio = check_float("negative_ratio", negative_ratio, 0.0)
    validation_fraction = check_float("validation_fraction", validation_fraction, 0.0, 1.0)
    seed = check_int("seed", seed, lo=0)
    files = source_files(audioset_dir)
    desc = load_descendants(os.path.join(os.fspath(audioset_dir), "ontology.json"))
    positive, barred = class_matchers(desc, with_descendants)
    rng = np.random.default_rng(seed)

    rows = []
    for source, paths in files.items():
        negatives = []  # (file index, line number) of every candidate negative
        for fi, p in enumerate(paths):
            for number, ytid, start, end, mids in read_segments(p):
                m = set(mids)
                labels = [c for c in CLASSES if m & positive[c]]
                if labels:
                    rows.append(_row(ytid, start, end, labels, source))
                elif not (m & barred):
                    negatives.append((fi, number))
        n_pos = sum(1 for r in rows if r["source"] == source)
        want = min(len(negatives), int(round(negative_ratio * n_pos)))
        chosen = set(negatives[i] for i in rng.choice(len(negatives), size=want, replace=False))
        for fi, p in enumerate(paths):
            if not any(c[0] == fi for c in chosen):
                continue
            for number, ytid, start, end, _ in read_segments(p):
                if (fi, number) in chosen:
                    rows.append(_row(ytid, start, end, [], source))

    groups = defaultdict(list)
    for i, r in enumerate(rows):
        if r["source"] == "eval":
            r["split"] = "test"
        else:
            groups[r["labels"]].append(i)
    for key in sorted(groups):
        idx = groups[key]
        order = rng.permutation(len(idx))
        n_val = int(round(validation_fraction * len(idx)))
        for rank, j in enumerate(order):
            rows[idx[j]]["split"] = "validation" if rank < n_val else "train"
    return rows


def _row(ytid, start, end, labels, source):
    return {"ytid": ytid, "start_seconds": f"{start:.3f}", "end_seconds": f"{end:.3f}",
            "labels": ";".join(labels), "split": None, "source": source}


def manifest_counts(rows):
    """{split: {class or "negative" or "clips": count}} of built rows (for the README)."""
    out = {}
    for split in ("train", "validation", "test"):
        sel = [r for r in rows if r["split"] == split]
        c = {name: sum(name in r["labels"].split(";") for r in sel) for name in CLASSES}
        c["negative"] = sum(1 for r in sel if not r["labels"])
        c["clips"] = len(sel)
        out[split] = c
    out["all"] = {k: sum(out[s][k] for s in ("train", "validation", "test"))
                  for k in out["train"]}
    return out


def write_audioset_manifest(path, rows):
    write_manifest(path, rows, COLUMNS)
