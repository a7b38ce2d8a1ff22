"""`qdaed manifests path [NAME]`, and shipped manifests' names in every --manifest option."""

from pathlib import Path

import pytest

from qdaed.cli import build_parser, main

REPO_MANIFESTS = Path(__file__).resolve().parents[2] / "data_manifests"


def run_cli(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


def test_path_prints_the_folder_that_holds_the_shipped_manifests(capsys):
    status, out, _ = run_cli(capsys, "manifests", "path")
    folder = Path(out.strip())
    assert status == 0 and out.count("\n") == 1
    assert sorted(p.name for p in folder.glob("*.csv")) == [
        "audioset.csv", "real_audio.csv", "real_corpus.csv", "real_corpus_transfer.csv"]


@pytest.mark.parametrize("name", ["audioset", "real_audio", "real_corpus",
                                  "real_corpus_transfer"])
def test_path_of_a_name_prints_its_file(capsys, name):
    status, out, _ = run_cli(capsys, "manifests", "path", name)
    assert status == 0
    assert Path(out.strip()).read_bytes() == (REPO_MANIFESTS / f"{name}.csv").read_bytes()


def test_path_of_an_unknown_name_exits_2_listing_the_names(capsys):
    status, out, err = run_cli(capsys, "manifests", "path", "dog")
    assert status == 2 and out == ""
    assert "'dog'" in err and "audioset, real_audio" in err


def test_pipeline_resolves_a_name_into_the_config(tmp_path):
    from qdaed.commands.pipeline import resolve_config

    args = build_parser().parse_args(["pipeline", "--preset", "tiny", "--manifest", "real_audio",
                                      "--audio-root", str(tmp_path), "--recipe", "paper",
                                      "--out", str(tmp_path / "run")])
    cfg = resolve_config(args)
    assert cfg.data.source == "manifest"
    assert Path(cfg.data.manifest).read_bytes() == \
        (REPO_MANIFESTS / "real_audio.csv").read_bytes()


@pytest.mark.parametrize("argv", [
    ["pipeline", "--preset", "tiny", "--manifest", "nope", "--audio-root", "{tmp}",
     "--out", "{tmp}/run"],
    ["evaluate", "{tmp}/model.qdaed", "--manifest", "nope", "--audio-root", "{tmp}"],
    ["features", "nope", "--audio-root", "{tmp}", "--out", "{tmp}/feats"],
])
def test_neither_a_file_nor_a_name_exits_2_before_any_work(capsys, tmp_path, argv):
    status, _, err = run_cli(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert status == 2 and "nope: no such file" in err and "audioset, real_audio" in err
    assert list(tmp_path.iterdir()) == []      # nothing written


def test_features_of_a_shipped_manifest_needs_an_audio_root(capsys, tmp_path):
    status, _, err = run_cli(capsys, "features", "real_audio", "--out", str(tmp_path / "f"))
    assert status == 2 and "--audio-root" in err
    assert list(tmp_path.iterdir()) == []


def test_features_of_a_shipped_manifest_reads_clips_under_the_audio_root(capsys, tmp_path):
    # No clip is there: every clip is reported missing (under the given root), none silently.
    status, _, err = run_cli(capsys, "features", "real_audio", "--audio-root", str(tmp_path),
                             "--out", str(tmp_path / "f"), "--jobs", "1", "--no-progress")
    bad = (tmp_path / "f" / "bad_audio.csv").read_text().splitlines()
    assert status == 2 and "none of the 222 clip(s) is usable" in err
    assert len(bad) == 1 + 222
    assert all(f",{tmp_path}/audio/" in line for line in bad[1:])
