"""``qdaed.io.strictjson.nan_to_none``: undefined metrics written as strict JSON's null (the
reader's and writers' cases are in test_modelfile.py and test_hostile.py)."""

import json
import math

from qdaed.io.strictjson import nan_to_none


def test_nan_becomes_none_in_nested_dicts():
    value = {"auc": {"dog": 0.75, "mean": math.nan}, "clips": 3, "model": "m",
             "events": {"f1": float("nan"), "tp": 0}}
    out = nan_to_none(value)
    assert out == {"auc": {"dog": 0.75, "mean": None}, "clips": 3, "model": "m",
                   "events": {"f1": None, "tp": 0}}
    assert json.dumps(out) == ('{"auc": {"dog": 0.75, "mean": null}, "clips": 3, "model": '
                               '"m", "events": {"f1": null, "tp": 0}}')
    assert math.isnan(value["auc"]["mean"])                 # the input is left as it was


def test_other_values_pass_as_they_are():
    assert nan_to_none(math.nan) is None
    assert nan_to_none(math.inf) == math.inf
    assert nan_to_none(None) is None and nan_to_none("nan") == "nan"
    assert nan_to_none([1.0, 2.0]) == [1.0, 2.0]
