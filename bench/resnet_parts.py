"""Where a ResNet teacher's training step goes, part by part, with either route of its columns.

A training step (forward in training mode, a sigmoid-BCE gradient, backward to every
parameter) of qdaed's ResNet, float32, profiled by function (cProfile's own time of each
function: the Numba kernels are functions of their own, and each convolution's BLAS products
are the own time of ``conv2d.forward`` / ``conv2d.backward``), grouped into parts:
building the columns (im2col), adding them back (col2im), the convolution products, the
batch-norm passes, ReLU and pooling, everything else. Two routes of the columns, alternating
over ``--rounds`` rounds in this process:

- ``table`` (qdaed's default): ``im2col_gather`` / ``col2im_scatter`` through a table of
  plane positions for strided convolutions and narrow planes, the run-copying kernels for
  wide stride-1 planes (``qdaed.nn.conv2d._use_gather`` / ``_use_scatter``);
- ``runs``: the run-copying kernels ``im2col`` / ``col2im`` everywhere (the route before).

Both give the same columns and the same gradients to the bit (checked here on every run).
Shapes: ``--nets`` of DEPTHxWIDTH:BxTxF, by default the demo's teacher (ResNet-18, width 16,
B = 32 clips of 298 × 64) and the paper's (ResNet-50, width 64, B = 8 clips of 1000 × 64).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.resnet_parts [--write]

``--write`` replaces the "Where the ResNet training step goes" section of this machine's part
of bench/RESULTS.md.
"""

from __future__ import annotations

import cProfile
import pstats
import statistics
import sys
import time

from bench import harness

SECTION = "## Where the ResNet training step goes"
PARTS = {
    "im2col": ("im2col", "im2col_gather"),
    "col2im": ("col2im", "col2im_scatter"),
    "convolution products": ("forward@conv2d", "backward@conv2d"),
    "batch-norm": ("channel_mean_var", "scale_shift", "scale_shift_add_relu", "grad_sums",
                   "train_input_grad", "eval_input_grad"),
    "ReLU and pooling": ("relu_forward", "relu_backward", "add_relu_forward",
                         "max_pool_forward", "max_pool_backward"),
}
ROUTES = ("table", "runs")


def _parser():
    p = harness.parser(__doc__, repeats=3, warmup=1, rounds=3)
    p.add_argument("--nets", default="18x16:32x298x64,50x64:8x1000x64",
                   help="DEPTHxWIDTH:BxTxF,...")
    return p


ARGS = harness.early_args(_parser(), __name__)

import numpy as np  # noqa: E402

from qdaed.models.resnet import ResNet  # noqa: E402
from qdaed.nn import conv2d  # noqa: E402

_DEFAULT = (conv2d._use_gather, conv2d._use_scatter)


def use_route(route):
    """Switch this process's convolutions to the columns' route ``route``."""
    if route == "table":
        conv2d._use_gather, conv2d._use_scatter = _DEFAULT
    else:
        conv2d._use_gather = conv2d._use_scatter = lambda *a: False


def _part_of(func):
    """The part a profiled function belongs to, or None (everything else)."""
    filename, _, name = func
    key = f"{name}@conv2d" if filename.endswith("nn/conv2d.py") else name
    for part, names in PARTS.items():
        if key in names:
            return part
    return None


def profiled_step(step):
    """(wall seconds, {part: seconds}) of one profiled call of ``step``."""
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    step()
    prof.disable()
    wall = time.perf_counter() - t0
    parts = dict.fromkeys(PARTS, 0.0)
    for func, (_, _, tottime, _, _) in pstats.Stats(prof).stats.items():
        part = _part_of(func)
        if part is not None:
            parts[part] += tottime
    return wall, parts


def run_net(depth, width, batch, frames, bins, args):
    rng = np.random.default_rng(0)
    model = ResNet(depth=depth, width=width, num_classes=3, seed=0)
    x = rng.standard_normal((batch, 1, frames, bins)).astype(np.float32)
    state = {k: v.copy() for k, v in model.buffers.items()}

    def step():
        for k, v in state.items():       # the same running statistics every step
            model.buffers[k][...] = v
        z, cache = model.forward(x, True)
        return model.backward(cache, np.full_like(z, 1.0 / z.size))

    grads = {}
    for route in ROUTES:
        use_route(route)
        grads[route] = step()
    same = all(np.array_equal(grads["table"][k], grads["runs"][k]) for k in grads["table"])
    times = {r: [] for r in ROUTES}
    parts = {r: [] for r in ROUTES}
    for _ in range(args.rounds):
        for route in ROUTES:
            use_route(route)
            for _ in range(args.warmup):
                step()
            for _ in range(args.repeats):
                wall, p = profiled_step(step)
                times[route].append(wall)
                parts[route].append(p)
    use_route("table")
    return times, parts, same


def render(results, args, load):
    lines = [SECTION, "",
             "One training step (forward in training mode, sigmoid-BCE gradient, backward to "
             "every parameter), float32, under cProfile (its overhead is in the step's time, "
             "not in the parts': each part is the own time of the functions listed in "
             "`bench/resnet_parts.py`, the convolution products being the own time of "
             "conv2d.forward / backward). Medians over "
             f"{args.rounds} rounds × {args.repeats} steps; the two routes of the columns "
             "alternate. Produced by `bench/resnet_parts.py`.", ""]
    for (net, (times, parts, same)) in results:
        lines += [f"**{net}**, the same gradients to the bit with both routes: {same}", "",
                  "| part | table route (ms) | runs route (ms) | table / runs |",
                  "|---|---:|---:|---:|"]
        med = {r: statistics.median(times[r]) for r in ROUTES}
        for part in PARTS:
            a = statistics.median(p[part] for p in parts["table"])
            b = statistics.median(p[part] for p in parts["runs"])
            lines.append(f"| {part} | {a * 1e3:.0f} | {b * 1e3:.0f} | {a / b:.2f} |")
        rest = {r: statistics.median(t - sum(p.values()) for t, p in zip(times[r], parts[r]))
                for r in ROUTES}
        lines.append(f"| everything else | {rest['table'] * 1e3:.0f} | "
                     f"{rest['runs'] * 1e3:.0f} | {rest['table'] / rest['runs']:.2f} |")
        lines.append(f"| **the step** | **{med['table'] * 1e3:.0f}** | "
                     f"**{med['runs'] * 1e3:.0f}** | **{med['table'] / med['runs']:.2f}** |")
        lines.append("")
    return "\n".join(lines) + harness.footer(args.threads, *load)


def main(args):
    load0 = harness.load()
    results = []
    for spec in args.nets.split(","):
        net, shape = spec.split(":")
        depth, width = (int(v) for v in net.split("x"))
        batch, frames, bins = (int(v) for v in shape.split("x"))
        harness.wait_idle(args.wait_idle)
        name = f"ResNet-{depth}, width {width}, B = {batch}, {frames} × {bins}"
        print(name, file=sys.stderr, flush=True)
        results.append((name, run_net(depth, width, batch, frames, bins, args)))
    text = render(results, args, (load0, harness.load()))
    print(text)
    if args.write:
        harness.write_section(text, args.results)


if __name__ == "__main__":
    main(ARGS)
