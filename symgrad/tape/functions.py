"""Torch-style free functions (``symgrad.exp(x)``, ``symgrad.cat([a, b])``, ...).

Every public op of the table (``Op.public``) has one, made here from the record: a call of
the Tensor method of the same name (``symgrad.exp(x)`` is ``x.exp()``), or for a mask op
the op itself (``symgrad.lt(1.0, x)``: a number may come first).  The functions written
out below are aliases, operators and ops that take lists; the op table holds the maths,
and ``composites.py`` the functions made of its ops (``flip``, ``gather``, ``var``, ...).
"""
from __future__ import annotations

from ..ops import OPS
from . import composites
from .composites import *  # noqa: F401,F403  (flip, roll, gather, var, ...: compositions of the table's ops)
from .tensor import Tensor, _check_rounding_mode, _scaled, apply_op, as_tensor

_WRITTEN_OUT = ["add", "sub", "mul", "div", "neg", "where", "polygamma", "clip", "mm", "t", "cat", "concat",
                "stack", "is_tensor", "numel", "detach"]


def _method_function(method: str):
    def call(x, *args, **kwargs):
        return getattr(as_tensor(x), method)(*args, **kwargs)

    call.__name__ = method
    call.__doc__ = f"``symgrad.{method}(x, ...)`` is ``x.{method}(...)``."
    return call


def _mask_function(name: str):
    def call(*args):
        return apply_op(name, *args)

    call.__name__ = name
    call.__doc__ = f"``symgrad.{name}(...)``: the mask op ``{name}`` (boolean result, no derivative)."
    return call


_PUBLIC_OPS = [op for op in OPS.values() if op.public]
for _op in _PUBLIC_OPS:
    globals()[_op.name] = _mask_function(_op.name) if _op.kind == "mask" else _method_function(_op.name)
for _name in ["clip", "t", "detach", "numel"]:
    globals()[_name] = _method_function(_name)
mm = globals()["matmul"]

__all__ = sorted({op.name for op in _PUBLIC_OPS} | set(_WRITTEN_OUT) | set(composites.__all__))


def add(a, b, *, alpha=1):
    """``a + alpha * b`` with broadcasting."""
    return apply_op("add", a, _scaled(b, alpha))


def sub(a, b, *, alpha=1):
    """``a - alpha * b`` with broadcasting."""
    return apply_op("sub", a, _scaled(b, alpha))


def mul(a, b):
    """``a * b`` with broadcasting."""
    return apply_op("mul", a, b)


def div(a, b, *, rounding_mode=None):
    """``a / b`` with broadcasting (true division only)."""
    _check_rounding_mode(rounding_mode)
    return apply_op("div", a, b)


def neg(a):
    """``-a``."""
    return apply_op("neg", a)


def where(condition, a, b):
    """``a`` where ``condition`` holds, else ``b`` (the condition carries no gradient)."""
    return apply_op("where", condition, a, b)


def polygamma(n: int, x):
    """``psi_n(x)``, PyTorch's ``torch.polygamma(n, x)`` (the order comes first)."""
    return as_tensor(x).polygamma(n)


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
