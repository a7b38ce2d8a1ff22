"""Splits by source recording: whole groups to train / validation / test, and ``unlabeled``.

Clips cut from one recording (slices of one Freesound file, cries from one app install) share
the recording's sound, so a recording in two splits lets a model be tested on what it trained
on. Every splitter here moves whole groups (``group`` = the source recording) and is
deterministic from its seed.

:func:`stratified_group_split` (the procedure of the shipped ``real_corpus*.csv``):

1. A group's stratum is the stratum of its rows (e.g. its label and source; the rows of one
   group must agree). Strata are taken in sorted order, and within a stratum the groups in
   sorted order, permuted by one ``numpy.random.default_rng(seed)`` consumed stratum after
   stratum.
2. Within a stratum, each group in the permuted order goes to the split furthest below its
   targets: the deficit of split s is (f_s·R − r_s)/R + (f_s·G − g_s)/G, with R and G the
   stratum's rows and groups, r_s and g_s those already in s (ties to the earlier name).
   Counting groups as well as rows keeps both near the fractions when group sizes are
   skewed (gunshot in the real corpus: 22 recordings, three of them 40 of its 79 clips; by
   rows alone a test split could be two recordings). A stratum with fewer groups than splits
   leaves a split without it; callers that need every class in every split check it
   (:func:`qdaed.data.corpora.check_positives`).

:func:`carve_unlabeled` takes a share of the *training* groups out as ``unlabeled`` (a
transfer set), stratum by stratum, by the same procedure with fractions (1 − f, f) and
``default_rng([seed, 1])``; validation and test are never touched, so a manifest with and one
without an unlabelled part have the same validation and test groups.

:func:`group_straddles` lists the groups found in more than one split;
:func:`check_manifest_groups` turns them into the ``DataError`` with which the pipeline refuses
such a manifest.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from qdaed.data.manifest import SPLITS, UNLABELED
from qdaed.errors import DataError, InputError
from qdaed.validate import check_float, check_int


def _group_table(groups, strata):
    """({group: number of rows}, {group: stratum}); InputError when a group's rows disagree."""
    if len(groups) != len(strata):
        raise InputError(f"groups, strata: expected one of each per row, got {len(groups)} "
                         f"and {len(strata)}")
    size, stratum = defaultdict(int), {}
    for g, s in zip(groups, strata):
        size[g] += 1
        if stratum.setdefault(g, s) != s:
            raise InputError(f"group {g!r}: its rows are in two strata ({stratum[g]!r} and "
                             f"{s!r}); a group is split as a whole, so it needs one stratum")
    return size, stratum


def _check_fractions(fractions, names):
    if not isinstance(fractions, (list, tuple)) or len(fractions) != len(names):
        raise InputError(f"fractions: expected {len(names)} fractions ({', '.join(names)}), "
                         f"got {fractions!r}")
    fr = [check_float("fractions", f, lo=0.0, hi=1.0) for f in fractions]
    if any(f <= 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-9:
        raise InputError(f"fractions: expected positive fractions summing to 1, got "
                         f"{fractions!r}")
    return fr


def _deal(keys, size, fractions, names, rng):
    """{group: name} for the groups ``keys`` (sorted) of one stratum (module docstring, 2)."""
    order = [keys[i] for i in rng.permutation(len(keys))]
    rows, groups = sum(size[k] for k in keys), len(keys)
    got_rows, got_groups = [0] * len(names), [0] * len(names)
    which = {}
    for k in order:
        deficits = [(f * rows - r) / rows + (f * groups - g) / groups
                    for f, r, g in zip(fractions, got_rows, got_groups)]
        j = deficits.index(max(deficits))
        which[k] = names[j]
        got_rows[j] += size[k]
        got_groups[j] += 1
    return which


def stratified_group_split(groups, strata, fractions=(0.6, 0.2, 0.2), seed=0, names=SPLITS):
    """The split of every row (a list of ``names``), whole groups per split, per stratum.

    groups, strata: one hashable, sortable key per row (the source recording; e.g. the label).
    fractions: the share of each stratum's rows aimed at for each of ``names``. The procedure is
    the module docstring's; the same inputs and seed give the same list.
    """
    seed = check_int("seed", seed, lo=0)
    fr = _check_fractions(fractions, names)
    size, stratum = _group_table(groups, strata)
    by_stratum = defaultdict(list)
    for g in sorted(size):
        by_stratum[stratum[g]].append(g)
    rng = np.random.default_rng(seed)
    which = {}
    for s in sorted(by_stratum):
        which.update(_deal(by_stratum[s], size, fr, names, rng))
    return [which[g] for g in groups]


def carve_unlabeled(groups, strata, splits, fraction, seed=0):
    """``splits`` with about ``fraction`` of each stratum's training rows moved, as whole
    groups, to ``unlabeled`` (module docstring); validation and test rows are kept as they are.
    fraction 0 returns the splits unchanged."""
    seed = check_int("seed", seed, lo=0)
    fraction = check_float("fraction", fraction, lo=0.0, hi=1.0)
    if fraction == 1.0:
        raise InputError("fraction: expected less than 1 (the training split needs clips)")
    out = list(splits)
    if len(out) != len(groups):
        raise InputError(f"splits: expected one per row ({len(groups)}), got {len(out)}")
    if fraction == 0.0:
        return out
    train = [i for i, s in enumerate(out) if s == "train"]
    size, stratum = _group_table([groups[i] for i in train], [strata[i] for i in train])
    by_stratum = defaultdict(list)
    for g in sorted(size):
        by_stratum[stratum[g]].append(g)
    rng = np.random.default_rng([seed, 1])
    which = {}
    for s in sorted(by_stratum):
        which.update(_deal(by_stratum[s], size, [1.0 - fraction, fraction],
                           ("train", UNLABELED), rng))
    for i in train:
        out[i] = which[groups[i]]
    return out


def group_straddles(groups, splits):
    """{group: sorted splits} of every group whose rows are in more than one split (rows whose
    group is None are their own group and never straddle)."""
    seen = defaultdict(set)
    for g, s in zip(groups, splits):
        if g is not None:
            seen[g].add(s)
    order = {s: i for i, s in enumerate((*SPLITS, UNLABELED))}
    return {g: sorted(v, key=lambda s: order.get(s, len(order))) for g, v in sorted(seen.items())
            if len(v) > 1}


SEEDED = "split by the seed"    # rows without a split in a manifest whose split column has gaps


def effective_splits(clips):
    """The split each manifest row ends in as far as the manifest decides it: its ``split``
    when every row has one; otherwise ``unlabeled`` rows stay so and the others are
    :data:`SEEDED` (the pipeline splits them by group with its seed, whole groups together)."""
    if all(c.split for c in clips):
        return [c.split for c in clips]
    return [UNLABELED if c.split == UNLABELED else SEEDED for c in clips]


def check_manifest_groups(clips, name):
    """``DataError`` when a manifest's ``group`` (source recording) has rows in two splits of
    train, validation, test and unlabeled (see :func:`effective_splits`), naming the group, its
    splits and a line in each; up to three groups are named."""
    splits = effective_splits(clips)
    bad = group_straddles([c.group for c in clips], splits)
    if not bad:
        return
    lines = defaultdict(dict)
    for c, s in zip(clips, splits):
        if c.group in bad:
            lines[c.group].setdefault(s, c.line)
    shown = list(bad)[:3]
    parts = [f"group {g!r} is in " + " and ".join(f"{s} (line {lines[g][s]})" for s in bad[g])
             for g in shown]
    more = f"; {len(bad) - len(shown)} more group(s)" if len(bad) > len(shown) else ""
    raise DataError(f"{name}: {'; '.join(parts)}{more}: the clips of one source recording "
                    f"must all be in one split (move the group's rows to one split)")
