"""symgrad: PyTorch-style autograd whose gradients also exist in closed form.

This module only re-exports the public API; see the subpackages for the code.  The
symbolic engine's names (``symgrad.diff``, ``symgrad.grad``, ...) load SymPy on first use,
so ``import symgrad`` and the tape engine run without importing SymPy.
"""
import importlib

from . import autograd, check, linalg, nn, ops, optim
from .check import (GradcheckError, GradcheckResult, check_function, check_grad, check_hessian, check_hvp,
                    detect_anomaly, gradcheck, gradgradcheck)
from .tape import (Function, FloatTensor, Tensor, arange, as_tensor, backward_engine, device, enable_grad, eye,
                   from_numpy, full, full_like, get_backward_engine, is_grad_enabled, linspace, manual_seed, no_grad,
                   ones, ones_like, rand, rand_like, randn, randn_like, set_backward_engine, set_grad_enabled, tensor,
                   zeros, zeros_like)
from .tape.dtypes import (bool, double, float, float16, float32, float64, get_default_dtype, half, int, int8, int16,
                          int32, int64, long, set_default_dtype, short, uint8)
from .tape.functions import *  # noqa: F401,F403  (torch-style free functions: exp, sum, matmul, cat, ...)
from .tape.tracing import UntraceableError
from .progress import get_progress, set_progress
from .scaling import Chunked, NotAdditiveError, chunked

__version__ = "0.1.0"

_SYMBOLIC_NAMES = {
    "diff", "gradient", "grad", "value_and_grad", "jacobian", "jacfwd", "jacrev", "hessian", "vjp", "jvp",
    "compile_cache_info", "compile_cache_clear", "set_compile_cache_size", "GradientMismatchError",
    "ClosedForm", "latex", "pretty", "per_element", "explain",
}
_EXPORT_NAMES = {"export", "ExportError", "ExportVerificationError"}
_LAZY_MODULES = {"symbolic", "viz", "cli", "parsing", "testing", "tensorboard"}


def __getattr__(name: str):
    """Load the symbolic engine (and SymPy) only when one of its names is used."""
    if name in _SYMBOLIC_NAMES:
        return getattr(importlib.import_module(".symbolic", __name__), name)
    if name in _EXPORT_NAMES:
        return getattr(importlib.import_module(".exporters", __name__), name)
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'symgrad' has no attribute {name!r}")
