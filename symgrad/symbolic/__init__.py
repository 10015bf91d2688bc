"""The symbolic engine: graph -> SymPy, reverse-mode adjoints, compile, printing.

A computation (eager tensors, a traced function, or a plain SymPy expression) becomes a
SymPy expression over array-level symbols (:mod:`.core.symbols`, hash-consed): elementwise ops
are ordinary SymPy expressions (selections -- ``where``, ``maximum``, comparisons -- are the
functions of :mod:`.forms.selections`, which SymPy never rewrites), everything else is a
structural function (:mod:`.forms.structural`), and unstable closed forms use the stable
functions of :mod:`.forms.stable`.  :mod:`.derive.reverse` derives closed-form derivatives in one iterative pass,
:mod:`.codegen.compile` turns them into one cached NumPy function, :mod:`.backward` runs
``backward()`` on them, :mod:`.transforms` offers JAX-style transforms and
:mod:`.printing.printers` shows the formulas.  The sub-packages are layers that import only
downward (``core`` < ``forms`` < ``derive`` < ``printing`` < ``codegen`` < ``backward``,
``transforms``; ``tests/test_layers.py``), and importing them changes no SymPy class.

>>> import sympy as sp
>>> x = sp.Symbol("x", real=True)
>>> diff(sigmoid(x), x)
(1 - sigmoid(x))*sigmoid(x)
"""
from .backward import (GradientMismatchError, cross_checked_backward, last_compiled, set_cross_check_tolerances,
                       symbolic_backward)
from .codegen.compile import (CompiledFunction, compile_cache_clear, compile_cache_info, compile_exprs,
                      set_compile_cache_size)
from .printing.explain import Explanation, explain
from .transforms import grad, hessian, jacfwd, jacobian, jacrev, jvp, value_and_grad, vjp
from .derive.graph import tensor_expr, tensor_graph
from .printing.notebook import install_ipython_display
from .printing.printers import ClosedForm, latex, per_element, pretty, print_sympy_at_any_depth, text, tidy
from .derive.reverse import adjoints, diff, gradient, hessian as hessian_expr, jacobian as jacobian_expr, jvp_expr, vjp_expr
from .forms.stable import sigmoid, softplus
from .forms import linalg as _linalg  # noqa: F401  (registers the forms of det, logdet, inverse, solve)
from .forms.structural import STRUCTURAL_FUNCTIONS, StructuralFunction, numpy_namespace, structural_class
from .core.symbols import ArrayVar, Attrs, array_symbol, shape_of

__all__ = [
    # symbols and structure
    "ArrayVar", "Attrs", "array_symbol", "shape_of",
    "STRUCTURAL_FUNCTIONS", "StructuralFunction", "numpy_namespace", "structural_class",
    "sigmoid", "softplus",
    # closed forms
    "diff", "gradient", "jacobian_expr", "hessian_expr", "vjp_expr", "jvp_expr", "adjoints",
    "tensor_expr", "tensor_graph",
    # compile and cache
    "CompiledFunction", "compile_exprs", "compile_cache_info", "compile_cache_clear", "set_compile_cache_size",
    # backward
    "symbolic_backward", "cross_checked_backward", "GradientMismatchError", "set_cross_check_tolerances",
    "last_compiled",
    # transforms
    "grad", "value_and_grad", "jacobian", "jacfwd", "jacrev", "hessian", "vjp", "jvp",
    # printing
    "ClosedForm", "text", "pretty", "latex", "tidy", "per_element", "explain", "Explanation", "print_sympy_at_any_depth",
]

install_ipython_display()  # in IPython: SymPy forms display bounded (symgrad.symbolic.printing.notebook)
