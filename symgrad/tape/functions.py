"""Torch-style free functions (``symgrad.exp(x)``, ``symgrad.cat([a, b])``, ...).

Each one is a thin call of the matching Tensor method or op; the op table holds the maths.
"""
from __future__ import annotations

from .tensor import Tensor, apply_op, as_tensor

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "sigmoid",
    "relu", "abs", "clamp", "clip", "maximum", "minimum", "where", "sum", "mean", "max", "min", "matmul", "mm",
    "transpose", "t", "permute", "reshape", "unsqueeze", "squeeze", "cat", "concat", "stack", "broadcast_to",
    "clone", "softmax", "log_softmax", "logsumexp", "softplus", "norm", "is_tensor", "numel", "detach",
    "lt", "le", "gt", "ge", "eq", "ne", "logical_and", "logical_or", "logical_not",
]


def _unary(method: str):
    def call(x, *args, **kwargs):
        return getattr(as_tensor(x), method)(*args, **kwargs)

    call.__name__ = method
    call.__doc__ = f"``symgrad.{method}(x, ...)`` is ``x.{method}(...)``."
    return call


for _name in ["exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "sigmoid", "relu", "abs", "clamp", "clip",
              "sum", "mean", "max", "min", "matmul", "transpose", "t", "permute", "reshape", "unsqueeze", "squeeze",
              "broadcast_to", "clone", "softmax", "log_softmax", "logsumexp", "softplus", "norm", "pow",
              "maximum", "minimum", "detach", "numel"]:
    globals()[_name] = _unary(_name)
mm = globals()["matmul"]


def add(a, b):
    """``a + b`` with broadcasting."""
    return apply_op("add", a, b)


def sub(a, b):
    """``a - b`` with broadcasting."""
    return apply_op("sub", a, b)


def mul(a, b):
    """``a * b`` with broadcasting."""
    return apply_op("mul", a, b)


def div(a, b):
    """``a / b`` with broadcasting."""
    return apply_op("div", a, b)


def neg(a):
    """``-a``."""
    return apply_op("neg", a)


def where(condition, a, b):
    """``a`` where ``condition`` holds, else ``b`` (the condition carries no gradient)."""
    return apply_op("where", condition, a, b)


def _mask_function(name: str):
    def call(*args):
        return apply_op(name, *args)

    call.__name__ = name
    call.__doc__ = f"``symgrad.{name}(...)``: the mask op ``{name}`` (boolean result, no derivative)."
    return call


for _name in ["lt", "le", "gt", "ge", "eq", "ne", "logical_and", "logical_or", "logical_not"]:
    globals()[_name] = _mask_function(_name)


def cat(tensors, dim: int = 0):
    """Join tensors along an existing dimension."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("cat expects a non-empty list of tensors")
    return apply_op("cat", *tensors, dim=dim)


concat = cat


def stack(tensors, dim: int = 0):
    """Join same-shaped tensors along a new dimension."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty list of tensors")
    return apply_op("stack", *tensors, dim=dim)


def is_tensor(obj) -> bool:
    """True for symgrad tensors."""
    return isinstance(obj, Tensor)
