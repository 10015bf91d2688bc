"""The safe expression parser: what it accepts, what it refuses (and where), and that it
never evaluates user text -- including a hypothesis fuzz over random and hostile strings."""
from __future__ import annotations

import builtins
import os

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symgrad.ops import OPS
from symgrad.parsing import (FUNCTIONS, MAX_DEPTH, MAX_LENGTH, ExpressionError, ParsedExpression, check_name, parse,
                             parse_names, parse_shapes, parse_values)

# ---------------------------------------------------------------------------- accepted
ACCEPTED = [
    # text, the expected SymPy expression built from the parsed symbols S, names
    ("sin(x)*exp(-y**2)", lambda S: sp.sin(S["x"]) * sp.exp(-S["y"] ** 2), ("x", "y")),
    ("x + 2*y - 3", lambda S: S["x"] + 2 * S["y"] - 3, ("x", "y")),
    ("x/2", lambda S: S["x"] / 2, ("x",)),
    ("(x + 1)**2", lambda S: (S["x"] + 1) ** 2, ("x",)),
    ("-x", lambda S: -S["x"], ("x",)),
    ("+x", lambda S: S["x"], ("x",)),
    ("2**-1", lambda S: sp.Rational(1, 2), ()),
    ("1.5*x", lambda S: sp.Float("1.5") * S["x"], ("x",)),
    ("1e-3 + x", lambda S: S["x"] + sp.Float("0.001"), ("x",)),
    ("pi*e", lambda S: sp.pi * sp.E, ()),
    ("sqrt(x) + log(y) + tan(z)", lambda S: sp.sqrt(S["x"]) + sp.log(S["y"]) + sp.tan(S["z"]), ("x", "y", "z")),
    ("tanh(θ)", lambda S: sp.tanh(S["θ"]), ("θ",)),
    ("abs(x) + sign(x)", lambda S: sp.Abs(S["x"]) + sp.sign(S["x"]), ("x",)),
    ("x_1 + x2", lambda S: S["x_1"] + S["x2"], ("x_1", "x2")),
    ("  x * y  ", lambda S: S["x"] * S["y"], ("x", "y")),
    ("2**999", lambda S: sp.Integer(2) ** 999, ()),
    ("x" + "+x" * 2500, lambda S: 2501 * S["x"], ("x",)),  # a long flat sum is one level deep
]


@pytest.mark.parametrize("text, build, names", ACCEPTED, ids=[t[:30] for t, _, _ in ACCEPTED])
def test_accepted(text, build, names):
    parsed = parse(text)
    assert isinstance(parsed, ParsedExpression)
    assert parsed.names == names
    assert parsed.expr == build(parsed.symbols)
    assert all(s.is_real for s in parsed.symbols.values())


def test_stable_functions_are_the_symbolic_engine_forms():
    from symgrad.symbolic.forms.stable import sigmoid, softplus

    parsed = parse("sigmoid(x) + softplus(x)")
    x = parsed.symbols["x"]
    assert parsed.expr == sigmoid(x) + softplus(x)


def test_array_formula_has_array_symbols_and_shapes():
    parsed = parse("sum(sigmoid(x @ w + b))", {"x": (4, 2), "w": (2, 3), "b": (3,)})
    assert parsed.shape == ()
    assert parsed.shapes == {"x": (4, 2), "w": (2, 3), "b": (3,)}
    assert parsed.symbols["w"].array_shape == (2, 3)
    assert str(parsed.expr) == "sum(sigmoid(b + x @ w))"
    assert parse("transpose(w) @ w", {"w": (2, 3)}).shape == (3, 3)


# ---------------------------------------------------------------------------- refused
REFUSED = [
    # text, words the message must contain, 1-based column (None: no single column)
    ("__import__('os').system('ls')", "attribute access ('.system')", 18),
    ("x.real", "attribute access ('.real')", 3),
    ("().__class__.__bases__", "attribute access ('.__bases__')", 14),
    ("x[0]", "indexing", 1),
    ("lambda: 0", "lambda", 1),
    ("[c for c in 'ab']", "list comprehension", 1),
    ("(c for c in x)", "generator expression", 1),
    ("'rm -rf /'", "string literal", 1),
    ("f'{x}'", "f-string", 1),
    ("b'x'", "string literal", 1),
    ("eval('1')", "calling 'eval' is not allowed", 1),
    ("exec('import os')", "calling 'exec' is not allowed", 1),
    ("open('f', 'w')", "calling 'open' is not allowed", 1),
    ("__import__('os')", "calling '__import__' is not allowed", 1),
    ("globals()", "calling 'globals' is not allowed", 1),
    ("foo(x)", "unknown function 'foo'", 1),
    ("sin(x, k=1)", "keyword argument 'k='", 8),
    ("sin(**d)", "'**' unpacking", 5),
    ("sin(*x)", "starred argument", 5),
    ("sin(x, y)", "sin is called as sin(x), got 2 arguments", 1),
    ("maximum(x)", "maximum is called as maximum(a, b), got 1 argument", 1),
    ("cumsum(x)", "cumsum is called as cumsum(x, dim), got 1 argument", 1),
    ("sum(x, 0, 1)", "sum is called as sum(x[, dim]), got 3 arguments", 1),
    ("sum(x, y)", "sum's dim must be a whole number written out", 8),
    ("sum(x, 0.5)", "sum's dim must be a whole number written out", 8),
    ("sum(x, 1 + 1)", "sum's dim must be a whole number written out", 8),
    ("vector_norm(x, 2*x)", "vector_norm's ord must be a number written out", 16),
    ("(x)(y)", "unknown function 'x'", 2),
    ("2(x)", "only whitelisted function names can be called", 1),
    ("x ^ 2", "'^' (in Python this is bitwise xor; write x**2", 3),
    ("x << 2", "'<<'", 3),
    ("x < y", "comparison", 1),
    ("x and y", "'and'/'or'", 1),
    ("not x", "'not'", 1),
    ("~x", "'~'", 1),
    ("x if y else z", "conditional expression", 1),
    ("(y := 2)", "assignment", 2),
    ("[x, y]", "list literal", 1),
    ("x, y", "tuple", 1),
    ("{x: 1}", "dict literal", 1),
    ("True", "True is not a number", 1),
    ("None", "None is not a number", 1),
    ("...", "Ellipsis is not a number", 1),
    ("3j", "imaginary numbers", 1),
    ("1e999", "overflows to infinity", 1),
    ("9**9**9**9", "power is too large", 5),
    ("2**1001", "power is too large", 2),
    ("(2**600)*(2**600)", "too large", 9),
    ("sqrt(2)**3000", "power is too large", 8),
    ("open", "is a Python builtin", 1),
    ("sin", "is a function; call it as sin(...)", 1),
    ("pi(x)", "unknown function 'pi'", 1),
    ("_x", "starts with '_'", 1),
    ("__builtins__", "starts with '_'", 1),
    ("np", "reserved for generated code", 1),
    ("I*x", "would print like a SymPy constant", 1),
    ("match", "Python keyword", 1),
    ("1/0", "not a finite real formula", None),
    ("log(-1)", "not a finite real formula", None),
    ("x @ y", "matmul needs arrays", 3),
    ("transpose(x)", "at least 2 dimensions", 1),
    ("x +* 2", "syntax error", 4),
    ("sin(x", "syntax error: '(' was never closed", 4),
    ("x;y", "syntax error", 2),
    ("import os", "syntax error", 1),
    ("x\n+1", "character '\\n'", 2),
    ("x\u202e+y", "U+202E", 2),
    ("x\\\n+1", "character '\\\\'", 2),
    ("", "empty", None),
    ("   ", "empty", None),
    ("-" * 3000 + "x", "nested too deeply", None),
    ("sin(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1), f"more than {MAX_DEPTH} levels", 401),
    ("x" * (MAX_LENGTH + 1), f"the limit is {MAX_LENGTH}", None),
    ("1" * 400, "number literal is too long", 1),
    # functions of several results: picked by a whole-number subscript, nothing else subscripted
    ("sort(x)", "sort gives several results (values, indices): pick one with [i]", 1),
    ("2 * unbind(x, 0)", "unbind gives several results", 5),
    ("sort(x)[1]", "sort(...)[1] is its indices: integer positions, which have no formula form", 9),
    ("topk(x, 1)[-1]", "topk(...)[-1] is its indices", 12),
    ("slogdet(x)[2]", "slogdet gives 2 results (sign, logabsdet); [2] is out of range", 12),
    ("sort(x)[0:1]", "picks a result by a whole number written out", 9),
    ("sort(x)[y]", "picks a result by a whole number written out", 9),
    ("sort(x)[0.5]", "picks a result by a whole number written out", 9),
    ("sum(x)[0]", "indexing (subscript) is not allowed", 1),
    ("sin(x)[0]", "only a function of several results (chunk, slogdet, sort, split, topk, unbind)", 1),
    # einsum's equation: the one string a formula may hold
    ("einsum(x, x)", "einsum's equation must be a string literal of letters, commas and one '->'", 8),
    ("einsum('i...->i', x)", "('...' is not supported)", 8),
    ("einsum('i->i->i', x)", "one '->'", 8),
    ("einsum('i>i', x)", "one '->'", 8),
    ("einsum('i;j', x)", "one '->'", 8),
    ("einsum('i->i')", "einsum is called as einsum(equation, a, ...), got 1 argument", 1),
    ("einsum('i->i', 'x')", "string literal is not allowed", 16),
    ("sin('i->i')", "string literal is not allowed", 5),
    # list literals: options of the functions that take them, whole numbers, rectangular
    ("gather(x, 1, x)", "gather's index must be a list of whole numbers 0 or more written out", 14),
    ("gather(x, 1, [[0, -1]])", "gather's index must be a list of whole numbers 0 or more", 19),
    ("gather(x, 1, [[0.5]])", "gather's index must be a list of whole numbers", 16),
    ("gather(x, 1, [[True]])", "gather's index must be a list of whole numbers", 16),
    ("gather(x, 1, [[0, 1], [1]])", "gather's index must be a list of whole numbers 0 or more written out, such as "
     "[0, 2] or [[0], [1]] (rectangular", 14),
    ("gather(x, 1, [1180591620717411303424])", "(rectangular, of numbers below 2**63)", 14),
    ("gather(x, 1, [2**3])", "gather's index must be a list of whole numbers", 15),
    ("gather(x, [1], [[0]])", "gather's dim must be a whole number written out", 11),
    ("index_select(x, 0, (0, 1))", "index_select's index must be a list", 20),
    ("take_along_dim(x, [x])", "take_along_dim's indices must be a list", 20),
    ("scatter_add(x, 0, [0], 1, 2)", "scatter_add is called as scatter_add(x, dim, index, src), got 5", 1),
    ("masked_fill(x, [2], 1)", "masked_fill's mask must be a list of 0 and 1 (or True and False)", 17),
    ("masked_fill(x, [1], y)", "masked_fill's value must be a number written out", 21),
    ("pad(x, 1)", "pad's pad must be a list of whole numbers written out, such as [1, 1]", 8),
    ("pad(x, [[1, 1]])", "pad's pad must be a list of whole numbers", 9),
    ("repeat_interleave(x, [[2]])", "repeat_interleave's repeats must be a whole number or a list", 23),
    ("repeat_interleave(x, 1.5)", "repeat_interleave's repeats must be a whole number or a list", 22),
    ("split(x, x)[0]", "split's split_size must be a whole number or a list", 10),
    ("sum(x, [0])", "sum's dim must be a whole number written out", 8),
    ("x + [0]", "a list literal is not allowed", 5),
]


@pytest.mark.parametrize("text, words, column", REFUSED, ids=[repr(t[:24]) for t, _, _ in REFUSED])
def test_refused_with_message_and_column(text, words, column):
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert words in str(info.value)
    assert info.value.column == column
    if column is not None:
        caret_line = info.value.pointer().splitlines()[1]
        assert caret_line.strip() == "^"


def test_pointer_shows_the_column_under_the_text():
    with pytest.raises(ExpressionError) as info:
        parse("sin(x) + cos(y).imag")
    assert info.value.pointer() == "  sin(x) + cos(y).imag\n                  ^"


def test_non_ascii_columns_count_characters_not_bytes():
    with pytest.raises(ExpressionError) as info:
        parse("θ + φ.real")
    assert info.value.column == 7


def test_shapes_that_do_not_broadcast_name_both_shapes():
    with pytest.raises(ExpressionError, match=r"\(3,\).*\(4,\)") as info:
        parse("a + b", {"a": (3,), "b": (4,)})
    assert info.value.column == 3


# ---------------------------------------------------------------------------- names, shapes, values
@pytest.mark.parametrize("name, ok", [
    ("x", True), ("theta_1", True), ("θ", True), ("E2", True), ("N", True),
    ("eval", False), ("exec", False), ("print", False), ("sum", False), ("lambda", False), ("class", False),
    ("__import__", False), ("_private", False), ("numpy", False), ("matmul", False), ("reshape", False), ("E", False), ("oo", False), ("1x", False),
    ("x-y", False), ("", False), ("ﬁ", False),
])
def test_check_name(name, ok):
    if ok:
        check_name(name)
    else:
        with pytest.raises(ExpressionError):
            check_name(name)


@pytest.mark.parametrize("spec, expected", [
    ("w=3x2", {"w": (3, 2)}),
    ("w=3x2,b=2", {"w": (3, 2), "b": (2,)}),
    (["a=1x1x1", "s=scalar"], {"a": (1, 1, 1), "s": ()}),
    ("v=4*5", {"v": (4, 5)}),
])
def test_parse_shapes(spec, expected):
    assert parse_shapes(spec) == expected


@pytest.mark.parametrize("spec", ["w", "w=3xq", "w=0x2", "w=-1", "open=3", "w=3x2x99999999999",
                                  "w=1000x1000x2", "__class__=2", "w=٣"])
def test_parse_shapes_refuses(spec):
    with pytest.raises(ExpressionError):
        parse_shapes(spec)


def test_parse_values():
    values = parse_values(["x=1.5,y=-2", "w=[[1, 2], [3, 4]]", "p=pi"])
    assert values["x"] == 1.5 and values["y"] == -2.0
    np.testing.assert_array_equal(values["w"], [[1, 2], [3, 4]])
    assert values["p"] == pytest.approx(np.pi)


@pytest.mark.parametrize("spec", ["x=abc", "x=__import__('os')", "x=nan", "x=inf", "x=[1, [2]]", "x=[1e999]",
                                  "x=" + "[" * 5000 + "]" * 5000, "x", "eval=1", "x=[1,'a']", "x=1;y=2"])
def test_parse_values_refuses(spec):
    with pytest.raises(ExpressionError):
        parse_values(spec)


def test_parse_names():
    assert parse_names("x, y,z") == ["x", "y", "z"]
    with pytest.raises(ExpressionError):
        parse_names("x,exec")


# ---------------------------------------------------------------------------- the tape face
TAPE_CASES = [
    ("sin(x)*exp(-y**2)", {"x": 1.5, "y": -2.0}),
    ("x**3/y + sqrt(x) - log(y)", {"x": 1.3, "y": 0.7}),
    ("tanh(x)*sigmoid(y) + softplus(x - y)", {"x": 0.4, "y": -1.1}),
    ("abs(x) + relu(y) + 2**x + pi*x", {"x": -0.6, "y": 0.9}),
    ("maximum(x, y) + minimum(x, 2*y)", {"x": 0.2, "y": 0.5}),
    ("sum(sigmoid(x @ w + b))", {"x": np.array([0.1, -0.2]), "w": np.array([[0.3, 0.5, -1.0], [2.0, 0.1, 0.4]]),
                                 "b": np.array([0.0, 0.1, -0.1])}),
    pytest.param("sum(sigmoid(x @ w + b))", {"x": np.array([[0.1, -0.2]]), "b": np.array([0.0, 0.1, -0.1]),
                                             "w": np.array([[0.3, 0.5, -1.0], [2.0, 0.1, 0.4]])},
                 id="batched bias"),
    ("mean(transpose(w) @ w)", {"w": np.array([[0.3, 0.5, -1.0], [2.0, 0.1, 0.4]])}),
]


@pytest.mark.parametrize("text, values", TAPE_CASES)
def test_tape_face_matches_the_symbolic_face(text, values):
    """The same parsed program replayed on tensors (tape VJPs) gives the value and the
    gradient of the compiled closed form."""
    from symgrad.symbolic.codegen.compile import compile_exprs
    from symgrad.symbolic.derive.reverse import gradient
    from symgrad.tape.engine import backward_engine

    shapes = {n: np.shape(v) for n, v in values.items()}
    parsed = parse(text, shapes)
    symbols = [parsed.symbols[n] for n in parsed.names]
    compiled = compile_exprs(symbols, [parsed.expr] + gradient(parsed.expr, symbols), input_names=list(parsed.names))
    expected = compiled(*(values[n] for n in parsed.names))
    with backward_engine("tape"):
        out, inputs = parsed.to_tensor(values)
        out.backward()
    np.testing.assert_allclose(out.detach().numpy(), expected[0], rtol=1e-12)
    for k, name in enumerate(parsed.names):
        np.testing.assert_allclose(inputs[name].grad.numpy(), expected[k + 1], rtol=1e-10, atol=1e-12)


X = np.array([[0.5, 1.25, -0.75], [1.5, -0.25, 2.0]])
A = np.array([[2.0, 0.3, -0.2], [0.1, 2.5, 0.4], [-0.3, 0.2, 1.8]])
U, V = np.array([0.3, -1.2, 0.8]), np.array([1.1, 0.4, -0.6])
ARRAY_FUNCTIONS = [
    # text, values, the same computed by NumPy
    ("sum(x, 0)", {"x": X}, lambda x: x.sum(0)),
    ("mean(x, -1) + mean(x)", {"x": X}, lambda x: x.mean(-1) + x.mean()),
    ("prod(x, 1)", {"x": X}, lambda x: x.prod(1)),
    ("amax(x, 0) + amin(x)", {"x": X}, lambda x: x.max(0) + x.min()),
    ("logsumexp(x, 1)", {"x": X}, lambda x: np.log(np.exp(x).sum(1))),
    ("norm(x, 0) + norm(x)", {"x": X}, lambda x: np.linalg.norm(x, axis=0) + np.linalg.norm(x)),
    ("cumsum(x, 1) + cumprod(x, -2)", {"x": X}, lambda x: np.cumsum(x, 1) + np.cumprod(x, -2)),
    ("logcumsumexp(x, 1)", {"x": X}, lambda x: np.logaddexp.accumulate(x, 1)),
    ("var(x, 0) + std(x)", {"x": X}, lambda x: x.var(0, ddof=1) + x.std(ddof=1)),
    ("vector_norm(x, 3, 1) + vector_norm(x, 1.5)", {"x": X},
     lambda x: np.linalg.norm(x, 3, axis=1) + np.sum(np.abs(x) ** 1.5) ** (1 / 1.5)),
    ("matrix_norm(x) + matrix_norm(x, 2) + matrix_norm(x, -1)", {"x": X},
     lambda x: np.linalg.norm(x) + np.linalg.norm(x, 2) + np.linalg.norm(x, -1)),
    ("det(a) + logdet(a)", {"a": A}, lambda a: np.linalg.det(a) + np.log(np.linalg.det(a))),
    ("inverse(a) + tril(a, -1)", {"a": A}, lambda a: np.linalg.inv(a) + np.tril(a, -1)),
    ("cholesky(a @ transpose(a))", {"a": A}, lambda a: np.linalg.cholesky(a @ a.T)),
    ("svdvals(x)", {"x": X}, lambda x: np.linalg.svd(x, compute_uv=False)),
    ("solve(a, u)", {"a": A, "u": U}, lambda a, u: np.linalg.solve(a, u)),
    ("trace(a) * diagonal(x) + diagonal(transpose(x))", {"a": A, "x": X},
     lambda a, x: np.trace(a) * np.diagonal(x) + np.diagonal(x.T)),
    ("tile(x, 2, 1) + repeat(x, 2, 1) + expand(sum(x, 0), 4, -1)", {"x": X},
     lambda x: np.tile(x, (2, 1)) + np.tile(x, (2, 1)) + x.sum(0)),
    ("tile(u, 2) + expand(s, 6)", {"u": U, "s": np.array(0.5)}, lambda u, s: np.tile(u, 2) + s),
    ("triu(x) + triu(x, 1) + triu(x, -1)", {"x": X}, lambda x: np.triu(x) + np.triu(x, 1) + np.triu(x, -1)),
    ("tensordot(x, a, 1) + tensordot(x, x)", {"x": X, "a": A},
     lambda x, a: np.tensordot(x, a, 1) + np.tensordot(x, x)),
    ("outer(u, v) * inner(u, v)", {"u": U, "v": V}, lambda u, v: np.outer(u, v) * np.inner(u, v)),
    ("kron(x, a)", {"x": X, "a": A}, lambda x, a: np.kron(x, a)),
    ("flip(x, 1) + roll(x, 1, 1)", {"x": X}, lambda x: np.flip(x, 1) + np.roll(x, 1, 1)),
    ("movedim(x, 0, 1) @ select(x, 1, 2)", {"x": X}, lambda x: np.moveaxis(x, 0, 1) @ x[:, 2]),
    ("narrow(x, 1, 1, 2) * sum(ravel(x) ** 2)", {"x": X}, lambda x: x[:, 1:3] * np.sum(x.ravel() ** 2)),
    ("atleast_2d(u) * atleast_1d(s)", {"u": U, "s": np.array(1.5)}, lambda u, s: u[None, :] * s),
    ("x % 0.7 + x // 0.35", {"x": X}, lambda x: np.remainder(x, 0.7) + np.floor_divide(x, 0.35)),
    # functions of several results, one picked
    ("sort(x)[0] + sort(x, 0)[0] + sort(x, -2)[-2]", {"x": X}, lambda x: np.sort(x, -1) + 2 * np.sort(x, 0)),
    ("topk(x, 2)[0] + sum(topk(x, 1, 0)[0])", {"x": X}, lambda x: -np.sort(-x, -1)[:, :2] + x.max(0).sum()),
    ("slogdet(a)[1] * slogdet(a)[0] + slogdet(-a)[-2]", {"a": A},
     lambda a: np.linalg.slogdet(a)[1] * np.linalg.slogdet(a)[0] + np.linalg.slogdet(-a)[0]),
    ("unbind(x, 1)[2] * sum(unbind(x)[-1] + unbind(x, 0)[0])", {"x": X}, lambda x: x[:, 2] * np.sum(x[1] + x[0])),
    ("chunk(x, 2, 1)[1] + chunk(x, 2)[0] + split(x, [1, 2], 1)[0] + split(x, 2, 1)[1]", {"x": X},
     lambda x: x[:, 2:3] + x[:1] + x[:, :1] + x[:, 2:]),
    # einsum, with any number of operands
    ("einsum('ij,jk->ik', x, a) + einsum('ij->j', x) * sum(einsum('ij , jk , k -> i', x, a, u))",
     {"x": X, "a": A, "u": U}, lambda x, a, u: x @ a + x.sum(0) * np.sum(x @ a @ u)),
    ("einsum('i,i', u, v) * einsum('ij,ij->', x, x)", {"u": U, "v": V, "x": X},
     lambda u, v, x: np.einsum("i,i", u, v) * np.einsum("ij,ij->", x, x)),
    # forms that hold constant arrays: index grids, zero buffers, written-out index arrays and masks
    ("diag(u) + diag(a)", {"u": U, "a": A}, lambda u, a: np.diag(u) + np.diag(a)),
    ("diag(u, -1) + diag(u, 1)", {"u": U}, lambda u: np.diag(u, -1) + np.diag(u, 1)),
    ("diag(x, 1) + diag(a, -1)", {"x": X, "a": A}, lambda x, a: np.diag(x, 1) + np.diag(a, -1)),
    ("pad(x, [1, 2]) * sum(pad(x, [0, 1, 2, 1]) ** 2)", {"x": X},
     lambda x: np.pad(x, ((0, 0), (1, 2))) * np.sum(np.pad(x, ((2, 1), (0, 1))) ** 2)),
    ("pad(x, [-1, 1, 1, 0])", {"x": X}, lambda x: np.pad(x[:, 1:], ((1, 0), (0, 1)))),
    ("repeat_interleave(x, [3, 0, 1], 1) * sum(repeat_interleave(x, 2, 0) ** 2)", {"x": X},
     lambda x: np.repeat(x, [3, 0, 1], 1) * np.sum(np.repeat(x, 2, 0) ** 2)),
    ("repeat_interleave(x, 2)", {"x": X}, lambda x: np.repeat(x, 2)),
    ("masked_fill(x, [[1, 0, 1], [0, 0, 1]], 2.5) + masked_fill(x, [True, False, False], -1)", {"x": X},
     lambda x: np.where([[1, 0, 1], [0, 0, 1]], 2.5, x) + np.where([True, False, False], -1, x)),
    ("gather(x, 1, [[0, 2, 2, 1], [1, 1, 0, 0]]) * sum(gather(x, 0, [[1, 0, 1], [0, 0, 0]]) ** 2)", {"x": X},
     lambda x: np.take_along_axis(x, np.array([[0, 2, 2, 1], [1, 1, 0, 0]]), 1)
     * np.sum(np.take_along_axis(x, np.array([[1, 0, 1], [0, 0, 0]]), 0) ** 2)),
    ("scatter_add(x, 0, [[0, 1, 0], [0, 0, 1]], s) + scatter_add(x, 1, [[2], [2]], s)", {"x": X, "s": X[::-1]},
     lambda x, s: _scatter_add(x, 0, np.array([[0, 1, 0], [0, 0, 1]]), s)
     + _scatter_add(x, 1, np.array([[2], [2]]), s[:, :1])),
    ("index_select(x, 1, [2, 0, 2]) + sum(index_select(x, 0, [1, 1, 0]) ** 2, 0)", {"x": X},
     lambda x: x[:, [2, 0, 2]] + np.sum(x[[1, 1, 0], :] ** 2, 0)),
    ("take_along_dim(x, [[0], [2]], 1) + take_along_dim(x, [5, 0, 5])", {"x": X},
     lambda x: np.take_along_axis(x, np.array([[0], [2]]), 1) + x.ravel()[[5, 0, 5]]),
    # positions and counts: int64, no derivative (x's gradient is the weight each multiplies it by);
    # relu's zeros stay zeros under a finite-difference step, so the count does not jump
    ("argmax(x, 0) * x + argmin(x) * x + sum(count_nonzero(relu(x), 1) * sum(x, 1))", {"x": X},
     lambda x: np.argmax(x, 0) * x + np.argmin(x) * x + np.sum(np.count_nonzero(np.maximum(x, 0), 1) * x.sum(1))),
    ("argmin(x, 1) * u + argmax(u) * u + count_nonzero(x) * sum(x, 1)", {"x": X.T, "u": U},
     lambda x, u: np.argmin(x, 1) * u + np.argmax(u) * u + np.count_nonzero(x) * x.sum(1)),
]


def _scatter_add(x, dim, index, src):
    """torch.scatter_add in NumPy: ``src`` added at ``index`` along ``dim``, repeats accumulating."""
    out = np.array(x, dtype=float)
    for position in np.ndindex(index.shape):
        target = list(position)
        target[dim] = index[position]
        out[tuple(target)] += src[position]
    return out


@pytest.mark.parametrize("text, values, numpy_value", ARRAY_FUNCTIONS, ids=[t for t, _, _ in ARRAY_FUNCTIONS])
def test_array_functions_take_their_options_as_number_literals(text, values, numpy_value):
    """Reductions along a dim, linear algebra and shape functions: the value NumPy gives,
    and the gradient of the weighted sum from the compiled closed form, from the tape
    replaying the same program, and by central differences."""
    from symgrad.symbolic.codegen.compile import compile_exprs
    from symgrad.symbolic.derive.reverse import gradient
    from symgrad.tape.engine import backward_engine

    parsed = parse(text, {n: np.shape(v) for n, v in values.items()})
    expected = numpy_value(*(values[n] for n in parsed.names))
    assert parsed.shape == np.shape(expected)
    weights = np.linspace(0.5, 1.5, np.size(expected)).reshape(np.shape(expected))
    weighted = parse(f"sum(({text}) * w)", {**{n: np.shape(v) for n, v in values.items()}, "w": np.shape(weights)})
    assert list(parsed.constants) == list(weighted.constants)  # the same names and values: the formula's
    symbols = [weighted.symbols[n] for n in parsed.names]
    compiled = compile_exprs(symbols + [weighted.symbols["w"], *weighted.constants],
                             [parsed.expr, *gradient(weighted.expr, symbols)])
    closed = compiled(*(values[n] for n in parsed.names), weights, *weighted.constants.values())
    value = parsed.to_tensor(values)[0].detach().numpy()
    np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(closed[0], expected, rtol=1e-12, atol=1e-14)
    with backward_engine("tape"):
        out, inputs = weighted.to_tensor({**values, "w": weights})
        out.backward()
    for k, name in enumerate(parsed.names):
        x = np.asarray(values[name], dtype=float)
        numeric = np.zeros(x.shape)
        for j in range(x.size):
            moved = [x.copy(), x.copy()]
            moved[0].flat[j] += 1e-6
            moved[1].flat[j] -= 1e-6
            at = [numpy_value(*(m if n == name else values[n] for n in parsed.names)) for m in moved]
            numeric.flat[j] = np.sum((at[0] - at[1]) * weights) / 2e-6
        np.testing.assert_allclose(closed[k + 1], numeric, rtol=1e-6, atol=1e-7, err_msg=name)
        np.testing.assert_allclose(inputs[name].grad.numpy(), closed[k + 1], rtol=1e-10, atol=1e-12, err_msg=name)


TORCH_FUNCTIONS = [
    # text (over x of X's shape, a of A's), the same in torch
    ("sort(x, 0)[0] * sum(topk(x, 2)[0])",
     lambda t, x, a: t.sort(x, 0)[0] * t.topk(x, 2)[0].sum()),
    ("slogdet(a)[1] + slogdet(a)[0]", lambda t, x, a: t.linalg.slogdet(a)[1] + t.linalg.slogdet(a)[0]),
    ("unbind(x, 1)[1] * sum(chunk(x, 2, 1)[1])",
     lambda t, x, a: t.unbind(x, 1)[1] * t.chunk(x, 2, 1)[1].sum()),
    ("split(x, [2, 1], 1)[0] * sum(split(x, 1)[1])", lambda t, x, a: t.split(x, [2, 1], 1)[0] * t.split(x, 1)[1].sum()),
    ("einsum('ij,jk->ki', x, a)", lambda t, x, a: t.einsum("ij,jk->ki", x, a)),
    ("diag(sum(x, 0), 1) * sum(diag(a, -1))", lambda t, x, a: t.diag(x.sum(0), 1) * t.diag(a, -1).sum()),
    ("pad(x, [2, -1, 1, 0])", lambda t, x, a: t.nn.functional.pad(x, [2, -1, 1, 0])),
    ("repeat_interleave(x, [1, 0, 2], 1) * sum(repeat_interleave(x, 3) ** 2)",
     lambda t, x, a: t.repeat_interleave(x, t.tensor([1, 0, 2]), 1) * (t.repeat_interleave(x, 3) ** 2).sum()),
    ("masked_fill(x, [[True, False, True], [False, False, True]], -0.5)",
     lambda t, x, a: x.masked_fill(t.tensor([[True, False, True], [False, False, True]]), -0.5)),
    ("gather(x, 0, [[1, 1, 0], [0, 1, 1]]) * sum(index_select(a, 1, [2, 0, 0]))",
     lambda t, x, a: t.gather(x, 0, t.tensor([[1, 1, 0], [0, 1, 1]]))
     * t.index_select(a, 1, t.tensor([2, 0, 0])).sum()),
    ("scatter_add(a, 1, [[2, 2, 0], [0, 1, 1]], x ** 2)",  # src as large as index: torch's gradient
     lambda t, x, a: t.scatter_add(a, 1, t.tensor([[2, 2, 0], [0, 1, 1]]), x ** 2)),  # is wrong for a larger one
    ("take_along_dim(x, [[2, 0], [1, 1]], 1) * sum(take_along_dim(a, [8, 0]))",
     lambda t, x, a: t.take_along_dim(x, t.tensor([[2, 0], [1, 1]]), 1) * t.take_along_dim(a, t.tensor([8, 0])).sum()),
]


@pytest.mark.parametrize("text, torch_value", TORCH_FUNCTIONS, ids=[t for t, _ in TORCH_FUNCTIONS])
def test_functions_with_several_results_or_constant_arrays_agree_with_torch(text, torch_value):
    """The value of the compiled closed form, its constants bound, and the gradient of the
    weighted sum by the symbolic engine and by the tape, against torch's autograd."""
    torch = pytest.importorskip("torch")
    from symgrad.symbolic import compile_exprs
    from symgrad.symbolic.derive.reverse import gradient
    from symgrad.tape.engine import backward_engine

    values = {"x": X, "a": A}
    inputs = {n: torch.tensor(v, requires_grad=True) for n, v in values.items()}
    expected = torch_value(torch, inputs["x"], inputs["a"])
    weights = np.linspace(0.5, 1.5, expected.numel()).reshape(tuple(expected.shape))
    (expected * torch.tensor(weights)).sum().backward()
    weighted = parse(f"sum(({text}) * w)", {"x": X.shape, "a": A.shape, "w": weights.shape})
    names = list(weighted.names)
    symbols = [weighted.symbols[n] for n in names]
    wrt = [weighted.symbols[n] for n in names if n != "w"]
    compiled = compile_exprs(symbols + list(weighted.constants), [weighted.expr, *gradient(weighted.expr, wrt)])
    closed = compiled(*({**values, "w": weights}[n] for n in names), *weighted.constants.values())
    np.testing.assert_allclose(closed[0], (expected.detach().numpy() * weights).sum(), rtol=1e-12)
    with backward_engine("tape"):
        out, leaves = weighted.to_tensor({**values, "w": weights})
        out.backward()
    for k, name in enumerate(n for n in names if n != "w"):
        torch_grad = inputs[name].grad.numpy()
        np.testing.assert_allclose(closed[k + 1], torch_grad, rtol=1e-10, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(leaves[name].grad.numpy(), torch_grad, rtol=1e-10, atol=1e-12, err_msg=name)


REFUSED_AT_SHAPES = [
    # text (x of shape (2, 3), a (3, 3)), words: refused when the shapes are known
    ("unbind(x, 0)[2]", "cannot apply 'unbind': unbind gives 2 results here; [2] is out of range (from [0] to [1])"),
    ("chunk(x, 3, 1)[-4]", "chunk gives 3 results here; [-4] is out of range"),
    ("gather(x, 1, [[0, 3]])", "index 3 is out of bounds for axis 1 with size 3"),
    ("gather(x, 1, [0, 1])", "gather: index has 1 dimensions, the input 2"),
    ("index_select(x, 0, [[0]])", "index_select: the index must be 0-D or 1-D"),
    ("masked_fill(x, [[1, 0]], 1)", "masked_fill: the mask of shape (1, 2) does not broadcast to the input's shape"),
    ("scatter_add(x, 0, [[2, 0, 0]], x)", "scatter_add: index values must be in [0, 2)"),
    ("pad(x, [1])", "pad: needs an even number of amounts"),
    ("repeat_interleave(x, [1, 2], 1)", "repeat_interleave: repeats must be non-negative, one per slice (3), got 2"),
    ("einsum('ij,jk->ik', x)", "einsum: the equation 'ij,jk->ik' has 2 operands, 1 were given"),
    ("einsum('ii->i', a)", "a letter repeated within one operand ('ii', a diagonal) is not implemented"),
    ("diag(sum(x))", "diag: expects a 1-D or 2-D tensor, got 0 dimensions"),
    ("topk(x, 4)[0]", "topk: k (4) is out of range for dimension 1 of size 3"),
]


@pytest.mark.parametrize("text, words", REFUSED_AT_SHAPES, ids=[t for t, _ in REFUSED_AT_SHAPES])
def test_refused_when_the_shapes_do_not_fit(text, words):
    with pytest.raises(ExpressionError) as info:
        parse(text, {"x": (2, 3), "a": (3, 3)})
    assert words in str(info.value) and info.value.column == 1


def test_constant_arrays_are_named_apart_from_the_variables_and_shared_when_equal():
    parsed = parse("sum(gather(idx0, 1, [[0], [1]])) + sum(gather(t0, 1, [[0], [1]]) * pad(t0, [1, 0]))",
                   {"idx0": (2, 3), "t0": (2, 3)})
    names = {c.name: v for c, v in parsed.constants.items()}
    assert parsed.names == ("idx0", "t0") and not set(names) & set(parsed.names)
    # the row grid and the index written out are equal, so one symbol; the pad buffer is a float zero array
    assert sorted(names) == ["idx1", "t1"]
    np.testing.assert_array_equal(names["idx1"], [[0], [1]])
    assert names["idx1"].dtype == np.int64 and names["t1"].dtype == np.float64 and not names["t1"].any()
    assert parsed == parse(parsed.text, parsed.shapes)  # the same names at every parse (constants in expr)
    apart = parsed.with_constants_apart(["idx1"])
    assert sorted(c.name for c in apart.constants) == ["idx2", "t1"] and "idx1" not in str(apart.expr.free_symbols)
    assert parse("sum(x)", {"x": (2,)}).constants == {}


def test_a_form_holding_an_array_computed_from_the_arguments_values_is_refused():
    """sort's indices are refused by name; a composite that computed an array from its
    arguments' values outside the graph would freeze it at the placeholders' zeros, so
    the SymPy face of a traced function refuses it too."""
    from symgrad.parsing import _traced
    from symgrad.symbolic.core.symbols import ArrayVar
    from symgrad.tape.composites import sort

    with pytest.raises(TypeError, match=r"holds an array made by sort\(\) from the arguments' values"):
        _traced(lambda x: sort(x)[1])(ArrayVar("x", (2, 3)))


def test_literals_reach_the_faces_as_arrays_and_text():
    parsed = parse("masked_fill(x, [[1, 0]], 1.5) + einsum('ij->ij', x)", {"x": (1, 2)})
    literals = [step.value for step in parsed.program if step.kind == "literal"]
    assert literals == [((1, 0),), "ij->ij"]
    out, _ = parsed.to_tensor({"x": [[1.0, 2.0]]})
    np.testing.assert_array_equal(out.detach().numpy(), [[2.5, 4.0]])


@pytest.mark.parametrize("text", ["argmax(x)", "argmin(x, 1)", "count_nonzero(x, 0)", "argmax(x, -1) * argmin(x, 1)"])
def test_positions_and_counts_have_no_derivative(text):
    """Their closed forms differentiate to zero, and the tape gives the input no gradient
    (as PyTorch: an integer result does not require grad)."""
    from symgrad.symbolic.codegen.compile import compile_exprs
    from symgrad.symbolic.derive.reverse import gradient

    parsed = parse(f"sum({text})", {"x": X.shape})
    x = parsed.symbols["x"]
    (closed,) = gradient(parsed.expr, [x])
    assert x not in closed.free_symbols
    np.testing.assert_array_equal(compile_exprs([x], [closed])(X)[0], np.zeros(X.shape))
    out, inputs = parsed.to_tensor({"x": X})
    assert not out.requires_grad and inputs["x"].grad is None


def test_composite_functions_parse_with_grad_turned_off():
    """The SymPy face of a composite records it on placeholders, with grad on whatever the caller's mode."""
    import symgrad

    with symgrad.no_grad():
        inside = parse("var(x, 0)", {"x": (2, 3)})
    assert inside.expr == parse("var(x, 0)", {"x": (2, 3)}).expr and inside.expr.free_symbols == {inside.symbols["x"]}


def test_to_tensor_names_leaves_and_checks_shapes():
    parsed = parse("sum(w * 2)", {"w": (2,)})
    out, inputs = parsed.to_tensor({"w": 1.0})  # a number fills a declared array
    assert inputs["w"].name == "w" and inputs["w"].shape == (2,)
    assert float(out) == 4.0
    with pytest.raises(ExpressionError, match="declared shape"):
        parsed.to_tensor({"w": np.ones(3)})
    with pytest.raises(ExpressionError, match="no value given for w"):
        parsed.to_tensor({})


def test_constant_arithmetic_on_the_tape_overflows_like_numpy():
    out, _ = parse("x + 10.0**400 - 10.0**400").to_tensor({"x": 1.0})
    assert np.isnan(out.item())


# ---------------------------------------------------------------------------- never evaluates
def test_parsing_never_evaluates_user_text(monkeypatch):
    """eval/exec/compile of text, and sympify of a string, are never called by the parser."""
    calls = []
    original_sympify = sp.sympify

    def guarded_sympify(value, *args, **kwargs):
        if isinstance(value, str):
            calls.append(("sympify", value))
        return original_sympify(value, *args, **kwargs)

    def forbidden(name):
        def call(*args, **kwargs):
            calls.append((name, args[:1]))
            raise AssertionError(f"{name} called")
        return call

    monkeypatch.setattr(sp, "sympify", guarded_sympify)
    monkeypatch.setattr(builtins, "eval", forbidden("eval"))
    monkeypatch.setattr(builtins, "exec", forbidden("exec"))
    for text in ["sin(x)*exp(-y**2)", "x**2 + pi", "__import__('os').system('echo pwned')",
                 "eval('1')", "exec('1')", "x.y"]:
        try:
            parse(text)
        except ExpressionError:
            pass
    parse("sum(x @ w)", {"x": (2,), "w": (2, 3)})
    assert calls == []


# ---------------------------------------------------------------------------- fuzz
HOSTILE = [
    "__import__('os').system('touch pwned')", "open('pwned', 'w').write('x')", "().__class__.__base__.__subclasses__()",
    "[c for c in ().__class__.__base__.__subclasses__()]", "lambda: __import__('os')", "exec('import os')",
    "eval(\"__import__('os')\")", "globals()['__builtins__']", "breakpoint()", "compile('1', 'f', 'eval')",
    "sys.exit(1)", "os.remove('x')", "x.__dict__", "getattr(x, 'y')", "type(x)", "vars()", "input()",
    "9**9**9**9**9", "10**10**10", "(2**1000)**1000", "1e308*1e308", "'a'*10**9", "x" * (MAX_LENGTH + 5),
    "(" * 250 + "x" + ")" * 250, "-" * 5000 + "x", "x\x00", "\u202ex", "x\r\n", "\ufeffx", "𝐬𝐢𝐧(x)", "ｅｖａｌ('1')",
    "ﬁ", "Ⅻ", "x\u200by", "\\x41", "#x", "x # comment", "\"\"\"x\"\"\"", "await x", "yield x", "x := 1",
    "*x", "**x", "x[::-1]", "{}", "{x}", "(x for x in x)", "x if x else x", "not x", "x is x", "x in y",
    "~x", "x << 2", "x & y", "@x", "x @", "sin()", "sin(x)(y)", "maximum(x, y, z)", "sqrt(-1)", "log(0)",
    "0**-1", "tan(pi/2)", "pi = 3", "del x", "import os", "from os import system", "assert x", "raise x",
]

EXPRESSION_ALPHABET = "xyzw0123456789.+-*/@()^%,=:;[]{}'\"_ abcdefghijklmnopqrstuvEIe\\\n\t#!~<>&|"
FRAGMENTS = ["x", "y", "2", "1.5", "e", "pi", "+", "-", "*", "/", "**", "@", "(", ")", ",", "sin(", "exp(", "log(",
             "sqrt(", "sum(", "maximum(", "relu(", "__import__", ".", "[0]", "'s'", "lambda:", "eval(", "9**9**9",
             " ", "=", "if", "else", "for", "in", "not", "True", "None", "1e999", "3j", "_", "__class__",
             "sort(", "unbind(", "[-1]", "einsum(", "'ij->j'", "gather(", "pad(", "masked_fill(", "[[0, 1]]", "[1, 0]"]


def _outcome(text: str) -> None:
    try:
        parsed = parse(text)
    except ExpressionError as err:
        assert str(err)  # a message, never empty
        assert err.column is None or 1 <= err.column <= len(text.strip(" \t")) + 1
        return
    assert isinstance(parsed, ParsedExpression)
    assert isinstance(parsed.expr, sp.Basic)


@pytest.mark.parametrize("text", HOSTILE, ids=[repr(t[:20]) for t in HOSTILE])
def test_hostile_strings_are_parsed_or_refused(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _outcome(text)
    assert os.listdir(tmp_path) == []


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(
    st.text(max_size=40),
    st.text(alphabet=EXPRESSION_ALPHABET, max_size=30),
    st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join),
    st.sampled_from(HOSTILE),
))
def test_fuzz_every_outcome_is_an_expression_or_an_expression_error(text, tmp_path_factory):
    """Random and hostile text: the parser returns a ParsedExpression or raises
    ExpressionError -- never another exception -- and creates no file."""
    where = tmp_path_factory.mktemp("fuzz")
    before = os.getcwd()
    os.chdir(where)
    try:
        _outcome(text)
    finally:
        os.chdir(before)
    assert os.listdir(where) == []


def test_functions_table_lists_only_callables_with_both_faces():
    for name, spec in FUNCTIONS.items():
        assert spec.name == name and spec.arity in (1, 2, 3)  # lerp(a, b, c) takes three
        assert callable(spec.sympy) and callable(spec.tensor)


def test_notebook_display_is_latex():
    assert parse("sin(x)/y")._repr_latex_() == r"$\displaystyle \frac{\sin{\left(x \right)}}{y}$"


FORMULA_OPS = sorted(name for name, op in OPS.items() if op.in_formulas)


@pytest.mark.parametrize("name", FORMULA_OPS)
def test_every_formula_function_has_the_same_value_in_both_faces(name, rng):
    """The SymPy face (compiled) and the tensor face of each op of the formula language
    agree, on inputs from the op's domains: both come from the op's record."""
    from symgrad.symbolic import compile_exprs

    op = OPS[name]
    variables = ["a", "b", "c"][:op.arity]
    parsed = parse(f"{name}({', '.join(variables)})")
    values = {v: float(domain.sample(rng, ())) for v, domain in zip(variables, op.domains)}
    tensor_value = parsed.to_tensor(values)[0].detach().numpy()
    compiled = compile_exprs([parsed.symbols[v] for v in variables], [parsed.expr])
    np.testing.assert_allclose(compiled(*values.values()).out0, tensor_value, rtol=1e-12)


def test_nested_maximum_and_minimum_grow_linearly():
    """``maximum``/``minimum`` are functions SymPy never rewrites (not a three-branch
    ``Piecewise`` that copied the level below three times), so nesting them is bounded by
    ``MAX_DEPTH`` alone and the closed form and its derivative grow linearly with depth."""
    from symgrad.symbolic.core.symbols import postorder_by_identity

    sizes = {}
    for depth in (8, 16):
        text = "x"
        for level in range(depth):
            text = f"{('maximum', 'minimum')[level % 2]}(sin({text}), y)"
        parsed = parse(text)
        x = next(s for s in parsed.expr.free_symbols if s.name == "x")
        derivative = sp.diff(parsed.expr, x)
        sizes[depth] = sum(1 for _ in postorder_by_identity([derivative]))
    assert sizes[16] <= 2 * sizes[8] + 4, sizes
