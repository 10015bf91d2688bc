"""Progress indication (``symgrad.set_progress``): shown when asked, silent otherwise.

Output is captured from standard error (``capsys``), with tqdm and with the plain
fallback line (tqdm hidden).  ``"auto"`` mode needs a terminal and long work: a fake
terminal stands in for the first, :data:`symgrad.progress.AUTO_DELAY` for the second
(0 s: any work is long; a very large delay: no work is).
"""
from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import progress as progress_module
from symgrad.progress import progress


@pytest.fixture(autouse=True)
def restore_mode():
    before = symgrad.get_progress()
    yield
    symgrad.set_progress(before)


@pytest.fixture(params=["tqdm", "plain"])
def bar(request, monkeypatch):
    """Run the test with tqdm's bar and with the plain line."""
    if request.param == "tqdm":
        pytest.importorskip("tqdm")
    else:
        monkeypatch.setattr(progress_module, "_load_tqdm", lambda: None)
    return request.param


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("mode", [True, False, "auto"])
def test_modes_are_kept(mode):
    symgrad.set_progress(mode)
    assert symgrad.get_progress() is mode if isinstance(mode, bool) else symgrad.get_progress() == mode


@pytest.mark.parametrize("mode", ["on", 1, 0, None, "AUTO"])
def test_other_modes_are_refused(mode):
    with pytest.raises(ValueError, match=r'set_progress takes True, False or "auto", got'):
        symgrad.set_progress(mode)


def test_on_shows_every_step_and_the_total(bar, capsys):
    symgrad.set_progress(True)
    assert list(progress(range(7), desc="my work", unit="chunk")) == list(range(7))
    err = capsys.readouterr().err
    assert "my work" in err and "7/7" in err
    if bar == "plain":
        assert "\rmy work: 7/7 chunk (100%) [" in err and err.endswith(" s]\n")


@pytest.mark.parametrize("mode", [False, "auto"])  # "auto": standard error is not a terminal under capsys
def test_off_returns_the_iterable_and_prints_nothing(bar, capsys, mode):
    symgrad.set_progress(mode)
    items = [1, 2, 3]
    assert progress(items, desc="quiet") is items
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("delay,shown", [(0.0, True), (1e9, False)])
def test_auto_shows_only_long_work_on_a_terminal(bar, monkeypatch, delay, shown):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(progress_module, "AUTO_DELAY", delay)
    symgrad.set_progress("auto")
    assert sum(progress(range(5), desc="long work")) == 10
    assert ("long work" in terminal.getvalue()) is shown


def test_chunked_evaluation_reports_each_chunk(bar, capsys):
    symgrad.set_progress(True)
    X = np.random.default_rng(0).normal(size=(50, 2))
    g = symgrad.chunked(symgrad.grad(lambda w, X: ((X @ w) ** 2).sum()), chunk_size=10, batch_argnums=1)
    np.testing.assert_allclose(g(np.ones(2), X), 2 * X.T @ (X @ np.ones(2)), rtol=1e-12)
    err = capsys.readouterr().err
    assert "symgrad chunks" in err and "5/5" in err


def test_a_derivation_reports_its_nodes(bar, capsys):
    symgrad.set_progress(True)
    x = sp.Symbol("x", real=True)
    assert symgrad.diff(sp.sin(x) * sp.exp(x), x) == sp.exp(x) * sp.sin(x) + sp.exp(x) * sp.cos(x)
    assert "symgrad deriving" in capsys.readouterr().err


def test_progress_is_off_by_default_in_a_pipe(capsys):
    """The default ("auto") prints nothing when standard error is not a terminal."""
    assert symgrad.get_progress() == "auto"
    x = sp.Symbol("x", real=True)
    symgrad.diff(sp.sin(x) ** 2, x)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("with_tqdm", [True, False], ids=["tqdm", "plain"])
def test_a_notebook_shows_long_work_by_default_and_keeps_one_final_line(with_tqdm):
    """In a Jupyter kernel (the ``notebook`` extra), ``"auto"`` shows long work; the saved
    cell keeps one line saying it is done and how long it took, short work shows nothing."""
    if with_tqdm:
        pytest.importorskip("tqdm")
    from tests.kernel import run_cells, tracebacks

    setup = ("import time\nfrom symgrad import progress as progress_module\n"
             "progress_module.AUTO_DELAY = 0.3\n" + ("" if with_tqdm else "progress_module._load_tqdm = lambda: None\n"))
    long_work = ("total = 0\nfor k in progress_module.progress(range(40), desc='long work', unit='chunk'):\n"
                 "    time.sleep(0.03)\n    total += k")
    stopped = ("for k in progress_module.progress(range(40), desc='stopped work', unit='chunk'):\n"
               "    time.sleep(0.03)\n    if k == 19:\n        break")
    short_work = "sum(progress_module.progress(range(5), desc='short work'))"
    outputs = run_cells([setup, long_work, stopped, short_work, "total"])
    assert not any(tracebacks(cell) for cell in outputs)
    for cell, expected in ((outputs[1], r"long work: 40/40 chunk done in [0-9]+\.[0-9] s"),
                           (outputs[2], r"stopped work: 20/40 chunk stopped in [0-9]+\.[0-9] s")):
        (line,) = cell
        assert line.output_type == "display_data" and re.fullmatch(expected, line.data["text/plain"])
    assert [o.data["text/plain"] for o in outputs[3]] == ["10"]
    assert [o.data["text/plain"] for o in outputs[4]] == [str(sum(range(40)))]
