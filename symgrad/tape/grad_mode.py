"""Grad mode: whether operations are recorded for backward, per thread.

``no_grad``, ``enable_grad`` and ``set_grad_enabled`` work as context managers and as
decorators, like PyTorch's.  A decorated generator function runs each of its resumptions
(``next``, ``send``, ``throw``, ``close``) in the decorator's mode, and its caller between
them in the caller's own mode.

>>> import symgrad
>>> x = symgrad.tensor([1.0], requires_grad=True)
>>> with symgrad.no_grad():
...     (x * 2).requires_grad
False
>>> symgrad.is_grad_enabled()
True
"""
from __future__ import annotations

import functools
import inspect
import threading

class _GradState(threading.local):
    """This thread's grad mode; on by default in every thread (a class attribute, so
    reading it needs no ``getattr`` default: it is read by every op)."""

    enabled = True


_state = _GradState()


def is_grad_enabled() -> bool:
    """True when operations on tensors that require grad are recorded (this thread)."""
    return _state.enabled


def _set(enabled: bool) -> None:
    _state.enabled = bool(enabled)


class set_grad_enabled:
    """Turn recording on or off: immediately as a call, for a block as a context manager,
    or for a function as a decorator."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.previous = is_grad_enabled()
        _set(self.mode)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        _set(self.previous)

    def __call__(self, func):
        mode = self.mode
        _set(self.previous)  # used as a decorator: the constructor must not leak a mode
        return decorate(func, lambda: set_grad_enabled(mode))


def decorate(func, block):
    """``func`` run inside the context manager ``block()``; for a generator function,
    each resumption is (how every mode decorator wraps a function).

    >>> def count():
    ...     yield is_grad_enabled()
    ...     yield is_grad_enabled()
    >>> list(decorate(count, no_grad)())
    [False, False]
    """
    if inspect.isgeneratorfunction(func):
        @functools.wraps(func)
        def generator(*args, **kwargs):
            return (yield from _resumed_in(block, func(*args, **kwargs)))

        return generator

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with block():
            return func(*args, **kwargs)

    return wrapper


def _resumed_in(block, gen):
    """Drive ``gen`` with every resumption inside ``block()`` (as PyTorch does): values
    sent and exceptions thrown in are passed on, and its return value is returned."""
    try:
        with block():
            value = gen.send(None)
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                with block():
                    gen.close()
                raise
            except BaseException as err:  # noqa: BLE001  (thrown in by the caller: passed on)
                with block():
                    value = gen.throw(err)
            else:
                with block():
                    value = gen.send(sent)
    except StopIteration as stop:
        return stop.value


class _GradModeBlock:
    """Base of ``no_grad``/``enable_grad``: sets a fixed mode on entry, restores it on exit."""

    mode = True

    def __enter__(self) -> None:
        self.previous = is_grad_enabled()
        _set(self.mode)

    def __exit__(self, *exc) -> None:
        _set(self.previous)

    def __call__(self, func):
        return decorate(func, type(self))


class no_grad(_GradModeBlock):
    """Context manager and decorator: record nothing inside (inference, updates by hand)."""

    mode = False


class enable_grad(_GradModeBlock):
    """Context manager and decorator: record again inside a ``no_grad`` block."""

    mode = True
