"""``qdaed diagnose RUN``: the diagnosis of :mod:`qdaed.pipeline.diagnosis` for a run."""

from __future__ import annotations

from qdaed.pipeline.diagnosis import __doc__ as DIAGNOSIS_DOC
from qdaed.pipeline.diagnosis import diagnose, diagnosis_markdown


def register(sub):
    p = sub.add_parser("diagnose", help="why distillation did or did not help in a run",
                       description=DIAGNOSIS_DOC.split("\n\n")[0])
    p.add_argument("run", help="a finished `qdaed pipeline` output directory")
    p.set_defaults(func=_run)


def _run(args):
    print(diagnosis_markdown(diagnose(args.run)))
    return 0
