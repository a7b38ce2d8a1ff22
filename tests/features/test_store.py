"""Feature store: cache keyed by content and options, reuse, process pool, bad-audio report."""

import csv
import os
import shutil

import numpy as np
import pytest

from qdaed.cli import main
from qdaed.data.audio import load_clip
from qdaed.data.manifest import read_manifest
from qdaed.errors import DataError
from qdaed.features import LfbeOptions, lfbe
from qdaed.features.store import extract_features, load_features
from tests.data.bad_files import write_bad_files, write_good_files


def write_manifest_csv(path, rels, labels=None):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "labels", "split", "comment"])
        for i, r in enumerate(rels):
            w.writerow([r, (labels or {}).get(r, "dog" if i % 2 else ""), "train", "x"])
    return path


@pytest.fixture
def good(tmp_path):
    files = write_good_files(tmp_path / "audio")
    man = write_manifest_csv(tmp_path / "m.csv", list(files.values()))
    return tmp_path, files, man


def test_features_equal_lfbe_of_the_loaded_clip_and_are_reused(good):
    root, files, man = good
    clips = read_manifest(man)
    r1 = extract_features(clips, root / "audio", root / "out", jobs=1, progress=False)
    assert (r1.computed, r1.reused, len(r1.bad)) == (len(files), 0, 0)
    for clip, path, frames in r1.items:
        ref = lfbe(load_clip(root / "audio" / clip.path))
        got = load_features(path)
        assert np.array_equal(got, ref) and frames == ref.shape[0]
    mtimes = {p: os.stat(p).st_mtime_ns for _, p, _ in r1.items}
    r2 = extract_features(clips, root / "audio", root / "out", jobs=1, progress=False)
    assert (r2.computed, r2.reused) == (0, len(files))
    assert {p: os.stat(p).st_mtime_ns for _, p, _ in r2.items} == mtimes


def test_cache_key_follows_content_not_name_and_changes_with_options(good):
    root, files, man = good
    clips = read_manifest(man)
    r1 = extract_features(clips, root / "audio", root / "out", jobs=1, progress=False)
    shutil.copytree(root / "audio", root / "renamed")
    r2 = extract_features(clips, root / "renamed", root / "out", jobs=1, progress=False)
    assert r2.reused == len(files)
    r3 = extract_features(clips, root / "audio", root / "out", LfbeOptions(num_mel_bins=40),
                          jobs=1, progress=False)
    assert r3.computed == len(files)
    assert {p for _, p, _ in r3.items}.isdisjoint({p for _, p, _ in r1.items})
    assert all(load_features(p).shape[1] == 40 for _, p, _ in r3.items)


def test_process_pool_gives_the_same_arrays_as_one_process(good):
    root, _, man = good
    clips = read_manifest(man)
    a = extract_features(clips, root / "audio", root / "o1", jobs=1, progress=False)
    b = extract_features(clips, root / "audio", root / "o2", jobs=2, progress=False)
    assert b.computed == len(clips)
    for (_, pa, _), (_, pb, _) in zip(a.items, b.items):
        assert np.array_equal(load_features(pa), load_features(pb))


def test_bad_files_are_reported_and_skipped_and_strict_names_every_one(tmp_path):
    bad = write_bad_files(tmp_path / "audio")
    good_files = write_good_files(tmp_path / "audio")
    rels = list(good_files.values()) + [rel for rel, _ in bad.values()]
    clips = read_manifest(write_manifest_csv(tmp_path / "m.csv", rels))
    rep = extract_features(clips, tmp_path / "audio", tmp_path / "out", jobs=1, progress=False)
    assert len(rep.items) == len(good_files) and len(rep.bad) == len(bad)
    reasons = {os.path.basename(p): reason for _, p, reason in rep.bad}
    for rel, expected in bad.values():
        assert expected in reasons[rel], (rel, reasons[rel])
    with open(tmp_path / "out" / "bad_audio.csv", newline="") as fh:
        listed = {os.path.basename(r["audio_file"]) for r in csv.DictReader(fh)}
    assert listed == {rel for rel, _ in bad.values()}
    with pytest.raises(DataError) as err:
        extract_features(clips, tmp_path / "audio", tmp_path / "out", jobs=1, progress=False,
                         strict=True)
    assert all(rel in str(err.value) for rel, _ in bad.values())


def test_no_usable_clip_is_a_data_error(tmp_path):
    bad = write_bad_files(tmp_path / "audio")
    clips = read_manifest(write_manifest_csv(tmp_path / "m.csv", [r for r, _ in bad.values()]))
    with pytest.raises(DataError, match="none of the"):
        extract_features(clips, tmp_path / "audio", tmp_path / "out", jobs=1, progress=False)


def test_features_command_reports_without_traceback(tmp_path, capsys):
    bad = write_bad_files(tmp_path / "audio")
    good_files = write_good_files(tmp_path / "audio")
    man = write_manifest_csv(tmp_path / "m.csv", list(good_files.values()) + [bad["empty"][0]])
    args = ["features", str(man), "--audio-root", str(tmp_path / "audio"), "--out",
            str(tmp_path / "out"), "--jobs", "1", "--no-progress"]
    assert main(args) == 0
    assert "1 skipped" in capsys.readouterr().out
    assert main(args + ["--strict"]) == 2
    err = capsys.readouterr().err
    assert "empty.wav" in err and "Traceback" not in err
    assert main(args + ["--option", "num_mel_bins=banana"]) == 2
    assert main(args + ["--option", "window=hamming", "--option", "snip_edges=false"]) == 0


def test_a_feature_folder_that_is_a_file_is_a_data_error(tmp_path):
    from qdaed.data.manifest import parse_manifest
    from qdaed.errors import DataError

    f = tmp_path / "feats"
    f.write_text("not a folder")
    with pytest.raises(DataError, match="exists and is not a directory"):
        extract_features(parse_manifest("path,labels\na.wav,dog\n"), tmp_path, f, jobs=1,
                         progress=False)
    assert f.read_text() == "not a folder"


def test_jobs_zero_means_one_per_core_and_negative_is_refused(tmp_path):
    from qdaed.data.manifest import parse_manifest
    from qdaed.errors import InputError

    with pytest.raises(InputError, match="jobs"):
        extract_features(parse_manifest("path,labels\na.wav,dog\n"), tmp_path, tmp_path / "o",
                         jobs=-1, progress=False)


def _sparse_wav(path, seconds, rate=16000):
    """A 16-bit mono WAV whose header declares ``seconds`` of audio, written as a sparse file
    (the data chunk is a hole: no disk space, but the size the header claims)."""
    import struct

    data_bytes = int(seconds * rate) * 2
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    head = (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " + struct.pack("<I", 16)
            + fmt + b"data" + struct.pack("<I", data_bytes))
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(len(head) + data_bytes)
    return path


def test_a_10_hour_header_is_skipped_from_the_header_without_sinking_the_batch(tmp_path, capsys):
    import subprocess
    import sys

    files = write_good_files(tmp_path / "audio")
    _sparse_wav(tmp_path / "audio" / "ten_hours.wav", 10 * 3600)
    man = write_manifest_csv(tmp_path / "m.csv", list(files.values()) + ["ten_hours.wav"])
    out = tmp_path / "out"
    # in a child process, so that its peak memory is its own: the 10-hour file must not be
    # read (1.15 GB) or decoded (4.3 GB as float64)
    # VmHWM: the peak of this process's own memory map (ru_maxrss would carry the forking
    # test process's peak across exec)
    code = ("import re, sys; from qdaed.cli import main; status = main(sys.argv[1:]); "
            "print('peak KiB', re.search(r'VmHWM:\\s+(\\d+)', "
            "open('/proc/self/status').read()).group(1)); sys.exit(status)")
    proc = subprocess.run([sys.executable, "-c", code, "features", str(man), "--audio-root",
                           str(tmp_path / "audio"), "--out", str(out), "--jobs", "1",
                           "--no-progress"], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    peak_mib = int(proc.stdout.rsplit("peak KiB", 1)[1]) / 1024
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "1 skipped" in proc.stdout
    with open(out / "bad_audio.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert "ten_hours.wav" in row["path"] and "36000 s" in row["reason"]
    assert "--max-duration" in row["reason"]
    assert peak_mib < 600, peak_mib   # measured: 109 MiB (VmHWM; LFBE of 6 clips, imports)


def test_max_duration_bounds_a_clip_by_its_header(tmp_path):
    path = _sparse_wav(tmp_path / "two_s.wav", 2.0)
    assert load_clip(path, max_seconds=2.0).shape == (32000,)
    with pytest.raises(DataError, match="declares 2 s of audio, more than the 1 s"):
        load_clip(path, max_seconds=1.0)
    with pytest.raises(DataError, match="declares 2 s"):
        load_clip(path, max_seconds=1.0, data=path.read_bytes())
