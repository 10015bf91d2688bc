"""``symgrad.autograd``: PyTorch's autograd namespace (``grad``, ``backward``, ``Function``)."""
from .tape.engine import backward, grad
from .tape.function import Function, FunctionCtx

__all__ = ["backward", "grad", "Function", "FunctionCtx"]
