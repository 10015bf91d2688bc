"""``symgrad.autograd``: PyTorch's autograd namespace (``grad``, ``backward``, ``Function``,
and ``functional``: ``jacobian``, ``hessian``, ``vjp``, ``jvp``, ``hvp``, ``vhp``)."""
from ..tape.engine import backward, grad
from ..tape.function import Function, FunctionCtx
from . import functional

__all__ = ["backward", "grad", "Function", "FunctionCtx", "functional"]
