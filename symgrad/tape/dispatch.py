"""The dispatcher: ``apply_op`` runs one op of the table on tensors (or numbers), with
PyTorch's dtype promotion, and records it on the tape when a gradient is needed.

``tensor.py`` re-imports ``apply_op`` and ``_forward`` at its end, so the
``Tensor`` methods and every ``from symgrad.tape.tensor import apply_op`` keep working.
"""
from __future__ import annotations

import builtins
import numbers

import numpy as np

from ..ops import OPS, ArrayNamespace
from . import dtypes, tracing, views
from .grad_mode import is_grad_enabled
from .node import MAX_ORIGIN_SIZE, Node, Origin, SavedInput
from .tensor import Tensor, as_tensor


def _operand(value, like: list) -> Tensor:
    """Wrap a Python number as a constant tensor whose dtype follows PyTorch's promotion:
    a float number next to a float tensor takes the tensor's dtype."""
    if isinstance(value, Tensor):
        return value
    kind = type(value)  # the exact Python types first: a number operand is common
    if kind is not float and kind is not int and not isinstance(value, numbers.Number):
        return as_tensor(value)
    if kind is builtins.bool or isinstance(value, builtins.bool):
        dtype = dtypes.bool
    else:
        dtype = None
        for t in like:
            if isinstance(t, Tensor) and t._data.dtype.kind == "f":
                dtype = t._data.dtype
                break
        if dtype is None:
            integral = kind is int or (kind is not float and isinstance(value, numbers.Integral))
            dtype = dtypes.int64 if integral else dtypes.get_default_dtype()
    return Tensor(np.asarray(value, dtype=dtype), _constant=value)


def _promote(op, inputs: list) -> list:
    """PyTorch's type promotion for elementwise ops, where it differs from NumPy's.

    The float dtype of the result comes from the dimensioned float tensors if there are
    any, else from 0-d float tensors, else from Python numbers; integer and boolean
    operands are converted to it (``float32 - int64`` is float32, not float64), and a
    float operand of another dtype is cast (recorded, so its gradient flows back); so is
    an integer or boolean operand that a running trace follows (``mask * x``), so the
    compiled function converts each call's values.
    Operands that all have one dtype are returned as they are, at once.  Only elementwise
    ops of several operands promote (the caller checks: this is on every op's path).
    """
    first = inputs[0]._data.dtype
    for t in inputs:
        dtype = t._data.dtype
        if dtype is not first and dtype != first:
            break
    else:
        return inputs
    positions = [i for i in range(len(inputs)) if op.differentiable is None or op.differentiable[i]]
    floats = [inputs[i] for i in positions if inputs[i].dtype.kind == "f"]
    if not floats:
        return inputs
    tensors = [t for t in floats if t._constant is None]
    decisive = [t for t in tensors if t.ndim > 0] or tensors
    target = np.result_type(*(t.dtype for t in decisive)) if decisive else floats[0].dtype
    promoted = list(inputs)
    for i in positions:
        operand = promoted[i]
        if operand.dtype == target:
            continue
        if operand.dtype.kind == "f" or (tracing.ACTIVE_TRACES and tracing.is_traced(operand)):
            promoted[i] = operand.to(target)
        else:
            promoted[i] = Tensor(operand._data.astype(target), _constant=operand._constant)
            if (operand.name is not None or operand._origin is not None) and is_grad_enabled():
                _note_origin(promoted[i], OPS["cast"], {"dtype": target}, [operand])  # a mask made numbers
    return promoted


def _forward(op_name: str, operands: tuple, attrs: dict) -> tuple:
    """``(op, input tensors after promotion, result array)`` of one op on ``operands``."""
    op = OPS[op_name]
    if op.arity is not None and len(operands) != op.arity:
        # a NumPy ufunc forward would read an extra operand as its out= array and overwrite it
        raise TypeError(f"{op_name} takes {op.arity} tensor input{'s' if op.arity != 1 else ''}, got {len(operands)}; "
                        "pass its other arguments by keyword")
    inputs = [value if isinstance(value, Tensor) else _operand(value, operands) for value in operands]
    if len(inputs) > 1 and op.kind == "elementwise":
        inputs = _promote(op, inputs)
    arrays = []
    for t in inputs:
        if t._view_of is not None:
            views.check_fresh(t)
        arrays.append(t._data)
    try:
        result = op.forward(*arrays, **attrs)
    except (ValueError, IndexError, TypeError) as err:
        shapes = ", ".join(str(list(t.shape)) for t in inputs)
        raise type(err)(f"{op_name} failed for input shapes {shapes}: {err}") from None
    return op, inputs, result if type(result) is np.ndarray else np.asarray(result)


def apply_op(op_name: str, *operands, **attrs) -> Tensor:
    """Run one op from the table on tensors (or numbers), recording it when needed.

    >>> import symgrad
    >>> x = symgrad.tensor([1.0, 2.0], dtype=symgrad.float32, requires_grad=True)
    >>> y = apply_op("mul", x, 3)
    >>> y.dtype, y.grad_fn
    (dtype('float32'), <MulBackward0 object at ...>)
    """
    op, inputs, data = _forward(op_name, operands, attrs)
    out = Tensor(data)
    view = op.view
    if view and (view is True or view(**attrs)):
        views.note(out, inputs[0], op_name, attrs)
    grad_mode = is_grad_enabled()
    if grad_mode and data.dtype.kind == "f":
        for t in inputs:
            if t._requires_grad or t.grad_fn is not None:
                node = Node(op, attrs, [SavedInput(t, t._edge()) for t in inputs])
                out.grad_fn = node
                node.set_output(0, out)
                break
    if grad_mode and out.grad_fn is None:  # not recorded: what it was computed from, if named, for printing
        for t in inputs:
            if t.name is not None or t._origin is not None:
                _note_origin(out, op, attrs, inputs)
                break
    if tracing.ACTIVE_TRACES:
        operand_tensors = [o for o in operands if isinstance(o, Tensor)]  # before dtype promotion
        if out.grad_fn is not None:
            tracing.check_use(operand_tensors)
        elif tracing.follows(op, inputs):  # a mask, or what is computed from one: recorded for the trace only
            node = Node(op, attrs, [SavedInput(t, t._edge()) for t in inputs])
            node.set_output(0, out)
            out._trace_node = node
        else:
            tracing.mark(out, f"the unrecorded op {op_name}", *operand_tensors)
    return out


def _note_origin(out: Tensor, op, attrs: dict, inputs: list) -> None:
    """Give ``out``, computed without recording from named tensors (or from tensors that
    have an origin), its :class:`~symgrad.tape.node.Origin`, unless the chain would be
    longer than :data:`~symgrad.tape.node.MAX_ORIGIN_SIZE`."""
    origin = Origin(op, attrs, inputs)
    if origin.size <= MAX_ORIGIN_SIZE:
        out._origin = origin


tensor_ops = ArrayNamespace(lambda op, *args, **attrs: apply_op(op.name, *args, **attrs))
"""The namespace VJPs use under ``create_graph=True``: every call records an op."""
