"""symgrad: PyTorch-style autograd whose gradients also exist in closed form.

This module only re-exports the public API; see the subpackages for the code.
"""
from . import autograd, ops
from .tape import (Function, FloatTensor, Tensor, arange, as_tensor, backward_engine, enable_grad, eye, full,
                   full_like, get_backward_engine, is_grad_enabled, linspace, manual_seed, no_grad, ones, ones_like,
                   rand, rand_like, randn, randn_like, set_backward_engine, set_grad_enabled, tensor, zeros,
                   zeros_like)
from .tape.dtypes import (bool, double, float, float16, float32, float64, get_default_dtype, half, int, int8, int16,
                          int32, int64, long, set_default_dtype, short, uint8)
from .tape.functions import *  # noqa: F401,F403  (torch-style free functions: exp, sum, matmul, cat, ...)
from .tape.functions import __all__ as _function_names

__version__ = "0.1.0"
