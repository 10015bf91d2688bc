"""Symbolic reverse mode: closed-form derivatives by adjoint accumulation over the SymPy DAG.

One iterative pass (no recursion limit) visits every distinct node of the expression
DAG once, from the outputs down, and differentiates each shared subexpression once:

* elementwise nodes (``Add``, ``Mul``, ``Pow``, ``exp``, ``Piecewise``, the stable
  functions, ...) get their local partials from SymPy's own differentiation of the node
  with its operands replaced by fresh real symbols (``Add``/``Mul``/``Pow`` use the same
  rules written out, for speed);
* structural nodes (``matmul``, ``sum``, ``reshape``, ``getitem``, ...) apply their
  symbolic adjoint rule (``structural.py``);
* broadcasting is undone by one symbolic sum-to-shape node (:func:`reduce_to`).

It never reads a tape VJP.  Adjoints may keep a shape that merely *broadcasts* to the
node's shape (the gradient of ``mean(x)`` is the scalar ``1/n``), which keeps the printed
formulas compact; :func:`diff` and the compiler give results their exact shape.

Derivatives of indicator-like functions (``sign``, ``Heaviside``) are zero almost
everywhere: ``DiracDelta`` terms are dropped, as every numeric engine does.

The public entry points are :func:`diff`, :func:`gradient`, :func:`jacobian`,
:func:`hessian`, :func:`vjp_expr` and :func:`jvp_expr`; :func:`adjoints` is the engine.
"""
from __future__ import annotations

import numbers
from typing import Any, Iterable, Sequence

import sympy as sp

from ...progress import progress
from ..forms.selections import (NOT_DIFFERENTIABLE, Equal, GreaterEqual, LogicalAnd, Select, TieStep, dummies, lower,
                          match_function_op)
from ..forms.structural import StructuralFunction, exact, reduce_to, scale
from ..core._compat import evaluate, global_parameters
from ..core.symbols import (DEEP, ArrayVar, EngineArray, broadcast_shapes, collection_paused, expression_cache,
                            free_symbols, intern, operands, replaced, shape_of, size_of)

__all__ = ["adjoints", "diff", "gradient", "jacobian", "hessian", "vjp_expr", "jvp_expr", "jvp_exprs", "as_expr"]

_ZERO = sp.S.Zero


def _children(node: sp.Basic) -> tuple:
    if isinstance(node, (sp.Add, sp.Mul, sp.Pow)):
        return node.args
    if isinstance(node, StructuralFunction):
        return node.arrays
    if not node.args:
        return ()
    return operands(node)


def _topological(roots: Iterable[sp.Basic]) -> tuple[list, dict]:
    """Nodes in postorder (operands first) and each node's operands, iteratively."""
    order: list = []
    kids: dict = {}
    for root in roots:
        if root in kids:
            continue
        kids[root] = _children(root)
        stack = [(root, iter(kids[root]))]
        while stack:
            node, it = stack[-1]
            for child in it:
                if child not in kids:
                    kids[child] = _children(child)
                    stack.append((child, iter(kids[child])))
                    break
            else:
                stack.pop()
                order.append(node)
    return order, kids


def _local_partials(node: sp.Basic, children: Sequence[sp.Basic], as_recorded: bool = False) -> list:
    """``d node / d child`` for each child, by SymPy's ``diff`` on fresh real symbols.

    The derivative is taken of a *template* -- the node with its operands replaced by
    private dummies -- and cached per template, so every ``tanh`` node of a graph costs
    one dictionary lookup and one substitution, not one call of SymPy's ``diff``."""
    if isinstance(node, sp.Add):
        return [sp.S.One] * len(children)
    if isinstance(node, sp.Mul):
        args = node.args
        return [_product(args[:i] + args[i + 1:]) for i in range(len(args))]
    if isinstance(node, sp.Pow):
        base, expo = node.args
        if expo.is_Number:
            return [_ZERO if expo.is_zero else _times(expo, _power(base, _minus_one(expo))), _ZERO]
        if as_recorded:
            return _pow_partials(node, base, expo)
        return [_times(expo, _power(base, expo - 1)), _times(node, sp.log(base))]
    if isinstance(node, NOT_DIFFERENTIABLE):
        return [_ZERO] * len(children)
    us = dummies(len(children))
    # a number among the arguments (polygamma's order, besseli's) stays in the template:
    # SymPy differentiates polygamma(0, u), not polygamma(u0, u1) with respect to its order
    forward = {c: u for c, u in zip(children, us) if not c.is_Number}
    if node.args == tuple(children) and len(forward) == len(children):
        key = (node.func, len(children))
        local = None
    else:
        local = node.xreplace(forward)
        key = local
    partials = _PARTIALS.get(key)
    if partials is None:
        if local is None:
            with evaluate(True):
                local = node.func(*us)
        partials = _PARTIALS[key] = _template_partials(node, local, us)
    back = dict(zip(us, children))
    return [p if p.is_Number else p.xreplace(back) for p in partials]


_PARTIALS: dict = expression_cache()  # emptied with the canonical table (bounded by size and age)


def _frozen_arguments(local: sp.Expr) -> set:
    """The arguments of an op's SymPy function that its record marks not differentiable
    (polygamma's order): their partial derivatives are 0, as the tape's are UNDEFINED."""
    from ...ops import OPS

    matched = match_function_op(local)
    if matched is None:
        return set()
    name, positions = matched
    differentiable = OPS[name].differentiable or (True,) * len(positions)
    return {local.args[k] for k, able in zip(positions, differentiable) if not able}


def _template_partials(node: sp.Basic, local: sp.Expr, us: Sequence[sp.Symbol]) -> list:
    out = []
    with evaluate(True):
        free = local.free_symbols
        frozen = _frozen_arguments(local)
        for dummy in us:
            if dummy not in free or dummy in frozen:
                out.append(_ZERO)
                continue
            partial = sp.diff(local, dummy)
            if partial.has(sp.DiracDelta):
                partial = partial.replace(sp.DiracDelta, lambda *args: _ZERO)
            if partial.has(sp.Derivative):
                raise NotImplementedError(
                    f"SymPy cannot differentiate {node.func.__name__} (in {node}); give the op a SymPy "
                    "form with a derivative, or use the tape engine"
                )
            out.append(lower(partial))
    return out


def _pow_partials(node: sp.Pow, base: sp.Expr, expo: sp.Expr) -> list:
    """``d/da`` and ``d/db`` of ``a**b`` for a non-constant ``b`` as the engines compute
    them, by PyTorch's rule: 0 where ``b == 0`` (not ``0 * a**-1``, NaN or inf at
    ``a = 0``), and 0 where ``a == 0`` and ``b >= 0`` (not ``a**b * log(a)``, NaN at
    ``a = 0``).  Both are selections, so an inf or NaN upstream gradient gives an exact 0
    there too.  The branch not taken is computed at ``a = 1`` there (JAX's "double
    where"), so it is finite and the derivatives of these partials (``create_graph=True``:
    with respect to the upstream gradient, ``a`` or ``b``) are 0 there, not ``0 * inf =
    nan``.  Printed derivatives keep the plain rules (``b*a**(b - 1)``, ``a**b*log(a)``).

    >>> a, b = sp.symbols("a b", real=True)
    >>> _pow_partials(a ** b, a, b)
    [where(b == 0, 0, b*where(b == 0, 1, a)**(b - 1)), where((a == 0) & (b >= 0), 0, a**b*log(where((a == 0) & (b >= 0), 1, a)))]
    """
    no_base = Equal(expo, 0)
    safe_base = base if base.is_zero is False else Select(no_base, sp.S.One, base)
    d_base = Select(no_base, _ZERO, _times(expo, _power(safe_base, expo - 1)))
    if base.is_zero is False:
        return [d_base, _times(node, sp.log(base))]
    if base.is_zero:  # a constant 0 base: log(0) is -inf at run time (SymPy's would be zoo)
        at_zero = GreaterEqual(expo, 0)
        return [d_base, Select(at_zero, _ZERO, _times(node, sp.log(Select(at_zero, sp.S.One, _ZERO))))]
    at_zero = LogicalAnd(Equal(base, 0), GreaterEqual(expo, 0))
    return [d_base, Select(at_zero, _ZERO, _times(node, sp.log(Select(at_zero, sp.S.One, base))))]


def _minus_one(number: sp.Number) -> sp.Number:
    """``number - 1`` as a number, also while SymPy's evaluation is off (where
    ``Rational(1, 2) - 1`` would stay an unevaluated sum).

    >>> with evaluate(False):
    ...     _minus_one(sp.Rational(1, 2)), _minus_one(sp.Float(1.5)), _minus_one(sp.Integer(3))
    (-1/2, 0.500000000000000, 2)
    """
    if number.is_Rational:
        return sp.Rational(number.p - number.q, number.q)
    return sp.Float(float(number) - 1.0)


def _product(factors: tuple) -> sp.Expr:
    if len(factors) == 1:
        return factors[0]
    if not global_parameters.evaluate:
        return sp.Mul._from_args(factors, is_commutative=True)
    return sp.Mul(*factors)


def _power(base: sp.Expr, expo: sp.Expr) -> sp.Expr:
    if expo is sp.S.One:
        return base
    return sp.Pow(base, expo)


def adjoints(seeds: Sequence[tuple[Any, Any]], wrt: Sequence[Any], *, as_recorded: bool = False) -> list:
    """Reverse-mode accumulation: for outputs ``y`` with upstream gradients ``g`` (pairs
    in ``seeds``), the closed-form gradient of ``sum(g * y)`` for every node in ``wrt``
    (symbols or intermediate subexpressions).  Nodes ``wrt`` does not depend on get 0.

    ``as_recorded=True`` combines the adjoints unevaluated, for forms built with
    ``Segment.build(as_recorded=True)``: every product and sum stays as the chain rule
    makes it (``g*x*x**-1`` is not ``g``), so it is NaN and inf where the tape's is.

    >>> x, y = sp.symbols("x y", real=True)
    >>> adjoints([(x * sp.sin(y), 1)], [x, y])
    [sin(y), x*cos(y)]

    Numeric factors are not distributed over sums while deriving (``-2*(1 - x)`` stays
    as it is, see :func:`~symgrad.symbolic.forms.structural.scale`), which keeps shared
    subexpressions intact and formulas short.
    """
    return _adjoints(seeds, wrt, as_recorded=as_recorded)


@collection_paused()
def _adjoints(seeds, wrt, scalar_outputs: bool = False, as_recorded: bool = False) -> list:
    """The pass itself (see :func:`adjoints`)."""
    seeds = [(as_expr(y), as_expr(g)) for y, g in seeds]
    wrt = [as_expr(w) for w in wrt]
    order, kids = _topological([y for y, _ in seeds] + wrt)
    depth: dict = {}
    for node in order:
        depth[node] = 1 + max((depth[c] for c in kids[node]), default=-1)
    flat = as_recorded or max(depth.values(), default=0) > DEEP
    with evaluate(not flat):
        return _pass(seeds, wrt, order, kids, flat, scalar_outputs, as_recorded)


def _pass(seeds, wrt, order, kids, flat: bool, scalar_outputs: bool, as_recorded: bool) -> list:
    targets = set(wrt)
    arrays = any(isinstance(node, (ArrayVar, StructuralFunction)) for node in order)
    if scalar_outputs and arrays:
        for y, _ in seeds:
            _require_scalar(y, "gradient")
    depends: set = set()
    for node in order:
        if node in targets or any(c in depends for c in kids[node]):
            depends.add(node)
    pending: dict = {}
    for y, g in seeds:
        if arrays and len(shape_of(g)) > 0 and shape_of(g) != shape_of(y):
            if broadcast_shapes(shape_of(g), shape_of(y)) != shape_of(y):
                raise ValueError(f"the upstream gradient {g} of shape {shape_of(g)} does not broadcast "
                                 f"to the shape {shape_of(y)} of {y}; pass exact(y, shape) instead")
        if y in depends and not _is_zero(g):
            pending.setdefault(y, []).append(g)
    found: dict = {}
    for node in progress(reversed(order), total=len(order), desc="symgrad deriving", unit="node"):
        contributions = pending.pop(node, None)
        if contributions is None:
            continue
        g = contributions[0] if len(contributions) == 1 else intern(_sum(contributions, flat))
        if node in targets:
            found[node] = g
        children = kids[node]
        if not children or _is_zero(g):
            continue
        if isinstance(node, StructuralFunction):
            g_exact = exact(g, shape_of(node))
            usable = node.differentiable_args()
            wanted = [i for i, child in enumerate(children) if usable[i] and child in depends]
            for i, contribution in zip(wanted, node.adjoints(g_exact, wanted)):
                _push(pending, children[i], contribution)
            continue
        live = [c in depends for c in children]
        partials = _local_partials(node, children, as_recorded) if any(live) else []
        for child, is_live, partial in zip(children, live, partials):
            if is_live and not _is_zero(partial):
                contribution = _times(g, partial, flat)
                if arrays:
                    contribution = reduce_to(contribution, shape_of(child), shape_of(node))
                _push(pending, child, contribution)
    return [found.get(w, _ZERO) for w in wrt]


def _times(g: sp.Expr, partial: sp.Expr, flat: bool = False) -> sp.Expr:
    """``g * partial``; a number never gets distributed over a sum, and a selector
    ``where(c, 1, 0)`` takes ``g`` into its branches: ``where(c, g, 0)``, so no 0/1 array
    is made and the dtype of ``g`` is kept.  Unevaluated (``flat``: the forms the engines
    compute), any ``where`` and maximum's tie step take ``g`` in, so an inf or NaN ``g``
    gives an exact 0 where it is not selected (PyTorch's rule); a printed form keeps
    ``g*where(c, a, b)`` and ``g*tie_step(a, b)``, which are shorter."""
    if g.is_Number:
        return scale(g, partial)
    if partial.is_Number:
        return scale(partial, g)
    if flat and isinstance(partial, TieStep):
        partial = partial.as_select()
    if isinstance(partial, Select) and (flat or _numeric_select(partial)):
        return _select_times(g, partial, flat)
    if flat:
        # unevaluated: the factors stay apart (x*x**-1 is not 1); only exact fractions merge
        (c, g), (d, partial) = _rational_part(g), _rational_part(partial)
        if c == 1 and d not in (1, -1):
            # the tape's order, as its VJPs write it: (g*d)*rest (pow's g*e*x**(e-1)), so a
            # large g times d overflows where the tape's does
            rest = partial.args if partial.is_Mul else (partial,)
            return sp.Mul._from_args((g, d) + tuple(rest), is_commutative=True)
        product = g * partial if g.is_Atom or partial.is_Atom else sp.Mul._from_args((g, partial), is_commutative=True)
        return scale(sp.Rational(c.p * d.p, c.q * d.q), product)
    return g * partial


def _numeric_select(expr: sp.Expr) -> bool:
    """A ``where`` whose branches are numbers or such ``where``s (a selector)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Select):
            stack.extend(node.args[1:])
        elif not node.is_Number:
            return False
    return True


def _rational_part(expr: sp.Expr) -> tuple:
    """``(r, rest)`` with ``expr == r*rest`` for a product led by a fraction, else ``(1, expr)``."""
    if expr.is_Mul and expr.args[0].is_Rational:
        rest = expr.args[1:]
        return expr.args[0], rest[0] if len(rest) == 1 else sp.Mul._from_args(rest, is_commutative=True)
    return sp.S.One, expr


def _select_times(g: sp.Expr, selector: sp.Expr, flat: bool) -> sp.Expr:
    if isinstance(selector, Select):
        c, a, b = selector.args
        return Select(c, _select_times(g, a, flat), _select_times(g, b, flat))
    return _times(g, selector, flat)


def _sum(terms: list, flat: bool = False) -> sp.Expr:
    if flat:
        return sp.Add._from_args(tuple(terms), is_commutative=True)
    return sp.Add(*terms)


def _is_zero(expr: sp.Expr) -> bool:
    """``expr == 0`` without SymPy's comparison machinery (a number that is zero)."""
    return expr.is_Number and expr.is_zero


def _push(pending: dict, node: sp.Basic, contribution: sp.Expr) -> None:
    if not _is_zero(contribution):
        # canonical objects only: two equal deep expressions never meet in a dictionary
        pending.setdefault(node, []).append(intern(contribution))


# ---------------------------------------------------------------------------- public API
def _is_tensor(value: Any) -> bool:
    return hasattr(value, "_data") and hasattr(value, "grad_fn")


def as_expr(value: Any) -> sp.Expr:
    """A SymPy expression for ``value``: a SymPy object, a number, or a symgrad Tensor
    (its recorded graph, see :func:`symgrad.symbolic.derive.graph.tensor_expr`).

    Text is refused: SymPy's ``sympify`` of a string *evaluates* it as Python, so a
    formula from a user goes through symgrad's whitelisted parser instead.

    >>> as_expr(2)
    2
    >>> as_expr("x**2")
    Traceback (most recent call last):
        ...
    TypeError: symgrad does not evaluate text ('x**2'): parse a formula with symgrad.parsing.parse(text).expr, or pass SymPy symbols
    """
    if isinstance(value, sp.Basic):
        return value
    if _is_tensor(value):
        from .graph import tensor_expr

        return tensor_expr(value)
    if isinstance(value, (str, bytes)):
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise TypeError(f"symgrad does not evaluate text ({shown!r}): parse a formula with "
                        "symgrad.parsing.parse(text).expr, or pass SymPy symbols")
    try:
        return sp.sympify(value, strict=True)
    except sp.SympifyError:
        raise TypeError(f"cannot use a {type(value).__name__} as an expression: pass a SymPy expression, "
                        "a number or a symgrad tensor") from None


def _resolve(y: Any, xs: Sequence[Any], allow_unused: bool = False) -> list[tuple[sp.Expr, sp.Expr]]:
    """``(y, x)`` as expressions for each ``x`` of ``xs``.  With tensors, ``x`` is a symbol
    of the closed form of ``y`` given with it (:func:`~symgrad.symbolic.derive.graph.graphs_at`:
    a tensor made by a recorded op is cut there, so its derivative is the one
    ``autograd.grad(y, x)`` computes).  A tensor ``y``'s graph does not use raises, as
    ``autograd.grad`` does, unless ``allow_unused`` (then it is a symbol of its own, an
    :class:`~symgrad.symbolic.core.symbols.EngineArray`: its derivative is 0)."""
    if not _is_tensor(y) and not any(_is_tensor(x) for x in xs):
        y = as_expr(y)
        return [(y, as_expr(x)) for x in xs]
    if not _is_tensor(y):
        raise TypeError("differentiate a tensor with respect to tensors, or an expression with respect to symbols")
    for x in xs:
        if not _is_tensor(x):
            raise TypeError(f"differentiate a tensor with respect to tensors, got {type(x).__name__}")
    from .graph import graphs_at

    out = []
    for i, (x, (expr, symbol)) in enumerate(zip(xs, graphs_at(y, xs))):
        if symbol is None:
            if not allow_unused:
                raise RuntimeError(_unused_message(x, i, len(xs)))
            symbol = EngineArray(x.name or "unused", x.shape, x.dtype)
        out.append((expr, symbol))
    return out


def _unused_message(x: Any, i: int, n: int) -> str:
    which = f"the tensor {x.name!r}" if x.name else ("the tensor" if n == 1 else f"tensor {i} of the list")
    message = (f"{which} (shape {list(x.shape)}) was not used to compute the differentiated tensor (its recorded "
               "graph does not reach it); pass allow_unused=True for a derivative of 0 if that is expected")
    if not x.requires_grad:
        message += (". It does not require grad, and ops on tensors that do not require grad are not recorded: if "
                    "the differentiated tensor was computed from it (1 - x), call .requires_grad_() on it before "
                    "computing, or differentiate with respect to the tensor the op made")
    return message


def _require_scalar(y: sp.Expr, what: str) -> None:
    shape = shape_of(y)
    if size_of(shape) != 1:
        raise ValueError(
            f"{what} needs a scalar (one-element) expression, got shape {shape}: "
            "use jacobian() for vector outputs, or vjp_expr(y, x, g) with an upstream gradient g"
        )


def diff(y: Any, x: Any, n: int = 1, *, simplify: bool = False, allow_unused: bool = False) -> Any:
    """The closed-form derivative of a scalar ``y`` with respect to ``x`` (a symbol, an
    array symbol, a tensor, or a list of them), ``n`` times; ``simplify=True`` simplifies
    the result within a time budget, checked by values (see
    :func:`~symgrad.symbolic.derive.simplifying.simplified`).

    For an array ``x`` the result is the gradient, an expression of ``x``'s shape;
    ``n > 1`` needs a scalar ``x`` (use :func:`hessian` for arrays).

    A tensor ``x`` may be any tensor ``y``'s graph uses: a leaf, data, or an
    intermediate (``h = w * 2``), which is then a symbol of its own (named ``x.name``, else
    after its op) and what it was computed from is held fixed -- the value
    ``symgrad.autograd.grad(y, x)`` computes.  A tensor the graph does not use raises
    ``RuntimeError``, as ``autograd.grad`` does, unless ``allow_unused=True`` (then 0).

    >>> x = sp.Symbol("x", real=True)
    >>> diff(sp.exp(x) * x, x)
    x*exp(x) + exp(x)
    >>> diff(x ** 3, x, n=2)
    6*x
    >>> diff(x ** 2 / 3 - x / 3, x, simplify=True)
    (2*x - 1)/3
    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> from symgrad.symbolic.forms.structural import Sum
    >>> w = ArrayVar("w", (3,))
    >>> diff(Sum.of(w ** 2), w)
    2*w
    >>> import symgrad
    >>> w = symgrad.tensor([1.0, 2.0], requires_grad=True, name="w")
    >>> h = w * 2
    >>> h.name = "h"
    >>> diff((h * h).sum(), h)
    2*h
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n (the order of the derivative) must be a non-negative integer, got {n!r}")
    if isinstance(x, (list, tuple)):
        return [diff(y, xi, n, simplify=simplify, allow_unused=allow_unused) for xi in x]
    ((y, x),) = _resolve(y, [x], allow_unused)
    if n > 1 and size_of(shape_of(x)) != 1:
        raise ValueError(
            f"diff(y, x, n={n}) needs a scalar x; x has shape {shape_of(x)}: use hessian(y, x) "
            "for second derivatives with respect to an array"
        )
    for _ in range(n):
        _require_scalar(y, "diff")
        (y,) = adjoints([(y, sp.S.One)], [x])
        y = exact(y, shape_of(x)) if shape_of(x) else y
    if simplify:
        from .simplifying import simplified

        return simplified(y)
    return y


def gradient(y: Any, xs: Sequence[Any], *, allow_unused: bool = False) -> list:
    """The gradient of a scalar ``y`` with respect to each of ``xs``, in one reverse pass
    (tensors: one for the leaves and data, and one per intermediate tensor, whose
    gradient holds what it was computed from fixed, as in :func:`diff`).

    >>> x, y = sp.symbols("x y", real=True)
    >>> gradient(x ** 2 * y, [x, y])
    [2*x*y, x**2]
    """
    pairs = _resolve(y, list(xs), allow_unused)
    grads: list = [None] * len(pairs)
    for expr in {id(expr): expr for expr, _ in pairs}.values():
        positions = [i for i, (e, _) in enumerate(pairs) if e is expr]
        wrt = [pairs[i][1] for i in positions]
        for i, g in zip(positions, _adjoints([(expr, sp.S.One)], wrt, scalar_outputs=True)):
            x = pairs[i][1]
            grads[i] = exact(g, shape_of(x)) if shape_of(x) else g
    return grads


def jacobian(ys: Any, xs: Sequence[Any]) -> sp.Matrix:
    """The Jacobian matrix of scalar expressions ``ys`` with respect to scalar ``xs``
    (one reverse pass per output).

    >>> x, y = sp.symbols("x y", real=True)
    >>> jacobian([x * y, x + y], [x, y])
    Matrix([
    [y, x],
    [1, 1]])
    """
    if isinstance(ys, sp.MatrixBase):
        ys = list(ys)
    elif not isinstance(ys, (list, tuple)):
        ys = [ys]
    ys = [as_expr(y) for y in ys]
    xs = [as_expr(x) for x in xs]
    for v in list(ys) + list(xs):
        if shape_of(v) != ():
            raise ValueError(
                f"jacobian() works on scalar expressions; {v} has shape {shape_of(v)}: use "
                "vjp_expr/jvp_expr for array-level closed forms, or symgrad.symbolic.transforms.jacobian"
            )
    return sp.Matrix([adjoints([(y, sp.S.One)], xs) for y in ys])


def hessian(y: Any, xs: Sequence[Any]) -> sp.Matrix:
    """The Hessian of a scalar ``y`` with respect to scalar ``xs`` (reverse over reverse).

    >>> x, y = sp.symbols("x y", real=True)
    >>> hessian(x ** 2 * y, [x, y])
    Matrix([
    [2*y, 2*x],
    [2*x,   0]])
    """
    xs = [as_expr(x) for x in xs]
    return jacobian(gradient(y, xs), xs)


def vjp_expr(y: Any, x: Any, g: Any, *, allow_unused: bool = False) -> sp.Expr:
    """The vector-Jacobian product ``g^T (dy/dx)`` in closed form (shape of ``x``).

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> x, g = ArrayVar("x", (3,)), ArrayVar("g", (3,))
    >>> vjp_expr(sp.sin(x), x, g)
    g*cos(x)
    """
    ((y, x),), g = _resolve(y, [x], allow_unused), as_expr(g)
    if shape_of(g) != shape_of(y) and shape_of(g):
        y = exact(y, broadcast_shapes(shape_of(y), shape_of(g)))
    (out,) = adjoints([(y, g)], [x])
    return exact(out, shape_of(x)) if shape_of(x) else out


def jvp_expr(y: Any, x: Any, v: Any, *, as_recorded: bool = False, allow_unused: bool = False) -> sp.Expr:
    """The Jacobian-vector product ``(dy/dx) v`` in closed form (shape of ``y``), as the
    transpose of the (linear) VJP: ``d/dg <vjp(g), v>`` (``as_recorded``: see
    :func:`adjoints`).  Two reverse passes over the DAG, each visiting every node once,
    so the work is linear in the size of the DAG, however often a value is reused; the
    upstream gradient ``g`` is an :class:`~symgrad.symbolic.core.symbols.EngineArray`, which no
    symbol of ``y`` can be.

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> x, v = ArrayVar("x", (3,)), ArrayVar("v", (3,))
    >>> jvp_expr(x ** 2, x, v)
    2*v*x
    """
    ((y, x),), v = _resolve(y, [x], allow_unused), as_expr(v)
    return jvp_exprs([y], [x], [v], as_recorded=as_recorded)[0]


def jvp_exprs(ys: Sequence[sp.Expr], xs: Sequence[sp.Expr], vs: Sequence[Any], *,
              as_recorded: bool = False) -> list:
    """The Jacobian-vector products of several outputs at once: for each ``y`` of ``ys``,
    ``sum_i (dy/dx_i) v_i`` (shape of ``y``) for the symbols ``xs`` and their tangents
    ``vs``.  The same two reverse passes as :func:`jvp_expr` -- one VJP of all outputs,
    each with its own upstream gradient, then its transpose -- so the work is linear in
    the size of the DAG whatever the number of outputs and inputs.

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> x, y, v, w = ArrayVar("x", (2,)), ArrayVar("y", (2,)), ArrayVar("v", (2,)), ArrayVar("w", (2,))
    >>> jvp_exprs([x * y, x ** 2], [x, y], [v, w])
    [v*y + w*x, 2*v*x]
    """
    from ..forms.structural import Sum

    ys, xs, vs = [as_expr(y) for y in ys], [as_expr(x) for x in xs], [as_expr(v) for v in vs]
    seeds = [EngineArray("g", shape_of(y), "float64") for y in ys]
    vjps = adjoints(list(zip(ys, seeds)), xs, as_recorded=as_recorded)
    with evaluate(not as_recorded):
        terms = [Sum.of(exact(g, shape_of(x)) * v) if shape_of(x) or shape_of(v) else g * v
                 for g, x, v in zip(vjps, xs, vs)]
        inner = terms[0] if len(terms) == 1 else sp.Add(*terms)
    outs = adjoints([(inner, sp.S.One)], seeds, as_recorded=as_recorded)
    # A VJP is linear in its upstream gradient, so its transpose has no seed left -- unless
    # an adjoint is written in a form that is linear only in value (logcumsumexp's splits g
    # into its positive and negative parts in log space, for stability): then the seed
    # survives, and any value of it gives the same transpose; ones are where such forms
    # are plainest.
    ones = {g: exact(sp.S.One, shape_of(g)) for g in seeds}
    outs = [replaced(out, ones) if free_symbols(out) & ones.keys() else out for out in outs]
    return [exact(out, shape_of(y)) if shape_of(y) else out for out, y in zip(outs, ys)]
