"""``qdaed.evaluation``: matching a sed_eval event list to clips (expected values by hand)."""

import pytest

from qdaed.data.manifest import Clip
from qdaed.errors import DataError
from qdaed.evaluation import match_reference, reference_clips

CLASSES = ("dog", "baby_cry", "gunshot")


def _event(cls, onset=0.0, offset=1.0):
    return {"class": cls, "onset": onset, "offset": offset}


REFERENCE = {
    "a/x.wav": [_event("dog"), _event("bird", 2, 3), _event("dog", 4, 5)],
    "y.wav": [_event("gunshot"), _event("baby_cry", 1, 2)],
    "z.wav": [_event("bird")],
}


def test_reference_clips_one_per_file_labelled_with_its_known_classes():
    assert reference_clips(REFERENCE, CLASSES) == [
        Clip(line=2, labels=("dog",), path="a/x.wav"),
        Clip(line=3, labels=("baby_cry", "gunshot"), path="y.wav"),   # in the classes' order
        Clip(line=4, labels=(), path="z.wav"),
    ]


def test_match_reference_by_path_then_by_a_unique_file_name():
    clips = [Clip(1, ("dog",), path="a/x.wav"), Clip(2, (), path="b/y.wav"),
             Clip(3, (), path="c/z.wav"), Clip(4, (), path="d/z.wav"),
             Clip(5, (), path="w.wav")]
    assert match_reference(REFERENCE, clips, CLASSES, "ref.tsv") == {
        "a/x.wav": [_event("dog"), _event("dog", 4, 5)],        # its path; bird left out
        "b/y.wav": [_event("gunshot"), _event("baby_cry", 1, 2)],   # its file name
        "c/z.wav": [], "d/z.wav": [],        # z.wav: two clips have that name, neither gets it
        "w.wav": [],                         # not in the list
    }
    only_dogs = match_reference(REFERENCE, clips[:2], ("dog",), "ref.tsv")
    assert only_dogs == {"a/x.wav": [_event("dog"), _event("dog", 4, 5)], "b/y.wav": []}


def test_match_reference_naming_none_of_the_clips_is_a_data_error():
    with pytest.raises(DataError) as err:
        match_reference(REFERENCE, [Clip(1, (), path="q.wav"), Clip(2, (), path="r.wav")],
                        CLASSES, "ref.tsv")
    assert str(err.value) == ("--reference-tsv ref.tsv: names none of the 2 clip(s) (by "
                              "manifest path or file name)")
