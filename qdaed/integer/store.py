"""The integer student in a v3 model file: its document field and tensors by name.

A model file holds an integer student only when one was calibrated and stored
(``Detector(..., integer=student).save(path)``); a file without one is exactly what it was
before (no field, no tensor). With one, the document has the field

    integer   {"input":  {"scale": s, "zero_point": z},      the int8 input (normalised LFBE)
               "layers": [{"hidden": {"scale", "zero_point"}, "cell_power": p}, ...],
                          one per LSTM layer: h's quantization (the next layer's input) and
                          the cell state's scale 2^p
               "pooled": {"scale", "zero_point"},            the temporal mean's output
               "logits": {"scale", "zero_point"},            the FC head's output
               "head_scales": 1 or C}                        per-tensor or per-row FC scales

and the data section ends with these tensors (after ``normalizer.std``), for l = 0..L−1:

    integer.lstm.weight_ih_l{l}         I8  (4, H, I)   gate order i, f, g, o
    integer.lstm.weight_hh_l{l}         I8  (4, H, H)
    integer.lstm.bias_l{l}              I32 (4, H)      (b_ih + b_hh) / (s_in · s_w_ih[k])
    integer.lstm.weight_ih_scales_l{l}  F32 (4,)        one symmetric scale per gate matrix
    integer.lstm.weight_hh_scales_l{l}  F32 (4,)
    integer.fc.weight                   I8  (C, H)
    integer.fc.bias                     I32 (C,)
    integer.fc.weight_scales            F32 (head_scales,)

The output's quantization is LOGISTIC's fixed (1/256, −128) and is not stored. Neither are
the (multiplier, shift) pairs: they follow from the scales exactly as TFLite Micro's Prepare
derives them from a .tflite file (:mod:`qdaed.integer.ops`), so storing them could only
disagree. Every scale is a positive float32 in [``MIN_SCALE``, ``MAX_SCALE``] (the
document's written as JSON numbers that must be float32 values exactly); zero points are
integers in [−128, 127]; p in [−43, 2]; every derived shift must be in [−31, 30] (TFLite's
range) and the logits' scale within what the int8 LOGISTIC accepts. A value outside is a
:class:`~qdaed.formats.header.HeaderError` naming the field (the loader's ModelFileError).
"""

from __future__ import annotations

import numpy as np

from qdaed.errors import InputError
from qdaed.integer.fixedpoint import quantize_multiplier
from qdaed.integer.ops import FullyConnected, LstmLayer, QuantParams, logistic_params
from qdaed.integer.student import IntegerStudent

MIN_SCALE = 1e-30
MAX_SCALE = 1e6
CELL_POWERS = (-43, 2)
FIELDS = ("input", "layers", "pooled", "logits", "head_scales")


class IntegerFieldError(ValueError):
    """A field of the integer student that fails its check: ``field`` and ``msg``."""

    def __init__(self, field, msg):
        super().__init__(f"{field}: {msg}")
        self.field, self.msg = field, msg


def tensor_layout(hidden_size, input_size, num_layers, num_classes, head_scales):
    """[(name, dtype code, shape)] of the integer tensors, in file order."""
    out = []
    for k in range(num_layers):
        size = input_size if k == 0 else hidden_size
        out += [(f"integer.lstm.weight_ih_l{k}", "I8", (4, hidden_size, size)),
                (f"integer.lstm.weight_hh_l{k}", "I8", (4, hidden_size, hidden_size)),
                (f"integer.lstm.bias_l{k}", "I32", (4, hidden_size)),
                (f"integer.lstm.weight_ih_scales_l{k}", "F32", (4,)),
                (f"integer.lstm.weight_hh_scales_l{k}", "F32", (4,))]
    out += [("integer.fc.weight", "I8", (num_classes, hidden_size)),
            ("integer.fc.bias", "I32", (num_classes,)),
            ("integer.fc.weight_scales", "F32", (head_scales,))]
    return out


def _params_doc(q):
    return {"scale": float(np.float32(q.scale)), "zero_point": int(q.zero_point)}


def document(student):
    """(the ``integer`` document field, [(tensor name, array)] in file order) of a student."""
    if not isinstance(student, IntegerStudent):
        raise InputError(f"integer: expected an IntegerStudent, got {type(student).__name__}")
    doc = {"input": _params_doc(student.input),
           "layers": [{"hidden": _params_doc(la.hidden), "cell_power": int(la.cell_power)}
                      for la in student.layers],
           "pooled": _params_doc(student.pooled), "logits": _params_doc(student.fc.output),
           "head_scales": int(student.fc.weight_scales.size)}
    tensors = []
    for k, la in enumerate(student.layers):
        tensors += [(f"integer.lstm.weight_ih_l{k}", la.w_ih),
                    (f"integer.lstm.weight_hh_l{k}", la.w_hh),
                    (f"integer.lstm.bias_l{k}", la.bias),
                    (f"integer.lstm.weight_ih_scales_l{k}", la.w_ih_scales.astype(np.float32)),
                    (f"integer.lstm.weight_hh_scales_l{k}", la.w_hh_scales.astype(np.float32))]
    tensors += [("integer.fc.weight", student.fc.weights), ("integer.fc.bias", student.fc.bias),
                ("integer.fc.weight_scales", student.fc.weight_scales.astype(np.float32))]
    return doc, tensors


def _is_number(v):
    return not isinstance(v, bool) and isinstance(v, (int, float))


def _scale(field, v):
    if not _is_number(v) or isinstance(v, int) and abs(v) > 10 ** 300:
        raise IntegerFieldError(field, f"expected a number, got {_show(v)}")
    f = float(v)
    if not (MIN_SCALE <= f <= MAX_SCALE):
        raise IntegerFieldError(field, f"expected a scale in [{MIN_SCALE:g}, {MAX_SCALE:g}], "
                                       f"got {_show(v)}")
    if float(np.float32(f)) != f:
        raise IntegerFieldError(field, f"expected a float32 value (the .tflite file stores "
                                       f"float32 scales), got {_show(v)}")
    return f


def _zero_point(field, v):
    if isinstance(v, bool) or not isinstance(v, int) or not -128 <= v <= 127:
        raise IntegerFieldError(field, f"expected an integer in [-128, 127], got {_show(v)}")
    return v


def _show(v, limit=60):
    s = repr(v)
    return s if len(s) <= limit else s[:limit] + "…"


def _fields(field, obj, names):
    if not isinstance(obj, dict):
        raise IntegerFieldError(field, f"expected an object, got {_show(obj)}")
    missing = [n for n in names if n not in obj]
    if missing:
        raise IntegerFieldError(f"{field}.{missing[0]}", "missing")
    extra = sorted(set(obj) - set(names))
    if extra:
        raise IntegerFieldError(field, f"unexpected field(s) {_show(extra)}")


def _params(field, obj):
    _fields(field, obj, ("scale", "zero_point"))
    return QuantParams(_scale(f"{field}.scale", obj["scale"]),
                       _zero_point(f"{field}.zero_point", obj["zero_point"]))


def check_field(spec, num_layers, num_classes):
    """The checked ``integer`` field: {"input", "layers": [(hidden, p)], "pooled", "logits",
    "head_scales"} with QuantParams; IntegerFieldError (field names start with ``integer``)."""
    _fields("integer", spec, FIELDS)
    out = {"input": _params("integer.input", spec["input"])}
    layers = spec["layers"]
    if not isinstance(layers, list) or len(layers) != num_layers:
        raise IntegerFieldError("integer.layers", f"expected a list of {num_layers} layers "
                                                  f"(arch_config.num_layers), got {_show(layers)}")
    out["layers"] = []
    for k, la in enumerate(layers):
        where = f"integer.layers[{k}]"
        _fields(where, la, ("hidden", "cell_power"))
        p = la["cell_power"]
        lo, hi = CELL_POWERS
        if isinstance(p, bool) or not isinstance(p, int) or not lo <= p <= hi:
            raise IntegerFieldError(f"{where}.cell_power", f"expected an integer in [{lo}, "
                                                           f"{hi}] (the cell scale is 2^p), "
                                                           f"got {_show(p)}")
        out["layers"].append((_params(f"{where}.hidden", la["hidden"]), p))
    out["pooled"] = _params("integer.pooled", spec["pooled"])
    out["logits"] = _params("integer.logits", spec["logits"])
    try:
        logistic_params(out["logits"])
    except InputError:
        raise IntegerFieldError("integer.logits.scale", f"{out['logits'].scale!r} is outside "
                                                        f"the int8 LOGISTIC's input range "
                                                        f"[2^-28, 8)") from None
    n = spec["head_scales"]
    if isinstance(n, bool) or not isinstance(n, int) or n not in {1, num_classes}:
        raise IntegerFieldError("integer.head_scales", f"expected 1 or {num_classes} (per "
                                                       f"tensor or per class), got {_show(n)}")
    out["head_scales"] = n
    return out


def _check_scales(name, a):
    bad = ~((a >= MIN_SCALE) & (a <= MAX_SCALE))      # NaN is bad too
    if bad.any():
        i = int(np.argmax(bad))
        raise IntegerFieldError(f"tensor {name!r}", f"value {float(a[i]):g} at [{i}] is not a "
                                                    f"scale in [{MIN_SCALE:g}, {MAX_SCALE:g}]")


def _check_shifts(field, pairs):
    for m, s in pairs:
        if not (-31 <= s <= 30) or not 0 <= m < 2 ** 31:
            raise IntegerFieldError(field, f"a rescale of shift {s} follows from its scales, "
                                           f"outside TFLite's [-31, 30]")


def build(checked, tensors):
    """The IntegerStudent of a checked field and its tensors (name → array, dtypes and shapes
    as :func:`tensor_layout`); IntegerFieldError for a value that cannot be used."""
    layers, prev = [], checked["input"]
    for k, (hidden, p) in enumerate(checked["layers"]):
        for kind in ("ih", "hh"):
            _check_scales(f"integer.lstm.weight_{kind}_scales_l{k}",
                          tensors[f"integer.lstm.weight_{kind}_scales_l{k}"])
        try:
            la = LstmLayer(tensors[f"integer.lstm.weight_ih_l{k}"],
                           tensors[f"integer.lstm.weight_hh_l{k}"],
                           tensors[f"integer.lstm.bias_l{k}"],
                           tensors[f"integer.lstm.weight_ih_scales_l{k}"],
                           tensors[f"integer.lstm.weight_hh_scales_l{k}"], prev, hidden, p)
        except InputError as exc:
            raise IntegerFieldError(f"integer.layers[{k}]", str(exc)) from None
        d = la.derived
        _check_shifts(f"tensor 'integer.lstm.weight_ih_scales_l{k}'", zip(d["m_ih"], d["s_ih"]))
        _check_shifts(f"tensor 'integer.lstm.weight_hh_scales_l{k}'", zip(d["m_hh"], d["s_hh"]))
        _check_shifts(f"integer.layers[{k}].hidden.scale", [d["output"]])
        layers.append(la)
        prev = hidden
    _check_shifts("integer.pooled.scale",
                  [quantize_multiplier(prev.scale / checked["pooled"].scale)])
    _check_scales("integer.fc.weight_scales", tensors["integer.fc.weight_scales"])
    try:
        fc = FullyConnected(tensors["integer.fc.weight"], tensors["integer.fc.weight_scales"],
                            tensors["integer.fc.bias"], checked["pooled"], checked["logits"])
        student = IntegerStudent(checked["input"], tuple(layers), checked["pooled"], fc)
    except InputError as exc:
        raise IntegerFieldError("integer", str(exc)) from None
    _check_shifts("tensor 'integer.fc.weight_scales'",
                  zip(fc.derived["multipliers"], fc.derived["shifts"]))
    return student


__all__ = ["MIN_SCALE", "MAX_SCALE", "IntegerFieldError", "tensor_layout", "document",
           "check_field", "build"]
