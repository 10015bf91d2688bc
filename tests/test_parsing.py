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
    # positions and counts: int64, no derivative (x's gradient is the weight each multiplies it by);
    # relu's zeros stay zeros under a finite-difference step, so the count does not jump
    ("argmax(x, 0) * x + argmin(x) * x + sum(count_nonzero(relu(x), 1) * sum(x, 1))", {"x": X},
     lambda x: np.argmax(x, 0) * x + np.argmin(x) * x + np.sum(np.count_nonzero(np.maximum(x, 0), 1) * x.sum(1))),
    ("argmin(x, 1) * u + argmax(u) * u + count_nonzero(x) * sum(x, 1)", {"x": X.T, "u": U},
     lambda x, u: np.argmin(x, 1) * u + np.argmax(u) * u + np.count_nonzero(x) * x.sum(1)),
]


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
    symbols = [weighted.symbols[n] for n in parsed.names]
    compiled = compile_exprs(symbols + [weighted.symbols["w"]], [parsed.expr, *gradient(weighted.expr, symbols)])
    closed = compiled(*(values[n] for n in parsed.names), weights)
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
             " ", "=", "if", "else", "for", "in", "not", "True", "None", "1e999", "3j", "_", "__class__"]


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
