"""symgrad.export: each target on a table of programs (among them the benchmark suite's
W1-W3, imported from ``benchmarks/``), checked against the eager tape engine (and torch's
gradcheck for the torch target); verification catches a corrupted export and writes
nothing; bad inputs and programs a target cannot express raise clear errors."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import symgrad
import symgrad.nn.functional as F
from symgrad.exporters import ExportError, ExportVerificationError, c_target, numpy_target

sys.path.append(str(Path(__file__).resolve().parent.parent / "benchmarks"))  # last: shadows nothing
from w1_formula import w1  # noqa: E402  (the benchmark programs W1-W3, defined once)
from w2_rosenbrock import rosen  # noqa: E402
from w3_logreg import w3  # noqa: E402


def least_squares(w, X, y):
    return ((X @ w - y) ** 2).mean()


def logistic_regression(w, X, y):
    return F.binary_cross_entropy((X @ w).sigmoid(), y)


def softmax_cross_entropy(W, X, Y):
    return -(Y * (X @ W).log_softmax(dim=1)).sum(dim=1).mean()


def tanh_mlp(W1, W2, X, y):
    return (((X @ W1).tanh() @ W2 - y) ** 2).mean()


def rosenbrock(x):
    """W2 (the benchmark suite's vectorised Rosenbrock function)."""
    return rosen(x)


def one_hot(rng, rows, classes):
    return np.eye(classes)[rng.integers(0, classes, rows)]


# name -> (function, example arguments from a generator, argnums)
PROGRAMS = {
    "least_squares": (least_squares, lambda r: (r.standard_normal(3), r.standard_normal((6, 3)),
                                                r.standard_normal(6)), 0),
    "logistic_regression": (logistic_regression, lambda r: (r.standard_normal(3), r.standard_normal((8, 3)),
                                                            (r.random(8) > 0.5).astype(float)), 0),
    "softmax_cross_entropy": (softmax_cross_entropy, lambda r: (r.standard_normal((3, 4)), r.standard_normal((5, 3)),
                                                                one_hot(r, 5, 4)), 0),
    "tanh_mlp": (tanh_mlp, lambda r: (r.standard_normal((3, 4)), r.standard_normal(4), r.standard_normal((5, 3)),
                                      r.standard_normal(5)), (0, 1)),
    "rosenbrock": (rosenbrock, lambda r: (r.random(5),), 0),
    # W1: a 3-input formula (sin, exp, log, tanh, cos, a power 1.5), summed over points
    "w1": (w1, lambda r: tuple(r.uniform(-1.0, 1.0, (3, 40))), (0, 1, 2)),
    # W3: logistic regression with a bias, mean(BCEWithLogits(X @ W + b, Y))
    "w3": (w3, lambda r: (r.standard_normal((5, 3)) * 0.1, r.standard_normal(3) * 0.1, r.standard_normal((40, 5)),
                          (r.random((40, 3)) < 0.5).astype(float)), (0, 1)),
}


def tape_value_and_grads(f, args, argnums):
    """The eager tape engine's value and gradients, the reference every target is held to."""
    wrt = (argnums,) if isinstance(argnums, int) else argnums
    call = [symgrad.tensor(a, requires_grad=True) if i in wrt else a for i, a in enumerate(args)]
    with symgrad.backward_engine("tape"):
        out = f(*call)
        out.backward()
    return out.detach().numpy(), [call[i].grad.numpy() for i in wrt]



@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_numpy_export_matches_the_tape_engine(name, rng, tmp_path):
    f, make, argnums = PROGRAMS[name]
    ex = symgrad.export(f, *make(rng), argnums=argnums, path=tmp_path / f"{name}.py")
    assert ex.paths == [tmp_path / f"{name}.py"] and ex.points_checked == 4
    namespace: dict = {}
    exec(compile(ex.paths[0].read_text(), str(ex.paths[0]), "exec"), namespace)
    args = make(rng)  # new random inputs of the same shapes
    dynamic = [a for a in args]
    value, grads = namespace["value_and_grad"](*dynamic)
    expected_value, expected_grads = tape_value_and_grads(f, args, argnums)
    grads = grads if isinstance(argnums, tuple) else (grads,)
    np.testing.assert_allclose(value, expected_value, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(namespace["value"](*dynamic), expected_value, rtol=1e-10, atol=1e-12)
    alone = namespace["grad"](*dynamic)
    for got, got_alone, expected in zip(grads, alone if isinstance(argnums, tuple) else (alone,), expected_grads):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got_alone, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_numpy_export_imports_only_numpy(name, rng, tmp_path):
    f, make, argnums = PROGRAMS[name]
    path = tmp_path / "exported.py"
    symgrad.export(f, *make(rng), argnums=argnums, path=path)
    script = textwrap.dedent(f"""
        import sys, runpy
        module = runpy.run_path({str(path)!r})
        assert not any(m == "symgrad" or m.startswith(("symgrad.", "sympy")) for m in sys.modules), sys.modules
        print(sorted(m for m in module if not m.startswith("__"))[:0], "ok")
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", "-c", script], env=env, capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] ok"


def test_numpy_export_is_readable(rng):
    ex = symgrad.export(least_squares, *PROGRAMS["least_squares"][1](rng))
    source = ex.source
    assert "    w: shape (3,), float64 (differentiated)" in source
    assert "    grad_w = X.T @ ((-y + X @ w)/3)" in source        # the closed form in the docstring
    assert "    # grad_w = X.T @ ((-y + X @ w)/3)" in source      # and as a comment above its code
    assert "_t0" not in source and "t0 = matmul(X, w) - y" in source
    assert [line for line in source.splitlines() if line.startswith("import")] == ["import numpy"]


def test_exported_module_checks_input_shapes(rng):
    ex = symgrad.export(least_squares, *PROGRAMS["least_squares"][1](rng))
    namespace: dict = {}
    exec(ex.source, namespace)
    with pytest.raises(ValueError, match=r"X must have shape \(6, 3\), the shape this module was derived for; "
                                         r"got \(2, 3\)"):
        namespace["value"](np.ones(3), np.ones((2, 3)), np.ones(6))


def test_a_helper_calling_a_shadowed_builtin_reads_the_saved_builtin(rng):
    # the generated code calls symgrad's `max` helper; normalize_dims calls the builtin max
    ex = symgrad.export(lambda x: x.max() + (x ** 2).sum(), rng.standard_normal(4))
    assert "builtin_max = max" in ex.source and "size = builtin_max(ndim, 1)" in ex.source


def test_a_corrupted_export_is_caught_and_nothing_is_written(rng, tmp_path, monkeypatch):
    original = numpy_target.write

    def flip_a_sign(program):
        sources = original(program)
        return {suffix: text.replace("grad_w = matmul(", "grad_w = -matmul(") for suffix, text in sources.items()}

    monkeypatch.setattr(numpy_target, "write", flip_a_sign)
    path = tmp_path / "grad.py"
    with pytest.raises(ExportVerificationError, match=r"the exported numpy code's value_and_grad\(\.\.\.\) grad_w "
                                                      r"differs from symgrad's at the example arguments \(w=") as err:
        symgrad.export(least_squares, *PROGRAMS["least_squares"][1](rng), path=path)
    assert err.value.target == "numpy" and err.value.difference > 0
    assert list(tmp_path.iterdir()) == []


def test_an_existing_path_is_refused_unless_overwrite(rng, tmp_path):
    path = tmp_path / "grad.py"
    path.write_text("keep me\n")
    args = PROGRAMS["rosenbrock"][1](rng)
    with pytest.raises(ExportError, match="grad.py' exists; pass overwrite=True"):
        symgrad.export(rosenbrock, *args, path=path)
    assert path.read_text() == "keep me\n"
    symgrad.export(rosenbrock, *args, path=path, overwrite=True)
    assert path.read_text().startswith('"""Value and gradient of rosenbrock')


@pytest.mark.parametrize("kwargs, message", [
    (dict(target="fortran"), r"unknown export target 'fortran'; choose one of \["),
    (dict(path="grad.txt"), r"the numpy target writes a \.py file, got the path 'grad.txt'"),
    (dict(path="no/such/dir/grad.py"), r"the directory 'no/such/dir' of the path"),
    (dict(argnums=1), r"argnums names argument 1, which is not a traced array"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message, rng):
    with pytest.raises(ExportError, match=message):
        symgrad.export(rosenbrock, rng.random(5), **kwargs)


def test_inputs_computed_from_arguments_cannot_be_exported(rng):
    def cross_entropy_of_labels(W, X, labels):
        return F.cross_entropy(X @ W, labels)

    with pytest.raises(ExportError, match=r"cannot export cross_entropy_of_labels: for its 3 array arguments its "
                                          r"closed form reads the inputs \['W', 'X', 'idx0'"):
        symgrad.export(cross_entropy_of_labels, rng.standard_normal((3, 4)), rng.standard_normal((5, 3)),
                       rng.integers(0, 4, 5))


def test_static_arguments_are_fixed_in_the_export(rng):
    def power_sum(x, n):
        return (x ** n).sum()

    x = rng.random(3)
    ex = symgrad.export(power_sum, x, 3)
    namespace: dict = {}
    exec(ex.source, namespace)
    np.testing.assert_allclose(namespace["grad"](x), 3 * x ** 2)


# ---------------------------------------------------------------------- torch
def import_path(path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_torch_export_matches_the_tape_engine_and_passes_gradcheck(name, rng, tmp_path):
    torch = pytest.importorskip("torch")
    f, make, argnums = PROGRAMS[name]
    ex = symgrad.export(f, *make(rng), argnums=argnums, target="torch", path=tmp_path / f"{name}_torch.py")
    module = import_path(ex.paths[0])
    wrt = (argnums,) if isinstance(argnums, int) else argnums
    args = make(rng)
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=i in wrt) for i, a in enumerate(args)]
    out = getattr(module, name)(*leaves)
    out.backward()
    expected_value, expected_grads = tape_value_and_grads(f, args, argnums)
    np.testing.assert_allclose(out.detach().numpy(), expected_value, rtol=1e-10, atol=1e-12)
    for i, expected in zip(wrt, expected_grads):
        np.testing.assert_allclose(leaves[i].grad.numpy(), expected, rtol=1e-9, atol=1e-12)
    fresh = [t.detach().clone().requires_grad_(t.requires_grad) for t in leaves]
    assert torch.autograd.gradcheck(getattr(module, name), fresh)


def test_torch_export_refuses_a_gradient_it_was_not_derived_for(rng):
    torch = pytest.importorskip("torch")
    ex = symgrad.export(least_squares, *PROGRAMS["least_squares"][1](rng), target="torch")
    namespace: dict = {}
    exec(ex.source, namespace)
    w, X, y = (torch.tensor(a, requires_grad=True) for a in PROGRAMS["least_squares"][1](rng))
    with pytest.raises(RuntimeError, match="this export differentiates w only, not X"):
        namespace["least_squares"](w, X, y).backward()


def test_a_corrupted_torch_export_is_caught_and_nothing_is_written(rng, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from symgrad.exporters import torch_target

    original = torch_target.write

    def flip_a_sign(program):
        return {suffix: text.replace("return g * grad_x", "return -g * grad_x")
                for suffix, text in original(program).items()}

    monkeypatch.setattr(torch_target, "write", flip_a_sign)
    with pytest.raises(ExportVerificationError, match=r"the exported torch code's RosenbrockFunction backward grad_x "
                                                      r"differs from symgrad's at the example arguments"):
        symgrad.export(rosenbrock, rng.random(5), target="torch", path=tmp_path / "rosenbrock.py")
    assert list(tmp_path.iterdir()) == []


def test_an_op_the_torch_target_cannot_express_raises(rng, tmp_path):
    with pytest.raises(ExportError, match="the torch target has no translation of 'tie_step'"):
        symgrad.export(lambda x, y: symgrad.maximum(x, y).sum(), rng.random(3), rng.random(3), target="torch",
                       path=tmp_path / "maximum.py")
    assert list(tmp_path.iterdir()) == []


def test_written_code_that_fails_is_reported_and_not_written(rng, tmp_path, monkeypatch):
    original = numpy_target.write
    monkeypatch.setattr(numpy_target, "write", lambda program: {
        ".py": original(program)[".py"].replace("import numpy", "import numpy\nraise RuntimeError('broken')")})
    with pytest.raises(ExportError, match=r"the written numpy code failed while it was verified \(RuntimeError: "
                                          r"broken\); nothing was written"):
        symgrad.export(rosenbrock, rng.random(5), path=tmp_path / "grad.py")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- command line
def test_export_command_writes_a_verified_module(tmp_path, capsys):
    from symgrad.cli import main

    path = tmp_path / "grad.py"
    assert main(["export", "sum(sigmoid(x @ w))", "--shape", "x=2,w=2x3", "--wrt", "w", "-o", str(path)]) == 0
    assert capsys.readouterr().out == (f"wrote {path}: the value of sum(sigmoid(x @ w)) and its gradient with respect "
                                       "to w (numpy), verified at 4 points\n")
    namespace: dict = {}
    exec(path.read_text(), namespace)
    x, w = np.array([0.5, -1.0]), np.arange(6.0).reshape(2, 3) / 6
    s = 1 / (1 + np.exp(-(x @ w)))
    np.testing.assert_allclose(namespace["grad"](x, w), np.outer(x, s * (1 - s)), rtol=1e-12)
    assert main(["export", "sum(sigmoid(x @ w))", "--shape", "x=2,w=2x3", "--wrt", "w", "-o", str(path)]) == 2
    assert "grad.py' exists; pass overwrite=True (--overwrite)" in capsys.readouterr().err


def test_export_command_prints_the_source_without_output_file(capsys):
    from symgrad.cli import main

    assert main(["export", "x*log(y)", "--at", "x=2,y=3"]) == 0
    printed = capsys.readouterr().out
    assert "    grad_x = log(y)\n    grad_y = x/y\n" in printed and "import numpy\n" in printed


def test_export_command_reports_a_verification_failure_with_status_1(monkeypatch, capsys):
    from symgrad.cli import main

    original = numpy_target.write
    monkeypatch.setattr(numpy_target, "write", lambda program: {
        ".py": original(program)[".py"].replace("grad_x = ", "grad_x = 1 + ")})
    assert main(["export", "x**2", "--wrt", "x"]) == 1
    assert "the exported numpy code's value_and_grad(...) grad_x differs from symgrad's" in capsys.readouterr().err


# ---------------------------------------------------------------------- C
def elementwise_least_squares(a, b, x, y):
    return ((a * x + b - y) ** 2).mean()


def elementwise_logistic_regression(a, b, x, y):
    return F.binary_cross_entropy((a * x + b).sigmoid(), y)


def one_unit_tanh_network(a, b, c, x, y):
    return ((c * (a * x + b).tanh() - y) ** 2).mean()


def rosenbrock_over_points(x, y):
    return (100 * (y - x ** 2) ** 2 + (1 - x) ** 2).sum()


# the table's programs in the form the c target takes: elementwise over points, scalar parameters
C_PROGRAMS = {
    "elementwise_least_squares": (elementwise_least_squares, lambda r: (
        float(r.standard_normal()), float(r.standard_normal()), r.standard_normal(40), r.standard_normal(40)), (0, 1)),
    "elementwise_logistic_regression": (elementwise_logistic_regression, lambda r: (
        float(r.standard_normal()), float(r.standard_normal()), r.standard_normal(40),
        (r.random(40) > 0.5).astype(float)), (0, 1)),
    "one_unit_tanh_network": (one_unit_tanh_network, lambda r: (
        float(r.standard_normal()), float(r.standard_normal()), float(r.standard_normal()), r.standard_normal(40),
        r.standard_normal(40)), (0, 1, 2)),
    "rosenbrock_over_points": (rosenbrock_over_points, lambda r: (r.random(40), r.random(40)), (0, 1)),
    "w1": PROGRAMS["w1"],  # elementwise over one shape already
}


@pytest.fixture
def compiler():
    from symgrad.symbolic.codegen.backends import CompilerNotFoundError
    from symgrad.symbolic.codegen.backends.cbuild import find_compiler

    try:
        return find_compiler()
    except CompilerNotFoundError as err:
        pytest.skip(f"no C compiler: {err}")


def build_and_load(compiler, source_path, tmp_path):
    import ctypes

    library = tmp_path / f"lib{source_path.stem}.so"
    subprocess.run(compiler + ["-O2", "-shared", "-fPIC", "-o", str(library), str(source_path), "-lm"], check=True)
    return ctypes.CDLL(str(library))


def call_c(function, n, inputs, out_shapes):
    import ctypes

    arrays = [np.ascontiguousarray(np.asarray(a, dtype=np.float64)) for a in inputs]
    outs = [np.zeros(s) for s in out_shapes]
    status = function(ctypes.c_long(n), *[ctypes.c_void_p(a.ctypes.data) for a in arrays + outs])
    return status, outs


@pytest.mark.parametrize("name", sorted(C_PROGRAMS))
def test_c_export_builds_with_plain_cc_and_matches_the_tape_engine(name, rng, tmp_path, compiler):
    f, make, argnums = C_PROGRAMS[name]
    ex = symgrad.export(f, *make(rng), argnums=argnums, target="c", path=tmp_path / f"{name}.c")
    assert ex.paths == [tmp_path / f"{name}.c", tmp_path / f"{name}.h"]
    subprocess.run(compiler + ["-O2", "-c", "-o", str(tmp_path / f"{name}.o"), str(ex.paths[0])], check=True)
    main_c = tmp_path / "main.c"  # the header alone declares everything a caller needs
    main_c.write_text(f'#include "{name}.h"\nint main(void) {{ return {name.upper()}_N == 40 ? 0 : 1; }}\n')
    subprocess.run(compiler + ["-O2", "-o", str(tmp_path / "main"), str(main_c), str(tmp_path / f"{name}.o"), "-lm"],
                   check=True, cwd=tmp_path)
    assert subprocess.run([str(tmp_path / "main")]).returncode == 0
    lib = build_and_load(compiler, ex.paths[0], tmp_path)
    args = make(rng)
    shapes = [np.shape(args[i]) for i in argnums]
    status, outs = call_c(getattr(lib, f"{name}_value_and_grad"), 40, args, [()] + shapes)
    assert status == 0
    expected_value, expected_grads = tape_value_and_grads(f, args, argnums)
    np.testing.assert_allclose(outs[0], expected_value, rtol=1e-10, atol=1e-12)
    for got, expected in zip(outs[1:], expected_grads):
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    status, (grad_alone, *_) = call_c(getattr(lib, f"{name}_grad"), 40, args, shapes)
    assert status == 0 and np.allclose(grad_alone, expected_grads[0], rtol=1e-9, atol=1e-12)


def test_c_functions_refuse_a_wrong_length_and_write_nothing(rng, tmp_path, compiler):
    ex = symgrad.export(rosenbrock_over_points, rng.random(40), rng.random(40), argnums=(0, 1), target="c",
                        path=tmp_path / "rosenbrock_over_points.c")
    lib = build_and_load(compiler, ex.paths[0], tmp_path)
    status, outs = call_c(lib.rosenbrock_over_points_value, 39, [rng.random(40), rng.random(40)], [()])
    assert status == -1 and outs[0] == 0.0


def test_a_corrupted_c_export_is_caught_and_nothing_is_written(rng, tmp_path, monkeypatch, compiler):
    original = c_target.write
    monkeypatch.setattr(c_target, "write", lambda program: {
        suffix: text.replace("grad_x[i] = ", "grad_x[i] = 1.0 + ") for suffix, text in original(program).items()})
    with pytest.raises(ExportVerificationError, match=r"the exported c code's rosenbrock_over_points_grad grad_x "
                                                      r"differs from symgrad's at the example arguments"):
        symgrad.export(rosenbrock_over_points, rng.random(40), rng.random(40), argnums=(0, 1), target="c",
                       path=tmp_path / "rosenbrock_over_points.c")
    assert list(tmp_path.iterdir()) == []


def pairs_of_neighbours(v):
    return (v[::2] * v[1::2]).sum()  # the adjoint of a strided slice: not read point by point


def running_total(x):
    return x.cumsum(0).sin().sum()


@pytest.mark.parametrize("name, message", [
    ("softmax_cross_entropy", r"the c target cannot translate log_softmax \(in log_softmax\(X @ W, dim=1\)\)"),
    ("running_total", r"the c target cannot translate cumsum \(in cumsum\(x, dim=0\)\)"),
    ("pairs_of_neighbours", r"the c target cannot translate index_put \(in scatter\(v\[::2\], \(6,\), s_\[1::2\]\)\)"),
])
def test_programs_the_c_target_cannot_express_raise(name, message, rng, tmp_path):
    f, make, argnums = {**PROGRAMS, "pairs_of_neighbours": (pairs_of_neighbours, lambda r: (r.random(6),), 0),
                        "running_total": (running_total, lambda r: (r.random(5),), 0)}[name]
    with pytest.raises(ExportError, match=message):
        symgrad.export(f, *make(rng), argnums=argnums, target="c", path=tmp_path / "f.c")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- C in steps: slices, matmul, several shapes
def sum_of_products(w, X):
    return (X @ w).sum()  # grad_w = X.T @ ones((4,)): a constant output of a loop, filled


def two_sums(w, X):
    return (X @ w).sum() + (w * w).sum()  # full sums inside the value's expression: loops of their own


def transposed_products(A, B):
    return (A @ B.T).tanh().mean()  # B.T read in place; grad_B = (A.T @ r).T computed as r.T @ A


def sums_over_both_axes(A, v):
    return (A.exp().sum(dim=1) * v).sum() + (A * A).sum(dim=0).mean()


def normalised_sines(x):
    return (x / x.sum()).sin().sum()  # a full sum inside an expression: its own loop first


def row_differences(m):
    return ((m[1:] - m[:-1]) ** 2).sum()  # slices of a 2-D array along its first axis


STEP_PROGRAMS = {
    **{name: PROGRAMS[name] for name in ("least_squares", "logistic_regression", "rosenbrock", "tanh_mlp", "w3")},
    "sum_of_products": (sum_of_products, lambda r: (r.standard_normal(3), r.standard_normal((4, 3))), (0, 1)),
    "two_sums": (two_sums, lambda r: (r.standard_normal(3), r.standard_normal((4, 3))), 0),
    "transposed_products": (transposed_products, lambda r: (r.standard_normal((3, 4)), r.standard_normal((5, 4))),
                            (0, 1)),
    "sums_over_both_axes": (sums_over_both_axes, lambda r: (r.standard_normal((3, 4)), r.standard_normal(3)), (0, 1)),
    "row_differences": (row_differences, lambda r: (r.standard_normal((5, 3)),), 0),
    "normalised_sines": (normalised_sines, lambda r: (r.random(5) + 0.5,), 0),
}
"""Programs the c target writes in steps (the c backend's plan): the table's W2 (slices), W3
(matmuls, a bias, a sum over the rows), inputs of several shapes, the outer product
``r[:, None] * h[None, :]`` of the MLP's gradient, and the other pieces a plan has."""


def call_exported(lib, ex, function, args, out_shapes, lengths=None):
    """``function`` of the exported C through its ABI (:func:`c_target.abi`: lengths, then the
    inputs, the outputs and the workspace, filled with NaN so that reading it before writing
    shows): ``(status, outputs)``."""
    import ctypes

    abi = c_target.abi(ex.program, ex.sources[".h"])
    lengths = [value for _, _, value in abi.lengths] if lengths is None else lengths
    arrays = [np.ascontiguousarray(np.asarray(a, dtype=np.float64)) for a in args]
    outs = [np.zeros(s) for s in out_shapes]
    work = [np.full(abi.work, np.nan)] if abi.work else []
    status = getattr(lib, f"{ex.program.name}_{function}")(
        *[ctypes.c_long(n) for n in lengths], *[ctypes.c_void_p(a.ctypes.data) for a in arrays + outs + work])
    return status, outs


@pytest.mark.parametrize("name", sorted(STEP_PROGRAMS))
def test_c_export_in_steps_builds_with_plain_cc_and_matches_the_tape_engine(name, rng, tmp_path, compiler):
    f, make, argnums = STEP_PROGRAMS[name]
    ex = symgrad.export(f, *make(rng), argnums=argnums, target="c", path=tmp_path / f"{name}.c")
    header = ex.sources[".h"]
    abi = c_target.abi(ex.program, header)
    assert abi.work > 0 and f"#define {name.upper()}_WORK {abi.work}L" in header
    main_c = tmp_path / "main.c"  # the header alone declares everything a caller needs
    main_c.write_text(f'#include "{name}.h"\nstatic double work[{name.upper()}_WORK];\n'
                      f'int main(void) {{ return work[0] == 0.0 ? 0 : 1; }}\n')
    subprocess.run(compiler + ["-O2", "-o", str(tmp_path / "main"), str(main_c), str(ex.paths[0]), "-lm"],
                   check=True, cwd=tmp_path)
    assert subprocess.run([str(tmp_path / "main")]).returncode == 0
    lib = build_and_load(compiler, ex.paths[0], tmp_path)
    wrt = (argnums,) if isinstance(argnums, int) else argnums
    for args in (make(rng), make(rng)):  # new inputs: nothing of the first call stays in the workspace
        shapes = [np.shape(args[i]) for i in wrt]
        expected_value, expected_grads = tape_value_and_grads(f, args, argnums)
        status, outs = call_exported(lib, ex, "value_and_grad", args, [()] + shapes)
        assert status == 0
        np.testing.assert_allclose(outs[0], expected_value, rtol=1e-10, atol=1e-12)
        for got, expected in zip(outs[1:], expected_grads):
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
        status, grads = call_exported(lib, ex, "grad", args, shapes)
        assert status == 0
        for got, expected in zip(grads, expected_grads):
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
        status, (value,) = call_exported(lib, ex, "value", args, [()])
        assert status == 0 and np.isclose(value, expected_value, rtol=1e-10, atol=1e-12)


def test_c_export_in_steps_takes_a_length_per_array_input_and_refuses_a_wrong_one(rng, tmp_path, compiler):
    f, make, argnums = PROGRAMS["w3"]
    ex = symgrad.export(f, *make(rng), argnums=argnums, target="c", path=tmp_path / "w3.c")
    abi = c_target.abi(ex.program, ex.sources[".h"])
    assert [(p, m, v) for p, m, v in abi.lengths] == [("W_n", "W3_W_N", 15), ("b_n", "W3_b_N", 3),
                                                        ("X_n", "W3_X_N", 200), ("Y_n", "W3_Y_N", 120)]
    assert ("int w3_value_and_grad(long W_n, long b_n, long X_n, long Y_n, const double *W, const double *b, "
            "const double *X, const double *Y, double *value, double *grad_W, double *grad_b, double *work);"
            in ex.sources[".h"])
    lib = build_and_load(compiler, ex.paths[0], tmp_path)
    for wrong in ([15, 3, 200, 119], [3, 15, 200, 120]):
        status, outs = call_exported(lib, ex, "value_and_grad", make(rng), [(), (5, 3), (3,)], lengths=wrong)
        assert status == -1 and all(not o.any() for o in outs)


def w3_at(rows, columns, classes):
    """W3's arguments with ``rows`` samples: enough for the OpenMP loops to run in threads."""
    return lambda r: (r.standard_normal((columns, classes)) * 0.1, r.standard_normal(classes) * 0.1,
                      r.standard_normal((rows, columns)), (r.random((rows, classes)) < 0.5).astype(float))


LARGE_STEP_PROGRAMS = {
    # slices: a stencil loop over more points than the backend's PARALLEL_MIN (threads)
    "rosen": (rosen, lambda r: (r.uniform(-1.5, 1.5, 300_007),), 0),
    # matmuls of 3,000 x 100 by 100 x 4 (above PARALLEL_MIN multiply-adds), a sum over 3,000 rows
    "w3": (w3, w3_at(3000, 100, 4), (0, 1)),
}


@pytest.mark.parametrize("build", ["plain", "openmp", "native"])
@pytest.mark.parametrize("name", sorted(LARGE_STEP_PROGRAMS))
def test_c_builds_in_steps_agree_with_the_numpy_backend(name, build, rng, tmp_path, compiler):
    f, make, argnums = LARGE_STEP_PROGRAMS[name]
    args = make(rng)
    ex = symgrad.export(f, *args, argnums=argnums, target="c", path=tmp_path / f"{name}.c")
    lib = build_with(compiler, C_BUILDS[build], ex.paths[0], tmp_path)
    value, grads = symgrad.value_and_grad(f, argnums=argnums, backend="numpy")(*args)
    grads = [grads] if isinstance(argnums, int) else list(grads)
    wrt = (argnums,) if isinstance(argnums, int) else argnums
    status, outs = call_exported(lib, ex, "value_and_grad", args, [()] + [np.shape(args[i]) for i in wrt])
    assert status == 0
    np.testing.assert_allclose(outs[0], value, rtol=1e-12)
    for got, expected in zip(outs[1:], grads):  # matmul sums in another order than BLAS: rounding
        np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-14)


C_MAIN_W3 = r"""#include <stdio.h>
#include <math.h>
#include "w3.h"

int main(void) {
    static double W[W3_W_N], b[W3_b_N], X[W3_X_N], Y[W3_Y_N], grad_W[W3_W_N], grad_b[W3_b_N], work[W3_WORK];
    double value;
    for (long i = 0; i < W3_W_N; i++) W[i] = 0.1 * sin(0.37 * i);
    for (long i = 0; i < W3_b_N; i++) b[i] = 0.1 * cos(0.11 * i);
    for (long i = 0; i < W3_X_N; i++) X[i] = sin(0.05 * i + 1.0);
    for (long i = 0; i < W3_Y_N; i++) Y[i] = i % 3 == 0;
    if (w3_value_and_grad(W3_W_N, W3_b_N, W3_X_N, W3_Y_N, W, b, X, Y, &value, grad_W, grad_b, work) != 0) return 1;
    printf("%a", value);
    for (long i = 0; i < W3_W_N; i++) printf(" %a", grad_W[i]);
    for (long i = 0; i < W3_b_N; i++) printf(" %a", grad_b[i]);
    printf("\n");
    return 0;
}
"""


def test_the_openmp_build_in_steps_gives_the_same_bits_with_any_number_of_threads(rng, tmp_path, compiler):
    if not c_target.has_openmp(compiler, tmp_path):
        pytest.skip(f"{' '.join(compiler)} has no OpenMP")
    symgrad.export(w3, *w3_at(3000, 100, 4)(rng), argnums=(0, 1), target="c", path=tmp_path / "w3.c")
    (tmp_path / "main.c").write_text(C_MAIN_W3)
    plain, openmp = _printed_by_every_thread_count(compiler, tmp_path, "w3.c")
    np.testing.assert_allclose(openmp, plain, rtol=1e-12, atol=1e-15)  # the builds differ by rounding only


def _printed_by_every_thread_count(compiler, folder, source: str) -> tuple[list, list]:
    """The numbers ``main.c`` with ``source`` prints, built plain and with OpenMP: each build
    must print the same bits with 1, 2 and 3 threads."""
    printed = {}
    for build in ("plain", "openmp"):
        program = folder / f"main_{build}"
        subprocess.run(compiler + C_BUILDS[build] + ["-o", str(program), "main.c", source, "-lm"], check=True,
                       cwd=folder)
        for threads in ("1", "2", "3", "2"):
            run = subprocess.run([str(program)], capture_output=True, text=True, check=True,
                                 env={**os.environ, "OMP_NUM_THREADS": threads})
            printed.setdefault(build, set()).add(run.stdout)
    assert len(printed["openmp"]) == 1 and len(printed["plain"]) == 1
    return tuple([float.fromhex(v) for v in next(iter(printed[b])).split()] for b in ("plain", "openmp"))


def test_a_corrupted_c_export_in_steps_is_caught_and_nothing_is_written(rng, tmp_path, monkeypatch, compiler):
    original = c_target.write
    monkeypatch.setattr(c_target, "write", lambda program: {  # the matmul loop nests skip their last term
        suffix: text.replace("for (long k = 0; k < 5; k++)", "for (long k = 0; k < 4; k++)")
        for suffix, text in original(program).items()})
    f, make, argnums = PROGRAMS["w3"]
    with pytest.raises(ExportVerificationError, match=r"the exported c code's w3_value .*differs from symgrad's at "
                                                      r"the example arguments"):
        symgrad.export(f, *make(rng), argnums=argnums, target="c", path=tmp_path / "w3.c")
    assert list(tmp_path.iterdir()) == []


def test_the_c_target_takes_float64_only(rng):
    with pytest.raises(ExportError, match="the c target takes float64 inputs; x is float32"):
        symgrad.export(rosenbrock_over_points, rng.random(4).astype(np.float32), rng.random(4).astype(np.float32),
                       target="c")


def shifted_sum(a, x):
    return (x + a).sum()  # grad_x is ones((n,)): a scalar broadcast to the loop's shape


def scalar_formula(a, b):
    return (a * b).sin() + a.exp()  # no array at all: no loop


def special_values_program(x, y):
    return (symgrad.maximum(x, y) + x.sigmoid() * y.exp() + (x * x + y * y).sqrt() + symgrad.softplus(x) * y.tanh()
            + x.abs() / (1 + y * y) + y / x).sum()


def points(n):
    """Makers of W1-like arguments at ``n`` points (scalars stay scalars)."""
    return {
        "w1": (w1, lambda r: tuple(r.uniform(-1.0, 1.0, (3, n))), (0, 1, 2)),
        "one_unit_tanh_network": (one_unit_tanh_network, lambda r: (
            float(r.standard_normal()), float(r.standard_normal()), float(r.standard_normal()), r.standard_normal(n),
            r.standard_normal(n)), (0, 1, 2)),
        "elementwise_logistic_regression": (elementwise_logistic_regression, lambda r: (
            float(r.standard_normal()), float(r.standard_normal()), r.standard_normal(n),
            (r.random(n) > 0.5).astype(float)), (0, 1)),
        "shifted_sum": (shifted_sum, lambda r: (float(r.standard_normal()), r.standard_normal(n)), (0, 1)),
        "scalar_formula": (scalar_formula, lambda r: (float(r.standard_normal()), float(r.standard_normal())), (0, 1)),
    }


SEVERAL_BLOCKS = 3 * 2048 + 5
"""Points enough for several blocks of the exported loop (so the OpenMP build runs threads) and a short last one."""

SPECIAL_VALUES = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.5, -0.75, 5e-324, 1e300]


C_BUILDS = {"plain": c_target.PLAIN_FLAGS, "openmp": c_target.RECOMMENDED_FLAGS, "native": c_target.NATIVE_FLAGS}


def build_with(compiler, flags, source_path, tmp_path):
    """The exported file built with ``flags`` as a shared library (the test skips where the compiler has no OpenMP)."""
    import ctypes

    if "-fopenmp" in flags and not c_target.has_openmp(compiler, tmp_path):
        pytest.skip(f"{' '.join(compiler)} has no OpenMP")
    library = tmp_path / f"lib{source_path.stem}_{len(flags)}.so"
    subprocess.run(compiler + flags + ["-shared", "-fPIC", "-o", str(library), str(source_path), "-lm"], check=True)
    return ctypes.CDLL(str(library))


def assert_c_agrees_with_the_numpy_backend(lib, f, name, args, argnums, rtol):
    """Every output of the three C functions equals the NumPy backend's to ``rtol`` (NaN where it has NaN,
    the same infinities)."""
    with np.errstate(all="ignore"):
        value, grads = symgrad.value_and_grad(f, argnums=argnums, backend="numpy")(*args)
    expected = [np.asarray(value)] + [np.asarray(g) for g in grads]
    n = max(np.size(a) for a in args)
    for function, indices in (("value", [0]), ("grad", range(1, len(expected))),
                              ("value_and_grad", range(len(expected)))):
        status, outs = call_c(getattr(lib, f"{name}_{function}"), n, args, [np.shape(expected[i]) for i in indices])
        assert status == 0 and [o.shape for o in outs] == [expected[i].shape for i in indices]
        for k, out in zip(indices, outs):
            np.testing.assert_allclose(out, expected[k], rtol=rtol, atol=0.0 if k == 0 else rtol,  # a gradient may be ~0
                                       equal_nan=True, err_msg=f"{name}_{function} output {k}")


@pytest.mark.parametrize("build", ["plain", "openmp", "native"])
@pytest.mark.parametrize("name", sorted(points(1)))
def test_c_builds_agree_with_the_numpy_backend(name, build, rng, tmp_path, compiler):
    f, make, argnums = points(SEVERAL_BLOCKS)[name]
    ex = symgrad.export(f, *make(rng), argnums=argnums, target="c", path=tmp_path / f"{f.__name__}.c")
    lib = build_with(compiler, C_BUILDS[build], ex.paths[0], tmp_path)
    # float64 rounding: vectorised libm functions are within a few ulp, sums are added in another order
    assert_c_agrees_with_the_numpy_backend(lib, f, f.__name__, make(rng), argnums, rtol=1e-12)


@pytest.mark.parametrize("build", ["plain", "openmp", "native"])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_c_builds_agree_with_the_numpy_backend_at_special_values(build, rng, tmp_path, compiler):
    ex = symgrad.export(special_values_program, rng.standard_normal(SEVERAL_BLOCKS), rng.standard_normal(SEVERAL_BLOCKS),
                        argnums=(0, 1), target="c", path=tmp_path / "special_values_program.c")
    lib = build_with(compiler, C_BUILDS[build], ex.paths[0], tmp_path)
    pairs = np.array([(a, b) for a in SPECIAL_VALUES for b in SPECIAL_VALUES]).T  # every pair, in every block
    x, y = [np.resize(p, SEVERAL_BLOCKS) for p in pairs]
    for args in ((x, y), (np.where(np.isfinite(x), x, 2.0), np.where(np.isfinite(y), y, -3.0))):  # also a finite sum
        assert_c_agrees_with_the_numpy_backend(lib, special_values_program, "special_values_program", args, (0, 1),
                                               rtol=1e-12)


@pytest.mark.parametrize("flags", [
    ["-O2", "-Werror"],  # the promise: plain cc -O2
    ["-O2", "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-Wno-unknown-pragmas"],  # ISO C99 but for pragmas
    c_target.RECOMMENDED_FLAGS + ["-Wall", "-Wextra", "-Werror"],
], ids=["plain", "c99", "openmp"])
@pytest.mark.parametrize("name", ["w1", "special_values_program", "scalar_formula", "rosenbrock", "w3"])
def test_the_c_file_builds_without_warnings(name, flags, rng, tmp_path, compiler):
    if "-fopenmp" in flags and not c_target.has_openmp(compiler, tmp_path):
        pytest.skip(f"{' '.join(compiler)} has no OpenMP")
    f, make, argnums = {**points(40), "special_values_program": (
        special_values_program, lambda r: (r.standard_normal(40), r.standard_normal(40)), (0, 1)),
        "rosenbrock": PROGRAMS["rosenbrock"], "w3": PROGRAMS["w3"]}[name]
    ex = symgrad.export(f, *make(rng), argnums=argnums, target="c", path=tmp_path / f"{name}.c")
    built = subprocess.run(compiler + flags + ["-c", "-o", str(tmp_path / f"{name}.o"), str(ex.paths[0])],
                           capture_output=True, text=True)
    assert built.returncode == 0 and "warning" not in built.stderr, built.stderr


def test_the_c_header_is_usable_from_cpp(rng, tmp_path, compiler):
    import shutil

    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    ex = symgrad.export(w1, *points(40)["w1"][1](rng), argnums=(0, 1, 2), target="c", path=tmp_path / "w1.c")
    user = tmp_path / "user.cpp"
    user.write_text('#include "w1.h"\nint call(const double *x, double *v) { return w1_value(W1_N, x, x, x, v); }\n')
    built = subprocess.run([cxx, "-Wall", "-Werror", "-fsyntax-only", str(user)], capture_output=True, text=True,
                           cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert ex.paths[1].read_text().count('extern "C"') == 1


C_MAIN = r"""#include <stdio.h>
#include <math.h>
#include "w1.h"

int main(void) {
    static double x[W1_N], y[W1_N], z[W1_N], grad_x[W1_N], grad_y[W1_N], grad_z[W1_N];
    double value;
    for (long i = 0; i < W1_N; i++) { x[i] = sin(0.37 * i); y[i] = cos(0.11 * i); z[i] = sin(0.05 * i + 1.0); }
    if (w1_value_and_grad(W1_N, x, y, z, &value, grad_x, grad_y, grad_z) != 0) return 1;
    printf("%a %a %a\n", value, grad_x[W1_N / 2], grad_z[W1_N - 1]);
    return 0;
}
"""


def test_the_openmp_build_gives_the_same_bits_with_any_number_of_threads(rng, tmp_path, compiler):
    if not c_target.has_openmp(compiler, tmp_path):
        pytest.skip(f"{' '.join(compiler)} has no OpenMP")
    n = 20 * 2048 + 7  # 21 blocks over the threads
    symgrad.export(w1, *points(n)["w1"][1](rng), argnums=(0, 1, 2), target="c", path=tmp_path / "w1.c")
    (tmp_path / "main.c").write_text(C_MAIN)
    plain, openmp = _printed_by_every_thread_count(compiler, tmp_path, "w1.c")
    np.testing.assert_allclose(openmp, plain, rtol=1e-12)  # the builds differ by rounding only


@pytest.mark.parametrize("argument", ["n", "double", "value", "sg_x"])
def test_an_argument_the_c_code_cannot_name_raises(argument, rng):
    namespace: dict = {}
    exec(f"def f({argument}, x):\n    return ({argument} * x).sum()\n", namespace)
    with pytest.raises(ExportError, match=rf"the argument '{argument}' is .* in the written code; rename the argument"):
        symgrad.export(namespace["f"], 2.0, rng.random(4), argnums=(0, 1), target="c")


# ---------------------------------------------------------------------- JAX
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_jax_export_matches_the_tape_engine_through_its_custom_vjp(name, rng, tmp_path):
    jax = pytest.importorskip("jax")
    f, make, argnums = PROGRAMS[name]
    ex = symgrad.export(f, *make(rng), argnums=argnums, target="jax", path=tmp_path / f"{name}_jax.py")
    module = import_path(ex.paths[0])
    args = make(rng)
    wrt = (argnums,) if isinstance(argnums, int) else argnums
    with jax.enable_x64(True):
        value, grads = jax.jit(jax.value_and_grad(getattr(module, name), argnums=wrt))(*args)
    expected_value, expected_grads = tape_value_and_grads(f, args, argnums)
    np.testing.assert_allclose(value, expected_value, rtol=1e-10, atol=1e-12)
    for got, expected in zip(grads, expected_grads):
        assert np.asarray(got).dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_jax_export_gives_nan_for_an_input_it_was_not_derived_for(rng):
    jax = pytest.importorskip("jax")
    args = PROGRAMS["least_squares"][1](rng)
    namespace: dict = {}
    exec(symgrad.export(least_squares, *args, target="jax").source, namespace)
    with jax.enable_x64(True):
        grad_X = jax.grad(namespace["least_squares"], argnums=1)(*args)
    assert np.isnan(np.asarray(grad_X)).all()


def test_a_corrupted_jax_export_is_caught_and_nothing_is_written(rng, tmp_path, monkeypatch):
    pytest.importorskip("jax")
    from symgrad.exporters import jax_target

    original = jax_target.write
    monkeypatch.setattr(jax_target, "write", lambda program: {
        ".py": original(program)[".py"].replace("return (g * grad_x,)", "return (2 * g * grad_x,)")})
    with pytest.raises(ExportVerificationError, match=r"the exported jax code's jax.value_and_grad\(rosenbrock\) "
                                                      r"grad_x differs from symgrad's at the example arguments"):
        symgrad.export(rosenbrock, rng.random(5), target="jax", path=tmp_path / "rosenbrock.py")
    assert list(tmp_path.iterdir()) == []
