"""Progress indication for long work: chunked evaluation and long derivations.

One switch, :func:`set_progress`, decides whether symgrad shows progress:

* ``"auto"`` (the default): only on a terminal (standard error is one) or in a Jupyter
  kernel, and only for long work -- a bar appears once the work has run for
  :data:`AUTO_DELAY` seconds, so short calls print nothing;
* ``True``: always, from the first step (also when standard error is not a terminal);
* ``False``: never.

:func:`progress` wraps an iterable.  On a terminal, with `tqdm <https://tqdm.github.io>`_
installed (``pip install 'symgrad[scale]'``) the bar is tqdm's; otherwise it is one plain
line on standard error that rewrites itself.  In a Jupyter kernel the bar is one output
that updates itself in place (IPython's ``display_id``; the text is tqdm's meter when tqdm
is installed) and ends as one line, ``desc: 10/10 chunks done in 3.2 s``: that line is
what a saved or exported notebook keeps -- not a frozen widget ("Loading widget...",
tqdm's notebook bar) nor a stack of red standard-error lines.  When progress is off the
iterable is returned as it is, so a loop pays nothing.  This module imports neither SymPy
nor tqdm until it must.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator

__all__ = ["set_progress", "get_progress", "progress", "AUTO_DELAY"]

AUTO_DELAY = 2.0
"""Seconds of work after which ``"auto"`` mode starts showing a bar."""

PLAIN_INTERVAL = 0.2
"""Seconds between two redraws of the plain (no tqdm) line."""

_MODES = (True, False, "auto")
_mode: bool | str = "auto"


def set_progress(mode: bool | str) -> None:
    """Show progress always (``True``), never (``False``) or on a terminal or in a
    notebook for long work only (``"auto"``, the default).

    >>> set_progress(False); get_progress()
    False
    >>> set_progress("auto")
    >>> set_progress("sometimes")
    Traceback (most recent call last):
    ...
    ValueError: set_progress takes True, False or "auto", got 'sometimes'
    """
    global _mode
    if not any(mode is m or (isinstance(m, str) and mode == m) for m in _MODES):
        raise ValueError(f'set_progress takes True, False or "auto", got {mode!r}')
    _mode = mode


def get_progress() -> bool | str:
    """The current progress mode (see :func:`set_progress`).

    >>> get_progress() in (True, False, "auto")
    True
    """
    return _mode


def _load_tqdm() -> Any:
    """tqdm's (terminal) bar class, or None when tqdm is not installed.  Not ``tqdm.auto``:
    in a notebook its widget is what a saved notebook shows as "Loading widget...", and
    without ipywidgets it warns; a notebook gets an in-place line with tqdm's meter."""
    try:
        from tqdm.std import tqdm
    except ImportError:
        return None
    return tqdm


def progress(iterable: Iterable, *, total: int | None = None, desc: str = "", unit: str = "it") -> Iterable:
    """``iterable``, showing progress on standard error as it is consumed (when the mode
    of :func:`set_progress` says so).

    >>> set_progress(False)
    >>> items = [1, 2, 3]
    >>> progress(items, desc="chunks") is items      # off: the iterable itself
    True
    >>> set_progress("auto")
    """
    if _mode is False:
        return iterable
    stream = sys.stderr
    notebook = _in_jupyter_kernel()
    if _mode == "auto" and not notebook and not (hasattr(stream, "isatty") and stream.isatty()):
        return iterable
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    delay = AUTO_DELAY if _mode == "auto" else 0.0
    bar = _load_tqdm()
    if notebook:
        return _in_place(iterable, total, desc, unit, delay, bar)
    if bar is not None:
        return bar(iterable, total=total, desc=desc, unit=unit, delay=delay, file=stream, leave=_mode is True)
    return _plain(iterable, total, desc, unit, delay, stream)


def _in_jupyter_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel (IPython's kernel shell is running)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def _in_place(iterable: Iterable, total: int | None, desc: str, unit: str, delay: float, bar: Any) -> Iterator:
    """The notebook bar: one output updated in place (``display_id``), at most every
    :data:`PLAIN_INTERVAL` seconds, showing tqdm's meter (``bar.format_meter``) or a plain
    line; at the end (or where the loop stops early) one final line with the time taken."""
    from IPython.display import display

    start = time.monotonic()
    handle = None
    last = None
    count = 0

    def show(shown: str) -> None:
        nonlocal handle
        if handle is None:
            handle = display({"text/plain": shown}, raw=True, display_id=True)
        else:
            handle.update({"text/plain": shown}, raw=True)

    def meter() -> str:
        elapsed = time.monotonic() - start
        if bar is not None:
            return bar.format_meter(count, total, elapsed, prefix=desc, unit=unit)
        done = f"{count}/{total}" if total else f"{count}"
        percent = f" ({100 * count // total}%)" if total else ""
        return f"{desc}: {done} {unit}{percent} [{elapsed:.1f} s]"

    finished = False
    try:
        for item in iterable:
            count += 1  # handed out: a loop that breaks has used it
            yield item
            now = time.monotonic()
            if now - start >= delay and (last is None or now - last >= PLAIN_INTERVAL):
                show(meter())
                last = now
        finished = True
    finally:
        if handle is not None or delay == 0.0:
            done = f"{count}/{total}" if total else f"{count}"
            verb = "done" if finished else "stopped"
            show(f"{desc}: {done} {unit} {verb} in {time.monotonic() - start:.1f} s")


def _plain(iterable: Iterable, total: int | None, desc: str, unit: str, delay: float, stream: Any) -> Iterator:
    """The no-tqdm bar: ``desc: 3/10 chunks (30%)`` rewritten in place with ``\\r``."""
    start = time.monotonic()
    last = None
    count = 0

    def line() -> str:
        done = f"{count}/{total}" if total else f"{count}"
        percent = f" ({100 * count // total}%)" if total else ""
        return f"\r{desc}: {done} {unit}{percent} [{time.monotonic() - start:.1f} s]"

    for item in iterable:
        yield item
        count += 1
        now = time.monotonic()
        if now - start >= delay and (last is None or now - last >= PLAIN_INTERVAL):
            stream.write(line())
            stream.flush()
            last = now
    if last is not None or delay == 0.0:
        stream.write(line() + "\n")
        stream.flush()
