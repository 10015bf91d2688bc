"""``docs/api.md``'s table of every op: its PyTorch name, its NumPy name and whether the C
backend compiles it, made from the code.

To regenerate the table after adding or changing an op, a composite or a function of
``symgrad.nn.functional`` (needs torch, for the PyTorch names)::

    python tests/test_op_reference.py

which rewrites the block between the markers in ``docs/api.md`` (read the diff before
committing it).  The tests below fail when the page's table differs from what the code
gives now: an op missing, a name wrong, a C column that the C translator disagrees with.

Where each column comes from:

* **rows**: every record of the op table (``symgrad.ops.OPS``), every composite
  (``symgrad.tape.composites.__all__``) and every function of ``symgrad.nn.functional``
  (its ``__all__``).  A composite or function needs a sample call in ``SAMPLES`` (the test
  fails naming it otherwise); an op is called as the first row of ``CASES`` in
  ``tests/test_ops_table.py`` calls it.
* **PyTorch**: the first of ``torch.<name>``, ``torch.special.<name>``,
  ``torch.nn.functional.<name>``, ``torch.linalg.<name>``, ``torch.Tensor.<name>`` that
  exists (``torch.nn.functional`` first for its own functions), unless ``SPELLED`` writes
  the op differently (an operator, an engine helper without a PyTorch name).
* **NumPy**: the op record's ``numpy`` field (the function ``np.<name>(tensor)`` runs), else
  the NumPy function ``NUMPY`` names, else a NumPy function of the same name when it
  exists, else none; ``NOT_NUMPYS`` lists the names whose NumPy function of the same name
  computes something else (``np.select`` is not ``torch.select``).  Elementwise ops are
  checked by value against the NumPy function.
* **C**: the sample call is recorded, its closed form (the value) and the gradient of
  ``sum(g * value)`` with respect to each input are built, and the C translator that
  ``backend="c"`` uses on arrays (the ``c_fused`` backend's plan: full sums cut out,
  ``check_translatable`` on what is left) is asked whether it can translate them: ``yes``
  (value and gradients), ``value only``, or ``no`` with the first operation it cannot
  translate.  Nothing is compiled, so no C compiler is needed.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: python tests/test_op_reference.py
    sys.path.insert(0, str(ROOT))

import symgrad  # noqa: E402
import symgrad.nn.functional as F  # noqa: E402
import symgrad.tape.composites as composites  # noqa: E402
from symgrad.ops import OPS  # noqa: E402

PAGE = ROOT / "docs" / "api.md"
BEGIN = "<!-- the table of every op: made from the code; `python tests/test_op_reference.py` rewrites it -->\n"
END = "<!-- end of the table of every op -->"

SPELLED = {  # op -> how PyTorch writes it, where that is no function of the op's name
    "add": "`a + b`", "sub": "`a - b`", "neg": "`-x`", "mul": "`a * b`", "div": "`a / b`",
    "pow_scalar": "`x ** c`", "matmul": "`a @ b`", "getitem": "`x[index]`", "setitem": "`x[index] = v`",
    "cast": "`Tensor.to(dtype)`", "clamp_tensor": "`torch.clamp` (tensor bounds)",
    "sum_to": "`Tensor.sum_to_size`", "index_put": "none (the gradient of `x[index]`)",
    "extremum_mask": "none (the gradient of `max`/`min`)", "betaln": "none (`lgamma(a) + lgamma(b) - lgamma(a + b)`)",
    "bessel_i": "none (`torch.i0`, `torch.special.i1` for orders 0 and 1)",
    "bessel_ie": "none (`torch.special.i0e`, `i1e` for orders 0 and 1)",
    "det_sign": "`torch.linalg.slogdet(A).sign`", "logabsdet": "`torch.linalg.slogdet(A).logabsdet`",
    "svd_u": "`torch.linalg.svd(A, full_matrices=False).U` (column signs fixed)",
    "svd_v": "`torch.linalg.svd(A, full_matrices=False).Vh.mT` (column signs fixed)",
    "sort_values": "`torch.sort(x, dim, descending, stable=True).values`",
    "sort_by": "none (`x.gather(dim, i)`, inverse `scatter`, with `i` the stable sort's indices of `key`)",
}

NUMPY = {  # symgrad name -> the NumPy function computing it, where the names differ
    "cat": "concatenate", "permute": "transpose", "inverse": "linalg.inv", "det": "linalg.det",
    "solve": "linalg.solve", "cholesky": "linalg.cholesky", "svdvals": "linalg.svdvals", "norm": "linalg.norm", "movedim": "moveaxis", "take_along_dim": "take_along_axis",
    "index_select": "take", "repeat": "tile", "repeat_interleave": "repeat", "asin": "arcsin",
    "acos": "arccos", "atan": "arctan", "asinh": "arcsinh", "acosh": "arccosh", "atanh": "arctanh",
    "atan2": "arctan2", "abs": "absolute", "clamp": "clip", "lgamma": "none (`scipy.special.gammaln`)",
    "erf": "none (`scipy.special.erf`)", "erfc": "none (`scipy.special.erfc`)",
    "xlogy": "none (`scipy.special.xlogy`)", "sigmoid": "none (`scipy.special.expit`)",
    "sort_values": "sort", "sort_by": "none (`take_along_axis(x, argsort(key, kind=\"stable\"), dim)`)",
}
NOT_NUMPYS = {"select", "split", "std", "var", "sort", "pad", "transpose"}
"""Names whose NumPy function of the same name takes other arguments or computes something
else (``np.std`` divides by ``n``, ``torch.std`` by ``n - 1``; ``np.split`` takes sections,
``torch.split`` sizes; ``np.sort`` gives no indices; ``np.pad`` takes pairs per axis;
``np.transpose`` reverses all axes): the table names no NumPy function for them unless
``NUMPY`` or the op record does."""


def _t(array, name, grad=True):
    return symgrad.tensor(np.asarray(array, dtype=np.float64), requires_grad=grad, name=name)


def _matrix(rng):
    return _t(rng.normal(size=(3, 4)), "x")


def _labels():
    return symgrad.tensor(np.array([0, 3, 1]), name="labels")


SAMPLES = {  # composite or nn.functional name -> (rng) -> (its output, the tensors it reads)
    "flip": lambda r: (lambda x: (composites.flip(x, (0,)), [x]))(_matrix(r)),
    "fliplr": lambda r: (lambda x: (composites.fliplr(x), [x]))(_matrix(r)),
    "flipud": lambda r: (lambda x: (composites.flipud(x), [x]))(_matrix(r)),
    "roll": lambda r: (lambda x: (composites.roll(x, 1, 0), [x]))(_matrix(r)),
    "movedim": lambda r: (lambda x: (composites.movedim(x, 0, 1), [x]))(_matrix(r)),
    "moveaxis": lambda r: (lambda x: (composites.moveaxis(x, 0, 1), [x]))(_matrix(r)),
    "ravel": lambda r: (lambda x: (composites.ravel(x), [x]))(_matrix(r)),
    "unbind": lambda r: (lambda x: (composites.unbind(x, 0), [x]))(_matrix(r)),
    "chunk": lambda r: (lambda x: (composites.chunk(x, 2, 1), [x]))(_matrix(r)),
    "split": lambda r: (lambda x: (composites.split(x, 2, 1), [x]))(_matrix(r)),
    "select": lambda r: (lambda x: (composites.select(x, 0, 1), [x]))(_matrix(r)),
    "narrow": lambda r: (lambda x: (composites.narrow(x, 1, 0, 2), [x]))(_matrix(r)),
    "masked_fill": lambda r: (lambda x: (composites.masked_fill(
        x, symgrad.tensor(np.arange(12).reshape(3, 4) % 3 == 0), 0.0), [x]))(_matrix(r)),
    "index_select": lambda r: (lambda x: (composites.index_select(x, 0, symgrad.tensor([0, 2])), [x]))(_matrix(r)),
    "gather": lambda r: (lambda x: (composites.gather(x, 1, symgrad.tensor([[0], [1], [3]])), [x]))(_matrix(r)),
    "scatter_add": lambda r: (lambda x, s: (composites.scatter_add(x, 1, symgrad.tensor([[0], [1], [3]]), s), [x, s]))(
        _matrix(r), _t(r.normal(size=(3, 1)), "s")),
    "take_along_dim": lambda r: (lambda x: (composites.take_along_dim(
        x, symgrad.tensor([[0], [1], [3]]), 1), [x]))(_matrix(r)),
    "atleast_1d": lambda r: (lambda s: (composites.atleast_1d(s), [s]))(_t(r.normal(), "s")),
    "atleast_2d": lambda r: (lambda v: (composites.atleast_2d(v), [v]))(_t(r.normal(size=4), "v")),
    "atleast_3d": lambda r: (lambda x: (composites.atleast_3d(x), [x]))(_matrix(r)),
    "outer": lambda r: (lambda v: (composites.outer(v, v), [v]))(_t(r.normal(size=4), "v")),
    "inner": lambda r: (lambda v: (composites.inner(v, v), [v]))(_t(r.normal(size=4), "v")),
    "trace": lambda r: (lambda a: (composites.trace(a), [a]))(_t(r.normal(size=(3, 3)), "a")),
    "diagonal": lambda r: (lambda x: (composites.diagonal(x), [x]))(_matrix(r)),
    "diag": lambda r: (lambda v: (composites.diag(v), [v]))(_t(r.normal(size=4), "v")),
    "triu": lambda r: (lambda x: (composites.triu(x), [x]))(_matrix(r)),
    "tril": lambda r: (lambda x: (composites.tril(x), [x]))(_matrix(r)),
    "var": lambda r: (lambda x: (composites.var(x), [x]))(_matrix(r)),
    "std": lambda r: (lambda x: (composites.std(x), [x]))(_matrix(r)),
    "tile": lambda r: (lambda x: (composites.tile(x, (2, 1)), [x]))(_matrix(r)),
    "repeat": lambda r: (lambda x: (composites.repeat(x, 2, 1), [x]))(_matrix(r)),
    "repeat_interleave": lambda r: (lambda x: (composites.repeat_interleave(x, 2, 0), [x]))(_matrix(r)),
    "kron": lambda r: (lambda a, b: (composites.kron(a, b), [a, b]))(_t(r.normal(size=(2, 2)), "a"),
                                                                      _t(r.normal(size=(2, 3)), "b")),
    "sort": lambda r: (lambda x: (composites.sort(x).values, [x]))(_matrix(r)),
    "topk": lambda r: (lambda x: (composites.topk(x, 2).values, [x]))(_matrix(r)),
    "count_nonzero": lambda r: _traced(composites.count_nonzero, _matrix(r)),
    "einsum": lambda r: (lambda x, y: (composites.einsum("ij,jk->ik", x, y), [x, y]))(
        _matrix(r), _t(r.normal(size=(4, 2)), "y")),
    "tensordot": lambda r: (lambda x, y: (composites.tensordot(x, y, 1), [x, y]))(
        _matrix(r), _t(r.normal(size=(4, 2)), "y")),
    # symgrad.nn.functional
    "linear": lambda r: (lambda x, w, b: (F.linear(x, w, b), [x, w, b]))(
        _matrix(r), _t(r.normal(size=(2, 4)), "W"), _t(r.normal(size=2), "b")),
    "relu": lambda r: (lambda x: (F.relu(x), [x]))(_matrix(r)),
    "sigmoid": lambda r: (lambda x: (F.sigmoid(x), [x]))(_matrix(r)),
    "tanh": lambda r: (lambda x: (F.tanh(x), [x]))(_matrix(r)),
    "softplus": lambda r: (lambda x: (F.softplus(x), [x]))(_matrix(r)),
    "softmax": lambda r: (lambda x: (F.softmax(x, dim=1), [x]))(_matrix(r)),
    "log_softmax": lambda r: (lambda x: (F.log_softmax(x, dim=1), [x]))(_matrix(r)),
    "dropout": lambda r: (lambda x: (F.dropout(x, p=0.5), [x]))(_matrix(r)),
    "layer_norm": lambda r: (lambda x: (F.layer_norm(x, (4,)), [x]))(_matrix(r)),
    "batch_norm": lambda r: (lambda x: (F.batch_norm(x, None, None, training=True), [x]))(_matrix(r)),
    "embedding": lambda r: (lambda w: (F.embedding(symgrad.tensor([1, 3, 1]), w), [w]))(_t(r.normal(size=(4, 2)), "E")),
    "mse_loss": lambda r: (lambda x: (F.mse_loss(x, _t(r.normal(size=(3, 4)), "t", False)), [x]))(_matrix(r)),
    "l1_loss": lambda r: (lambda x: (F.l1_loss(x, _t(r.normal(size=(3, 4)), "t", False)), [x]))(_matrix(r)),
    "huber_loss": lambda r: (lambda x: (F.huber_loss(x, _t(r.normal(size=(3, 4)), "t", False)), [x]))(_matrix(r)),
    "binary_cross_entropy": lambda r: (lambda p: (F.binary_cross_entropy(p, _t(r.integers(0, 2, (3, 4)), "t", False)),
                                                  [p]))(_t(r.uniform(0.1, 0.9, (3, 4)), "p")),
    "binary_cross_entropy_with_logits": lambda r: (lambda x: (F.binary_cross_entropy_with_logits(
        x, _t(r.integers(0, 2, (3, 4)), "t", False)), [x]))(_matrix(r)),
    "nll_loss": lambda r: (lambda x: (F.nll_loss(x, _labels()), [x]))(_matrix(r)),
    "cross_entropy": lambda r: (lambda x: (F.cross_entropy(x, _labels()), [x]))(_matrix(r)),
    "pad": lambda r: (lambda x: (F.pad(x, (1, 1)), [x]))(_matrix(r)),
    "conv1d": lambda r: (lambda x, w: (F.conv1d(x, w), [x, w]))(_t(r.normal(size=(1, 2, 5)), "x"),
                                                                 _t(r.normal(size=(3, 2, 2)), "K")),
    "conv2d": lambda r: (lambda x, w: (F.conv2d(x, w), [x, w]))(_t(r.normal(size=(1, 1, 5, 5)), "x"),
                                                                 _t(r.normal(size=(2, 1, 3, 3)), "K")),
    "max_pool2d": lambda r: (lambda x: (F.max_pool2d(x, 2), [x]))(_t(r.normal(size=(1, 1, 4, 4)), "x")),
    "avg_pool2d": lambda r: (lambda x: (F.avg_pool2d(x, 2), [x]))(_t(r.normal(size=(1, 1, 4, 4)), "x")),
    "gelu": lambda r: (lambda x: (F.gelu(x), [x]))(_matrix(r)),
    "silu": lambda r: (lambda x: (F.silu(x), [x]))(_matrix(r)),
    "elu": lambda r: (lambda x: (F.elu(x), [x]))(_matrix(r)),
    "leaky_relu": lambda r: (lambda x: (F.leaky_relu(x), [x]))(_matrix(r)),
    "softsign": lambda r: (lambda x: (F.softsign(x), [x]))(_matrix(r)),
}


def _op_sample(name: str, rng: np.random.Generator):
    """Op ``name`` applied as the first row of ``tests/test_ops_table.py``'s ``CASES`` for it."""
    from symgrad.tape.tensor import apply_op
    from tests.test_ops_table import CASES, differentiable, draw

    case = next((c for c in CASES if c.op == name), None)
    if case is None:
        raise LookupError(f"the op {name!r} has no row in tests/test_ops_table.py's CASES")
    arrays, _ = draw(case, np.float64, rng)
    op = OPS[name]
    tensors = [symgrad.tensor(a, requires_grad=a.dtype.kind == "f" and differentiable(op, i), name="abcdef"[i])
               for i, a in enumerate(arrays)]
    return _traced(lambda *xs: apply_op(name, *xs, **case.attrs), *tensors)


def _traced(f, *tensors):
    """``(f(*tensors), tensors)`` recorded as a transform records it: ops without derivative
    (masks, argmax) too, so that the C column sees them."""
    from symgrad.tape import tracing

    with tracing.tracing(tensors):
        return f(*tensors), list(tensors)


def _torch_name(name: str, section: str) -> str:
    """``torch.<path>.<name>``, looked up first where symgrad keeps ``name`` (``symgrad.linalg``
    -> ``torch.linalg``, ``symgrad.nn.functional`` -> ``torch.nn.functional``), then in the
    other PyTorch namespaces."""
    import torch

    import symgrad.linalg

    places = [("torch", torch), ("torch.special", torch.special), ("torch.nn.functional", torch.nn.functional),
              ("torch.linalg", torch.linalg), ("torch.Tensor", torch.Tensor)]
    if section == "nn.functional" or (section == "op table" and name in F.__all__ and not hasattr(symgrad, name)):
        places.insert(0, places.pop(2))
    elif name in symgrad.linalg.__all__:
        places.insert(0, places.pop(3))
    for path, module in places:
        if callable(getattr(module, name, None)):
            return f"`{path}.{name}`"
    raise LookupError(f"{name!r} has no PyTorch function of its name: give its spelling in SPELLED")


def _numpy_name(name: str) -> str:
    op = OPS.get(name)
    if op is not None and op.numpy is not None:
        return f"`np.{op.numpy}`"
    if name in NUMPY:
        return NUMPY[name] if NUMPY[name].startswith("none") else f"`np.{NUMPY[name]}`"
    if name not in NOT_NUMPYS and callable(getattr(np, name, None)):
        return f"`np.{name}`"
    return "none"


def _c_column(value, tensors) -> str:
    """What the C translator of ``backend="c"`` (on arrays: ``c_fused``) says of ``value``'s
    closed form and of the gradients of ``sum(g * value)``."""
    from symgrad.symbolic import diff, tensor_expr
    from symgrad.symbolic.codegen.backends import UnsupportedExpressionError
    from symgrad.symbolic.codegen.backends.c_code import check_translatable, cut_reductions, split_reduction

    def refused(exprs) -> str | None:
        bodies, reductions = cut_reductions([split_reduction(e)[1] for e in exprs])
        try:
            check_translatable(list(bodies) + [r.arrays[0] for r in reductions], [f"out{k}" for k in range(
                len(bodies) + len(reductions))], "c_fused")
        except UnsupportedExpressionError as err:
            return re.search(r"cannot translate (\S+)", str(err)).group(1)
        return None

    outputs = [v for v in (value if isinstance(value, (tuple, list)) else [value]) if isinstance(v, symgrad.Tensor)]
    cannot = refused([tensor_expr(v) for v in outputs])
    if cannot is not None:
        return f"no (`{cannot}`)"
    floats = [v for v in outputs if np.dtype(v.dtype).kind == "f"]
    wrt = [t for t in tensors if t.requires_grad]
    if not floats or not wrt:
        return "yes"
    weighted = sum(((v * symgrad.tensor(np.linspace(0.5, 1.5, v.numel()).reshape(v.shape), name=f"g{k}")).sum()
                    for k, v in enumerate(floats)), start=symgrad.tensor(0.0))
    gradients = [g for g in diff(weighted, wrt, allow_unused=True)]
    cannot = refused(gradients)
    return "yes" if cannot is None else f"value only (gradient: `{cannot}`)"


SECTIONS = [("op table", "Ops of the op table (`symgrad.ops.OPS`)"),
            ("composite", "Composites (`symgrad.tape.composites`)"),
            ("nn.functional", "`symgrad.nn.functional`")]


def samples():
    """``(section, name, output, tensors it reads)`` of every op, composite and
    ``nn.functional`` function, called on inputs drawn from one seeded generator."""
    rng = np.random.default_rng(0)
    entries = ([("op table", name) for name in OPS] + [("composite", name) for name in composites.__all__]
               + [("nn.functional", name) for name in F.__all__])
    for section, name in entries:
        if section == "op table":
            value, tensors = _op_sample(name, rng)
        elif name in SAMPLES:
            value, tensors = SAMPLES[name](rng)
        else:
            raise LookupError(f"the {section} function {name!r} has no sample call in SAMPLES "
                              "(tests/test_op_reference.py): add one")
        yield section, name, value, tensors


def rows() -> list[tuple[str, str, str, str, str]]:
    """``(section, symgrad name, PyTorch, NumPy, C)`` for every op, composite and
    ``nn.functional`` function."""
    return [(section, name, SPELLED.get(name) or _torch_name(name, section),
             _numpy_name(name), _c_column(value, tensors)) for section, name, value, tensors in samples()]


def op_reference() -> str:
    """The markdown table ``docs/api.md`` shows between its markers."""
    table = rows()
    lines = []
    for section, title in SECTIONS:
        lines += ["", f"**{title}**", "", "| symgrad | PyTorch | NumPy | C (`backend=\"c\"`) |", "|---|---|---|---|"]
        lines += [f"| `{name}` | {torch_name} | {numpy_name} | {c} |"
                  for where, name, torch_name, numpy_name, c in table if where == section]
    return "\n".join(lines[1:]) + "\n"


def shown_rows() -> dict:
    """``{(section, name): C column}`` as the page shows them."""
    found, section = {}, None
    titles = {f"**{title}**": key for key, title in SECTIONS}
    for line in shown().splitlines():
        section = titles.get(line, section)
        cells = [cell.strip() for cell in line.strip("|").split("|")] if line.startswith("| `") else None
        if cells:
            found[(section, cells[0].strip("`"))] = cells[-1]
    return found


def shown() -> str:
    """The table as ``docs/api.md`` shows it now."""
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(BEGIN) + len(BEGIN)
    return text[start:text.index(END, start)]


@pytest.fixture(scope="module")
def generated() -> str:
    pytest.importorskip("torch", reason="the PyTorch names are looked up in torch")
    return op_reference()


def test_the_page_shows_the_table_the_code_gives(generated):
    assert shown() == generated, "docs/api.md's table of every op is stale: run python tests/test_op_reference.py"


def test_every_op_composite_and_function_has_a_row():
    listed = set(shown_rows())
    expected = ({("op table", name) for name in OPS} | {("composite", name) for name in composites.__all__}
                | {("nn.functional", name) for name in F.__all__})
    missing = expected - listed
    assert not missing, f"docs/api.md's table of every op lacks {sorted(missing)}: run python tests/test_op_reference.py"


def test_the_c_column_is_what_the_translator_says():
    """Without torch too: each row's C column, as the page shows it, against the translator."""
    page = shown_rows()
    for section, name, value, tensors in samples():
        assert page.get((section, name)) == _c_column(value, tensors), (section, name)


def test_the_numpy_names_exist_and_elementwise_ones_compute_the_op(rng):
    for name in list(OPS) + composites.__all__ + F.__all__:
        shown_name = _numpy_name(name)
        if shown_name.startswith("none"):
            continue
        function = np
        for part in shown_name.strip("`").removeprefix("np.").split("."):
            function = getattr(function, part)
        op = OPS.get(name)
        if op is not None and op.kind in ("elementwise", "mask") and name not in ("clamp", "nan_to_num", "where"):
            value, tensors = _op_sample(name, rng)
            expected = function(*[t.detach().numpy() for t in tensors])
            np.testing.assert_allclose(value.detach().numpy(), expected, rtol=1e-12, err_msg=name)


def _rewrite() -> bool:
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(BEGIN) + len(BEGIN)
    end = text.index(END, start)
    table = op_reference()
    if text[start:end] == table:
        return False
    PAGE.write_text(text[:start] + table + text[end:], encoding="utf-8")
    return True


if __name__ == "__main__":
    print("docs/api.md: the table of every op " + ("rewritten" if _rewrite() else "is current"))
