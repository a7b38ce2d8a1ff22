"""Reading golden-vector tensors and laying out a perfect 'other implementation'."""

import json
import os
import shutil

import numpy as np


def copy_outputs(vectors, out, cases=None):
    """OUT laid out from the golden outputs themselves: a perfect 'other implementation'."""
    names = json.load(open(os.path.join(vectors, "manifest.json")))["cases"]
    for name in names if cases is None else cases:
        spec = json.load(open(os.path.join(vectors, name, "case.json")))
        os.makedirs(os.path.join(out, name), exist_ok=True)
        for t in spec["outputs"]:
            shutil.copyfile(os.path.join(vectors, name, t + ".npy"),
                            os.path.join(out, name, t + ".npy"))
    return out


def load(path):
    return np.load(path, allow_pickle=False)
