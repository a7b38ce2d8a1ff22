"""Fixtures shared by the model-file tests."""

import pytest

from tests.io.detectors import resnet, student


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The bytes of three saved detectors: float student, 4-bit student, ResNet teacher."""
    d = tmp_path_factory.mktemp("saved")
    out = {}
    for key, det in (("float", student()), ("q4", student(4)), ("resnet", resnet())):
        det.save(d / key)
        out[key] = (d / key).read_bytes()
    return out
