"""Segment- and event-based F1 (qdaed.eventmetrics): hand-computed cases from sed_eval's
documented definitions, and sed_eval itself where it installs (conformance)."""

import sys
import types

import numpy as np
import pytest

from qdaed.errors import InputError
from qdaed.eventmetrics import event_based, matches, segment_based

C = ("dog", "gunshot")


def ev(cls, on, off):
    return {"class": cls, "onset": on, "offset": off}


def test_event_based_by_hand():
    ref = [ev("dog", 1.0, 2.0), ev("dog", 5.0, 9.0), ev("gunshot", 3.0, 3.2)]
    est = [ev("dog", 1.15, 2.19),      # onset within 0.2, offset within max(0.2, 0.5) → TP
           ev("dog", 5.3, 9.0),        # onset 0.3 late → FP (and the ref is an FN)
           ev("gunshot", 2.9, 3.45),   # offset 0.25 > max(0.2, 0.1) → FP
           ev("gunshot", 3.0, 3.2)]    # TP
    m = event_based([(ref, est, 10.0)], C)
    assert (m["overall"]["tp"], m["overall"]["fp"], m["overall"]["fn"]) == (2, 2, 1)
    assert m["overall"]["precision"] == 0.5 and m["overall"]["recall"] == 2 / 3
    assert m["overall"]["f1"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))
    assert m["class"]["dog"]["f1"] == pytest.approx(0.5)
    assert m["class"]["gunshot"]["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.5 + 2 / 3) / 2)


def test_event_matching_is_maximal_not_greedy():
    """A greedy pass would match the first estimate to the first reference and leave the
    second reference without a partner; the maximum matching pairs both."""
    ref = [ev("dog", 1.0, 3.0), ev("dog", 1.3, 3.3)]
    est = [ev("dog", 1.15, 3.1), ev("dog", 0.95, 2.9)]
    assert matches(ref[0], est[0]) and matches(ref[1], est[0]) and matches(ref[0], est[1])
    assert not matches(ref[1], est[1])
    assert event_based([(ref, est, 5.0)], C)["overall"]["tp"] == 2


def test_segment_based_by_hand():
    ref = [ev("dog", 0.5, 2.2)]                       # segments 0, 1, 2
    est = [ev("dog", 1.9, 3.0), ev("gunshot", 4.0, 4.5)]   # segments 1, 2 / 4
    m = segment_based([(ref, est, 5.0)], C)
    assert (m["overall"]["tp"], m["overall"]["fp"], m["overall"]["fn"]) == (2, 1, 1)
    assert m["class"]["gunshot"]["recall"] is None and m["class"]["gunshot"]["f1"] is None
    assert m["macro_f1"] == pytest.approx(0.8)        # dog: 2·2/(4+0+1); gunshot undefined


def test_empty_and_undefined():
    m = event_based([([], [], 3.0)], C)
    assert m["overall"]["f1"] is None and m["macro_f1"] is None
    m = event_based([([ev("dog", 0, 1)], [], 3.0)], C)
    assert m["overall"]["recall"] == 0.0 and m["overall"]["precision"] is None
    with pytest.raises(InputError):
        event_based([([{"class": "dog", "onset": 2.0, "offset": 1.0}], [], 3.0)], C)


# ---- sed_eval ---------------------------------------------------------------------------------

def _sed_eval():
    # dcase_util (sed_eval's container library) imports pkg_resources, which setuptools >= 81
    # no longer ships; it only uses it for an optional version check.
    sys.modules.setdefault("pkg_resources", types.ModuleType("pkg_resources"))
    return pytest.importorskip("sed_eval")


def _random_files(rng, n_files=6):
    files = []
    for _ in range(n_files):
        dur = float(rng.uniform(5, 20))
        lists = []
        for _ in range(2):
            evs = []
            for _ in range(int(rng.integers(0, 6))):
                on = float(np.round(rng.uniform(0, dur - 0.5), 2))
                evs.append(ev(str(rng.choice(C)), on,
                              float(np.round(min(dur, on + rng.uniform(0.1, 3)), 2))))
            lists.append(evs)
        # make some estimates near the references, so there are matches to find
        lists[1] += [ev(e["class"], round(e["onset"] + rng.uniform(-0.3, 0.3), 2) if
                        e["onset"] > 0.3 else e["onset"],
                        e["offset"] + round(rng.uniform(-0.3, 0.3), 2)) for e in lists[0]]
        files.append((lists[0], lists[1], dur))
    return files


def _sed(files, metrics):
    for ref, est, dur in files:
        conv = [[{"event_label": e["class"], "onset": e["onset"], "offset": e["offset"],
                  "filename": "f.wav"} for e in lst] for lst in (ref, est)]
        if hasattr(metrics, "time_resolution"):   # segment-based: the file's length
            metrics.evaluate(conv[0], conv[1], evaluated_length_seconds=dur)
        else:
            metrics.evaluate(conv[0], conv[1])
    return metrics.results()


def _close(a, b):
    if a is None:
        return b is None or np.isnan(b)
    return b is not None and not np.isnan(b) and a == pytest.approx(b, abs=1e-12)


@pytest.mark.conformance
@pytest.mark.parametrize("seed", range(8))
def test_conformance_with_sed_eval(seed):
    sed_eval = _sed_eval()
    files = _random_files(np.random.default_rng(seed))
    files = [(r, [e for e in s if e["offset"] > e["onset"] >= 0], d) for r, s, d in files]
    seg = sed_eval.sound_event.SegmentBasedMetrics(list(C), time_resolution=1.0)
    evb = sed_eval.sound_event.EventBasedMetrics(list(C), t_collar=0.2,
                                                 percentage_of_length=0.5)
    for ours, theirs in ((segment_based(files, C), _sed(files, seg)),
                         (event_based(files, C), _sed(files, evb))):
        o = theirs["overall"]["f_measure"]
        assert _close(ours["overall"]["f1"], o["f_measure"])
        assert _close(ours["overall"]["precision"], o["precision"])
        assert _close(ours["overall"]["recall"], o["recall"])
        assert _close(ours["macro_f1"], theirs["class_wise_average"]["f_measure"]["f_measure"])
        for c in C:
            assert _close(ours["class"][c]["f1"], theirs["class_wise"][c]["f_measure"]["f_measure"])
