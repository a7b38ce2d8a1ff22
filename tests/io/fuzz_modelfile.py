"""Damaged and hostile model files through ``Detector.load``, ``qdaed info`` and ``qdaed
detect``.

    python -m tests.io.fuzz_modelfile --cases 200 --seed 0 --dir DIR --report REPORT.json

Three model files (a float student, a 4-bit student, a small ResNet) are saved, then mutated.
Mutation classes (drawn in turn, each from its own shuffled catalogue, so a small sample has
some of every class):

    field edits     a catalogue of document field values no valid model has (huge sizes,
                    true, strings, deep nesting, wrong class lists, ...)
    raw edits       document text that is not strict JSON (1e400, NaN, duplicate keys, ...)
    table edits     the JSON table changed (dtypes, shapes, offsets, metadata)
    type confusion  every field of the document (at every depth) replaced by a list, an
                    object, a number, a string, null or a boolean
    huge numbers    every number of the document written as 4,300 or 5,000 digits, 101
                    digits, 1e400, -1e400, -0, -0.0, 1e-400, NaN, Infinity
    text            a lone surrogate (\\ud800) in a string or a key of the document; a raw
                    surrogate in the table; invalid UTF-8 (0xff, an encoded surrogate, an
                    overlong form, a cut sequence) in the table
    quadratic       1 MiB tables of escaped quotes, backslashes, brackets; a document string
                    of 200,000 escaped quotes; a document nested 100,000 deep
    unusable        valid JSON describing a model that cannot work: a normaliser std of 1e-45
                    or 0, weights of 3.4e38 or 1e7, a negative running variance, alpha < 0,
                    thresholds 0, log_floor 1e30, blackman_coeff 1e9, class names equal once
                    NFC-normalised or stripped
    document chars  one character of the document text changed at random
    bytes           bit flips in the table or the data, truncations, length fields, extra
                    bytes, overwritten table bytes

Every document edit is made once with the format's SHA-256 recomputed ("re-signed", so the
field checks, not the digest, must answer) and, for most, once without; the document-character
class mostly re-signed.

Every case runs under a 10 s alarm (SIGALRM) in this process (no subprocess per case); its
load time and its whole time (load, ``qdaed info``, ``qdaed detect``) are recorded. The test
that starts this module runs it as a subprocess under an overall timeout, so a hang that an
alarm cannot interrupt is caught as well. Outcomes per case:

    refused     Detector.load raised ModelFileError, and info and detect exited 2 without a
                traceback
    same        it loaded, and tensors, document, scores and decisions equal the original's
                (info and detect exited 0 with the original's output)
    accepted    a re-signed edit that is a valid, different model: it loaded, a short random
                input gives finite scores, and info and detect exited 0 with finite scores
    changed     it loaded as a different model though its digest was not recomputed, or
                an "unusable" case loaded                                   (a failure)
    nonfinite   accepted, but some score is NaN or infinite, or info/detect failed
                                                                            (a failure)
    traceback   any other exception, or info/detect not agreeing with the load  (a failure)
    timeout     the alarm fired                                             (a failure)

The report (JSON) has the counts (per outcome and per class), how many cases were re-signed,
the failures (case name and detail), the largest load and case times, the outcomes of three
control cases whose answer is known (the original file: "same"; a re-signed valid threshold
edit and a re-signed changed weight: "accepted"), and the peak RSS.
"""

import argparse
import contextlib
import hashlib
import io
import json
import os
import resource
import signal
import struct
import sys
import time
import traceback

import numpy as np
import soundfile as sf

from qdaed.integer import calibrate

from tests.io import files

TIMEOUT_S = 10


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


# --------------------------------------------------------------------------- mutations


_set = files.set_field


DEEP = {"deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}
FIELD_EDITS = {      # base -> [(path, invalid value)]
    "all": [
        (("arch_config",), "huge"), (("arch_config",), []), (("architecture",), "Transformer"),
        (("architecture",), None), (("frames",), True), (("frames",), 0), (("frames",), -5),
        (("frames",), 10**12), (("frames",), "40"), (("frames",), 40.5), (("frames",), None),
        (("classes",), "dog"), (("classes",), ["dog", "baby_cry"]),
        (("classes",), ["dog", "dog", "gunshot"]), (("classes",), ["dog", "", "gunshot"]),
        (("classes",), ["dog", 7, "gunshot"]), (("classes",), ["dog", "\x1b[2J", "gunshot"]),
        (("classes",), ["a", "b", "c", "d"]), (("classes",), []), (("classes",), None),
        (("thresholds",), [0.5]), (("thresholds",), 0.5), (("thresholds",), [0.5, "0.5", 0.5]),
        (("thresholds",), [0.5, 1.5, 0.5]), (("thresholds",), [0.5, -0.1, 0.5]),
        (("thresholds",), [0.5, None, 0.5]), (("thresholds",), [0.5, True, 0.5]),
        (("thresholds",), [0.5, 0.5, 0.5, 0.5]), (("thresholds",), "0.5"),
        (("features", "num_mel_bins"), 10**9), (("features", "num_mel_bins"), True),
        (("features", "fft_size"), 2**40), (("features", "fft_size"), 128),
        (("features", "window"), "kaiser"), (("features", "window"), 3),
        (("features", "frame_length_ms"), "25"), (("features", "frame_length_ms"), 10**6),
        (("features", "frame_shift_ms"), 0), (("features", "snip_edges"), 1),
        (("features", "low_freq"), 9000.0), (("features", "high_freq"), 9e9),
        (("features", "dither"), 1.0), (("features", "preemphasis"), 2.0),
        (("features", "mel_scale"), "bark"), (("features", "log_floor"), 0.0),
        (("features",), "lfbe-1"), (("features",), {}), (("quantized",), []),
        (("quantized", "nope"), {}), (("format_version",), "3"), (("format_version",), 2),
        (("format_version",), 4), (("format",), "pt"), (("writer",), 7), (("info",), []),
        (("info",), DEEP), (("info", "seed"), -1), (("info", "seed"), "0"),
        (("info", "name"), 5), (("info", "bits"), 0), (("info", "imported"), "yes"),
        (("extra_field",), 1),
    ],
    "float": [
        (("arch_config", "hidden_size"), 8000), (("arch_config", "hidden_size"), 10**30),
        (("arch_config", "hidden_size"), 9), (("arch_config", "hidden_size"), True),
        (("arch_config", "hidden_size"), "8"), (("arch_config", "hidden_size"), 8.0),
        (("arch_config", "num_layers"), 10**6), (("arch_config", "num_layers"), 2),
        (("arch_config", "num_classes"), 2), (("arch_config", "pooling"), "median"),
        (("arch_config", "input_size"), 32), (("arch_config", "dropout"), 0.5),
        (("quantized", "fc.bias"), {"bits": 4, "group": "row", "rounding": "nearest",
                                    "symmetric": False, "shape": [3]}),
    ],
    "q4": [(("quantized", "lstm.weight_ih_l0", k), v) for k, v in (
        ("bits", 0), ("bits", 17), ("bits", True), ("bits", 3), ("bits", 8), ("group", "col"),
        ("group", 0), ("group", "tensor"), ("group", 5), ("rounding", "up"),
        ("symmetric", "no"), ("symmetric", True), ("shape", [16, 32]), ("shape", [32.0, 16]),
        ("shape", "32x16"))],
    "int8": [(("integer",) + path, v) for path, v in (
        ((), []), ((), {}), (("input",), 0.5), (("input", "scale"), 0.0),
        (("input", "scale"), 0.1), (("input", "scale"), -1.0), (("input", "scale"), "1"),
        (("input", "scale"), 1e300), (("input", "zero_point"), 128),
        (("input", "zero_point"), -129), (("input", "zero_point"), 0.5),
        (("input", "zero_point"), True), (("layers",), []), (("layers",), [{}]),
        (("layers",), "l0"), (("pooled", "scale"), None), (("pooled", "x"), 1),
        (("logits", "scale"), 1024.0), (("logits", "scale"), 2.0 ** -40),
        (("head_scales",), 2), (("head_scales",), 3.0), (("head_scales",), 0))],
    "resnet": [
        (("arch_config", "width"), 4096), (("arch_config", "width"), 5),
        (("arch_config", "depth"), 101), (("arch_config", "depth"), 34),
        (("arch_config", "depth"), True), (("arch_config", "in_channels"), 3),
        (("frames",), 0), (("features", "num_mel_bins"), 16),   # frames 16 is valid (issue 14)
    ],
}
RAW_EDITS = [    # (old text in the document, new text): not strict JSON
    ('"frames":40', '"frames":1e400'), ('"frames":40', '"frames":NaN'),
    ('"frames":40', '"frames":Infinity'), ('"frames":40', '"frames":40,"frames":40'),
    ('"thresholds":[', '"thresholds":[NaN,'), ('"thresholds":[', '"thresholds":[-Infinity,'),
    ('"info":{', '"info":{"x":' + "[" * 200 + "]" * 200 + ","),
    ('"info":{', '"info":{"x":' + "{\"a\":" * 40 + "1" + "}" * 40 + ","),
    ('"classes":[', '"classes":["dog","dog",'), ('{', '{"format":"qdaed-model",'),
    ('"frames":40', '"frames":' + "9" * 5000), ('"frames":40', '"frames":4\x00'),
]


def _table_edits(table):
    names = [k for k in table if k != "__metadata__"]
    a, b = names[0], names[-1]
    same = [(x, y) for x in names for y in names if x < y and
            np.diff(table[x]["data_offsets"]) == np.diff(table[y]["data_offsets"])]

    def swap(t):
        x, y = same[0]
        t[x]["data_offsets"], t[y]["data_offsets"] = t[y]["data_offsets"], t[x]["data_offsets"]

    edits = [lambda t: t[a].update(dtype="F16"), lambda t: t[a].update(dtype="I32"),
             lambda t: t[a].update(shape=t[a]["shape"][::-1] + [1]),
             lambda t: t[b].update(data_offsets=[t[b]["data_offsets"][0],
                                                 t[b]["data_offsets"][1] - 4]),
             lambda t: t.pop(b), lambda t: t.update({"extra": t[a]}),
             lambda t: t.update({a + "x": t.pop(a)}),
             lambda t: t["__metadata__"].update(qdaed_sha256="f" * 64),
             lambda t: t["__metadata__"].update(more="x"),
             lambda t: t["__metadata__"].pop("qdaed"), lambda t: t.pop("__metadata__"),
             lambda t: t.update({"__metadata__": "x"})]
    if same:
        edits.append(swap)
    return edits


CONFUSION = [[], {}, 0, -1, 1.5, "x", None, True, False, [1, "a"], {"a": 1}]
NUMBER_LITERALS = ["1" * 4300, "9" * 5000, "1" * 101, "1e400", "-1e400", "-0", "-0.0",
                   "1e-400", "NaN", "Infinity", "-Infinity", "4" + "0" * 99]
SENTINEL = "@@number@@"
ENCODINGS = [b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe2\x82"]


def adversarial_tables():
    """1 MiB tables (the model file's limit) that a quadratic or recursive scan cannot take:
    runs of escaped quotes (open and closed), quote runs, brackets, backslashes."""
    return {
        "escaped quotes": b'["' + b'\\"' * (2**19 - 1),
        "escaped quotes, closed": b'["' + b'\\"' * (2**19 - 2) + b'"]',
        "quote runs": b'"\\"\\"\\"' * (2**20 // 7),
        "deep nesting": b"[" * 2**20,
        "backslashes": b'["' + b"\\" * (2**20 - 2),
        "quotes and brackets": b'"\\"[' * (2**20 // 4),
    }


def _paths(node, prefix=()):
    """Every path (tuple of keys and indices) below ``node``, parents before children."""
    items = node.items() if isinstance(node, dict) else \
        enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield prefix + (k,)
        yield from _paths(v, prefix + (k,))


def _get(doc, path):
    for k in path:
        doc = doc[k]
    return doc


def _signed_raw(data, doc_text, resign=True):
    """``files.with_document`` for a document holding a raw lone surrogate (signed over its
    surrogatepass bytes, as a careless writer would)."""
    table_text, body = files.split(data)
    table = json.loads(table_text)
    table["__metadata__"]["qdaed"] = doc_text
    if resign:
        raw = doc_text.encode("utf-8", "surrogatepass")
        table["__metadata__"]["qdaed_sha256"] = hashlib.sha256(
            struct.pack("<Q", len(raw)) + raw + body).hexdigest()
    return files.assemble(json.dumps(table), body)


def _raw_table(data, table_bytes):
    (n,) = struct.unpack("<Q", data[:8])
    return struct.pack("<Q", len(table_bytes)) + table_bytes + data[8 + n:]


def _tensor_edit(data, name, index, value):
    """``data`` with float32 element ``index`` of tensor ``name`` set to ``value``
    (negative index: every element), re-signed."""
    entry = json.loads(files.split(data)[0])[name]
    start, end = entry["data_offsets"]

    def edit(body):
        if index < 0:
            body[start:end] = struct.pack("<f", value) * ((end - start) // 4)
        else:
            body[start + 4 * index:start + 4 * index + 4] = struct.pack("<f", value)
        return body
    return files.edit_body(data, edit)


UNUSABLE_TENSORS = {    # base -> [(tensor, index (-1: all), value)]
    "float": [("normalizer.std", 0, 1e-45), ("normalizer.std", -1, 1e-45),
              ("normalizer.std", 3, 0.0), ("normalizer.std", 1, -0.0),
              ("normalizer.std", 2, 5e-7), ("normalizer.mean", 0, 3.4e38),
              ("normalizer.mean", 0, -1e7), ("fc.weight", 0, 3.4e38), ("fc.bias", 1, -3.4e38),
              ("lstm.weight_hh_l0", -1, 1e7), ("lstm.bias_ih_l0", 0, float("nan"))],
    "q4": [("lstm.weight_ih_l0.scales", 0, 3.4e38), ("lstm.weight_ih_l0.scales", 1, -1e7),
           ("lstm.weight_ih_l0.scales", 0, -1e-3), ("fc.weight.scales", 0, float("inf")),
           ("normalizer.std", 0, 1e-45)],
    "int8": [("integer.lstm.weight_ih_scales_l0", 0, 0.0),
             ("integer.lstm.weight_hh_scales_l0", 3, float("nan")),
             ("integer.lstm.weight_ih_scales_l0", 1, -1e-3),
             ("integer.fc.weight_scales", -1, float("inf")),
             ("integer.fc.weight_scales", 0, 1e-45)],
    "resnet": [("bn1.weight", 0, 3.4e38), ("bn1.weight", 1, -3.4e38),
               ("bn1.running_var", 0, -1.0), ("bn1.running_var", 0, 1e13),
               ("bn1.running_mean", -1, 1e7), ("conv1.weight", -1, 1e7),
               ("layer1.0.bn2.bias", 0, float("-inf")), ("normalizer.std", 0, 0.0)],
}
UNUSABLE_FIELDS = [   # (path, value): valid JSON, a model that cannot work or misleads
    (("thresholds",), [0.0, 0.0, 0.0]), (("thresholds",), [0.5, -0.0, 0.5]),
    (("thresholds",), [0, 0.5, 0.5]), (("features", "log_floor"), 1e30),
    (("features", "log_floor"), 2.0), (("features", "blackman_coeff"), 1e9),
    (("features", "blackman_coeff"), -1e9), (("features", "blackman_coeff"), 0.75),
    (("classes",), ["dog", "dog ", "gunshot"]), (("classes",), ["dog", " dog", "gunshot"]),
    (("classes",), ["caf\u00e9", "cafe\u0301", "gunshot"]),
    (("classes",), ["dog", "cafe\u0301", "gunshot"]), (("classes",), ["dog\u00a0", "b", "c"]),
]


def _catalogue(bases):
    """{class: [(case name, base key, thunk giving the bytes, resigned, must_refuse)]}."""
    out = {c: [] for c in ("field edits", "raw edits", "table edits", "type confusion",
                           "huge numbers", "text", "quadratic", "unusable")}

    def add(cls, name, key, thunk, resigned, must_refuse):
        out[cls].append((f"{key}:{cls}:{name}", key, thunk, resigned, must_refuse))

    for key, data in bases.items():
        text = files.document(data)
        doc = json.loads(text)
        for path, value in FIELD_EDITS["all"] + FIELD_EDITS.get(key, []):
            for resign in (True, False):
                add("field edits", f"{'.'.join(path)}={str(value)[:20]!r}"
                    f"{'' if resign else ':unsigned'}", key,
                    lambda d=data, p=path, v=value, r=resign:
                    files.edit_document(d, _set(p, v), r), resign, True)
        for old, new in RAW_EDITS:
            if old in text:
                for resign in (True, False):
                    add("raw edits", f"{new[:30]!r}{'' if resign else ':unsigned'}", key,
                        lambda d=data, t=text, o=old, w=new, r=resign:
                        files.with_document(d, t.replace(o, w, 1), r), resign, True)
        table = json.loads(files.split(data)[0])
        for i, edit in enumerate(_table_edits(table)):
            add("table edits", str(i), key, lambda d=data, e=edit: files.edit_table(d, e),
                False, True)
        paths = list(_paths(doc))
        for path in paths:
            where = ".".join(map(str, path))
            for j, value in enumerate(CONFUSION):
                for resign in (True, False) if j % 3 == 0 else (True,):
                    add("type confusion", f"{where}={json.dumps(value)}"
                        f"{'' if resign else ':unsigned'}", key,
                        lambda d=data, p=path, v=value, r=resign:
                        files.edit_document(d, _set(p, v), r), resign, False)
        numbers = [p for p in paths if isinstance(_get(doc, p), (int, float))
                   and not isinstance(_get(doc, p), bool)]
        for path in numbers:
            marked = files.document(files.edit_document(data, _set(path, SENTINEL)))
            for j, lit in enumerate(NUMBER_LITERALS):
                for resign in (True, False) if j % 3 == 0 else (True,):
                    add("huge numbers", f"{'.'.join(map(str, path))}={lit[:12]}"
                        f"{'' if resign else ':unsigned'}", key,
                        lambda d=data, m=marked, w=lit, r=resign:
                        files.with_document(d, m.replace(json.dumps(SENTINEL), w, 1), r),
                        resign, False)
        strings = [p for p in paths if isinstance(_get(doc, p), str)]
        for path in strings:
            v = _get(doc, path)
            for resign in (True, False):
                add("text", f"surrogate in {'.'.join(map(str, path))}"
                    f"{'' if resign else ':unsigned'}", key,
                    lambda d=data, p=path, v=v, r=resign:
                    files.edit_document(d, _set(p, v[:1] + "\ud800" + v[1:]), r), resign, True)
        add("text", "surrogate key", key, lambda d=data: files.edit_document(
            d, lambda doc: doc["info"].update({"\udc00": 1})), True, True)
        for resign in (True, False):
            add("text", f"raw surrogate in the table{'' if resign else ':unsigned'}", key,
                lambda d=data, t=text, r=resign: _signed_raw(
                    d, t.replace('"dog"', '"d\ud800og"', 1), r), resign, True)
        head = files.split(data)[0].encode()
        at = head.index(b"dog")
        for enc in ENCODINGS:
            add("text", f"bytes {enc!r} in the table", key,
                lambda d=data, h=head, e=enc, a=at: _raw_table(d, h[:a] + e + h[a:]),
                False, True)
        for name, raw in adversarial_tables().items():
            add("quadratic", f"1 MiB table: {name}", key,
                lambda d=data, t=raw: _raw_table(d, t), False, True)
        for name, new in [("200,000 escaped quotes", '\\"' * 200_000),
                          ("100,000 backslashes", "\\\\" * 100_000)]:
            for resign in (True, False):
                add("quadratic", f"{name} in info.name{'' if resign else ':unsigned'}", key,
                    lambda d=data, t=text, n=new, r=resign: files.with_document(
                        d, t.replace('"info":{', '"info":{"x":"' + n + '",', 1), r),
                    resign, False)
                add("quadratic", f"{name}, unterminated{'' if resign else ':unsigned'}", key,
                    lambda d=data, t=text, n=new, r=resign: files.with_document(
                        d, t[:len(t) // 2] + '"' + n, r), resign, True)
        add("quadratic", "document nested 100,000 deep", key,
            lambda d=data, t=text: files.with_document(
                d, t.replace('"info":{', '"info":{"x":' + "[" * 100_000 + "]" * 100_000 + ",",
                             1)), True, True)
        for name, index, value in UNUSABLE_TENSORS[key]:
            add("unusable", f"{name}[{index}]={value:g}", key,
                lambda d=data, n=name, i=index, v=value: _tensor_edit(d, n, i, v), True, True)
        for path, value in UNUSABLE_FIELDS:
            add("unusable", f"{'.'.join(path)}={value!r}", key,
                lambda d=data, p=path, v=value: files.edit_document(d, _set(p, v)), True, True)
    return out


def _random_case(bases, rng):
    """One case of random damage: (class, name, base key, bytes, resigned)."""
    keys = list(bases)
    key = keys[int(rng.integers(len(keys)))]
    data = bases[key]
    (hlen,) = struct.unpack("<Q", data[:8])
    kind = int(rng.integers(8))
    buf = bytearray(data)
    if kind in (0, 1):                      # a character of the document text changed
        text = files.document(data)
        i = int(rng.integers(len(text)))
        c = chr(int(rng.choice([ord(text[i]) ^ 1, ord("9"), ord("-"), ord("e"), 0x1b,
                                ord("0"), ord("."), ord('"')])))
        resign = kind == 0 or rng.random() < 0.5
        return ("document chars", f"character {i} -> {c!r}{'' if resign else ':unsigned'}",
                key, files.with_document(data, text[:i] + c + text[i + 1:], resign), resign)
    if kind == 2:                           # bit flips in the 8-byte length or the table
        for _ in range(int(rng.integers(1, 4))):
            buf[int(rng.integers(8 + hlen))] ^= 1 << int(rng.integers(8))
        name = "header bit flips"
    elif kind == 3:                         # bit flips in the tensor data
        for _ in range(int(rng.integers(1, 4))):
            buf[int(rng.integers(8 + hlen, len(buf)))] ^= 1 << int(rng.integers(8))
        name = "data bit flips"
    elif kind == 4:
        buf = buf[:int(rng.integers(0, len(buf)))]
        name = f"truncated to {len(buf)}"
    elif kind == 5:
        value = int(rng.choice([0, 1, hlen - 8, hlen - 1, hlen + 1, hlen + 8, len(buf),
                                len(buf) - 8, 2**31, 2**32 + hlen, 2**63, 2**64 - 1,
                                int(rng.integers(0, 2**62))]))
        buf[:8] = struct.pack("<Q", value % 2**64)
        name = f"length field {value}"
    elif kind == 6:
        buf += rng.integers(0, 256, int(rng.integers(1, 2000))).astype(np.uint8).tobytes()
        name = "extra bytes"
    else:                                   # bytes of the table overwritten
        i = int(rng.integers(8, 8 + hlen))
        m = int(rng.integers(1, 16))
        buf[i:i + m] = rng.integers(0, 256, m).astype(np.uint8).tobytes()
        name = "table bytes overwritten"
    return "bytes", name, key, bytes(buf), False


def mutations(bases, n, seed):
    """``n`` cases [(class, case name, base key, file bytes, resigned, must_refuse)]: the
    catalogue's classes and the two random classes in turn, each catalogue shuffled and
    drawn without replacement (a class whose catalogue is used up is skipped)."""
    rng = np.random.default_rng(seed)
    pools = {c: [items[i] for i in rng.permutation(len(items))]
             for c, items in _catalogue(bases).items()}
    order = list(pools) + ["document chars", "bytes"]
    cases, turn = [], 0
    while len(cases) < n:
        cls = order[turn % len(order)]
        turn += 1
        if cls in pools:
            if not pools[cls]:
                continue
            name, key, thunk, resigned, must_refuse = pools[cls].pop()
            cases.append((cls, name, key, thunk(), resigned, must_refuse))
            continue
        while True:
            got = _random_case(bases, rng)
            if got[0] == cls or cls == "bytes":
                break
        c, name, key, data, resigned = got
        cases.append((c, f"{key}:{c}:{name}", key, data, resigned, False))
    return cases


def controls(bases):
    """Cases whose outcome is known, to show the harness can tell: the original bytes
    ("same"), and valid re-signed edits ("accepted": a different model, correctly signed)."""
    d = bases["float"]
    return [("control", "control:same", "float", d, False, False),
            ("control", "control:threshold", "float", files.edit_document(
                d, _set(("thresholds",), [0.25, 0.5, 0.75])), True, False),
            ("control", "control:bias", "float", files.edit_body(
                d, lambda b: b[:-1] + bytes([b[-1] ^ 1])), True, False)]


# --------------------------------------------------------------------------- running


def _signature(det, x):
    state = det.model.state_dict()
    return {"state": {k: v.tobytes() for k, v in state.items()},
            "quantized": {k: (q.codes.tobytes(), q.alpha.tobytes(), q.beta.tobytes(), q.bits,
                              q.group, q.symmetric, q.rounding)
                          for k, q in det.quantized.items()},
            "norm": (det.normalizer.mean.tobytes(), det.normalizer.std.tobytes()),
            "frames": det.frames, "classes": det.classes, "features": det.features,
            "thresholds": det.thresholds.tobytes(), "info": det.info,
            "scores": det.scores(x).tobytes(),
            "decisions": det.decisions(det.scores(x)).tobytes()}


def _model_lines(info_out, path):
    """`qdaed info`'s output without the file's path, its size and its whole-file SHA-256 (a
    re-serialised JSON table changes the overhead and the file's bytes, not the model)."""
    return [line for line in info_out.replace(path, "FILE").splitlines()
            if not line.startswith(("file ", "sha256 "))]


def _cli(argv):
    from qdaed.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


def _bases(directory):
    from tests.io.detectors import resnet, student

    bases, wav = {}, os.path.join(directory, "clip.wav")
    sf.write(wav, (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32),
             16000, subtype="FLOAT")
    int8 = student()
    int8.integer = calibrate(int8, np.random.default_rng(1).standard_normal(
        (3, 20, int8.normalizer.mean.size)).astype(np.float32))
    for key, det in (("float", student()), ("q4", student(4)), ("int8", int8),
                     ("resnet", resnet())):
        path = os.path.join(directory, f"{key}.safetensors")
        det.save(path)
        with open(path, "rb") as f:
            bases[key] = f.read()
    return bases, wav


def _finite_scores(det, detect_out):
    """True if the detector's scores of a short random input, and every score ``qdaed detect
    --json`` printed, are finite."""
    rng = np.random.default_rng(2)
    x = det.prepare([rng.normal(-5.0, 3.0, (max(1, det.frames // 2),
                                            det.normalizer.mean.size))])
    printed = [v for line in detect_out.splitlines()
               for v in json.loads(line)["scores"].values()]
    return bool(np.isfinite(det.scores(x)).all()) and bool(printed) and \
        all(np.isfinite(printed))


def run(n, seed, directory):
    from qdaed.detector import Detector
    from qdaed.errors import ModelFileError
    from qdaed.io.modelfile import read_model_document

    bases, wav = _bases(directory)
    refs = {}
    for key in bases:                                   # also compiles every kernel first
        path = os.path.join(directory, f"{key}.safetensors")
        det = Detector.load(path)
        x = det.prepare([np.random.default_rng(1).standard_normal(
            (det.frames, det.normalizer.mean.size))])
        refs[key] = (_signature(det, x), read_model_document(path)[0], x,
                     _model_lines(_cli(["info", path])[1], path),
                     _cli(["detect", path, wav, "--json"])[1].replace(path, "FILE"))
    outcomes = ("refused", "same", "accepted", "changed", "nonfinite", "traceback", "timeout")
    counts = dict.fromkeys(outcomes, 0)
    by_class, failures = {}, []
    resigned_cases, max_load, max_case, slowest = 0, 0.0, 0.0, ""
    signal.signal(signal.SIGALRM, _alarm)
    path = os.path.join(directory, "case.safetensors")
    control_outcomes = {}
    for cls, name, key, data, resigned, must_refuse in \
            controls(bases) + mutations(bases, n, seed):
        with open(path, "wb") as f:
            f.write(data)
        sig, doc, x, info_out, detect_out = refs[key]
        load_s = None
        t0 = time.perf_counter()
        signal.alarm(TIMEOUT_S)
        try:
            try:
                det = Detector.load(path)
            except ModelFileError:
                det = None
            load_s = time.perf_counter() - t0
            st_info, o_info, e_info = _cli(["info", path])
            st_det, o_det, e_det = _cli(["detect", path, wav, "--json"])
            if det is None:
                ok = st_info == 2 and st_det == 2 and "Traceback" not in e_info + e_det
                outcome, detail = ("refused", "") if ok else (
                    "traceback", f"load refused it but info/detect exited {st_info}/{st_det}")
            elif (_signature(det, x) == sig and read_model_document(path)[0] == doc
                  and st_info == 0 and st_det == 0 and _model_lines(o_info, path) == info_out
                  and o_det.replace(path, "FILE") == detect_out):
                outcome, detail = "same", ""
            elif not resigned or must_refuse:
                outcome, detail = "changed", ("loaded differently without a recomputed digest"
                                              if not resigned else "an unusable model loaded")
            elif st_info != 0 or st_det != 0 or not _finite_scores(det, o_det):
                outcome = "nonfinite"
                detail = f"info/detect exited {st_info}/{st_det}: {(e_info + e_det)[-200:]}"
            else:
                outcome, detail = "accepted", ""
        except Timeout:
            outcome, detail = "timeout", f"over {TIMEOUT_S} s"
        except BaseException as exc:      # noqa: BLE001 — a traceback is what is counted
            outcome = "traceback"
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:300]
        finally:
            signal.alarm(0)
        case_s = time.perf_counter() - t0
        if cls == "control":
            control_outcomes[name] = outcome
            continue
        resigned_cases += resigned
        if load_s is not None:
            max_load = max(max_load, load_s)
        if case_s > max_case:
            max_case, slowest = case_s, name
        counts[outcome] += 1
        by_class.setdefault(cls, dict.fromkeys(outcomes, 0))[outcome] += 1
        if outcome not in ("refused", "same", "accepted"):
            failures.append({"case": name, "outcome": outcome, "detail": detail})
    return {"cases": n, "seed": seed, "resigned": resigned_cases, "counts": counts,
            "by_class": {c: {k: v for k, v in d.items() if v} for c, d in by_class.items()},
            "failures": failures, "controls": control_outcomes,
            "max_load_s": round(max_load, 4), "max_case_s": round(max_case, 4),
            "slowest_case": slowest,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--cases", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dir", required=True)
    p.add_argument("--report", required=True)
    a = p.parse_args(argv)
    report = run(a.cases, a.seed, a.dir)
    with open(a.report, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps({k: v for k, v in report.items() if k != "failures"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
