"""The ``symgrad`` command: outputs and exit codes of ``diff``, ``check`` and ``graph``,
hostile and malformed expressions (refused with status 2, nothing created), and a fuzz
of the command line.  Most cases call ``main(argv)`` in-process; a few run
``python -m symgrad`` in a subprocess."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symgrad import viz
from symgrad.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    """``main(argv)`` in-process: (exit status, stdout, stderr)."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def empty_cwd(tmp_path, monkeypatch):
    """A fresh, empty working directory; tests assert it stays empty."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------------------- diff
DIFF_CASES = [
    # argv, expected stdout lines (in order, each must appear)
    (["diff", "sin(x)*exp(-y**2)", "--wrt", "x,y"],
     ["df/dx = exp(-y**2)*cos(x)", "df/dy = -2*y*exp(-y**2)*sin(x)"]),
    (["diff", "sin(x)*exp(-y**2)"], ["df/dx = exp(-y**2)*cos(x)", "df/dy = -2*y*exp(-y**2)*sin(x)"]),
    (["diff", "sin(x)*exp(-y**2)", "--wrt", "y"], ["df/dy = -2*y*exp(-y**2)*sin(x)"]),
    (["diff", "x**3*y", "--order", "2"], ["d2f/dx2 = 6*x*y", "d2f/dxdy = 3*x**2", "d2f/dy2 = 0"]),
    (["diff", "x**4", "--order", "3"], ["d3f/dx3 = 24*x"]),
    (["diff", "x*y*z", "--hessian"], ["d2f/dx2 = 0", "d2f/dxdy = z", "d2f/dxdz = y", "d2f/dydx = z"]),
    (["diff", "x*y", "x+y", "--jacobian"], ["f1 = x*y", "f2 = x + y", "df1/dx = y", "df1/dy = x", "df2/dx = 1"]),
    (["diff", "x*y", "--latex"], [r"\frac{\partial f}{\partial x} = y"]),
    # names with digits and underscores are labelled as SymPy prints their symbols
    (["diff", "x1**2*theta_1 + W1", "--wrt", "x1,theta_1,W1", "--latex"],
     [r"\frac{\partial f}{\partial x_{1}} = 2 \theta_{1} x_{1}", r"\frac{\partial f}{\partial \theta_{1}} = x_{1}^{2}",
      r"\frac{\partial f}{\partial W_{1}} = 1"]),
    (["diff", "x1**3*y", "--order", "2", "--latex"],
     [r"\frac{\partial^{2} f}{\partial x_{1}^{2}} = 6 x_{1} y", r"\frac{\partial^{2} f}{\partial x_{1} \partial y} = 3 x_{1}^{2}"]),
    (["diff", "x**2*y", "--hessian", "--latex"], [r"\left[\begin{matrix}2 y & 2 x\\2 x & 0\end{matrix}\right]"]),
    (["diff", "x*y*z", "--hessian", "--pretty"], ["hessian of f with respect to (x, y, z) ="]),
    (["diff", "log(1+exp(x))", "--simplify"], ["df/dx = exp(x)/(exp(x) + 1)"]),
    (["diff", "-x**2"], ["df/dx = -2*x"]),  # a leading '-' is an expression, not an option
    (["diff", "--", "-x**3"], ["df/dx = -3*x**2"]),
    (["diff", "sum(x**2)", "--shape", "x=3"], ["df/dx = 2*x"]),
    # d/dw sum(x @ w) is the outer product of x with ones: w's gradient repeats x in each column
    (["diff", "sum(x @ w)", "--shape", "x=2,w=2x3", "--wrt", "w"], ["df/dw = x[:, None]*ones((2, 3))"]),
    (["diff", "sum(x @ w)", "--shape", "x=2,w=2x3", "--wrt", "w", "--at", "x=2,w=0"],
     ["df/dw[0, 0]  2            2", "df/dw[1, 2]  2            2"]),
    (["diff", "x*y", "--wrt", "z"], ["df/dz = 0"]),
    (["diff", "sigmoid(x)"], ["df/dx = (1 - sigmoid(x))*sigmoid(x)"]),
    # explain: forward values, local derivatives, the backward pass, the result
    (["explain", "(w*x + b - t)**2", "--wrt", "w", "--at", "w=2,x=3,b=1,t=5"],
     ["  u_1 = w*x  = 6", "  df/du_2 = 2*u_2", "  wbar = u_1bar*x  = 12", "Result: df/dw = wbar = 2*x*(b - t + w*x)  = 12"]),
    (["explain", "sum(tanh(x @ w))", "--shape", "x=2,w=2x3", "--wrt", "w", "--latex"],
     [r"\frac{\partial u_{2}}{\partial u_{1}} &= 1 - \tanh^{2}{\left(u_{1} \right)}", r"\overline{w} &= x {\overline{u_{1}}}^{T}"]),
]


@pytest.mark.parametrize("argv, lines", DIFF_CASES, ids=[" ".join(a) for a, _ in DIFF_CASES])
def test_diff_prints_closed_forms(capsys, argv, lines):
    status, out, err = run(capsys, *argv)
    assert (status, err) == (0, "")
    position = 0
    for line in lines:
        found = out.find(line, position)
        assert found >= 0, f"{line!r} missing from:\n{out}"
        position = found


def test_diff_at_a_point_shows_value_and_finite_difference(capsys):
    status, out, _ = run(capsys, "diff", "sin(x)*exp(-y**2)", "--at", "x=1.5,y=-2")
    assert status == 0
    assert "at x=1.5, y=-2:" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("f ", "df/"))}
    value = np.sin(1.5) * np.exp(-4)
    assert float(rows["f"][1]) == pytest.approx(value)
    dx = np.cos(1.5) * np.exp(-4)
    assert float(rows["df/dx"][1]) == pytest.approx(dx, rel=1e-9)
    assert float(rows["df/dx"][2]) == pytest.approx(dx, rel=1e-6)
    assert rows["df/dx"][-1] == "ok" and rows["df/dy"][-1] == "ok"


def test_diff_at_with_arrays_and_hessian_entries(capsys):
    status, out, _ = run(capsys, "diff", "sum(x**3)", "--shape", "x=2", "--at", "x=[1, 2]")
    assert status == 0
    assert "df/dx[0]" in out and "df/dx[1]" in out
    row = next(line for line in out.splitlines() if line.startswith("df/dx[1]")).split()
    assert float(row[1]) == pytest.approx(12.0)
    status, out, _ = run(capsys, "diff", "x**2*y", "--hessian", "--at", "x=1,y=3")
    assert status == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("d2f/")}
    assert float(rows["d2f/dx2"][1]) == pytest.approx(6.0) and float(rows["d2f/dxdy"][1]) == pytest.approx(2.0)
    assert all(r[-1] == "ok" for r in rows.values())


def test_diff_code_prints_generated_numpy_source(capsys):
    status, out, _ = run(capsys, "diff", "sin(x)*y", "--code")
    assert status == 0
    assert "# returns (f, df_dx, df_dy)" in out
    source = out[out.index("def "):]
    assert source.startswith("def compiled(x, y):") and "numpy.sin(x)" in source and "numpy.cos(x)" in source


def test_diff_binds_and_prints_the_constant_arrays_of_a_formula(capsys):
    """gather's index array and its row grid are constants of the closed form: printed in
    'where' lines, passed to the compiled function, and named apart across expressions and
    from the variables (a variable named idx0 keeps its name)."""
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    status, out, _ = run(capsys, "diff", "sum(gather(x, 1, [[0], [2]]) ** 2)", "sum(index_select(x, 1, [2, 2]) * idx0)",
                         "--shape", "x=2x3,idx0=2", "--at", "x=[[1,2,3],[4,5,6]],idx0=[1,3]", "--code")
    assert status == 0
    lines = out.splitlines()
    assert "= indices((2, 1))[0]" in out and "= 2*indices((2, 1))[0]" in out  # the row grid, the index written
    assert "    where idx3 = array((2, 2))" in lines  # the second expression's, named apart
    cells = [re.split(r"\s{2,}", line.strip()) for line in lines if line.startswith(("f1 ", "f2 ", "df"))]
    rows = {row[0]: row for row in cells if len(row) > 1}  # the table's rows (columns 2 spaces apart)
    assert float(rows["f1"][1]) == pytest.approx(x[0, 0] ** 2 + x[1, 2] ** 2)
    assert float(rows["f2"][1]) == pytest.approx(x[:, 2].sum() * (1.0 + 3.0))  # columns [2, 2] times idx0
    assert float(rows["df1/dx[1, 2]"][1]) == pytest.approx(2 * x[1, 2]) and rows["df1/dx[1, 2]"][-1] == "ok"
    assert float(rows["df2/dx[1, 2]"][1]) == pytest.approx(1.0 + 3.0) and rows["df2/dx[0, 1]"][1] == "0"
    assert float(rows["df2/didx0[1]"][1]) == pytest.approx(x[:, 2].sum())
    assert all(r[-1] == "ok" for name, r in rows.items() if name.startswith("df"))
    comment = next(line for line in lines if "the constant arrays of the closed forms" in line)
    signature = next(line for line in lines if line.startswith("def compiled("))
    constants = comment[2:comment.index(":")].split(", ")
    assert sorted(constants) == ["idx1", "idx2", "idx3"]
    assert signature == f"def compiled(x, idx0, {', '.join(constants)}):"


def test_check_of_a_formula_with_a_mask_and_a_pad(capsys):
    status, out, _ = run(capsys, "check", "sum(masked_fill(x, [[1, 0, 0], [0, 0, 1]], 2.5) ** 2 * pad(x, [1, -1]))",
                         "--shape", "x=2x3", "--seed", "3")
    assert status == 0, out
    assert out.startswith("f = sum(") and "where t0 = array(((True, False, False), (False, False, True)))" in out
    assert "check passed: 6/6" in out


def test_explain_defines_a_formulas_constant_arrays(capsys):
    status, out, _ = run(capsys, "explain", "sum(index_select(x, 0, [2, 0]) ** 2)", "--shape", "x=3")
    assert status == 0
    assert out.splitlines()[:2] == ["Chain rule for df/dx, where f = sum(x[idx0]**2)",
                                    "  and idx0 = array((2, 0)), an array no one named (name the tensor to print its "
                                    "name), shape (2,)"]


def test_diff_of_a_picked_result(capsys):
    status, out, _ = run(capsys, "diff", "sum(sort(x)[0] * w)", "--shape", "x=3,w=3", "--wrt", "x",
                         "--at", "x=[3, 1, 2],w=[1, 2, 4]")
    assert status == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("df/dx[")}
    assert "df/dx = sort_by(w, x, dim=0, inverse=True)" in out
    # sorted: x[1] < x[2] < x[0], weighted 1, 2, 4
    assert [float(rows[f"df/dx[{i}]"][1]) for i in range(3)] == [4.0, 1.0, 2.0]
    assert all(r[-1] == "ok" for r in rows.values())


def test_diff_json(capsys):
    status, out, _ = run(capsys, "diff", "x**2*y", "--at", "x=3,y=2", "--json", "--code")
    assert status == 0
    document = json.loads(out)
    assert document["wrt"] == ["x", "y"]
    assert [d["expr"] for d in document["derivatives"]] == ["2*x*y", "x**2"]
    assert document["derivatives"][0]["value"] == pytest.approx(12.0)
    assert document["derivatives"][0]["finite_difference"] == pytest.approx(12.0, rel=1e-6)
    assert document["values"] == [pytest.approx(18.0)]
    assert document["code"].startswith("# returns")


def test_diff_json_arrays_keep_their_shape(capsys):
    status, out, _ = run(capsys, "diff", "sum(w**2)", "--shape", "w=2x2", "--at", "w=[[1,2],[3,4]]", "--json")
    assert status == 0
    derivative = json.loads(out)["derivatives"][0]
    assert derivative["value"] == [[2.0, 4.0], [6.0, 8.0]]


# ---------------------------------------------------------------------------- usage errors
USAGE_ERRORS = [
    (["diff"], "required"),
    (["diff", "x", "--order", "2", "--hessian"], "choose one of"),
    (["diff", "x", "--latex", "--pretty"], "not allowed with"),
    (["diff", "x", "--bogus"], "unrecognized arguments"),
    (["diff", "x*y", "--at", "x=1"], "no value for y"),
    (["diff", "x*y", "--at", "x=1,y=2,z=3"], "does not use"),
    (["diff", "x*y", "--at", "x=one"], "must be a number"),
    (["diff", "x**2", "--at", "x=[1,2]"], "declare it with --shape x=2"),
    (["diff", "x @ w", "--shape", "x=2,w=2x3"], "needs a scalar expression"),
    (["diff", "sum(w)", "--shape", "w=2", "--hessian"], "needs scalar variables"),
    (["diff", "x", "--wrt", "x,x"], "twice"),
    (["diff", "x", "--wrt", "eval"], "Python builtin"),
    (["diff", "2 + 3"], "no variables"),
    (["diff", "x", "--shape", "x=3q"], "must look like 3x2"),
    (["check", "x", "--at", "y=1"], "does not use"),
    (["explain", "x*y"], "one variable at a time"),
    (["graph", "x", "-o", "graph.txt"], "cannot tell the graph format"),
    (["graph", "x", "--at", "x=1"], "--at only applies with --tape"),
    ([], None),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize("argv, words", USAGE_ERRORS, ids=[" ".join(a) or "(none)" for a, _ in USAGE_ERRORS])
def test_usage_errors_exit_2_on_stderr(capsys, empty_cwd, argv, words):
    status, out, err = run(capsys, *argv)
    assert status == 2
    if words is not None:
        assert out == ""
        assert err.startswith("symgrad: error:") and words in err
    assert "Traceback" not in err
    assert os.listdir(empty_cwd) == []


# Every numeric option of every subcommand, with values it must refuse as usage errors
# (status 2, argparse's "argument --opt: ..." naming the value) rather than run with them
# and report a failed check (--seed -1 reached NumPy, --atol nan made every element fail).
NUMERIC_OPTIONS = {
    ("diff", "--order"): ["0", "11", "-1", "1.5", "nan", "two"],
    ("check", "--seed"): ["-1", "1.5", "nan", "inf", "seven"],
    ("check", "--atol"): ["-1", "nan", "inf", "-inf", "tiny"],
    ("check", "--rtol"): ["-1", "nan", "inf", "-1e-3", "tiny"],
    ("graph", "--seed"): ["-1", "1.5", "nan", "seven"],
    ("export", "--seed"): ["-1", "1.5", "nan", "seven"],
}
BAD_NUMBERS = [(command, option, value) for (command, option), values in NUMERIC_OPTIONS.items() for value in values]


def test_the_table_covers_every_numeric_option():
    """A new numeric option must join NUMERIC_OPTIONS (and get a validating type)."""
    subparsers = next(a for a in build_parser()._actions if a.choices and isinstance(a.choices, dict))
    numeric = {(command, action.option_strings[-1])
               for command, parser in subparsers.choices.items() for action in parser._actions
               if action.option_strings and action.type is not None and action.type is not str}
    assert numeric == set(NUMERIC_OPTIONS)


@pytest.mark.parametrize("command, option, value", BAD_NUMBERS, ids=[" ".join(c) for c in BAD_NUMBERS])
def test_bad_numeric_options_are_usage_errors(capsys, empty_cwd, command, option, value):
    expression = "sin(x)*y"
    status, out, err = run(capsys, command, expression, option, value)
    assert status == 2, err
    assert out == ""
    assert err.startswith(f"symgrad: error: argument {option}: ") and repr(value) in err, err
    assert os.listdir(empty_cwd) == []


@pytest.mark.parametrize("command, option, value", [("diff", "--order", "10"), ("check", "--seed", "0"),
                                                    ("check", "--atol", "0"), ("check", "--rtol", "0.5"),
                                                    ("graph", "--seed", "12345678901234567890"),
                                                    ("export", "--seed", "12345678901234567890")])
def test_good_numeric_options_at_their_edges_run(capsys, empty_cwd, command, option, value):
    status, _, err = run(capsys, command, "sin(x)*y", option, value)
    assert status == 0, err


def test_help_shows_examples(capsys):
    for argv in (["--help"], ["diff", "--help"], ["check", "--help"], ["graph", "--help"]):
        status, out, _ = run(capsys, *argv)
        assert status == 0
        assert 'symgrad diff "sin(x)*exp(-y**2)" --wrt x,y' in out


# ---------------------------------------------------------------------------- hostile input
HOSTILE = [
    # expression, words in the error message
    ("__import__('os').system('touch pwned')", "attribute access ('.system')"),
    ("open('pwned', 'w').write('x')", "attribute access ('.write')"),
    ("open('pwned', 'w')", "calling 'open' is not allowed"),
    ("exec(\"open('pwned','w')\")", "calling 'exec' is not allowed"),
    ("eval('1+1')", "calling 'eval' is not allowed"),
    ("().__class__.__base__.__subclasses__()", "attribute access"),
    ("lambda: __import__('os')", "lambda is not allowed"),
    ("[open('pwned','w') for _ in 'a']", "list comprehension"),
    ("globals()['__builtins__']", "indexing"),
    ("breakpoint()", "calling 'breakpoint' is not allowed"),
    ("x.__dict__", "attribute access ('.__dict__')"),
    ("'rm -rf /'", "string literal"),
    ("f'{x}'", "f-string"),
    ("9**9**9**9", "power is too large"),
    ("x if x else x", "conditional expression"),
    ("__builtins__", "starts with '_'"),
    ("import os", "syntax error"),
    ("x; import os", "syntax error"),
    ("x\nimport os", "character '\\n'"),
    ("x\u202e + y", "U+202E"),
    ("sin(x, k=1)", "keyword argument"),
    ("x +* 2", "syntax error: invalid syntax (column 4)"),
    ("sin(x", "never closed"),
    ("x ^ 2", "bitwise xor"),
    ("1/0", "not a finite real formula"),
]


@pytest.mark.parametrize("command", ["diff", "check", "graph"])
@pytest.mark.parametrize("expression, words", HOSTILE, ids=[repr(e[:24]) for e, _ in HOSTILE])
def test_hostile_and_malformed_expressions_are_refused(capsys, empty_cwd, command, expression, words):
    status, out, err = run(capsys, command, expression)
    assert status == 2
    assert out == ""
    assert err.startswith("symgrad: error: ") and words in err
    assert "Traceback" not in err
    assert os.listdir(empty_cwd) == []


def test_malformed_expression_points_at_the_column(capsys):
    status, _, err = run(capsys, "diff", "sin(x) + cos(y).imag")
    assert status == 2
    assert err.splitlines() == [
        "symgrad: error: attribute access ('.imag') is not allowed in an expression (column 17)",
        "  sin(x) + cos(y).imag",
        "                  ^",
    ]


def test_hostile_values_and_shapes_are_refused(capsys, empty_cwd):
    for argv in (["diff", "x", "--at", "x=__import__('os').system('touch pwned')"],
                 ["diff", "x", "--at", "x=[open('pwned')]"],
                 ["diff", "x", "--shape", "x=__import__('os')"],
                 ["diff", "x", "--wrt", "__import__('os')"]):
        status, _, err = run(capsys, *argv)
        assert status == 2 and err.startswith("symgrad: error:")
    assert os.listdir(empty_cwd) == []


# ---------------------------------------------------------------------------- check
def test_check_passes_with_a_three_way_table(capsys):
    status, out, err = run(capsys, "check", "tanh(x)*y**2", "--at", "x=0.3,y=-2")
    assert (status, err) == (0, "")
    header = next(line for line in out.splitlines() if "symbolic" in line)
    assert header.split() == ["symbolic", "tape", "finite", "difference", "fd", "error", "abs", "error"]
    row = next(line for line in out.splitlines() if line.startswith("x ")).split()
    expected = (1 - np.tanh(0.3) ** 2) * 4
    assert [float(v) for v in row[1:4]] == pytest.approx([expected] * 3, rel=1e-6)
    assert 0 < float(row[4]) < 1e-5  # the finite difference's own estimated error
    assert row[-1] == "ok"
    assert "check passed: 2/2" in out


def test_check_with_arrays_and_random_point(capsys):
    status, out, _ = run(capsys, "check", "sum(sigmoid(x @ w))", "--shape", "x=3,w=3x2", "--seed", "1")
    assert status == 0
    assert "w[2, 1]" in out and "check passed: 9/9" in out


def test_check_reports_a_kink_without_failing(capsys):
    status, out, _ = run(capsys, "check", "relu(x)", "--at", "x=0")
    assert status == 0
    assert "kink" in out


def test_check_fails_with_status_1_when_the_tape_is_wrong(capsys, monkeypatch):
    """A wrong hand-written VJP is caught: the tape disagrees with finite differences (and
    the closed form does not)."""
    from symgrad.ops import OPS

    wrong = dataclasses.replace(OPS["sin"], vjp=lambda xp, g, ans, x: (g * 2,))
    monkeypatch.setitem(OPS, "sin", wrong)
    status, out, err = run(capsys, "check", "sin(x)*y", "--at", "x=0.5,y=2")
    assert status == 1
    assert "MISMATCH (tape vs finite differences)" in out and "check FAILED" in out
    assert err.startswith("symgrad: error: gradient check failed for 'sin(x)*y' at x:")


def test_check_fails_where_the_function_is_not_finite(capsys):
    status, out, err = run(capsys, "check", "sqrt(x)", "--at", "x=-1")
    assert status == 1 and "NOT FINITE" in out


def test_check_work_does_not_grow_with_the_array(capsys):
    """Finite differences at FD_SAMPLE elements of a large variable, the engines compared
    on all of them (vectorised): the same function calls for 100 and 20,000 elements.
    (Before, one difference per element: 20,000 differences, each evaluating the whole
    formula twice; 1,000,000 elements, the documented limit, would have taken hours.)"""
    from symgrad.cli import FD_SAMPLE
    from symgrad.testing import count_calls

    def check(n):
        return count_calls(lambda: main(["check", "sum(sin(x)*x)", "--shape", f"x={n}"]), limit=limit)[0]

    limit = None
    small = check(2 * FD_SAMPLE)
    limit = 2 * small
    large = check(20_000)
    assert large <= 1.2 * small, (small, large)
    out = capsys.readouterr().out
    assert f"check passed: {FD_SAMPLE}/{FD_SAMPLE}" in out
    assert (f"note: x has 20000 elements: finite differences at {FD_SAMPLE} of them (where the engines differ "
            "most, and drawn with --seed 0); symbolic and tape agree on all 20000") in out


@pytest.mark.parametrize("position", [0, 12_345, 99_999])
def test_check_of_a_large_array_finds_one_wrong_element_anywhere(capsys, monkeypatch, position):
    """A VJP wrong at one element of 100,000 fails the check, whatever the sample, and the
    table shows that element: the elements where the engines differ most are checked."""
    from symgrad.ops import OPS

    right = OPS["sin"].vjp
    wrong = dataclasses.replace(OPS["sin"], vjp=lambda xp, g, ans, x: (
        right(xp, g, ans, x)[0] + (np.arange(np.size(x)).reshape(np.shape(x)) == position),))
    monkeypatch.setitem(OPS, "sin", wrong)
    status, out, err = run(capsys, "check", "sum(sin(x))", "--shape", "x=100000")
    assert status == 1
    row = next(line for line in out.splitlines() if line.startswith(f"x[{position}] "))
    assert row.endswith("MISMATCH (tape vs finite differences)")
    assert "symbolic and tape DISAGREE on 1 of 100000" in out
    assert err.startswith(f"symgrad: error: gradient check failed for 'sum(sin(x))' at x[{position}]:")


def test_check_json_of_a_sampled_array_leaves_unchecked_differences_null(capsys):
    from symgrad.cli import FD_SAMPLE

    status, out, _ = run(capsys, "check", "sum(x*x)", "--shape", "x=200", "--json")
    assert status == 0
    (gradient,) = json.loads(out)["gradients"]
    checked = [i for i, v in enumerate(gradient["finite_difference"]) if v is not None]
    assert len(checked) == FD_SAMPLE and all(v is not None for v in gradient["tape"])
    assert [gradient["finite_difference"][i] for i in checked] == pytest.approx([gradient["tape"][i] for i in checked])


def test_check_json(capsys):
    status, out, _ = run(capsys, "check", "x*exp(y)", "--at", "x=2,y=0", "--json")
    assert status == 0
    document = json.loads(out)
    assert document["passed"] is True
    gradient = {g["wrt"]: g for g in document["gradients"]}
    assert gradient["x"]["symbolic"] == pytest.approx(1.0) and gradient["y"]["tape"] == pytest.approx(2.0)


# ---------------------------------------------------------------------------- graph
def test_graph_prints_dot_on_stdout(capsys, empty_cwd):
    status, out, _ = run(capsys, "graph", "sin(x)*exp(-y**2)", "--adjoints")
    assert status == 0
    assert out.startswith("digraph symgrad {") and out.rstrip().endswith("}")
    assert 'grad: exp(-y**2)*cos(x)' in out
    assert os.listdir(empty_cwd) == []


def test_graph_writes_dot_file(capsys, empty_cwd):
    status, out, _ = run(capsys, "graph", "x*y + sin(x)", "--tape", "-o", "g.dot")
    assert status == 0 and out == "wrote g.dot\n"
    text = (empty_cwd / "g.dot").read_text()
    assert "MulBackward0" in text and "SinBackward0" in text


@pytest.mark.skipif(not viz.has_dot(), reason="Graphviz 'dot' is not installed")
@pytest.mark.parametrize("name", ["graph.svg", "graph.png"])
def test_graph_writes_svg_and_png_with_dot(capsys, empty_cwd, name):
    status, _, _ = run(capsys, "graph", "sin(x)*exp(-y**2)", "-o", name, "--adjoints")
    assert status == 0
    data = (empty_cwd / name).read_bytes()
    assert data.startswith(b"\x89PNG") if name.endswith("png") else b"<svg" in data


def test_graph_without_dot_fails_cleanly_and_writes_nothing(capsys, empty_cwd, monkeypatch):
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    status, out, err = run(capsys, "graph", "x*y", "-o", "graph.svg")
    assert status == 1 and out == ""
    assert "needs the Graphviz 'dot' program" in err
    assert os.listdir(empty_cwd) == []


# ---------------------------------------------------------------------------- subprocess
def _python_m(*argv, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "symgrad", *argv], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def test_python_m_symgrad_diff(tmp_path):
    result = _python_m("diff", "sin(x)*exp(-y**2)", "--wrt", "x,y", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == "df/dx = exp(-y**2)*cos(x)\ndf/dy = -2*y*exp(-y**2)*sin(x)\n"


def test_python_m_symgrad_refuses_code_and_creates_nothing(tmp_path):
    result = _python_m("diff", "__import__('os').system('touch pwned')", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == "" and "attribute access ('.system')" in result.stderr
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []


def test_python_m_symgrad_help_and_check(tmp_path):
    result = _python_m("--help", cwd=tmp_path)
    assert result.returncode == 0 and "examples:" in result.stdout
    result = _python_m("check", "sin(x)*x", "--at", "x=0.7", cwd=tmp_path)
    assert result.returncode == 0 and "check passed" in result.stdout


# ---------------------------------------------------------------------------- fuzz
CLI_FRAGMENTS = ["x", "y", "2", "+", "-", "*", "**", "/", "(", ")", "sin(", "exp(", "__import__", "('os')", ".system",
                 "open(", "'p'", ",", "lambda:", "[", "]", "=", ";", " ", "eval", "9**9**9", "\\", "@"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=20), st.lists(st.sampled_from(CLI_FRAGMENTS), max_size=8).map("".join)),
       command=st.sampled_from(["diff", "check", "graph"]))
def test_fuzz_the_command_line(text, command, tmp_path_factory):
    """Any string as the expression: status 0, 1 (a check that cannot agree, e.g. at a
    pole) or 2, never a traceback, and no file is created."""
    where = tmp_path_factory.mktemp("cli")
    before = os.getcwd()
    os.chdir(where)
    try:
        import io
        from contextlib import redirect_stderr, redirect_stdout

        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            status = main([command, "--", text])
    finally:
        os.chdir(before)
    assert status in (0, 1, 2)
    assert "Traceback" not in err.getvalue()
    if status == 2:
        assert err.getvalue().startswith("symgrad: error:")
    if status == 1:
        assert "gradient check failed" in err.getvalue() or "error:" in err.getvalue()
    assert os.listdir(where) == []


def test_parser_is_buildable_and_documents_every_command():
    parser = build_parser()
    text = parser.format_help()
    for command in ("diff", "check", "graph"):
        assert command in text
