"""The typed run configuration: built and checked once, strict about unknown or ill-typed
fields, JSON round trip, ``--config FILE.json`` overrides, errors that name the option."""

import json

import pytest

from qdaed.cli import main
from qdaed.errors import InputError
from qdaed.models.quantized import QuantSpec
from qdaed.data.manifest import resolve_manifest
from qdaed.pipeline.config import (DataConfig, QuantConfig, RunConfig, merge_dicts,
                                   option_overrides)
from qdaed.pipeline.presets import PRESETS, preset_config, preset_dict
from qdaed.train.loop import TrainConfig
from qdaed.train.recipes import DistillSpec


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_round_trips_through_json(name, tmp_path):
    cfg = preset_config(name, audio_root=tmp_path)
    assert isinstance(cfg.data, DataConfig) and isinstance(cfg.distill, DistillSpec)
    assert isinstance(cfg.train_student, TrainConfig) and isinstance(cfg.quant, QuantConfig)
    text = json.dumps(cfg.to_dict())
    assert RunConfig.from_dict(json.loads(text)) == cfg
    assert "seed" not in cfg.to_dict()["train_student"]     # the run's seeds set it


def test_a_schedule_gets_the_seed_of_the_run():
    cfg = preset_config("tiny").merged({"seed": 3, "seeds": 2})
    assert cfg.seed_list == [3, 4]
    assert cfg.schedule("train_student", 4).seed == 4
    assert cfg.schedule("train_student", 4).epochs == cfg.train_student.epochs


def test_quant_config_gives_one_spec_per_width_with_its_seed():
    q = preset_config("tiny").merged({"quant": {"bits": [3, 2], "rounding": "stochastic",
                                                "seed": 9}}).quant
    assert q.bits == (3, 2)
    assert q.spec(3) == QuantSpec(3, group="row", symmetric=False, rounding="stochastic", seed=9)


@pytest.mark.parametrize("override, needle", [
    ({"seedz": 1}, "config: unknown field(s) ['seedz']"),
    ({"data": {"n_clipz": 5}}, "config.data: unknown field(s) ['n_clipz']"),
    ({"seeds": "3"}, "config.seeds: expected an integer"),
    ({"seeds": 0}, "config.seeds"),
    ({"seeds": True}, "config.seeds: expected an integer"),
    ({"data": {"split_fractions": [0.5, 0.2, 0.2]}}, "summing to 1"),
    ({"data": {"label_noise": {"missing": 1.0, "false_positive": 0}}},
     "config.data.label_noise.missing"),
    ({"data": {"corpus": "v9"}}, "config.data.corpus"),
    ({"data": {"source": "manifest"}}, "needs manifest and audio_root"),
    ({"data": {"max_freq": 9000.0}}, "above the mel filters' high_freq"),
    ({"quant": {"bits": [4, 4]}}, "listed twice"),
    ({"quant": {"bits": [17]}}, "config.quant.bits"),
    ({"quant": {"group": 0}}, "config.quant.group"),
    ({"quant": {"rounding": "up"}}, "config.quant.rounding"),
    ({"student": {"pooling": "median"}}, "config.student.pooling"),
    ({"teacher": {"depth": 20}}, "config.teacher.depth"),
    ({"teacher": {"pretrain_clips": 10}}, "pretrain_clips: 0 (off) or at least 50"),
    ({"teacher": {"pretrain_epochs": 0}}, "config.teacher.pretrain_epochs"),
    ({"teacher": {"pretrain_clips": 100}, "distill": {"recipe": "oof", "targets": "oof"}},
     "the out-of-fold teachers are not pretrained"),
    ({"train_student": {"lr": 0}}, "config.train_student.lr"),
    ({"train_student": {"seed": 4}}, "set by the run's seed"),
    ({"classes": ["dog", "cat"]}, "config.classes"),
    ({"distill": {"temperature": 1e-300}}, "config.distill.temperature"),
    ({"distill": {"recipe": "magic"}}, "config.distill.recipe"),
    ({"data": {"n_transfer": 0}}, "needs an unlabelled transfer set"),
    ({"extra_recipes": ["magic"]}, "config.extra_recipes"),
    ({"threads_per_job": 0}, "config.threads_per_job"),
])
def test_a_bad_field_is_an_input_error_naming_it(override, needle):
    with pytest.raises(InputError) as e:
        preset_config("tiny").merged(override)
    assert needle in str(e.value), str(e.value)


def test_merge_replaces_label_noise_whole_and_merges_other_sections():
    base = preset_dict("tiny")
    m = merge_dicts(base, {"data": {"n_clips": 80, "label_noise": {"missing": 0.1,
                                                                     "false_positive": 0.0}}})
    assert m["data"]["n_clips"] == 80 and m["data"]["clip_seconds"] == 1.0
    assert m["data"]["label_noise"] == {"missing": 0.1, "false_positive": 0.0}
    assert base["data"]["n_clips"] == 64                      # the base is not changed


def _resolve(tmp_path, *argv):
    import argparse

    from qdaed.commands.pipeline import register, resolve_config

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return resolve_config(parser.parse_args(["pipeline", "--out", str(tmp_path / "o"), *argv]))


def test_config_file_overrides_the_preset_and_options_override_the_file(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"student": {"hidden_size": 12}, "seeds": 4,
                             "train_student": {"epochs": 3}}))
    cfg = _resolve(tmp_path, "--preset", "tiny", "--config", str(f))
    assert cfg.student.hidden_size == 12 and cfg.seeds == 4 and cfg.train_student.epochs == 3
    assert cfg.train_student.batch_size == preset_config("tiny").train_student.batch_size
    assert _resolve(tmp_path, "--preset", "tiny", "--config", str(f), "--seeds", "2").seeds == 2


def test_a_runs_config_json_is_a_valid_config_file(tmp_path):
    cfg = preset_config("tiny").merged({"student": {"hidden_size": 6}})
    f = tmp_path / "config.json"
    f.write_text(json.dumps({**cfg.to_dict(), "status": "finished"}))
    assert _resolve(tmp_path, "--preset", "demo", "--config", str(f)) == cfg


@pytest.mark.parametrize("text, needle", [
    ("{", "cannot read the configuration"),
    ('{"seeds": NaN}', "NaN is not JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"student": {"hidden": 3}}', "config.student: unknown field(s) ['hidden']"),
])
def test_a_bad_config_file_exits_2_and_writes_nothing(tmp_path, capsys, text, needle):
    f = tmp_path / "c.json"
    f.write_text(text)
    out = tmp_path / "run"
    status = main(["pipeline", "--preset", "tiny", "--config", str(f), "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and needle in err and "Traceback" not in err, err
    assert not out.exists()


def test_a_missing_config_file_exits_2(tmp_path, capsys):
    status = main(["pipeline", "--config", str(tmp_path / "nope.json"), "--out",
                   str(tmp_path / "run")])
    assert status == 2 and "nope.json" in capsys.readouterr().err


@pytest.mark.parametrize("args, needle", [
    (["--bits", "17"], "--bits: expected an integer in [1, 16]"),
    (["--bits", "4,4"], "--bits: a bit width is listed twice"),
    (["--clips", "5"], "--clips: expected an integer in [10,"),
    (["--seeds", "0"], "--seeds: expected an integer in [1,"),
    (["--lam", "2"], "--lam: expected a number <= 1.0"),
    (["--max-freq", "50"], "--max-freq: expected a number >= 100.0"),
    (["--equal-seconds", "0"], "--equal-seconds"),
])
def test_option_errors_name_the_option(tmp_path, capsys, args, needle):
    status = main(["pipeline", "--preset", "tiny", "--out", str(tmp_path / "run"), *args])
    err = capsys.readouterr().err
    assert status == 2 and needle in err and "Traceback" not in err, err


# ---- the pipeline's options as config overrides, checked against each other -------------

def _synth_base(**data):
    return {"preset": "tiny", "data": {"source": "synth", "corpus": "v2", "manifest": None,
                                       "label_noise": {"missing": 0.2, "false_positive": 0.05},
                                       **data}}


def test_no_option_is_no_override():
    assert option_overrides(_synth_base()) == {}


def test_options_become_the_fields_they_set():
    over = option_overrides(_synth_base(), seeds=3, seed=7, bits=[4, 2], temperature=1.5,
                            lam=0.25, tune=True, corpus="v2", label_noise="0.1",
                            transfer=0, clips=40, skip_missing=True, max_freq=4000.0,
                            equal_seconds=2.0)
    assert over == {"seeds": 3, "seed": 7, "quant": {"bits": [4, 2]},
                    "distill": {"temperature": 1.5, "lam": 0.25, "tune": True},
                    "data": {"corpus": "v2", "n_transfer": 0, "n_clips": 40,
                             "label_noise": {"missing": 0.1, "false_positive": 0.05},
                             "skip_missing": True, "max_freq": 4000.0,
                             "equal_seconds": 2.0}}
    recipe = option_overrides(_synth_base(), recipe="paper", lam=0.75)["distill"]
    assert recipe["recipe"] == "paper" and recipe["lam"] == 0.75


def test_a_manifest_with_its_folder_replaces_the_synthetic_corpus(tmp_path):
    over = option_overrides(_synth_base(), manifest="real_audio", audio_root=tmp_path)
    assert over == {"data": {"source": "manifest", "manifest": resolve_manifest("real_audio"),
                             "audio_root": str(tmp_path), "n_transfer": 0}}
    real = _synth_base(source="manifest", manifest="real_corpus")
    assert option_overrides(real, audio_root=tmp_path) == {"data": {
        "manifest": resolve_manifest("real_corpus"), "audio_root": str(tmp_path)}}


@pytest.mark.parametrize("base,options,field,message", [
    ({"corpus": "v1"}, dict(label_noise="0.1"), "--label-noise",
     "--label-noise: only corpus v2 has label noise (corpus v1's labels are clean)"),
    ({}, dict(corpus="v1", label_noise="0.1"), "--label-noise",
     "--label-noise: only corpus v2 has label noise (corpus v1's labels are clean)"),
    ({}, dict(manifest="m.csv"), None, "--manifest and --audio-root go together"),
    ({}, dict(audio_root="."), None,
     "--manifest and --audio-root go together (or a preset of real recordings: --preset real "
     "--audio-root DIR)"),
    ({}, dict(manifest="m.csv", audio_root=".", clips=20), "--clips",
     "--clips: applies to the synthetic corpus, not to --manifest (a manifest's transfer set "
     "is its rows with split 'unlabeled')"),
    ({"source": "manifest", "manifest": "real_corpus"}, {}, "--audio-root",
     "--audio-root: preset tiny trains on the real recordings its manifest (real_corpus) "
     "lists; give the folder that holds them (for the real corpus: the folder with "
     "audio/urbansound8k, audio/donateacry, audio/esc10)"),
    ({"source": "manifest", "manifest": "real_corpus"}, dict(audio_root=".", corpus="v1"),
     "--corpus", "--corpus: applies to the synthetic corpus, not to preset tiny's recordings"),
    ({"source": "manifest", "manifest": "real_corpus"},
     dict(audio_root=".", transfer=5, clips=20), "--transfer",
     "--transfer: applies to the synthetic corpus, not to preset tiny's recordings"),
])
def test_options_that_do_not_go_together_name_the_option(base, options, field, message):
    with pytest.raises(InputError) as err:
        option_overrides(_synth_base(**base), **options)
    assert str(err.value) == message and err.value.field == field
