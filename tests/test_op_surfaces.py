"""Every op of issue 16's list ("The ops people's code uses": its elementwise, reduction,
linear-algebra and shape ops) on every surface its "done when" names: a record (an op of the
table, a composite of ``tape/composites.py``, a function of ``symgrad.nn.functional``) that
``symgrad``, ``symgrad.linalg``, ``Tensor`` or ``nn.functional`` exposes, a row in
``docs/api.md``'s table of every op, the random-program generator (``default_ops``) and the
formula language (``symgrad.parsing.FUNCTIONS``).

Every op is on every surface (the ops with integer or several results, and those whose
forms hold constant arrays, are in formulas too: ``argmax(x)``, ``sort(x)[0]``,
``gather(x, 1, [[0], [1]])``; see ``symgrad/parsing.py``). The issue's nn modules, tensor habits, transforms and
pytrees have tests of their own (``test_nn_layers.py``, ``test_tensor_habits.py``,
``test_autograd_functional.py``, ``symbolic/test_transform_pytrees.py``).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import symgrad
import symgrad.linalg
import symgrad.nn.functional as F
import symgrad.tape.composites as composites
from symgrad.ops import OPS
from symgrad.parsing import FUNCTIONS
from symgrad.testing.generator import default_ops

ELEMENTWISE = ["log1p", "expm1", "log2", "log10", "exp2", "sinh", "cosh", "asin", "acos", "atan", "atan2", "asinh",
               "acosh", "atanh", "reciprocal", "rsqrt", "square", "hypot", "logaddexp", "sinc", "erf", "erfc", "gelu",
               "silu", "elu", "leaky_relu", "softsign", "deg2rad", "rad2deg", "floor", "ceil", "round", "trunc", "frac",
               "remainder", "fmod", "sign", "copysign", "lerp", "xlogy", "nan_to_num"]
REDUCTIONS = ["prod", "var", "std", "cumsum", "cumprod", "amax", "amin", "argmax", "argmin", "sort", "topk", "norm",
              "logcumsumexp", "count_nonzero"]
LINEAR_ALGEBRA = ["einsum", "tensordot", "outer", "inner", "dot", "kron", "trace", "diag", "diagonal", "triu", "tril",
                  "det", "slogdet", "inv", "solve", "cholesky"]
SHAPE = ["flip", "roll", "tile", "repeat", "repeat_interleave", "expand", "movedim", "flatten", "ravel", "unbind",
         "chunk", "split", "select", "narrow", "masked_fill", "gather", "scatter_add", "index_select",
         "take_along_dim", "atleast_1d", "atleast_2d", "pad"]
ISSUE_16_OPS = ELEMENTWISE + REDUCTIONS + LINEAR_ALGEBRA + SHAPE
"""The issue's op list, as it spells the ops."""

RECORDS = {  # the issue's name -> the records computing it, where the names differ
    "inv": ("inverse",), "slogdet": ("det_sign", "logabsdet"), "dot": ("matmul",), "expand": ("broadcast_to",),
    "flatten": ("reshape",),
}
SPELLED = {  # the issue's name -> how a formula writes it, where that is not the name
    "inv": "inverse", "dot": "@", "flatten": "ravel",
}
OPERATORS = {"@", "%", "//"}
"""What formulas write as operators (``parsing._BINARY``)."""

def _records(name: str) -> tuple[str, ...]:
    return RECORDS.get(name, (name,))


def _api_rows() -> set[str]:
    page = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `([A-Za-z_0-9]+)` \|", page, re.MULTILINE))


RECORDED = set(OPS) | set(composites.__all__) | set(F.__all__)
"""Every record docs/api.md's table lists (``tests/test_op_reference.py``)."""


def _present(surface: str, name: str) -> bool:
    if surface == "record":
        return all(record in RECORDED for record in _records(name))
    if surface == "docs":
        return set(_records(name)) <= _api_rows()
    if surface == "generator":
        return set(_records(name)) <= set(default_ops())
    spelled = SPELLED.get(name, name)
    return spelled in FUNCTIONS or spelled in OPERATORS


SURFACES = ["record", "docs", "generator", "parser"]


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("name", ISSUE_16_OPS)
def test_every_issue_16_op_is_on_every_surface(name, surface):
    assert _present(surface, name), f"{name} is missing from the surface {surface}"


@pytest.mark.parametrize("name", ISSUE_16_OPS)
def test_every_issue_16_op_is_public(name):
    """``symgrad.<name>``, ``symgrad.linalg.<name>``, ``Tensor.<name>`` or ``nn.functional.<name>``."""
    assert any(hasattr(where, name) for where in (symgrad, symgrad.linalg, symgrad.Tensor, F)), name
