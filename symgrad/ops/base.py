"""The shape of one entry in the op table, the registry, and the array namespace.

Every primitive op is declared once as an :class:`Op` with its faces side by side:

* ``forward(*arrays, **attrs)`` -- the NumPy forward;
* ``sympy`` -- its SymPy form, the one the symbolic engine differentiates and compiles:
  for elementwise ops a callable ``sympy(sp, *exprs, **attrs)`` that receives the
  ``sympy`` module (so this package never imports SymPy itself), or a
  :class:`NamedForm` naming a SymPy function by its import path
  (``sympy_function("sympy.codegen.cfunctions.log1p")``, or one of the engine's stable
  functions such as ``"symgrad.symbolic.forms.stable.sigmoid"``), imported on first use; for
  structural ops the marker :data:`STRUCTURAL`, meaning that the symbolic engine defines a
  SymPy ``Function`` subclass of the same name, with its shape rule, NumPy printing and
  symbolic adjoint (see ``symgrad.symbolic``);
* ``vjp(xp, g, ans, *inputs, **attrs)`` -- the hand-written vector-Jacobian product for
  the tape engine.  It returns one gradient per input: an array, or :data:`UNDEFINED`
  for an input that has no derivative at all (a boolean mask, an index).  ``xp`` is an
  :class:`ArrayNamespace`: with NumPy arrays the VJP is plain NumPy; with tensors (for
  ``create_graph=True``) the same code records a differentiable graph.  An op whose VJP
  is not written yet has ``vjp=None`` (:data:`NOT_IMPLEMENTED` is the message);
* ``domains`` -- where its tests draw random inputs from, one :class:`Domain` per input;
* its public faces, which every other surface derives from the record: ``summary`` (one
  line, for the formula language's help and docs), ``public`` (``Tensor.<name>`` and
  ``symgrad.<name>`` exist), ``in_formulas`` (the parser and the ``symgrad`` command
  accept ``<name>(...)``), ``libm`` (the C math function the C backends call) and
  ``numpy`` (the NumPy function that runs the op on tensors: ``np.exp(t)``).

``docs/adding_an_op.md`` says how to add an op.  The op table imports neither engine,
and SymPy is never imported here.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


class _Marker:
    """A named singleton used as an explicit marker in the op table."""

    def __init__(self, name: str, meaning: str) -> None:
        self.name = name
        self.meaning = meaning

    def __repr__(self) -> str:
        return self.name


UNDEFINED = _Marker(
    "UNDEFINED", "the derivative with respect to this input does not exist (a mask or an index)"
)
NOT_IMPLEMENTED = _Marker("NOT_IMPLEMENTED", "symgrad has no derivative rule for this op yet")
STRUCTURAL = _Marker(
    "STRUCTURAL", "SymPy form is the symbolic engine's Function subclass named after the op"
)


@dataclass(frozen=True)
class Domain:
    """Where the tests of an op draw one input from.

    ``avoid`` lists kinks or poles (relu at 0, tan at pi/2) that samples keep ``margin``
    away from, so finite differences stay meaningful.  ``integer`` draws integers (as
    ``dtype``); ``boolean`` draws a boolean mask, whatever ``dtype`` is asked for;
    ``well_conditioned`` draws square matrices (``(..., n, n)``), ``2 I + E`` with
    ``|E_ij| < 1/n``: a dominant diagonal, so invertible, with a positive determinant;
    ``positive_definite`` draws symmetric positive definite ones, ``I + B B^T / n`` with
    ``|B_ij| < 1``; ``separated_singular_values`` draws matrices (``(..., m, n)``)
    ``Q_1 diag(s) Q_2^T`` with orthonormal ``Q_1``, ``Q_2`` and singular values ``s`` at least 1
    and at least 0.5 apart, where ``svdvals``, ``svd_u`` and ``svd_v`` are smooth.
    """

    low: float = -2.0
    high: float = 2.0
    avoid: tuple[float, ...] = ()
    margin: float = 0.05
    integer: bool = False
    boolean: bool = False
    well_conditioned: bool = False
    positive_definite: bool = False
    separated_singular_values: bool = False

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        """Draw an array of ``shape`` from the domain.

        >>> bool(Domain(0.5, 1.0).sample(np.random.default_rng(0), (3,)).min() >= 0.5)
        True
        >>> Domain(boolean=True).sample(np.random.default_rng(0), (3,)).dtype
        dtype('bool')
        """
        if self.boolean:
            return rng.random(shape) < 0.5
        if self.integer:
            return rng.integers(int(self.low), int(self.high) + 1, size=shape).astype(dtype)
        if self.well_conditioned:  # 2 I + E, |E_ij| < 1/n: diagonally dominant, so invertible with det > 0
            n = shape[-1]
            return np.asarray(2 * np.eye(n) + rng.uniform(-1, 1, size=shape) / n, dtype=dtype)
        if self.positive_definite:  # I + B B^T / n: symmetric, eigenvalues in [1, 1 + n]
            n = shape[-1]
            b = rng.uniform(-1, 1, size=shape)
            return np.asarray(np.eye(n) + b @ np.swapaxes(b, -1, -2) / n, dtype=dtype)
        if self.separated_singular_values:  # Q1 diag(s) Q2^T, s_i in [k - i, k - i + 0.5]
            *batch, m, n = shape
            k = min(m, n)
            left = np.linalg.qr(rng.standard_normal((*batch, m, k)))[0]
            right = np.linalg.qr(rng.standard_normal((*batch, n, k)))[0]
            s = np.arange(k, 0, -1) + rng.uniform(0, 0.5, size=(*batch, k))
            return np.asarray((left * s[..., None, :]) @ np.swapaxes(right, -1, -2), dtype=dtype)
        values = rng.uniform(self.low, self.high, size=shape)
        for point in self.avoid:
            close = np.abs(values - point) < self.margin
            values = np.where(close, point + np.copysign(self.margin * 2, values - point + 1e-300), values)
        return np.asarray(values, dtype=dtype)


@dataclass(frozen=True)
class NamedForm:
    """A SymPy form named by its import path, imported when first called.

    ``path`` names either a SymPy ``Function`` class, called on the expressions
    (``"sympy.codegen.cfunctions.log1p"``, ``"symgrad.symbolic.forms.stable.sigmoid"``), or a
    form function ``form(sp, *exprs, **attrs)`` like any op's (``"symgrad.symbolic.forms.stable.softplus_form"``).
    Naming it keeps the op table free of SymPy and of the symbolic engine at import time,
    while the record still says which form the engine uses: there is no second table.

    >>> import sympy
    >>> sympy_function("sympy.codegen.cfunctions.expm1")(sympy, sympy.Symbol("x"))
    expm1(x)
    """

    path: str

    def __call__(self, sp, *exprs: Any, **attrs: Any) -> Any:
        module, _, name = self.path.rpartition(".")
        target = getattr(importlib.import_module(module), name)
        if isinstance(target, type):
            if attrs:
                raise TypeError(f"the SymPy function {self.path} takes no attributes, got {sorted(attrs)}")
            return target(*exprs)
        return target(sp, *exprs, **attrs)


def sympy_function(path: str) -> NamedForm:
    """The SymPy form of an op that is one SymPy function (or form function), by import path."""
    return NamedForm(path)


def sympy_number(sp, value: Any):
    """The SymPy number of a Python or NumPy number (an op attribute, a constant operand),
    given the ``sympy`` module: an Integer when integral and exact in a float (prints
    ``2``, not ``2.0``), else a Float; complex values as ``re + I*im``.

    >>> import sympy
    >>> [sympy_number(sympy, v) for v in (True, 3, 2.0, 0.5, 1e300, 1 + 2j)]
    [1, 3, 2, 0.500000000000000, 1.00000000000000e+300, 1.0 + 2.0*I]
    """
    if isinstance(value, (bool, np.bool_, int, np.integer)):
        return sp.Integer(int(value))
    if isinstance(value, (complex, np.complexfloating)):
        return sp.Float(value.real) + sp.I * sp.Float(value.imag)
    value = float(value)
    if value.is_integer() and abs(value) < 2 ** 53:
        return sp.Integer(int(value))
    return sp.Float(value)


@dataclass(frozen=True, eq=False)
class Op:
    """One primitive operation with all its faces (see the module docstring).

    ``kind`` is ``"elementwise"`` (broadcasting, SymPy form is an ordinary expression),
    ``"reduction"``, ``"structural"`` or ``"mask"``: an elementwise op with a boolean
    output and no derivative (comparisons and the logical combinations of masks, see
    ``masks.py``; its VJP returns :data:`UNDEFINED` for every input).  ``grad_fn_name`` is PyTorch's node name for the
    same op (``"AddBackward0"``).  ``saves`` names what the VJP reads besides shapes:
    ``"inputs"``, ``"output"``, both or neither; only those are version-checked, so an
    in-place change to a tensor the VJP does not read is allowed, as in PyTorch.
    ``needed_by`` narrows that, as PyTorch's saving does: it maps an input position (or
    ``"output"``) to the inputs whose gradients read it (``mul``: ``{0: (1,), 1: (0,)}``,
    ``a`` is only read for ``b``'s gradient); a saved tensor it does not list is read for
    every input's gradient.  A tensor read only for gradients that no input needs
    (inputs that do not require grad, Python numbers) is not checked; see :meth:`reads`.
    ``arity`` is the number of tensor inputs, ``None`` for variadic ops (cat, stack).
    ``differentiable`` marks, per input, whether it can carry a gradient (``where``'s
    condition cannot); ``None`` means all can.  ``name_rule``, when set, gives PyTorch's
    node name for given input shapes and attrs where it depends on them (``matmul``:
    ``DotBackward0``/``MvBackward0``/``MmBackward0``...); use :meth:`node_name`.

    The public faces are derived from four fields.  ``public``: ``Tensor.<name>`` and
    ``symgrad.<name>`` exist; ``tape/tensor.py`` generates the method
    (``apply_op(name, self, *others, **attrs)``) unless it writes one out for a custom
    signature, and ``tape/functions.py`` the free function.  ``in_formulas``: the formula
    language (``symgrad.parsing``, the ``symgrad`` command) accepts ``<name>(...)`` with
    ``arity`` arguments; ``summary`` is its one-line meaning there (CLI help,
    ``docs/cli.md``).  ``libm``: the C math library function computing the op's SymPy
    function in the C backends (None: the backends print the op their own way, or refuse
    it naming it).  ``numpy``: the NumPy function this op is (``"exp"``, ``"add"``,
    ``"arctan2"``, ``"sum"``), so ``np.<numpy>(tensor, ...)`` runs the op
    (``tape/numpy_protocol.py``).

    ``view`` says where PyTorch returns a *view* of the first input (memory shared with
    it: ``transpose``, ``reshape``, basic indexing): ``True``, or a test of the attrs
    (``getitem``: ints and slices only).  symgrad's result is a copy, so the tape marks it
    and refuses what would tell the two apart (``tape/views.py``).
    """

    name: str
    grad_fn_name: str
    forward: Callable[..., np.ndarray]
    vjp: Callable[..., tuple] | None
    sympy: Callable[..., Any] | _Marker
    kind: str = "elementwise"
    arity: int | None = 1
    saves: frozenset[str] = frozenset({"inputs"})
    domains: tuple[Domain, ...] = field(default_factory=lambda: (Domain(),))
    differentiable: tuple[bool, ...] | None = None
    name_rule: Callable[..., str] | None = None
    needed_by: dict = field(default_factory=dict)
    summary: str = ""
    public: bool = False
    in_formulas: bool = False
    libm: str | None = None
    numpy: str | None = None
    view: bool | Callable[..., bool] = False

    def __post_init__(self) -> None:
        if self.in_formulas and not self.summary:
            raise ValueError(f"op {self.name!r} is in the formula language but has no summary= for its help")

    def node_name(self, *shapes: tuple[int, ...], **attrs: Any) -> str:
        """PyTorch's ``grad_fn`` name for this op on inputs of ``shapes`` with ``attrs``.

        >>> OPS["add"].node_name((2,), (2,))
        'AddBackward0'
        """
        if self.name_rule is None:
            return self.grad_fn_name
        return self.name_rule(*shapes, **attrs)

    def reads(self, saved, needs_grad) -> bool:
        """Whether the VJP reads input ``saved`` (a position) or ``"output"`` when the
        inputs that need a gradient are those where ``needs_grad`` is true.

        >>> OPS["mul"].reads(0, (True, False)), OPS["mul"].reads(1, (True, False))
        (False, True)
        >>> OPS["exp"].reads("output", (True,)), OPS["exp"].reads(0, (True,))
        (True, False)
        """
        if ("output" if saved == "output" else "inputs") not in self.saves:
            return False
        readers = self.needed_by.get(saved)
        return any(needs_grad) if readers is None else any(needs_grad[i] for i in readers)

    def __repr__(self) -> str:
        return f"<Op {self.name}>"


OPS: dict[str, Op] = {}


def shape_of(x) -> tuple[int, ...]:
    """``np.shape(x)``, at once for an ndarray (VJPs ask for their inputs' shapes on every call).

    >>> shape_of(np.zeros((2, 3))), shape_of(1.0)
    ((2, 3), ())
    """
    return x.shape if type(x) is np.ndarray else np.shape(x)


def register(op: Op) -> Op:
    """Add ``op`` to the table; a second op of the same name is an error."""
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} is declared twice in the op table")
    OPS[op.name] = op
    return op


class ArrayNamespace:
    """Calls ops by name, either on NumPy arrays or on tensors.

    VJPs are written once against this namespace: ``xp.exp(x)``, ``xp.sum_to(g, shape)``.
    With :data:`numpy_ops` every call is the op's NumPy forward; the tape engine builds a
    second namespace whose calls record ops on tensors, which is how ``create_graph=True``
    makes gradients differentiable without a second set of derivative rules.

    ``call(op, *args, **attrs)`` runs one op; or ``bind(op)`` gives the function that runs
    ``op`` (one call less per op: :data:`numpy_ops` binds each op's forward itself).

    >>> numpy_ops.exp(np.zeros(2))
    array([1., 1.])
    """

    def __init__(self, call: Callable[..., Any] | None = None, *, bind: Callable[[Op], Callable] | None = None) -> None:
        if (call is None) == (bind is None):
            raise TypeError("ArrayNamespace takes call(op, *args, **attrs) or bind(op), exactly one of them")
        self._bind = bind if bind is not None else (lambda op: lambda *args, **attrs: call(op, *args, **attrs))

    def __getattr__(self, name: str) -> Callable[..., Any]:
        """The function calling op ``name``, made on first use and kept as an attribute
        (VJPs look ops up on every call: later lookups never reach here)."""
        try:
            op = OPS[name]
        except KeyError:
            raise AttributeError(f"the op table has no op named {name!r}") from None
        function = self.__dict__[name] = self._bind(op)
        return function


numpy_ops = ArrayNamespace(bind=lambda op: op.forward)
