"""Damaged model files through ``Detector.load``, ``qdaed info`` and ``qdaed detect``.

    python -m tests.io.fuzz_modelfile --cases 200 --seed 0 --dir DIR --report REPORT.json

Three model files (a float student, a 4-bit student, a small ResNet) are saved, then mutated:
bit flips in the JSON table and in the tensor data, truncations, changed length fields, extra
bytes, edits of the JSON table, byte edits of the document text, and a catalogue of document
field edits that no valid model has (huge sizes, 1e400, true, strings, deep nesting, NaN,
duplicate keys, wrong class lists, thresholds NaN/inf, ...) — each once with its SHA-256
recomputed (so the field checks, not the digest, must refuse it) and once without.

Every case runs under a 10 s alarm (SIGALRM) in this process; the test that starts this module
runs it as a subprocess under an overall timeout, so a hang that an alarm cannot interrupt is
caught as well. Outcomes per case:

    refused     Detector.load raised ModelFileError, and info and detect exited 2
    same        it loaded, and tensors, document, scores and decisions equal the original's
                (info and detect exited 0 with the original's output)
    changed     it loaded as a different model                        (a failure)
    traceback   any other exception, or info/detect not agreeing with the load  (a failure)
    timeout     the alarm fired                                        (a failure)

The report (JSON) has the counts, the failures (case name and detail), the outcomes of three
control cases whose answer is known (the original file: "same"; a re-signed valid threshold
edit and a re-signed changed weight: "changed"), and the peak RSS.
"""

import argparse
import contextlib
import io
import json
import os
import resource
import signal
import struct
import sys
import traceback

import numpy as np
import soundfile as sf

from tests.io import files

TIMEOUT_S = 10


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


# --------------------------------------------------------------------------- mutations


def _set(path, value):
    def edit(doc):
        node = doc
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return edit


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
    "resnet": [
        (("arch_config", "width"), 4096), (("arch_config", "width"), 5),
        (("arch_config", "depth"), 101), (("arch_config", "depth"), 34),
        (("arch_config", "depth"), True), (("arch_config", "in_channels"), 3),
        (("frames",), 16), (("features", "num_mel_bins"), 16),
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


def mutations(bases, n, seed):
    """[(case name, base key, file bytes)]: the catalogue first (signed and unsigned), then
    random byte-level damage; ``n`` in all."""
    rng = np.random.default_rng(seed)
    catalogue = []
    for key, data in bases.items():
        for path, value in FIELD_EDITS["all"] + FIELD_EDITS.get(key, []):
            for resign in (True, False):
                catalogue.append((f"{key}:{'.'.join(path)}={str(value)[:20]!r}"
                                  f"{'' if resign else ':unsigned'}", key,
                                  lambda d=data, p=path, v=value, r=resign:
                                  files.edit_document(d, _set(p, v), r)))
        text = files.document(data)
        for old, new in RAW_EDITS:
            if old in text:
                for resign in (True, False):
                    catalogue.append((f"{key}:raw {new[:30]!r}", key,
                                      lambda d=data, t=text, o=old, w=new, r=resign:
                                      files.with_document(d, t.replace(o, w, 1), r)))
        table = json.loads(files.split(data)[0])
        for i, edit in enumerate(_table_edits(table)):
            catalogue.append((f"{key}:table edit {i}", key,
                              lambda d=data, e=edit: files.edit_table(d, e)))
    order = rng.permutation(len(catalogue))
    cases = [(catalogue[i][0], catalogue[i][1], catalogue[i][2]()) for i in order[:n]]
    keys = list(bases)
    while len(cases) < n:
        key = keys[int(rng.integers(len(keys)))]
        data = bases[key]
        (hlen,) = struct.unpack("<Q", data[:8])
        kind = int(rng.integers(7))
        buf = bytearray(data)
        if kind == 0:                       # bit flips in the 8-byte length or the table
            for _ in range(int(rng.integers(1, 4))):
                buf[int(rng.integers(8 + hlen))] ^= 1 << int(rng.integers(8))
            name = "header bit flips"
        elif kind == 1:                     # bit flips in the tensor data
            for _ in range(int(rng.integers(1, 4))):
                buf[int(rng.integers(8 + hlen, len(buf)))] ^= 1 << int(rng.integers(8))
            name = "data bit flips"
        elif kind == 2:
            buf = buf[:int(rng.integers(0, len(buf)))]
            name = f"truncated to {len(buf)}"
        elif kind == 3:
            value = int(rng.choice([0, 1, hlen - 8, hlen - 1, hlen + 1, hlen + 8, len(buf),
                                    len(buf) - 8, 2**31, 2**32 + hlen, 2**63, 2**64 - 1,
                                    int(rng.integers(0, 2**62))]))
            buf[:8] = struct.pack("<Q", value % 2**64)
            name = f"length field {value}"
        elif kind == 4:
            buf += rng.integers(0, 256, int(rng.integers(1, 2000))).astype(np.uint8).tobytes()
            name = "extra bytes"
        elif kind == 5:                     # a character of the document text changed
            text = files.document(data)
            i = int(rng.integers(len(text)))
            c = chr(int(rng.choice([ord(text[i]) ^ 1, ord("9"), ord("-"), ord("e"), 0x1b])))
            buf = bytearray(files.with_document(data, text[:i] + c + text[i + 1:],
                                                resign=False))
            name = f"document character {i} -> {c!r}"
        else:                               # bytes of the table overwritten
            i = int(rng.integers(8, 8 + hlen))
            m = int(rng.integers(1, 16))
            buf[i:i + m] = rng.integers(0, 256, m).astype(np.uint8).tobytes()
            name = "table bytes overwritten"
        cases.append((f"{key}:{name}", key, bytes(buf)))
    return cases


def controls(bases):
    """Cases whose outcome is known, to show the harness can tell: the original bytes
    ("same"), and valid re-signed edits ("changed": a different model, correctly signed)."""
    d = bases["float"]
    return [("control:same", "float", d),
            ("control:threshold", "float", files.edit_document(
                d, _set(("thresholds",), [0.25, 0.5, 0.75]))),
            ("control:bias", "float", files.edit_body(
                d, lambda b: b[:-1] + bytes([b[-1] ^ 1])))]


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
    """`qdaed info`'s output without the file's path and its size line (a re-serialised JSON
    table changes the overhead, not the model)."""
    return [line for line in info_out.replace(path, "FILE").splitlines()
            if not line.startswith("file ")]


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
    for key, det in (("float", student()), ("q4", student(4)), ("resnet", resnet())):
        path = os.path.join(directory, f"{key}.safetensors")
        det.save(path)
        with open(path, "rb") as f:
            bases[key] = f.read()
    return bases, wav


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
    counts = dict.fromkeys(("refused", "same", "changed", "traceback", "timeout"), 0)
    failures = []
    signal.signal(signal.SIGALRM, _alarm)
    path = os.path.join(directory, "case.safetensors")
    control_outcomes = {}
    for name, key, data in controls(bases) + mutations(bases, n, seed):
        with open(path, "wb") as f:
            f.write(data)
        sig, doc, x, info_out, detect_out = refs[key]
        signal.alarm(TIMEOUT_S)
        try:
            try:
                det = Detector.load(path)
            except ModelFileError:
                det = None
            st_info, o_info, e_info = _cli(["info", path])
            st_det, o_det, e_det = _cli(["detect", path, wav, "--json"])
            if det is None:
                ok = st_info == 2 and st_det == 2 and "Traceback" not in e_info + e_det
                outcome, detail = ("refused", "") if ok else (
                    "traceback", f"load refused it but info/detect exited {st_info}/{st_det}")
            else:
                same = (_signature(det, x) == sig and read_model_document(path)[0] == doc
                        and st_info == 0 and st_det == 0
                        and _model_lines(o_info, path) == info_out
                        and o_det.replace(path, "FILE") == detect_out)
                outcome, detail = ("same", "") if same else ("changed", "loaded differently")
        except Timeout:
            outcome, detail = "timeout", f"over {TIMEOUT_S} s"
        except BaseException as exc:      # noqa: BLE001 — a traceback is what is counted
            outcome = "traceback"
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:300]
        finally:
            signal.alarm(0)
        if name.startswith("control:"):
            control_outcomes[name] = outcome
            continue
        counts[outcome] += 1
        if outcome not in ("refused", "same"):
            failures.append({"case": name, "outcome": outcome, "detail": detail})
    return {"cases": n, "seed": seed, "counts": counts, "failures": failures,
            "controls": control_outcomes,
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
