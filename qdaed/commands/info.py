"""``qdaed info MODEL``: a model file's configuration, bits, parameters and bytes.

The file is loaded (every check of ``Detector.load``, the SHA-256 included) before anything is
printed; every string that comes from the file is printed with its control characters escaped
(``qdaed.formats.header.printable``), so a model name cannot move the cursor or recolour the
terminal. ``--json`` prints the file's document (ASCII JSON, escapes included).

``--sha256`` prints only the SHA-256 of the whole file, as ``sha256sum FILE`` prints it
(``HEX  FILE``), after the same checks: the digest to pin with ``Detector.load(path,
expect_sha256=HEX)`` or ``qdaed detect|evaluate|export --expect-sha256 HEX``. The file's own
checksum (``qdaed_sha256``, over the document and the tensors; the ``checksum`` line) detects
accidental damage only: anyone who edits a file can recompute it. A pinned digest detects any
change.
"""

from __future__ import annotations

import json

from qdaed.detector import Detector
from qdaed.formats.header import printable
from qdaed.io.modelfile import read_model_document


def register(sub):
    p = sub.add_parser("info", help="a model file's config, bits, parameters and bytes")
    p.add_argument("model", help="model file (.safetensors) written by qdaed")
    p.add_argument("--json", action="store_true", help="print the file's document as JSON")
    p.add_argument("--sha256", action="store_true",
                   help="print only the SHA-256 of the whole file, as sha256sum does, to pin "
                        "with --expect-sha256")
    p.set_defaults(func=_run)


def _params(q):
    return f"scale {q.scale:.6g}, zero point {q.zero_point}"


def _print_integer(student, nbytes):
    """The integer student's quantization parameters (qdaed.integer.store)."""
    print(f"integer      int8 student (TFLite Micro semantics), {nbytes:,} bytes of int8/int32 "
          f"tensors and scales")
    print(f"  input      {_params(student.input)}")
    for k, la in enumerate(student.layers):
        print(f"  lstm l{k}    hidden {_params(la.hidden)}; cell state int16, scale "
              f"2^{la.cell_power}")
        for kind, scales in (("w_ih", la.w_ih_scales), ("w_hh", la.w_hh_scales)):
            print(f"             {kind} scales (i, f, g, o) "
                  + ", ".join(f"{s:.6g}" for s in scales))
    fc = student.fc
    print(f"  pooled     {_params(student.pooled)}")
    print(f"  head       weight scales {'per class' if fc.per_channel else 'per tensor'} "
          + ", ".join(f"{s:.6g}" for s in fc.weight_scales) + f"; logits {_params(fc.output)}")
    print(f"  scores     {_params(student.output)} (LOGISTIC's fixed output)")


def _run(args):
    det = Detector.load(args.model)
    if args.sha256:
        print(f"{det.file_sha256}  {printable(args.model)}")
        return 0
    doc, _, table, table_len, size = read_model_document(args.model)
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True))
        return 0
    info = det.info
    name, arch = type(det.model).__name__, det.model.config
    print(f"model        {printable(args.model)}")
    print(f"format       qdaed-model version {doc['format_version']}, written by "
          f"{printable(doc['writer'])}")
    print(f"name         {printable(info.get('name'))} ({printable(info.get('schedule'))}), "
          f"seed {printable(info.get('seed'))}")
    imported = info.get("imported")
    if isinstance(imported, dict):
        print("imported     " + ", ".join(f"{printable(k)}={printable(v)}"
                                          for k, v in sorted(imported.items())))
    print(f"architecture {name} " + " ".join(f"{k}={printable(v)}" for k, v in arch.items()))
    print(f"input        {det.frames} frames x {det.normalizer.mean.size} mel bins "
          f"(LFBE {det.features['low_freq']:g}-{det.features['high_freq']:g} Hz, "
          f"{det.features['frame_length_ms']:g}/{det.features['frame_shift_ms']:g} ms)")
    print(f"classes      {', '.join(printable(c) for c in det.classes)}; thresholds "
          + ", ".join(f"{t:.4f}" for t in det.thresholds))
    print(f"parameters   {det.num_parameters():,}")
    acc = det.accounted_bytes()
    print(f"bytes        {acc:,} accounted (docs/method/size.md: what a device stores, normalisation "
          f"included)")
    overhead = 8 + table_len
    data = size - overhead
    extra = "" if data == acc else f" and {data - acc:,} of the integer student's"
    print(f"file         {size:,} bytes = {acc:,} of tensor data{extra} + {overhead:,} of "
          f"overhead (8-byte length + {table_len:,}-byte JSON table; "
          f"{100 * overhead / size:.2f}% of the file)")
    if det.quantized:
        print("quantized    " + ", ".join(
            f"{n}: {q.bits}-bit, group {q.group}, {q.groups} groups, {q.rounding}"
            + (", symmetric" if q.symmetric else "") for n, q in det.quantized.items()))
    else:
        print("quantized    none (float32)")
    if det.integer is not None:
        _print_integer(det.integer, data - acc)
    print(f"sha256       {det.file_sha256} (the whole file, as sha256sum prints it; pin it "
          f"with --expect-sha256)")
    print(f"checksum     {table['__metadata__']['qdaed_sha256']} (the format's SHA-256 of the "
          f"document and tensors: detects accidental damage, not tampering)")
    return 0
