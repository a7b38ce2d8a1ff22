"""The integer student over a stream (issue 26, item 5): (h, c) carried across chunks of any
size gives the whole run bit for bit (a property over random chunkings); window outputs from
running sums equal the ops run on each window; the first window equals TFLite Micro on the
exported file; ``qdaed detect --integer`` scores files through the same streaming path."""

import json

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from qdaed.cli import main
from qdaed.errors import InputError
from qdaed.features.fbank import LfbeOptions, lfbe
from qdaed.features.streaming import window_ends
from qdaed.formats.tflite_export import export_tflite
from qdaed.integer import calibrate, fully_connected, logistic, lstm_layer, mean_over_time
from qdaed.integer.ops import LstmState
from qdaed.integer.streaming import IntegerStream, IntegerWindows
from qdaed.streaming import scan_features
from tests.integer.cases import random_student, run_tflm
from tests.io.detectors import student as float_student

runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")


def _cuts(draw, total):
    """Random chunk boundaries of [0, total): empty chunks and single steps included."""
    points = draw(st.lists(st.integers(0, total), max_size=8))
    return [0, *sorted(points), total]


@given(st.data())
def test_chunked_integer_stream_equals_the_whole_run_bit_for_bit(data):
    seed = data.draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    layers = data.draw(st.sampled_from([1, 2]))
    extreme = data.draw(st.sampled_from([None, "pm", "max"]))
    s = random_student(rng, 5, 4, layers, 3, extreme=extreme,
                       saturate=data.draw(st.booleans()))
    T = data.draw(st.integers(1, 40))
    x = rng.integers(-128, 128, (T, 5)).astype(np.int8)
    whole = s.forward(x[None]).layers[-1][0]
    stream, cuts = IntegerStream(s), _cuts(data.draw, T)
    chunks = [stream.push(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    assert np.array_equal(np.concatenate(chunks), whole)


def test_a_state_reset_at_each_chunk_would_change_the_outputs():
    """The property above can fail: restarting from the zero state at a chunk changes h."""
    rng = np.random.default_rng(3)
    s = random_student(rng, 5, 4, 1, 3)
    x = rng.integers(-128, 128, (1, 30, 5)).astype(np.int8)
    whole = lstm_layer(s.layers[0], x)
    restarted = np.concatenate([lstm_layer(s.layers[0], x[:, :15]),
                                lstm_layer(s.layers[0], x[:, 15:])], axis=1)
    assert not np.array_equal(whole, restarted)
    carried = LstmState.zero(s.layers[0])
    resumed = np.concatenate([lstm_layer(s.layers[0], x[:, :15], state=carried),
                              lstm_layer(s.layers[0], x[:, 15:], state=carried)], axis=1)
    assert np.array_equal(whole, resumed)


def test_lstm_state_of_the_wrong_shape_or_dtype_is_refused():
    s = random_student(np.random.default_rng(0), 5, 4, 1, 3)
    x = np.zeros((2, 3, 5), np.int8)
    with pytest.raises(InputError, match="state.h"):
        lstm_layer(s.layers[0], x, state=LstmState.zero(s.layers[0], batch=1))
    bad = LstmState.zero(s.layers[0], batch=2)
    bad.c = bad.c.astype(np.int32)
    with pytest.raises(InputError, match="state.c"):
        lstm_layer(s.layers[0], x, state=bad)


def _window_reference(s, y, start, window):
    """One window's scores and logits by the ops on its own W outputs (no running sums)."""
    top = s.layers[-1]
    pooled = mean_over_time(y[None, start:start + window], top.hidden, s.pooled)
    z = fully_connected(s.fc, pooled)
    return z[0], logistic(z, s.fc.output)[0]


@given(st.data())
def test_window_outputs_from_running_sums_equal_the_ops_on_each_window(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16)))
    s = random_student(rng, 3, 6, 1, 2, extreme=data.draw(st.sampled_from([None, "pm"])))
    window = data.draw(st.integers(1, 12))
    hop = data.draw(st.integers(1, 7))
    T = data.draw(st.integers(window, 45))
    y = s.forward(rng.integers(-128, 128, (1, T, 3)).astype(np.int8)).layers[-1][0]
    pool, cuts = IntegerWindows(s, window, hop), _cuts(data.draw, T)
    out = [o for a, b in zip(cuts[:-1], cuts[1:]) for o in pool.push(y[a:b])] + pool.finish()
    starts = [st_ for st_, _, _ in out]
    regular = (window_ends(0, T, window, hop) - window).tolist()
    assert starts == regular + ([T - window] if (T - window) % hop else [])
    for start, logits, scores in out:
        z, q = _window_reference(s, y, start, window)
        assert np.array_equal(logits, s.fc.output.dequantize(z))
        assert np.array_equal(scores, (q.astype(np.float64) + 128) / 256)


def _detector(tmp_path, frames=25):
    det = float_student(hidden=6, layers=2, bins=16, frames=frames)
    rng = np.random.default_rng(1)
    det.integer = calibrate(det, rng.standard_normal((4, frames, 16)).astype(np.float32))
    det.save(tmp_path / "int.safetensors")
    return det


def _wav(tmp_path, seconds=1.3):
    rng = np.random.default_rng(7)
    t = np.arange(int(16000 * seconds)) / 16000
    wav = (0.1 * rng.standard_normal(t.size) * (1 + np.sin(2 * np.pi * 1.5 * t))).astype(
        np.float32)
    sf.write(tmp_path / "a.wav", wav, 16000, subtype="FLOAT")
    return wav


def test_scan_with_random_feature_blocks_gives_the_same_integer_scores_and_tflm_first_window(
        tmp_path):
    det = _detector(tmp_path)
    feats = lfbe(_wav(tmp_path).astype(np.float64), 16000,
                 **LfbeOptions(**det.features).to_dict())
    rng = np.random.default_rng(5)
    runs = []
    for _ in range(4):
        cuts = [0, *sorted(rng.integers(0, feats.shape[0], 5)), feats.shape[0]]
        blocks = [feats[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
        runs.append(scan_features(det, iter(blocks), samples=1, hop=7, integer=True))
    for sc in runs[1:]:
        assert np.array_equal(sc.starts, runs[0].starts)
        assert np.array_equal(sc.integer_scores, runs[0].integer_scores)
    sc = runs[0]
    assert len(sc.starts) >= 8 and np.array_equal(sc.scores, sc.integer_scores)
    x = det.integer.quantize_input(det.normalizer.apply(feats[:25])[None])
    (tflm,) = run_tflm(runtime, export_tflite(det.integer, 25), [x])
    assert np.array_equal(sc.integer_scores[0], (tflm[0].astype(np.float64) + 128) / 256)


def test_detect_integer_prints_the_integer_students_file_scores(tmp_path, capsys):
    det = _detector(tmp_path)
    wav = _wav(tmp_path)
    assert main(["detect", str(tmp_path / "int.safetensors"), str(tmp_path / "a.wav"),
                 "--integer", "--json", "--hop", "0.07"]) == 0
    res = json.loads(capsys.readouterr().out)
    feats = lfbe(wav.astype(np.float64), 16000, **LfbeOptions(**det.features).to_dict())
    x = det.integer.quantize_input(det.normalizer.apply(feats[:25])[None])
    first = (det.integer.forward(x).scores[0].astype(np.float64) + 128) / 256
    scores = np.array([res["scores"][c] for c in det.classes])
    assert np.all(scores >= first)                      # the maximum over windows
    assert np.array_equal(scores * 256, np.round(scores * 256))   # int8 outputs
    assert main(["detect", str(tmp_path / "int.safetensors"), str(tmp_path / "a.wav"),
                 "--json", "--hop", "0.07"]) == 0
    floats = json.loads(capsys.readouterr().out)["scores"]
    assert floats != res["scores"]


def test_detect_integer_on_a_model_without_integer_student_is_refused_and_writes_nothing(
        tmp_path, capsys):
    float_student(hidden=4, bins=16).save(tmp_path / "m.safetensors")
    _wav(tmp_path)
    assert main(["detect", str(tmp_path / "m.safetensors"), str(tmp_path / "a.wav"),
                 "--integer", "--csv", str(tmp_path / "out.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--integer: the model file holds no integer student" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out.csv").exists()


def test_a_file_shorter_than_a_window_is_looped_and_scored_once_by_the_integer_student(
        tmp_path):
    det = _detector(tmp_path, frames=60)
    feats = lfbe(_wav(tmp_path, 0.3).astype(np.float64), 16000,
                 **LfbeOptions(**det.features).to_dict())
    sc = scan_features(det, iter([feats]), samples=1, integer=True)
    assert sc.short and sc.starts.tolist() == [0]
    looped = np.concatenate([feats] * (60 // feats.shape[0] + 1))[:60]
    x = det.integer.quantize_input(det.normalizer.apply(looped)[None])
    (tflm,) = run_tflm(runtime, export_tflite(det.integer, 60), [x])
    assert np.array_equal(sc.integer_scores[0], (tflm[0].astype(np.float64) + 128) / 256)
