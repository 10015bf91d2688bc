"""Hostile strings as tensor names: no user string reaches ``eval``, ``exec`` or
``sympify``.  Every hostile string of the parser's and the command line's suites (reused
from ``tests/test_parsing.py`` and ``tests/test_cli.py``, not copied), plus names aimed at
generated code (keywords, builtins, the names of generated arguments, temporaries and
namespace functions, quotes, newlines, bidi controls), is given as ``name=`` to the leaves
and data of a program that runs backward on both engines, is printed (repr, text, LaTeX,
pretty) and drawn (DOT).  Meanwhile

* ``sympy.parsing.sympy_parser.parse_expr`` -- what ``sympify`` of a string calls -- is a
  trip wire, and so is ``eval`` of anything but the ``lambda`` over identifiers that
  ``collections.namedtuple`` evaluates for a compiled function's outputs;
* every source ``compile``d for ``exec`` is checked with ``ast``: one function whose
  parameters are identifiers, no string literals, no imports, no attribute access other
  than ``numpy.<function>``, and every other name a parameter, a temporary or a known
  namespace function -- so a name can only ever appear as a sanitised identifier;
* the working directory stays empty.

A hypothesis fuzz then throws random names at ``symgrad.tensor(..., name=...)`` +
backward on the symbolic engine under the same checks.
"""
from __future__ import annotations

import ast
import builtins
import importlib.util
import keyword
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgrad
import symgrad.nn.functional as F
from symgrad import viz

TESTS = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_reliability_{name}", TESTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PARSER_HOSTILE = list(_load("test_parsing").HOSTILE)
CLI_HOSTILE = [expression for expression, _ in _load("test_cli").HOSTILE]
NAME_HOSTILE = [
    # Python keywords, soft keywords and builtins
    "lambda", "def", "class", "None", "True", "import", "return", "match", "_", "print", "exec", "eval",
    "__import__", "__builtins__", "__class__", "open", "globals",
    # names generated code uses: arguments, seeds, temporaries, index inputs, namespace functions
    "x", "g", "g0", "_g", "t0", "t1", "_t0", "_t1", "idx0", "idx1", "grad_x", "numpy", "np", "functools", "array",
    "sigmoid", "softplus", "sum", "matmul", "softmax", "log_softmax", "getitem", "index_put", "broadcast_to",
    "reshape", "where", "Outputs", "backward", "compiled",
    # names that are not identifiers
    "", " ", "1x", "fc.weight", "fc_weight", "a b", "a-b", "a+b", "x)", "(x", "x:", "x=1", "x;y", "a'b", 'a"b',
    "a\\b", "a\nb", "a\rb", "a\tb", "a\x00b", "\u202ex", "x\u200by", "\ufeffx", "ℌ", "𝐱", "é", "e\u0301", "🙂",
    "x)\nimport os\nos.system('touch pwned')#", "'; import os; os.system('touch pwned'); '",
    "\"\"\"\nimport os\n\"\"\"", "{x}", "{0}", "%s", "$x$", "\\frac{1}{0}", "</script>", "-> n0;", '" -> n0 [label="',
    "]; n9 [label=\"pwned\"", "x" * 5_000,
]
HOSTILE_NAMES = list(dict.fromkeys(PARSER_HOSTILE + CLI_HOSTILE + NAME_HOSTILE))

NAMESPACE = None


def _namespace() -> set:
    global NAMESPACE
    if NAMESPACE is None:
        from symgrad.symbolic.forms.structural import numpy_namespace

        NAMESPACE = set(numpy_namespace()) | {"numpy", "functools"}
    return NAMESPACE


class TripWires:
    """Records every source compiled for exec; fails on parse_expr (sympify of a string) and eval."""

    def __init__(self, monkeypatch) -> None:
        import sympy.parsing.sympy_parser as sympy_parser

        self.sources: list[str] = []
        self.tripped: list[str] = []
        original_compile = builtins.compile

        def compile_spy(source, filename, mode, *args, **kwargs):
            if isinstance(source, str) and str(filename).startswith("<symgrad"):
                self.sources.append(source)
            return original_compile(source, filename, mode, *args, **kwargs)

        def trip(what):
            def wire(*args, **kwargs):
                self.tripped.append(f"{what}{args!r:.200}")
                raise AssertionError(f"{what} was called with {args!r:.200}")
            return wire

        original_eval = builtins.eval

        def eval_spy(source, *args, **kwargs):
            # collections.namedtuple (the outputs of a compiled function) evals a lambda
            # over the field names; anything else is a trip
            if not (isinstance(source, str) and _namedtuple_lambda(source)):
                return trip("eval")(source)
            return original_eval(source, *args, **kwargs)

        monkeypatch.setattr(builtins, "compile", compile_spy)
        monkeypatch.setattr(builtins, "eval", eval_spy)
        monkeypatch.setattr(sympy_parser, "parse_expr", trip("parse_expr"))

    def check(self) -> int:
        assert not self.tripped, self.tripped
        for source in self.sources:
            check_generated(source)
        return len(self.sources)


def _namedtuple_lambda(source: str) -> bool:
    """``lambda _cls, a, b: _tuple_new(_cls, (a, b))`` with identifiers only."""
    try:
        body = ast.parse(source, mode="eval").body
    except SyntaxError:
        return False
    if not isinstance(body, ast.Lambda):
        return False
    params = {a.arg for a in body.args.args}
    for node in ast.walk(body):
        if isinstance(node, ast.Constant) or isinstance(node, (ast.Attribute, ast.Subscript)):
            return False
        if isinstance(node, ast.Name) and node.id not in params | {"_tuple_new"}:
            return False
    return all(p.isidentifier() and not keyword.iskeyword(p) for p in params)


def check_generated(source: str) -> None:
    """One function; identifiers only where names go; no strings, imports or stray attributes."""
    tree = ast.parse(source)
    assert len(tree.body) == 1 and isinstance(tree.body[0], ast.FunctionDef), source[:300]
    function = tree.body[0]
    params = {a.arg for a in function.args.args}
    assert not function.args.vararg and not function.args.kwarg and not function.decorator_list
    for name in params:
        assert name.isidentifier() and not keyword.iskeyword(name), name
    assigned = set(params)
    for node in ast.walk(function):
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal, ast.Lambda, ast.JoinedStr)):
            raise AssertionError(f"{type(node).__name__} in generated code:\n{source[:500]}")
        if isinstance(node, ast.Constant):
            assert not isinstance(node.value, (str, bytes)), f"string literal {node.value!r} in generated code"
        if isinstance(node, ast.Attribute):
            assert isinstance(node.value, ast.Name) and node.value.id == "numpy" and not node.attr.startswith("_"), \
                ast.unparse(node)
        if isinstance(node, ast.Assign):
            assigned.update(t.id for t in node.targets if isinstance(t, ast.Name))
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            assert node.id in assigned or node.id in _namespace() or node.id in ("True", "False", "None"), \
                f"unknown name {node.id!r} in generated code"


def _program(name: str):
    """Leaves and data all called ``name``: a linear layer, an index, labels, a mask."""
    w = symgrad.tensor(np.linspace(-0.5, 0.5, 6).reshape(3, 2), requires_grad=True, name=name)
    b = symgrad.tensor([0.1, -0.2], requires_grad=True, name=name)
    x = symgrad.tensor(np.linspace(0.0, 1.0, 12).reshape(4, 3), name=name)
    labels = symgrad.tensor([0, 1, 1, 0])
    logits = x @ w + b
    loss = F.cross_entropy(logits, labels) + (logits[symgrad.tensor([0, 2])] ** 2).sum() * 0.1 + w.sigmoid().sum()
    return (w, b), loss


def _reference():
    with symgrad.backward_engine("tape"):
        leaves, loss = _program("w")
        loss.backward()
    return [t.grad.numpy().copy() for t in leaves]


REFERENCE = None


def _expected():
    global REFERENCE
    if REFERENCE is None:
        REFERENCE = _reference()
    return REFERENCE


def _dot_is_well_formed(source: str) -> None:
    node = re.compile(r'^  n\d+ \[label="(?:[^"\\\n]|\\.)*", [^\n]*\];$')
    edge = re.compile(r"^  n\d+ -> n\d+;$")
    lines = source.splitlines()
    assert lines[0].startswith("digraph ") and lines[-1] == "}"
    for line in lines[4:-1]:
        assert node.match(line) or edge.match(line), f"malformed DOT line: {line[:200]!r}"


def run_hostile(name: str, engine: str) -> None:
    leaves, loss = _program(name)
    with symgrad.backward_engine(engine):
        loss.backward(retain_graph=True)
    for got, want in zip((t.grad.numpy() for t in leaves), _expected()):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    text = repr(leaves[0])
    assert f"name={name!r}" in text or len(name) > 1000
    _dot_is_well_formed(viz.draw(loss).source)
    expr = leaves[0].sigmoid().sum().expr
    from symgrad.symbolic import latex, pretty, text as plain

    plain(expr), latex(expr), pretty(expr)
    _dot_is_well_formed(viz.draw(expr).source)


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=[f"{i}:{n[:16]!r}" for i, n in enumerate(HOSTILE_NAMES)])
def test_hostile_names_never_reach_eval_exec_or_sympify(name, engine, empty_cwd, monkeypatch, figures):
    wires = TripWires(monkeypatch)
    run_hostile(name, engine)
    compiled = wires.check()
    assert os.listdir(empty_cwd) == []
    figures.set("hostile names tried (per engine)", len(HOSTILE_NAMES))
    figures.add("generated sources checked with ast", compiled)


def test_hostile_names_are_not_identifiers_in_generated_code(monkeypatch, fresh_cache):
    """A sharper look at the symbolic engine's source for a few names: sanitised,
    de-duplicated, and never shadowing what the code calls."""
    wires = TripWires(monkeypatch)
    for name in ["sum", "softmax", "g", "idx0", "lambda", "fc.weight", "x)\nimport os"]:
        leaves, loss = _program(name)
        with symgrad.backward_engine("symbolic"):
            loss.backward()
    wires.check()
    assert wires.sources
    for source in wires.sources:
        params = ast.parse(source).body[0].args.args
        names = [a.arg for a in params]
        assert len(names) == len(set(names))
        assert not set(names) & _namespace()


def test_names_must_be_strings():
    for bad in (123, b"x", ("a",), ["a"]):
        with pytest.raises(TypeError, match="string"):
            symgrad.tensor([1.0], name=bad)


# ---------------------------------------------------------------------------- fuzz
NAME_ALPHABET = st.characters(blacklist_categories=("Cs",))


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(names=st.lists(st.one_of(st.text(NAME_ALPHABET, max_size=30), st.sampled_from(HOSTILE_NAMES),
                                st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,12}", fullmatch=True)),
                      min_size=3, max_size=3))
def test_fuzz_random_names_through_tensor_and_symbolic_backward(names, tmp_path_factory, figures):
    """Three random names (leaves and data), symbolic backward, printing and DOT: right
    gradients, no trip wire touched, every generated source clean, no file created."""
    where = tmp_path_factory.mktemp("names")
    before = os.getcwd()
    with pytest.MonkeyPatch.context() as monkeypatch:
        wires = TripWires(monkeypatch)
        os.chdir(where)
        try:
            w = symgrad.tensor([[0.5, -1.0], [2.0, 0.25]], requires_grad=True, name=names[0])
            b = symgrad.tensor([0.1, 0.2], requires_grad=True, name=names[1])
            x = symgrad.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]], name=names[2])
            loss = ((x @ w + b).tanh() ** 2).sum() + (w * b).sum()
            with symgrad.backward_engine("symbolic"):
                loss.backward(retain_graph=True)
            _dot_is_well_formed(viz.draw(loss).source)
            str(loss.expr)
        finally:
            os.chdir(before)
        wires.check()
    X, W, B = x.numpy(), w.detach().numpy(), b.detach().numpy()
    t = np.tanh(X @ W + B)
    upstream = 2 * t * (1 - t ** 2)
    np.testing.assert_allclose(w.grad.numpy(), X.T @ upstream + B, rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), upstream.sum(0) + W.sum(0), rtol=1e-12)
    assert os.listdir(where) == []
    figures.add("fuzz: random tensor names through symbolic backward (programs)", 1)


# ---------------------------------------------------------------------------- text as an expression
def _symbolic_entry_points():
    """Every public symbolic function that takes expressions, called with text in each
    expression slot (SymPy's ``sympify`` would evaluate it as Python)."""
    import sympy as sp

    from symgrad import symbolic

    x = sp.Symbol("x", real=True)
    f = sp.sin(x)
    return [
        ("diff y", lambda s: symbolic.diff(s, x)),
        ("diff x", lambda s: symbolic.diff(f, s)),
        ("gradient y", lambda s: symbolic.gradient(s, [x])),
        ("gradient xs", lambda s: symbolic.gradient(f, [s])),
        ("jacobian_expr", lambda s: symbolic.jacobian_expr([s], [x])),
        ("hessian_expr", lambda s: symbolic.hessian_expr(f, [s])),
        ("adjoints seed", lambda s: symbolic.adjoints([(f, s)], [x])),
        ("adjoints wrt", lambda s: symbolic.adjoints([(f, 1)], [s])),
        ("compile_exprs", lambda s: symbolic.compile_exprs([x], [s])),
        ("text", lambda s: symbolic.text(s, simplify=True)),
        ("per_element", lambda s: symbolic.per_element(s)),
    ]


@pytest.mark.parametrize("entry", _symbolic_entry_points(), ids=lambda e: e[0])
@pytest.mark.parametrize("payload", ["__import__('os').system('touch pwned') or x", "open('pwned', 'w') and x"])
def test_text_is_refused_as_an_expression(entry, payload, empty_cwd, monkeypatch):
    wires = TripWires(monkeypatch)
    with pytest.raises(TypeError, match="symgrad does not evaluate text"):
        entry[1](payload)
    wires.check()
    assert os.listdir(empty_cwd) == []
