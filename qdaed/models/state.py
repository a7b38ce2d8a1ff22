"""The state protocol every model follows: ``state_dict()`` and ``load_state_dict(state)``.

A model keeps its arrays (parameters, and a ResNet's batch-norm running statistics) under
PyTorch's state_dict names. ``state_dict()`` returns copies of them in PyTorch's order;
``load_state_dict(state)`` checks every entry first — the names exactly (``*.num_batches_tracked``
ignored, as PyTorch's BatchNorm fills it in), each shape, floating-point and finite values,
and the model's own checks (a running variance is not negative), on the values cast to the
model's dtype (a float64 value beyond float32's range is refused, not made infinite) — and
only then copies them in place, so a refused state leaves the model untouched and
an optimiser bound to the arrays keeps them. Errors are ``InputError``, the same for every
model.
"""

from __future__ import annotations

import numpy as np

from qdaed.errors import InputError


class StateDict:
    """Mixin of the state protocol. A model defines ``_state_arrays()`` ({name: its live
    array}, in state_dict order), ``_state_name()`` (how errors name it) and, if it has any,
    ``_check_state_entry(name, value)`` (raises InputError)."""

    def _state_arrays(self):
        raise NotImplementedError

    def _state_name(self):
        return type(self).__name__

    def _check_state_entry(self, name, value):
        """Model-specific checks of one entry (none by default)."""

    def state_dict(self):
        """Copies of every array of the state, {name: array}, in PyTorch's order."""
        return {name: value.copy() for name, value in self._state_arrays().items()}

    def load_state_dict(self, state):
        """Copy ``state``'s values in by name (see the module docstring); InputError naming
        the entry for anything that does not fit, and nothing changed then."""
        if not hasattr(state, "keys"):
            raise InputError(f"state: expected a dict of arrays, got {type(state).__name__}")
        arrays = self._state_arrays()
        names = [n for n in state.keys() if not str(n).endswith("num_batches_tracked")]
        missing = [n for n in arrays if n not in state]
        unexpected = [n for n in names if n not in arrays]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing {len(missing)} ({', '.join(missing[:5])}"
                             f"{', …' if len(missing) > 5 else ''})")
            if unexpected:
                parts.append(f"unexpected {len(unexpected)} ({', '.join(map(str, unexpected[:5]))}"
                             f"{', …' if len(unexpected) > 5 else ''})")
            raise InputError(f"state: names do not match {self._state_name()}: "
                             + "; ".join(parts))
        values = {}
        for n, target in arrays.items():
            v = np.asarray(state[n])
            if v.shape != target.shape:
                raise InputError(f"state[{n!r}]: expected shape {target.shape}, got {v.shape}")
            if v.dtype.kind != "f":
                raise InputError(f"state[{n!r}]: expected floating-point values, got {v.dtype}")
            with np.errstate(over="ignore"):          # beyond float32's range: inf, refused
                v = v.astype(target.dtype, copy=False)
            if not np.isfinite(v).all():
                raise InputError(f"state[{n!r}]: contains NaN or infinity")
            self._check_state_entry(n, v)
            values[n] = v
        # Only after every entry passed: a refused state leaves the model untouched.
        for n, v in values.items():
            np.copyto(arrays[n], v)


__all__ = ["StateDict"]
