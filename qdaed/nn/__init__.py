"""Op pairs: each module holds ``forward(params, x, ...) -> (y, cache)`` beside
``backward(params, cache, dy) -> (dx, grads)``, with the equations in their docstrings.

``params`` and ``grads`` are dicts keyed by the op's local PyTorch names (``weight``, ``bias``,
``weight_ih_l0``, ...); models prefix them (``fc.weight``).
"""
