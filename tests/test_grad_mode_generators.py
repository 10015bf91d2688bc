"""Grad-mode decorators on generator functions (issue 13).

``@no_grad()`` on a generator function set the mode only while the generator object was
created, so its body recorded graphs.  Every decorator must now hold for each resumption
(``next``, ``send``, ``throw``, ``close``) and give the caller its own mode back in
between, as PyTorch does.
"""
from __future__ import annotations

import inspect

import pytest

import symgrad

DECORATORS = {  # name: (decorator factory given the library, the mode inside)
    "no_grad()": (lambda lib: lib.no_grad(), False),
    "enable_grad()": (lambda lib: lib.enable_grad(), True),
    "set_grad_enabled(False)": (lambda lib: lib.set_grad_enabled(False), False),
    "set_grad_enabled(True)": (lambda lib: lib.set_grad_enabled(True), True),
}


def trace(lib, name: str, outer: bool) -> list:
    """What a decorated generator and its caller see, resumption by resumption, with the
    caller in grad mode ``outer``."""
    factory, _ = DECORATORS[name]
    x = lib.tensor([1.0], requires_grad=True)
    seen = []

    @factory(lib)
    def body():
        try:
            sent = yield ("first", (x * 2).requires_grad)
            seen.append(("sent", sent, lib.is_grad_enabled()))
            try:
                yield ("second", (x * 2).requires_grad)
            except KeyError as err:
                seen.append(("thrown", str(err), lib.is_grad_enabled()))
                yield ("after throw", (x * 2).requires_grad)
            return "returned"
        finally:
            seen.append(("finally", lib.is_grad_enabled()))

    def caller():
        return (yield from body())

    with lib.set_grad_enabled(outer):
        gen = caller()
        seen.append(next(gen))
        seen.append(("caller", lib.is_grad_enabled()))
        seen.append(gen.send("hello"))
        seen.append(("caller", (x * 2).requires_grad))
        seen.append(gen.throw(KeyError("k")))
        try:
            next(gen)
        except StopIteration as stop:
            seen.append(("stop", stop.value))
        closed = body()
        next(closed)
        closed.close()  # runs the body's finally inside the mode
        seen.append(("after close", lib.is_grad_enabled()))
    seen.append(("outside", lib.is_grad_enabled()))
    return seen


@pytest.mark.parametrize("outer", [False, True])
@pytest.mark.parametrize("name", list(DECORATORS))
def test_each_resumption_runs_in_the_decorators_mode(name, outer):
    inside = DECORATORS[name][1]
    assert trace(symgrad, name, outer) == [
        ("first", inside), ("caller", outer), ("sent", "hello", inside), ("second", inside),
        ("caller", outer), ("thrown", "'k'", inside), ("after throw", inside), ("finally", inside),
        ("stop", "returned"), ("finally", inside), ("after close", outer), ("outside", True),
    ]


@pytest.mark.parametrize("outer", [False, True])
@pytest.mark.parametrize("name", list(DECORATORS))
def test_as_in_torch(name, outer):
    torch = pytest.importorskip("torch")
    assert trace(symgrad, name, outer) == trace(torch, name, outer)


@pytest.mark.parametrize("name", list(DECORATORS))
def test_decorated_generator_function_stays_a_generator_function(name):
    @DECORATORS[name][0](symgrad)
    def numbers(n):
        """Counts."""
        yield from range(n)

    assert inspect.isgeneratorfunction(numbers) and numbers.__doc__ == "Counts."
    assert list(numbers(3)) == [0, 1, 2]


def test_an_error_in_the_generator_reaches_the_caller_and_restores_the_mode():
    @symgrad.no_grad()
    def failing():
        yield 1
        raise ValueError("inside")

    gen = failing()
    next(gen)
    with pytest.raises(ValueError, match="inside"):
        next(gen)
    assert symgrad.is_grad_enabled()


def test_detect_anomaly_decorates_generators_too():
    """The same rule for symgrad's other mode decorator (PyTorch's is no decorator)."""
    from symgrad.check.anomaly import is_anomaly_enabled

    @symgrad.detect_anomaly()
    def body():
        yield is_anomaly_enabled()
        yield is_anomaly_enabled()

    seen = []
    for inside in body():
        seen += [inside, is_anomaly_enabled()]
    assert seen == [True, False, True, False]
