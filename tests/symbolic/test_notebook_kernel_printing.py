"""In a real Jupyter kernel, closed forms display without a traceback and within the
budget, whether ``sympy.init_printing()`` runs before symgrad is imported or after it was
used (the ``notebook`` extra: skipped without nbclient and ipykernel)."""
from __future__ import annotations

import pytest

from symgrad.symbolic.printing.notebook import DISPLAY_BUDGET
from tests.kernel import run_cells, tracebacks

IMPORT = "import sympy as sp\nimport symgrad\nfrom symgrad.symbolic import ClosedForm, diff, per_element"
INIT_PRINTING = "import sympy\nsympy.init_printing()"
USE = """x = symgrad.tensor(0.5, requires_grad=True, name="x")
y = x
for _ in range(400):
    y = y.sin()
deep = diff(y, x)
s = sp.Symbol("s")
chain = s
for _ in range(1_500):
    chain = sp.sin(chain, evaluate=False)
w = symgrad.tensor([0.1, -0.2], requires_grad=True, name="w")
data = symgrad.tensor([[float(i % 7), float(i % 5) - 2.0] for i in range(300)], name="data")
wide = per_element(diff((data @ w).sigmoid().sum(), w))"""
DISPLAYS = ["deep", "chain", "wide", "ClosedForm(deep, name='dy_dx')", "sp.Symbol('a') ** 2 / 2", "diff(s ** 3, s)"]


@pytest.mark.parametrize("order", ["init_printing first", "init_printing after use"])
def test_every_form_displays_without_a_traceback(order):
    setup = [INIT_PRINTING, IMPORT, USE] if order == "init_printing first" else [IMPORT, USE, INIT_PRINTING]
    outputs = run_cells(setup + DISPLAYS, timeout=900)
    for source, cell in zip(setup + DISPLAYS, outputs):
        assert not tracebacks(cell), (source, tracebacks(cell))
    for source, cell in zip(DISPLAYS, outputs[len(setup):]):
        (result,) = [o for o in cell if o.output_type == "execute_result"]
        assert {"text/plain", "text/latex"} <= set(result.data), source
        assert all(len(shown) <= DISPLAY_BUDGET for shown in result.data.values()), source
    small = outputs[len(setup) + DISPLAYS.index("sp.Symbol('a') ** 2 / 2")][0].data
    assert small["text/latex"] == r"$\displaystyle \frac{a^{2}}{2}$"
    assert small["text/plain"] == " 2\na \n──\n2 "  # init_printing's pretty form: still what a small form shows
