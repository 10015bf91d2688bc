"""The engines' side of a gradient check: which backward engines can run, and the
Jacobian blocks they compute.

An engine is whatever the backward switch (:func:`symgrad.set_backward_engine`) can
select: ``"tape"``, ``"symbolic"`` (loaded on first use) or ``"both"``.  A check runs the
function once per engine inside ``backward_engine(name)`` and asks
:func:`symgrad.autograd.grad` for one vector-Jacobian product per row: a one-hot
cotangent per output element, or one random cotangent in fast mode.  Nothing here knows
how an engine differentiates, so a new engine is checked as soon as the switch knows it.

>>> engine_status("tape")
(True, '')
>>> "tape" in available_engines()
True
"""
from __future__ import annotations

import numpy as np

from ..tape.engine import backward_engine, backward_engine_names, load_backward_engine
from ..tape.grad_mode import enable_grad
from ..tape.tensor import Tensor
from ..autograd import grad as autograd_grad

__all__ = ["engine_status", "available_engines", "engine_names", "engine_rows"]


def engine_names() -> list[str]:
    """Every engine the backward switch knows, available or not."""
    return backward_engine_names()


def engine_status(name: str) -> tuple[bool, str]:
    """``(True, "")`` when ``name`` can run; ``(False, why)`` when it cannot be loaded.

    An unknown name is a ``ValueError`` (a typo should not pass as "unavailable").
    """
    if name not in engine_names():
        raise ValueError(f"unknown backward engine {name!r}; choose from {engine_names()}")
    try:
        load_backward_engine(name)
    except Exception as err:  # noqa: BLE001  (any import failure means: cannot run)
        return False, f"{type(err).__name__}: {err}"
    return True, ""


def available_engines() -> list[str]:
    """The engines that load, in the switch's order (``"both"`` excluded: it is a cross-check
    of the other two, not an opinion of its own)."""
    return [name for name in engine_names() if name != "both" and engine_status(name)[0]]


def engine_rows(func, args: tuple, diff: list[int], engine: str, cotangents) -> list[list[np.ndarray]]:
    """Run ``func(*args)`` under ``engine`` and return vector-Jacobian products.

    ``cotangents(o, shape)`` yields the cotangents of output ``o``: ``None`` means every
    one-hot vector (the full Jacobian, row by row).  The result is indexed
    ``[output][input position in diff]`` and holds arrays of shape (rows, numel(input)):
    row ``r`` is ``c_r^T J``, flattened, in float64.
    """
    with backward_engine(engine), enable_grad():
        outputs = [out for _, out in as_outputs(func(*args))]
        inputs = [args[i] for i in diff]
        blocks = []
        for o, out in enumerate(outputs):
            rows_per_input = [[] for _ in diff]
            vectors = cotangents(o, out.shape)
            if vectors is None:
                vectors = _one_hots(out.shape, out.dtype)
            for vector in vectors:
                if not out.requires_grad:
                    grads = [None] * len(inputs)
                else:
                    grads = autograd_grad([out], inputs, grad_outputs=[Tensor(np.asarray(vector, out.dtype))],
                                          retain_graph=True, allow_unused=True)
                for k, (g, x) in enumerate(zip(grads, inputs)):
                    row = np.zeros(x.numel()) if g is None else np.asarray(g._data, np.float64).ravel()
                    if row.size != x.numel():
                        raise RuntimeError(
                            f"engine {engine!r} returned a gradient of shape {list(g.shape)} for input {diff[k]} "
                            f"of shape {list(x.shape)}"
                        )
                    rows_per_input[k].append(row)
            blocks.append([np.array(rows).reshape(len(rows), -1) for rows in rows_per_input])
        return blocks


def _one_hots(shape: tuple, dtype):
    size = int(np.prod(shape, dtype=np.int64))
    for r in range(size):
        vector = np.zeros(size, dtype)
        vector[r] = 1
        yield vector.reshape(shape)


def as_outputs(returned) -> list[tuple[int, Tensor]]:
    """The differentiable outputs of a checked function as ``(position, tensor)`` pairs:
    its Tensor, or the floating Tensors of the tuple/list it returns."""
    items = list(returned) if isinstance(returned, (tuple, list)) else [returned]
    outputs = []
    for position, item in enumerate(items):
        if not isinstance(item, Tensor):
            raise TypeError(
                f"the checked function returned a {type(item).__name__} at output {position}; it must return "
                "a symgrad Tensor or a tuple of Tensors (wrap NumPy code with symgrad.check_grad instead)"
            )
        if np.issubdtype(item.dtype, np.floating):
            outputs.append((position, item))
    if not outputs:
        raise TypeError("the checked function returned no floating-point Tensor, so there is no gradient to check")
    return outputs
