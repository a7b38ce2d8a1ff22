"""The `paper` preset's runtime: epoch times measured at the paper's shapes, the run computed.

A whole `qdaed pipeline --preset paper` run takes hours, so this measures its parts on a
subset and computes the run from them (every count below comes from the preset itself):

  per clip     synthesis of a 10 s clip of corpus v2 and its 64-bin LFBE (the feature stage);
  per step     one training step of ``fit`` (forward, loss, backward, clipping, Adam) at the
               preset's batch size — ResNet-50 teacher (width 64), the 2-layer 512-unit LSTM
               student with hard labels, the distilled student (cached soft targets, the
               transfer rows in the batch), and quantized distillation (4-bit, per-row
               weights, straight-through gradient): ``fit`` runs one epoch over ``--steps``
               batches of real-shaped random LFBE, its validation timed apart and subtracted;
  per clip     evaluation-mode inference of the teacher and of the student (validation after
               every epoch, the teacher's soft targets on the training and transfer clips,
               the test split).
  epoch        steps per epoch × step + validation clips × inference per clip;
  run          Σ over the schedules of epochs × epoch (all epochs: early stopping can only
               shorten it), + features + soft targets + test inference.

Each part is measured in this one process after a warm-up (Numba's compiled code loaded), with
the preset's thread count (2). Run alone on the machine:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.paper_runtime [--write]

``--write`` replaces the "Paper preset runtime" section of this machine's part of
bench/RESULTS.md.
"""

from __future__ import annotations

import math

from bench import harness

SECTION = "## Paper preset runtime"


def _parse():
    # --threads 2: the preset's own thread count; --repeats, --rounds are not used here
    p = harness.parser(__doc__)
    p.add_argument("--steps", type=int, default=3, help="timed training steps per schedule")
    p.add_argument("--clips", type=int, default=8, help="clips for the feature timing")
    return p.parse_args()


def _timed(f):
    return harness.timed(f)


def main(args):
    import dataclasses

    load0 = harness.load()
    import numpy as np

    from qdaed.data.synth import corpus_clip, corpus_config
    from qdaed.features.fbank import lfbe
    from qdaed.models import ResNet, StudentLSTM
    from qdaed.models.predict import predict_logits
    from qdaed.pipeline.presets import preset_config
    from qdaed.train.loop import Distillation, fit

    cfg = preset_config("paper")
    d = cfg.data
    n_train, n_val = (round(d.n_clips * f) for f in d.split_fractions[:2])
    n_test = d.n_clips - n_train - n_val
    n_u = d.n_transfer
    classes = len(cfg.classes)
    bins = cfg.features.num_mel_bins
    rng = np.random.default_rng(0)

    # -- features: synthesis + LFBE of a 10 s clip -------------------------------------------
    ccfg = corpus_config(d.corpus, d.clip_seconds, label_noise=d.label_noise)
    corpus_clip(d.synth_seed, 0, ccfg)  # warm-up
    t_synth = t_lfbe = 0.0
    frames = None
    for i in range(args.clips):
        dt, clip = _timed(lambda: corpus_clip(d.synth_seed, i + 1, ccfg))
        t_synth += dt
        audio = clip.waveform
        dt, feats = _timed(lambda: lfbe(audio, clip.sample_rate, num_mel_bins=bins))
        t_lfbe += dt
        frames = feats.shape[0]
    per_clip_features = (t_synth + t_lfbe) / args.clips

    def data(n):
        x = rng.standard_normal((n, frames, bins)).astype(np.float32)
        y = (rng.random((n, classes)) < 0.3).astype(np.float32)
        y[0], y[1] = 1.0, 0.0  # both labels present: the validation EER is defined
        return x, y

    def step_time(model, schedule, batch, kw):
        """Seconds per training step of fit() and per clip of inference, for ``model``."""
        tcfg = dataclasses.replace(cfg.schedule(schedule, 0), epochs=1)
        val = data(batch)
        fit(model, data(batch), val, tcfg, **kw(batch))               # warm-up
        x, y = data(args.steps * batch)
        extra = kw(x.shape[0])                                         # built before timing
        t_fit, _ = _timed(lambda: fit(model, (x, y), val, tcfg, **extra))
        t_val, _ = _timed(lambda: predict_logits(model, val[0]))
        t_inf, _ = _timed(lambda: predict_logits(model, x))           # inference per clip
        return (t_fit - t_val) / args.steps, t_inf / x.shape[0]

    no_kw = lambda n: {}  # noqa: E731
    teacher = ResNet(depth=cfg.teacher.depth, width=cfg.teacher.width, num_classes=classes,
                     seed=0)
    b_t = cfg.train_teacher.batch_size
    teacher_step, teacher_infer = step_time(teacher, "train_teacher", b_t, no_kw)

    student = StudentLSTM(bins, cfg.student.hidden_size, cfg.student.num_layers, classes,
                          cfg.student.pooling, seed=0)
    b_s = cfg.train_student.batch_size
    student_step, student_infer = step_time(student, "train_student", b_s, no_kw)

    spec = cfg.distill
    # the transfer clips, made once (outside every timing): the preset's count, real-shaped
    x_u = rng.standard_normal((n_u, frames, bins), dtype=np.float32)
    z_u = rng.standard_normal((n_u, classes), dtype=np.float32)

    def distill_kw(n):
        z = rng.standard_normal((n, classes)).astype(np.float32)
        return {"distill": Distillation(spec.temperature, spec.lam, teacher_logits=z,
                                        transfer=(x_u, z_u) if spec.transfer else None)}
    distilled_step, _ = step_time(student, "train_student", b_s, distill_kw)

    bits = 4 if 4 in cfg.quant.bits else cfg.quant.bits[0]
    b_q = cfg.train_quant.batch_size

    def qd_kw(n):
        return {**distill_kw(n), "quant": cfg.quant.spec(bits)}
    qd_step, _ = step_time(student, "train_quant", b_q, qd_kw)

    # -- the run, from the preset's counts ----------------------------------------------------
    def epoch(step, batch, infer):
        return math.ceil(n_train / batch) * step + n_val * infer

    e_teacher = epoch(teacher_step, b_t, teacher_infer)
    e_student = epoch(student_step, b_s, student_infer)
    e_distilled = epoch(distilled_step, b_s, student_infer)
    e_qd = epoch(qd_step, b_q, student_infer)
    e_qat = epoch(qd_step, b_q, student_infer)  # a QAT step is a qd step without the soft term
    k = len(cfg.quant.bits)
    n_distilled = 1 + len(cfg.extra_recipes)
    parts = [
        ("features (synthesis + LFBE)", (d.n_clips + n_u) * per_clip_features),
        (f"teacher, {cfg.train_teacher.epochs} epochs", cfg.train_teacher.epochs * e_teacher),
        ("soft targets (train + transfer clips)", (n_train + n_u) * teacher_infer),
        (f"student, {cfg.train_student.epochs} epochs", cfg.train_student.epochs * e_student),
        (f"distilled ×{n_distilled}, {cfg.train_student.epochs} epochs",
         n_distilled * cfg.train_student.epochs * e_distilled),
        (f"qd-k + qat-k for k in {list(cfg.quant.bits)}, {cfg.train_quant.epochs} epochs each",
         k * cfg.train_quant.epochs * (e_qd + e_qat)),
        ("test inference (teacher + every student)",
         n_test * (teacher_infer + (2 + n_distilled + 3 * k) * student_infer)),
    ]
    total = sum(s for _, s in parts)
    seeds = len(cfg.seed_list)

    def hms(s):
        return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 \
            else f"{s:.1f} s"

    load = harness.load()
    lines = [SECTION, "",
             f"`qdaed pipeline --preset paper` on this machine (2 threads), computed from "
             f"parts measured at the preset's shapes by `bench/paper_runtime.py` (method in its "
             f"docstring): {d.n_clips} synthetic {d.clip_seconds:g} s clips "
             f"({n_train} train / {n_val} validation / {n_test} test) + {n_u} transfer clips, "
             f"{frames} frames × {bins} bins, batch {b_t}; {seeds} seed(s).", "",
             "| part | measured | per epoch |", "|---|---:|---:|",
             f"| features, per 10 s clip | {per_clip_features * 1e3:.0f} ms | — |",
             f"| teacher (ResNet-50) training step, B={b_t} | {teacher_step:.2f} s "
             f"| {hms(e_teacher)} |",
             f"| teacher inference, per clip | {teacher_infer * 1e3:.0f} ms | — |",
             f"| student (LSTM 512 × 2) training step, B={b_s} | {student_step:.2f} s "
             f"| {hms(e_student)} |",
             f"| distilled student step (soft targets, transfer rows) | {distilled_step:.2f} s "
             f"| {hms(e_distilled)} |",
             f"| quantized-distillation step ({bits} bit) | {qd_step:.2f} s | {hms(e_qd)} |",
             f"| student inference, per clip | {student_infer * 1e3:.1f} ms | — |",
             "", "The whole run (every schedule's full epoch budget; early stopping can only "
             "shorten it):", "", "| stage | time |", "|---|---:|"]
    lines += [f"| {name} | {hms(s)} |" for name, s in parts]
    lines += [f"| **total, one seed** | **{hms(total)}** |", ""]
    text = "\n".join(lines) + harness.footer(args.threads, load0, load)
    print(text)
    if args.write:
        harness.write_section(text, args.results)


if __name__ == "__main__":
    ARGS = _parse()
    harness.set_threads(ARGS.threads)
    main(ARGS)
