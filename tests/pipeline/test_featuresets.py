"""The pipeline's data: corpus v1/v2, observed vs clean labels, the transfer set, the process
pool (byte-identical to the serial path), manifests with unlabeled rows, and the options."""

import argparse
import re

import numpy as np
import pytest

import qdaed.pipeline.featuresets as pdata
from qdaed.cli import main
from qdaed.data.manifest import CLASSES
from qdaed.data.synth import LabelNoise, corpus_clip, corpus_config, observe_labels, write_corpus
from qdaed.errors import InputError
from qdaed.features.fbank import lfbe
from qdaed.commands.pipeline import register, resolve_config
from qdaed.pipeline.featuresets import load_dataset, synth_workers
from qdaed.pipeline.presets import preset_config
from qdaed.train.recipes import recipe_config
from qdaed.features.prepare import fix_length

SEED = 20190701     # the presets' synth_seed


def config(n=20, n_u=6, corpus="v2", noise=None, seconds=0.5):
    data = dict(n_clips=n, n_transfer=n_u, corpus=corpus, clip_seconds=seconds)
    if noise is not None:
        data["label_noise"] = noise
    over = {"data": data}
    if n_u == 0:     # the tiny preset's recipe needs a transfer set
        over["distill"] = recipe_config("paper")
    return preset_config("tiny").merged(over)


def load(cfg, jobs=1, tmp_path=None):
    return load_dataset(cfg.data, cfg.features, cfg.classes, tmp_path, lambda msg: None,
                        jobs=jobs)


def test_pool_is_byte_identical_to_the_serial_path(monkeypatch):
    # small chunks: more jobs than the 2 x workers in flight, so the refill path runs
    monkeypatch.setattr(pdata, "_CHUNK", 3)
    cfg = config(n=17, n_u=5, noise={"missing": 0.4, "false_positive": 0.1})
    a, b = load(cfg, jobs=1), load(cfg, jobs=2)
    for name in ("features", "labels", "clean_labels", "splits"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name
    assert a.clips == b.clips and a.feature_options == b.feature_options


def test_features_and_labels_are_the_corpus_clips():
    noise = {"missing": 0.4, "false_positive": 0.1}
    cfg = config(n=10, n_u=4, noise=noise)
    data = load(cfg)
    frames, bins = data.features.shape[1:]
    syn = corpus_config("v2", 0.5, label_noise=noise)
    for i in (0, 9, 10, 13):
        clip = corpus_clip(SEED, i, syn)
        want = fix_length(lfbe(clip.waveform, 16000, **data.feature_options), frames)
        np.testing.assert_array_equal(data.features[i], want)
        np.testing.assert_array_equal(data.clean_labels[i], clip.targets(CLASSES))
        # labelled clips: the observed labels; transfer clips: their truth
        np.testing.assert_array_equal(
            data.labels[i], clip.observed_targets(CLASSES) if i < 10 else clip.targets(CLASSES))
    for i in range(10):
        np.testing.assert_array_equal(
            data.labels[i], observe_labels(data.clean_labels[i], LabelNoise(**noise), SEED, i))
    assert (data.labels[:10] != data.clean_labels[:10]).any()


def test_transfer_clips_are_disjoint_from_the_labelled_ones_and_unlabeled():
    data = load(config(n=12, n_u=5))
    assert list(data.splits[12:]) == ["unlabeled"] * 5
    assert set(data.splits[:12]) == {"train", "validation", "test"}
    assert data.clips[12:] == [f"synth_{SEED}_{i:06d}" for i in range(12, 17)]
    assert not set(data.clips[:12]) & set(data.clips[12:])
    flat = data.features.reshape(17, -1)
    assert not any(np.array_equal(flat[i], flat[j]) for i in range(12) for j in range(12, 17))
    # the labelled clips do not depend on the transfer set's size
    alone = load(config(n=12, n_u=0))
    np.testing.assert_array_equal(alone.features, data.features[:12])
    np.testing.assert_array_equal(alone.labels, data.labels[:12])
    assert "unlabeled" not in set(alone.splits) and len(alone) == 12


def test_v1_ignores_the_label_noise_and_v2_with_zero_noise_is_clean():
    v1 = load(config(n=12, n_u=0, corpus="v1", noise={"missing": 0.5, "false_positive": 0.5}))
    np.testing.assert_array_equal(v1.labels, v1.clean_labels)
    v2 = load(config(n=12, n_u=2, noise={"missing": 0.0, "false_positive": 0.0}))
    np.testing.assert_array_equal(v2.labels, v2.clean_labels)
    assert not np.array_equal(v1.features, v2.features)      # v2's lower SNRs


def test_bad_data_config_is_an_input_error():
    for update, needle in [({"corpus": "v3"}, "config.data.corpus"),
                           ({"n_transfer": -1}, "config.data.n_transfer"),
                           ({"label_noise": {"missing": 1.0, "false_positive": 0.0}},
                            "a noise rate must be in [0, 1)"),
                           ({"n_clipz": 5}, "unknown field(s) ['n_clipz']")]:
        with pytest.raises(InputError, match=re.escape(needle)):
            config().merged({"data": update})


def test_synth_workers():
    assert synth_workers(1, 1000, 3.0) == 1
    assert synth_workers(2, 1000, 3.0) == 2
    assert synth_workers(8, 30, 3.0) == 2            # at most one per chunk of 25
    assert synth_workers(0, 20, 1.0) == 1            # jobs 0 and a tiny corpus: no pool
    assert synth_workers(0, 1000, 3.0) >= 1
    with pytest.raises(InputError, match="jobs"):
        synth_workers(-1, 10, 1.0)


def test_manifest_with_unlabeled_rows_and_clean_labels(tmp_path):
    cfg_syn = corpus_config("v2", 0.5, label_noise={"missing": 0.5, "false_positive": 0.2})
    rows = write_corpus(tmp_path / "c", 10, seed=4, config=cfg_syn, validation_fraction=0.2,
                        test_fraction=0.2, n_transfer=3)
    cfg = preset_config("tiny").merged({"data": dict(
        source="manifest", manifest=str(tmp_path / "c" / "manifest.csv"),
        audio_root=str(tmp_path / "c"), n_transfer=0)})
    data = load(cfg, jobs=1, tmp_path=tmp_path / "run")
    assert list(data.splits) == [r["split"] for r in rows]
    assert list(data.splits[-3:]) == ["unlabeled"] * 3
    for i, r in enumerate(rows):
        assert data.labels[i].tolist() == [float(c in r["labels"].split(";")) for c in CLASSES]
        assert data.clean_labels[i].tolist() == \
            [float(c in r["clean_labels"].split(";")) for c in CLASSES]
    with pytest.raises(InputError, match="n_transfer"):
        load(cfg.merged({"data": {"n_transfer": 2}}), jobs=1, tmp_path=tmp_path / "run2")


def resolve(*argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return resolve_config(parser.parse_args(["pipeline", "--out", "x", *argv]))


def test_pipeline_options_set_the_data_config():
    base = resolve("--preset", "tiny").data
    assert base.corpus == "v2" and base.label_noise == {"missing": 0.2, "false_positive": 0.02}
    d = resolve("--preset", "tiny", "--label-noise", "0.3").data
    assert d.label_noise == {"missing": 0.3, "false_positive": 0.02}   # the preset's FP
    d = resolve("--preset", "tiny", "--label-noise", "0,0", "--corpus", "v2",
                "--transfer", "7").data
    assert d.label_noise == {"missing": 0.0, "false_positive": 0.0} and d.n_transfer == 7
    assert resolve("--preset", "tiny", "--corpus", "v1").data.corpus == "v1"


@pytest.mark.parametrize("args, needle", [
    (["--label-noise", "1"], "a noise rate must be in [0, 1)"),
    (["--label-noise", "0.2,1.5"], "a noise rate must be in [0, 1)"),
    (["--label-noise", "-0.1"], "a noise rate must be in [0, 1)"),
    (["--label-noise", "a,b"], "MISSING[,FALSE_POSITIVE]"),
    (["--label-noise", "0.1,0.1,0.1"], "one or two rates"),
    (["--corpus", "v1", "--label-noise", "0.2"], "only corpus v2"),
    (["--transfer", "-1"], "--transfer"),
    (["--transfer", "0", "--recipe", "transfer"], "needs an unlabelled transfer set"),
    (["--manifest", "m.csv", "--audio-root", ".", "--corpus", "v1"],
     "applies to the synthetic corpus"),
    (["--manifest", "m.csv", "--audio-root", ".", "--transfer", "3"],
     "applies to the synthetic corpus"),
])
def test_bad_data_options_exit_2_with_a_clear_message(capsys, tmp_path, args, needle):
    status = main(["pipeline", "--preset", "tiny", "--out", str(tmp_path / "run"), *args])
    err = capsys.readouterr().err
    assert status == 2 and needle in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def _prepared(tmp_path, rows, name, unlabeled_labels):
    """The arrays the pipeline writes for the seed jobs and the test set it scores, from a
    manifest whose unlabeled rows carry ``unlabeled_labels``."""
    from qdaed.pipeline.run import _prepare_arrays

    root = tmp_path / "c"
    lines = ["path,labels,clean_labels,split"]
    for r in rows:
        wrong = unlabeled_labels is not None and r["split"] == "unlabeled"
        labels = unlabeled_labels if wrong else r["labels"]
        clean = unlabeled_labels if wrong else r["clean_labels"]
        lines.append(f'{r["path"]},"{labels}","{clean}",{r["split"]}')
    (tmp_path / f"{name}.csv").write_text("\n".join(lines) + "\n")
    cfg = preset_config("tiny").merged({"data": dict(
        source="manifest", manifest=str(tmp_path / f"{name}.csv"), audio_root=str(root),
        n_transfer=0)})
    out = tmp_path / name
    out.mkdir()
    data = load(cfg, jobs=1, tmp_path=out)
    prep = _prepare_arrays(cfg, cfg.distill, data, out, lambda msg: None)
    arrays = {p.name: (np.load(p) if p.suffix == ".npy" else p.read_text())
              for p in sorted((out / "arrays").iterdir())}
    return arrays, prep


def test_unlabeled_rows_labels_reach_no_loss_target_and_no_metric(tmp_path):
    # The transfer rows get their true labels in one manifest and every class wrongly
    # positive in the other: the hard-loss targets (y_train), the validation labels (early
    # stopping, thresholds), the test set the metrics use and the normalisation must be
    # identical, and the transfer set reaches the seed jobs as features only.
    rows = write_corpus(tmp_path / "c", 20, seed=3, config=corpus_config("v1", 0.5),
                        validation_fraction=0.3, test_fraction=0.3, n_transfer=4)
    assert [r["split"] for r in rows].count("unlabeled") == 4
    truth, prep_t = _prepared(tmp_path, rows, "truth", None)
    wrong, prep_w = _prepared(tmp_path, rows, "wrong", "dog;baby_cry;gunshot")
    assert sorted(truth) == sorted(wrong)
    assert not any("transfer" in k and not k.startswith("x_") for k in truth)   # no labels
    assert "x_transfer.npy" in truth and truth["x_transfer.npy"].shape[0] == 4
    for k in truth:
        same = np.array_equal(truth[k], wrong[k]) if k.endswith(".npy") else truth[k] == wrong[k]
        assert same, k
    n_train = sum(r["split"] == "train" for r in rows)           # 8 of 20: by write_corpus
    assert truth["y_train.npy"].shape == (n_train, 3) == (8, 3)
    assert prep_t["test"].clips == prep_w["test"].clips
    assert not any(n in prep_t["test"].clips for n in
                   (r["path"] for r in rows if r["split"] == "unlabeled"))
    assert np.array_equal(prep_t["test"].labels, prep_w["test"].labels)
    assert np.array_equal(prep_t["x_test"], prep_w["x_test"])
