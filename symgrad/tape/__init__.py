"""The tape engine and the eager Tensor API; imports NumPy and never SymPy."""
from .creation import (FloatTensor, arange, eye, from_numpy, full, full_like, linspace, manual_seed, ones, ones_like,
                       rand, rand_like, randn, randn_like, tensor, zeros, zeros_like)
from .devices import device
from .engine import backward, backward_engine, get_backward_engine, grad, set_backward_engine
from .function import Function, FunctionCtx
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .tensor import Tensor, apply_op, as_tensor
from . import composites  # noqa: E402,F401  (attaches Tensor.flip, .gather, .var, ...)

__all__ = [
    "Tensor", "apply_op", "as_tensor", "tensor", "FloatTensor", "from_numpy", "device", "zeros", "ones", "full", "eye",
    "arange", "linspace",
    "rand", "randn", "zeros_like", "ones_like", "full_like", "rand_like", "randn_like", "manual_seed",
    "backward", "grad", "set_backward_engine", "get_backward_engine", "backward_engine",
    "Function", "FunctionCtx", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
]
