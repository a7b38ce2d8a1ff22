"""Manifest parsing: both clip forms, labels, extra columns, file lookup, errors with lines."""

import pytest

from qdaed.data.manifest import Clip, candidate_names, parse_manifest, read_manifest, resolve_audio
from qdaed.errors import DataError


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
