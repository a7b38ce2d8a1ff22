"""Manifest parsing: both clip forms, labels, extra columns, file lookup, errors with lines;
the shipped manifests and how a --manifest value resolves."""

import os
from pathlib import Path

import pytest

import qdaed.data.manifest as manifest_module
from qdaed.data.manifest import (Clip, candidate_names, manifests_dir, parse_manifest,
                                 read_manifest, resolve_audio, resolve_manifest,
                                 shipped_manifest, shipped_manifests)
from qdaed.errors import DataError, InputError

# The repository's folder (tests run from a checkout or an unpacked sdist).
REPO_MANIFESTS = Path(__file__).resolve().parents[2] / "data_manifests"


def test_path_manifest_with_extra_columns_and_negatives():
    text = ("path,labels,split,note\na.wav,dog,train,x\nb.wav,,test,y\n"
            "c.wav, gunshot ; dog ,validation,z\n")
    clips = parse_manifest(text)
    assert [c.path for c in clips] == ["a.wav", "b.wav", "c.wav"]
    assert [c.labels for c in clips] == [("dog",), (), ("gunshot", "dog")]
    assert [c.split for c in clips] == ["train", "test", "validation"]
    assert [c.line for c in clips] == [2, 3, 4]
    assert clips[2].targets() == (1, 0, 1)


def test_ytid_manifest_without_split_and_blank_lines():
    clips = parse_manifest("labels,start_seconds,ytid\nbaby_cry,30.000,abc\n\n,0,def\n")
    assert clips[0] == Clip(line=2, labels=("baby_cry",), ytid="abc", start_seconds=30.0)
    assert clips[1].line == 4 and clips[1].split is None and clips[1].name == "def@0.000"


@pytest.mark.parametrize("text, line, match", [
    ("path,split\na.wav,train\n", 1, "labels"),
    ("file,labels\na.wav,dog\n", 1, "path"),
    ("path,labels\na.wav,dog\nb.wav,cat\n", 3, "unknown label 'cat'"),
    ("path,labels\na.wav,dog;dog\n", 2, "repeated"),
    ("path,labels,split\na.wav,dog,dev\n", 2, "split 'dev'"),
    ("ytid,start_seconds,labels\nabc,ten,dog\n", 2, "start_seconds"),
    ("ytid,start_seconds,labels\nabc,,dog\n", 2, "start_seconds"),
    ("ytid,start_seconds,end_seconds,labels\nabc,10,5,dog\n", 2, "end_seconds"),
    ("path,ytid,start_seconds,labels\n,,1,dog\n", 2, "neither"),
    ("path,labels,split\na.wav,dog\n", 2, "field"),
    ("", 1, "empty"),
])
def test_malformed_manifest_names_file_and_line(text, line, match):
    with pytest.raises(DataError, match=match) as err:
        parse_manifest(text, "m.csv")
    if text:
        assert f"m.csv, line {line}" in str(err.value)


def test_read_manifest_reports_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_manifest(tmp_path / "nope.csv")


def test_ytid_lookup_follows_the_documented_names_in_order(tmp_path):
    clip = Clip(line=2, labels=(), ytid="xyz", start_seconds=30.0)
    assert candidate_names(clip)[:3] == ["xyz_30.000.wav", "xyz_30.000.flac", "xyz_30.000.ogg"]
    assert resolve_audio(clip, tmp_path) == str(tmp_path / "xyz_30.000.wav")  # expected name
    (tmp_path / "Yxyz.flac").write_bytes(b"x")
    assert resolve_audio(clip, tmp_path) == str(tmp_path / "Yxyz.flac")
    (tmp_path / "xyz.ogg").write_bytes(b"x")
    assert resolve_audio(clip, tmp_path) == str(tmp_path / "xyz.ogg")
    (tmp_path / "xyz_30.000.flac").write_bytes(b"x")
    assert resolve_audio(clip, tmp_path) == str(tmp_path / "xyz_30.000.flac")


def test_path_clips_resolve_under_the_root_even_when_missing(tmp_path):
    clip = Clip(line=2, labels=(), path="sub/a.wav")
    assert resolve_audio(clip, tmp_path) == str(tmp_path / "sub" / "a.wav")


def test_clean_labels_column_and_unlabeled_split():
    text = ("path,labels,clean_labels,split\na.wav,,dog,train\nb.wav,gunshot,gunshot,test\n"
            "c.wav,dog,,unlabeled\n")
    clips = parse_manifest(text)
    assert [c.clean_labels for c in clips] == [("dog",), ("gunshot",), ()]
    assert [c.split for c in clips] == ["train", "test", "unlabeled"]
    assert clips[0].targets() == (0, 0, 0) and clips[0].clean_targets() == (1, 0, 0)
    assert clips[2].targets() == (1, 0, 0) and clips[2].clean_targets() == (0, 0, 0)


def test_without_a_clean_labels_column_the_truth_is_the_labels():
    clip = parse_manifest("path,labels\na.wav,dog;gunshot\n")[0]
    assert clip.clean_labels is None and clip.clean_targets() == clip.targets() == (1, 0, 1)


def test_a_bad_clean_label_names_the_column_and_line():
    with pytest.raises(DataError, match="m.csv, line 3: clean_labels: unknown label 'cat'"):
        parse_manifest("path,labels,clean_labels\na.wav,dog,dog\nb.wav,dog,cat\n", "m.csv")


def test_a_utf8_bom_and_crlf_line_ends_are_accepted(tmp_path):
    f = tmp_path / "m.csv"
    f.write_bytes("path,labels,group\r\na.wav,dog,r1\r\nb.wav,,r2\r\n".encode("utf-8-sig"))
    clips = read_manifest(f)
    assert [c.path for c in clips] == ["a.wav", "b.wav"]
    assert [c.group for c in clips] == ["r1", "r2"]
    assert parse_manifest("\ufeffpath,labels\na.wav,dog\n")[0].labels == ("dog",)


def test_a_quoted_newline_keeps_every_rows_group_and_first_line():
    text = 'path,labels,group\na.wav,dog,"rec\n1"\nb.wav,gunshot,rec2\nc.wav,,rec3\n'
    clips = parse_manifest(text)
    assert [c.group for c in clips] == ["rec\n1", "rec2", "rec3"]
    assert [c.line for c in clips] == [2, 4, 5]
    with pytest.raises(DataError, match="line 4: unknown label 'cat'"):
        parse_manifest('path,labels,group\na.wav,dog,"r\n1"\nb.wav,cat,r2\n')


def test_a_clip_listed_twice_is_refused_with_both_lines():
    with pytest.raises(DataError, match=r"line 4: 'a.wav' is listed again \(first at line 2\)"):
        parse_manifest("path,labels\na.wav,dog\nb.wav,\na.wav,gunshot\n")
    with pytest.raises(DataError, match="listed again"):
        parse_manifest("ytid,start_seconds,labels\nX,30,dog\nX,30.000,dog\n")
    assert len(parse_manifest("ytid,start_seconds,labels\nX,30,dog\nX,40,dog\n")) == 2


# ------------------------------------------------------------------------ shipped manifests
def test_the_shipped_manifests_are_the_repository_files():
    found = shipped_manifests()
    assert list(found) == ["audioset", "real_audio", "real_corpus", "real_corpus_transfer"]
    for name, path in found.items():
        assert Path(path).read_bytes() == (REPO_MANIFESTS / f"{name}.csv").read_bytes()
        assert shipped_manifest(name) == path


def test_shipped_manifests_hold_the_clip_counts_the_readme_states():
    assert len(read_manifest(shipped_manifest("real_audio"))) == 222
    assert len(read_manifest(shipped_manifest("audioset"))) == 40_616
    assert len(read_manifest(shipped_manifest("real_corpus"))) == 1_597
    assert len(read_manifest(shipped_manifest("real_corpus_transfer"))) == 1_597


def test_an_unknown_name_is_an_input_error_listing_the_names():
    with pytest.raises(InputError, match="'dogs'.*audioset, real_audio"):
        shipped_manifest("dogs")


def _fake_install(root, *, package_dir, checkout_dir):
    """A qdaed tree under ``root`` with qdaed/manifests and/or ../data_manifests."""
    module = root / "qdaed" / "data" / "manifest.py"
    module.parent.mkdir(parents=True)
    module.write_text("")
    for present, d in ((package_dir, root / "qdaed" / "manifests"),
                       (checkout_dir, root / "data_manifests")):
        if present:
            d.mkdir()
            (d / f"{d.name}.csv").write_text("path,labels\n")
    return str(module)


@pytest.mark.parametrize("package_dir, checkout_dir, want", [
    (True, False, "qdaed/manifests"),     # an installed wheel
    (False, True, "data_manifests"),      # a checkout or an unpacked sdist
    (True, True, "qdaed/manifests"),      # both: the package's own data wins
])
def test_manifests_dir_finds_the_package_data_or_the_checkout_folder(
        tmp_path, monkeypatch, package_dir, checkout_dir, want):
    fake = _fake_install(tmp_path, package_dir=package_dir, checkout_dir=checkout_dir)
    monkeypatch.setattr(manifest_module, "__file__", fake)
    assert manifests_dir() == str(tmp_path / want)
    assert list(shipped_manifests()) == [Path(want).name]


def test_a_missing_manifests_folder_is_a_data_error(tmp_path, monkeypatch):
    fake = _fake_install(tmp_path, package_dir=False, checkout_dir=False)
    monkeypatch.setattr(manifest_module, "__file__", fake)
    with pytest.raises(DataError, match="shipped with qdaed are missing.*reinstall"):
        manifests_dir()


def test_resolve_manifest_takes_a_path_or_a_name_and_a_file_wins(tmp_path, monkeypatch):
    mine = tmp_path / "mine.csv"
    mine.write_text("path,labels\n")
    assert resolve_manifest(str(mine)) == str(mine)
    assert resolve_manifest(mine) == str(mine)             # os.PathLike too
    assert resolve_manifest("real_audio") == shipped_manifest("real_audio")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "audioset").write_text("path,labels\n")     # a file of that name wins
    assert resolve_manifest("audioset") == "audioset"


@pytest.mark.parametrize("value", ["nope", "data_manifests/nope.csv", "audioset.csv", ""])
def test_resolve_manifest_refuses_what_is_neither_naming_option_and_names(tmp_path, monkeypatch,
                                                                          value):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as err:
        resolve_manifest(value, "--manifest")
    msg = str(err.value)
    assert msg.startswith(f"--manifest {value}: no such file") and "audioset, real_audio" in msg
    assert os.path.isdir(manifests_dir())
