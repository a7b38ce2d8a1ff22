"""`qdaed detect` on long recordings: real-time factor and peak memory, against PyTorch.

For each student shape (``demo``: LSTM 64 → 32 × 1 layer, 3 s windows; ``paper``: 64 → 512 ×
2 layers, 10 s windows; random weights — speed does not depend on them) the script writes a
synthetic 16 kHz recording of ``--minutes`` (noise with tone bursts) and a model file, then
measures, in one run on one machine:

* ``detect``: the whole command, ``qdaed detect MODEL FILE --json`` in a fresh subprocess
  (decoding, LFBE, the network, window scores): wall time, real-time factor (audio seconds per
  wall second) and peak resident memory (the child's VmHWM);
* ``network``: qdaed's streaming network alone on the file's LFBE (computed once, as
  ``qdaed.streaming.scan_features`` is fed in the pipeline): the LSTM over the whole
  recording in blocks carrying (h, c), frame logits, running-sum window means;
* ``torch``: the same network in PyTorch (``torch.nn.LSTM`` + ``Linear``, the same weights,
  the same normalised LFBE, the same blocks carrying (h, c), the same running sums), CPU,
  ``--threads`` threads, so ``network / torch`` is the ratio of the same work.

``--memory-minutes 10,60`` also writes recordings of those lengths and reports the command's
peak memory on each (the issue's target: at most 300 MB for 10 minutes and for 1 hour).

Run alone on the machine (see bench/README.md):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.bench_detect \\
        --minutes 10 --memory-minutes 10,60 --write

A check that the script runs (seconds): ``python -m bench.bench_detect --minutes 0.1
--presets demo --no-torch``. ``--write`` replaces the "Detection on long recordings" section
of bench/RESULTS.md.
"""

from __future__ import annotations

import os
import sys

from bench import harness


def _parse():
    p = harness.parser(__doc__, repeats=3, warmup=0, rounds=1)
    p.add_argument("--minutes", type=float, default=10.0, help="recording length for speed")
    p.add_argument("--memory-minutes", default="", help="lengths for peak memory, e.g. 10,60")
    p.add_argument("--presets", default="demo,paper")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--dir", help="work folder (default: a temporary one)")
    return p.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None:
    harness.set_threads(ARGS.threads)

import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

ROOT = harness.ROOT
from qdaed.detector import Detector  # noqa: E402
from qdaed.models import StudentLSTM  # noqa: E402

SECTION = "## Detection on long recordings"
PRESETS = {"demo": dict(hidden_size=32, num_layers=1, frames=298),
           "paper": dict(hidden_size=512, num_layers=2, frames=998)}
SR, BINS = 16000, 64


def write_recording(path, minutes, seed=0):
    """Pink-ish noise with 0.5 s tone bursts every 7 s, 16-bit PCM, written in blocks."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * SR)
    with sf.SoundFile(path, "w", SR, 1, "PCM_16") as f:
        for start in range(0, n, 10 * SR):
            k = min(10 * SR, n - start)
            x = 0.05 * rng.standard_normal(k)
            t = (start + np.arange(k)) / SR
            burst = (t % 7.0) < 0.5
            x[burst] += 0.3 * np.sin(2 * np.pi * 700 * t[burst])
            f.write(x)
    return n / SR


def make_detector(preset, seed=0):
    p = PRESETS[preset]
    m = StudentLSTM(BINS, p["hidden_size"], p["num_layers"], 3, seed=seed)
    return Detector.from_state_dict(m.state_dict(), classes=("dog", "baby_cry", "gunshot"),
                                    frames=p["frames"])


def time_detect(model, wav, repeats):
    """(median wall s, peak RSS MB) of `qdaed detect MODEL WAV --json` in fresh processes."""
    walls, peaks = [], []
    # Peak memory is the child's VmHWM (its own address space's high-water mark), not
    # getrusage's ru_maxrss: Linux carries ru_maxrss across fork + exec, so a child of this
    # process (which holds the recording's LFBE and PyTorch) would report the parent's peak.
    code = ("import sys, time\nfrom qdaed.cli import main\nt = time.perf_counter()\n"
            "s = main(sys.argv[1:])\nw = time.perf_counter() - t\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
            "print('BENCH', w, int(hwm.split()[1]) / 1024, s, file=sys.stderr)")
    for _ in range(repeats):
        r = subprocess.run([sys.executable, "-c", code, "detect", model, wav, "--json"],
                           capture_output=True, text=True, cwd=ROOT)
        line = [x for x in r.stderr.splitlines() if x.startswith("BENCH")]
        if not line or line[0].split()[3] != "0":
            raise SystemExit(f"qdaed detect failed: {r.stderr[-2000:]}")
        _, wall, peak, _ = line[0].split()
        walls.append(float(wall))
        peaks.append(float(peak))
    return statistics.median(walls), max(peaks), json.loads(r.stdout.splitlines()[0])


def qdaed_network(det, feats, block):
    from qdaed.streaming import scan_features

    blocks = [feats[i:i + block] for i in range(0, feats.shape[0], block)]
    wall, sc = harness.timed(scan_features, det, blocks, samples=feats.shape[0] * 160)
    return wall, sc.logits


def torch_network(det, feats, block, threads):
    torch = harness.torch_threads(threads)
    m = det.model
    net = torch.nn.LSTM(m.input_size, m.hidden_size, m.num_layers, batch_first=True)
    fc = torch.nn.Linear(m.hidden_size, m.num_classes)
    sd = {k[5:]: torch.from_numpy(v) for k, v in m.params.items() if k.startswith("lstm.")}
    net.load_state_dict(sd)
    fc.load_state_dict({"weight": torch.from_numpy(m.params["fc.weight"]),
                        "bias": torch.from_numpy(m.params["fc.bias"])})
    x = torch.from_numpy(det.normalizer.apply(feats))
    w, hop = det.frames, det.frames // 2
    t = time.perf_counter()
    with torch.inference_mode():
        state, zs = None, []
        for i in range(0, x.shape[0], block):
            y, state = net(x[None, i:i + block], state)
            zs.append(fc(y[0]))
        z = torch.cat(zs).double()
        p = torch.cat([torch.zeros(1, z.shape[1], dtype=torch.float64), z.cumsum(0)])
        starts = torch.arange(0, z.shape[0] - w + 1, hop)
        logits = (p[starts + w] - p[starts]) / w
    return time.perf_counter() - t, logits.numpy()


def main():
    args = ARGS
    work = args.dir or tempfile.mkdtemp(prefix="bench_detect_")
    os.makedirs(work, exist_ok=True)
    from qdaed.features.fbank import lfbe
    from qdaed.data.audiostream import BLOCK_VALUES

    wav = os.path.join(work, f"rec_{args.minutes:g}min.wav")
    seconds = write_recording(wav, args.minutes)
    import soundfile as sf

    x, _ = sf.read(wav, dtype="float64")
    feats = lfbe(x, SR, num_mel_bins=BINS)
    del x
    block = BLOCK_VALUES // 160          # the LFBE frames of one block of samples
    load0 = harness.load()
    rows = []
    for preset in args.presets.split(","):
        det = make_detector(preset)
        model = os.path.join(work, f"{preset}.safetensors")
        det.save(model)
        wall, peak, out = time_detect(model, wav, args.repeats)
        net, tt = [], []
        for _ in range(args.repeats):      # the two networks alternate
            net.append(qdaed_network(det, feats, block))
            if not args.no_torch:
                tt.append(torch_network(det, feats, block, args.threads))
        row = {"preset": preset, "seconds": seconds, "detect_wall": wall,
               "detect_rtf": seconds / wall, "detect_peak_mb": peak,
               "network_wall": statistics.median(t for t, _ in net)}
        row["network_rtf"] = seconds / row["network_wall"]
        if not args.no_torch:
            diff = float(np.abs(tt[0][1] - net[0][1][:len(tt[0][1])]).max())
            row.update(torch_wall=statistics.median(t for t, _ in tt), torch_max_diff=diff)
            row["torch_rtf"] = seconds / row["torch_wall"]
            row["ratio"] = row["network_wall"] / row["torch_wall"]
        for minutes in filter(None, args.memory_minutes.split(",")):
            path = os.path.join(work, f"mem_{minutes}min.wav")
            if not os.path.exists(path):
                write_recording(path, float(minutes), seed=1)
            _, mpeak, _ = time_detect(model, path, 1)
            row[f"peak_mb_{minutes}min"] = mpeak
        rows.append(row)
        print(json.dumps(row), flush=True)
    report(rows, args, load0, harness.load())


def report(rows, args, load0, load1):
    lines = [SECTION, "",
             f"A synthetic recording of {args.minutes:g} min; {args.threads} threads, median "
             f"of {args.repeats} runs (`qdaed detect` each in a fresh process; the networks "
             "alternating in this one). RTF = audio seconds per wall second (higher is "
             "faster); `network / torch` is qdaed's streaming network over the same LFBE "
             "against PyTorch's (below 1: qdaed faster).", "",
             "| student | detect wall (s) | detect RTF | detect peak (MB) | network RTF | "
             "torch RTF | network / torch | peak MB per length |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        mem = ", ".join(f"{k[8:]}: {v:.0f}" for k, v in r.items() if k.startswith("peak_mb_"))
        lines.append(f"| {r['preset']} | {r['detect_wall']:.1f} | {r['detect_rtf']:.0f} | "
                     f"{r['detect_peak_mb']:.0f} | {r['network_rtf']:.0f} | "
                     f"{r.get('torch_rtf', float('nan')):.0f} | "
                     f"{r.get('ratio', float('nan')):.2f} | {mem or '—'} |")
    text = "\n".join(lines) + "\n" + harness.footer(args.threads, load0, load1)
    print(text)
    if args.write:
        harness.write_section(text, args.results)


if __name__ == "__main__":
    main()
