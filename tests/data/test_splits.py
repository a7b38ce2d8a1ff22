"""Splits by source recording (qdaed.data.splits): hand cases of the dealing rule, properties
over random group assignments (group-disjoint, every row once), the unlabelled carve-out, and
the manifest check the pipeline runs."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdaed.data.manifest import parse_manifest
from qdaed.data.splits import (SEEDED, carve_unlabeled, check_manifest_groups,
                               effective_splits, group_straddles, stratified_group_split)
from qdaed.errors import DataError, InputError
from qdaed.pipeline.featuresets import _seeded_split


# ------------------------------------------------------------------------------ hand cases
def test_one_stratum_of_equal_groups_is_dealt_by_the_largest_deficit():
    # 10 single-row groups, fractions 0.6/0.2/0.2, deficit = 2·(f·10 − got)/10: by hand the
    # groups go train ×3 (1.2, 1.0, 0.8 vs 0.4), then train/validation/test ties resolve
    # to train once more (0.6 > 0.4), … ending at 6 / 2 / 2 whatever the permutation.
    groups = [f"g{i}" for i in range(10)]
    splits = stratified_group_split(groups, ["s"] * 10, (0.6, 0.2, 0.2), seed=3)
    assert sorted(splits.count(s) for s in ("train", "validation", "test")) == [2, 2, 6]
    assert splits.count("train") == 6


def test_a_group_of_many_rows_goes_whole_to_one_split():
    # group "big" has 5 rows; the others 1 each. Every row of "big" must share one split.
    groups = ["big"] * 5 + ["a", "b", "c", "d", "e"]
    for seed in range(5):
        splits = stratified_group_split(groups, ["s"] * 10, (0.6, 0.2, 0.2), seed=seed)
        assert len(set(splits[:5])) == 1


def test_strata_are_split_separately_so_each_reaches_every_split():
    # two strata of 5 single-row groups. By hand, deficit = 2·(f·5 − got)/5 (rows and groups
    # agree here): 1st group train (1.2 vs 0.4, 0.4), 2nd train (0.8), 3rd train (0.4, a tie
    # with 0.4 / 0.4 goes to the earlier name), 4th validation (0.4 vs train 0), 5th test.
    groups = [f"p{i}" for i in range(5)] + [f"n{i}" for i in range(5)]
    strata = ["pos"] * 5 + ["neg"] * 5
    splits = stratified_group_split(groups, strata, (0.6, 0.2, 0.2), seed=0)
    for part in (splits[:5], splits[5:]):
        assert (part.count("train"), part.count("validation"), part.count("test")) == (3, 1, 1)


def test_the_same_seed_gives_the_same_split_and_another_seed_may_not():
    groups = [f"g{i}" for i in range(40)]
    a = stratified_group_split(groups, ["s"] * 40, seed=1)
    assert stratified_group_split(groups, ["s"] * 40, seed=1) == a
    assert any(stratified_group_split(groups, ["s"] * 40, seed=s) != a for s in range(2, 6))


def test_a_group_whose_rows_are_in_two_strata_is_refused():
    with pytest.raises(InputError, match="group 'g'.*two strata"):
        stratified_group_split(["g", "g", "h"], ["dog", "cat", "dog"])


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.6, 0.3, 0.2), (1.0, 0.0, 0.0),
                                       (0.7, 0.4, -0.1)])
def test_bad_fractions_are_refused(fractions):
    with pytest.raises(InputError, match="fractions"):
        stratified_group_split(["a", "b", "c"], ["s"] * 3, fractions)


def test_carve_moves_only_training_groups_and_keeps_validation_and_test():
    groups = ["t1", "t1", "t2", "t3", "t4", "v1", "x1"]
    strata = ["s"] * 7
    splits = ["train"] * 5 + ["validation", "test"]
    out = carve_unlabeled(groups, strata, splits, 0.25, seed=0)
    assert out[5:] == ["validation", "test"]
    assert set(out[:5]) == {"train", "unlabeled"}
    assert out[0] == out[1]                        # t1's two rows together
    assert carve_unlabeled(groups, strata, splits, 0.0) == splits


def test_carve_refuses_a_fraction_of_one():
    with pytest.raises(InputError, match="less than 1"):
        carve_unlabeled(["a"], ["s"], ["train"], 1.0)


# ------------------------------------------------------------------------------ properties
@st.composite
def assignments(draw):
    """Rows with random groups (some groups of many rows) and random strata per group."""
    n_groups = draw(st.integers(1, 25))
    sizes = draw(st.lists(st.integers(1, 6), min_size=n_groups, max_size=n_groups))
    n_strata = draw(st.integers(1, 4))
    stratum_of = draw(st.lists(st.integers(0, n_strata - 1), min_size=n_groups,
                               max_size=n_groups))
    rows = [(f"g{g:02d}", f"s{stratum_of[g]}") for g, k in enumerate(sizes) for _ in range(k)]
    order = draw(st.permutations(range(len(rows))))          # rows need not be sorted
    return [rows[i] for i in order]


@given(rows=assignments(), seed=st.integers(0, 2**32 - 1),
       unlabeled=st.sampled_from([0.0, 0.1, 0.5]))
def test_every_split_is_group_disjoint_and_covers_every_row_once(rows, seed, unlabeled):
    groups = [g for g, _ in rows]
    strata = [s for _, s in rows]
    splits = stratified_group_split(groups, strata, (0.6, 0.2, 0.2), seed)
    carved = carve_unlabeled(groups, strata, splits, unlabeled, seed)
    for result in (splits, carved):
        assert len(result) == len(rows)                    # one split per row: each row once
        assert set(result) <= {"train", "validation", "test", "unlabeled"}
        where = {}
        for g, s in zip(groups, result):
            assert where.setdefault(g, s) == s, f"group {g} in {where[g]} and {s}"
        assert group_straddles(groups, result) == {}
    # the carve-out only ever relabels training rows
    assert all(c == s or (s == "train" and c == "unlabeled") for s, c in zip(splits, carved))


@given(rows=assignments(), seed=st.integers(0, 2**32 - 1))
def test_the_pipelines_seeded_split_is_group_disjoint_too(rows, seed):
    groups = [g for g, _ in rows]
    splits = _seeded_split(groups, (0.6, 0.2, 0.2), seed)
    assert len(splits) == len(rows)
    assert group_straddles(groups, list(splits)) == {}


def test_group_straddles_names_each_group_with_its_splits_in_order():
    groups = ["a", "a", "b", "c", "c", None, None]
    splits = ["test", "train", "train", "unlabeled", "validation", "train", "test"]
    assert group_straddles(groups, splits) == {"a": ["train", "test"],
                                               "c": ["validation", "unlabeled"]}


# ------------------------------------------------------------------------------ manifests
def test_a_manifest_group_in_two_splits_is_a_data_error_naming_group_splits_and_lines():
    clips = parse_manifest("path,labels,split,group\n"
                           "a.wav,dog,train,rec1\n"
                           "b.wav,dog,test,rec1\n"
                           "c.wav,,validation,rec2\n")
    with pytest.raises(DataError, match=r"m.csv: group 'rec1' is in train \(line 2\) and "
                                        r"test \(line 3\)"):
        check_manifest_groups(clips, "m.csv")


def test_an_unlabeled_row_of_a_labelled_group_is_refused_even_without_full_splits():
    # rows without a split are split by the pipeline's seed: rec1's unlabelled row and its
    # row to be split would straddle whatever the seed gives
    clips = parse_manifest("path,labels,split,group\n"
                           "a.wav,dog,,rec1\n"
                           "b.wav,dog,unlabeled,rec1\n")
    assert effective_splits(clips) == [SEEDED, "unlabeled"]
    with pytest.raises(DataError, match="group 'rec1' is in unlabeled"):
        check_manifest_groups(clips, "m.csv")


def test_a_manifest_without_straddling_groups_passes():
    clips = parse_manifest("path,labels,split,group\n"
                           "a.wav,dog,train,rec1\n"
                           "b.wav,dog,train,rec1\n"
                           "c.wav,,test,\n"
                           "d.wav,,test,\n"
                           "e.wav,,unlabeled,rec3\n")
    check_manifest_groups(clips, "m.csv")                   # no error
    no_group = parse_manifest("path,labels,split\na.wav,dog,train\nb.wav,dog,test\n")
    check_manifest_groups(no_group, "m.csv")


def test_more_than_three_straddling_groups_are_counted_not_all_listed():
    lines = ["path,labels,split,group"]
    for g in range(5):
        lines += [f"{g}a.wav,dog,train,r{g}", f"{g}b.wav,dog,test,r{g}"]
    with pytest.raises(DataError, match="2 more group"):
        check_manifest_groups(parse_manifest("\n".join(lines) + "\n"), "m.csv")

