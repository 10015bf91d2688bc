"""The linear-algebra ops (``det``, ``logdet``, ``inverse``, ``solve``) beyond the op table's
rows: matrix-notation closed forms, second derivatives on both engines against PyTorch,
traced transforms against a fresh eager run, and the refused shapes."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad
import symgrad.symbolic
from symgrad.ops.linalg import SQUARE


def _matrix(rng, shape=(3, 3)):
    return SQUARE.sample(rng, shape)


def test_closed_forms_print_in_matrix_notation(rng):
    A = symgrad.tensor(_matrix(rng), requires_grad=True, name="A")
    assert symgrad.symbolic.text(symgrad.diff(A.logdet(), A)) == "inverse(A).T"
    assert symgrad.symbolic.text(symgrad.diff(A.det(), A)) == "det(A)*inverse(A).T"
    assert "A}^{-T}" in symgrad.latex(symgrad.diff(A.logdet(), A))
    assert r"\det" in symgrad.latex(A.det().expr)


LOSSES = {
    "det": lambda L, a, b: L.linalg.det(a),
    "logdet": lambda L, a, b: a.logdet() * 2,
    "inverse": lambda L, a, b: (L.linalg.inv(a) * b).sum(),
    "solve_matrix": lambda L, a, b: (L.linalg.solve(a, b) ** 2).sum(),
    "solve_vector": lambda L, a, b: (L.linalg.solve(a, b[:, 0]) ** 3).sum(),
}


@pytest.mark.parametrize("engine", ["tape", "symbolic"])
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_second_derivatives_match_torch(loss, engine, rng):
    torch = pytest.importorskip("torch")
    a_data, b_data = _matrix(rng), rng.standard_normal((3, 3))
    direction = rng.standard_normal((3, 3))

    def hvp(L, tensor):
        a = tensor(a_data, requires_grad=True)
        b = tensor(b_data)
        (g,) = L.autograd.grad(LOSSES[loss](L, a, b), a, create_graph=True)
        (h,) = L.autograd.grad((g * tensor(direction)).sum(), a)
        return g.detach().numpy(), h.numpy()

    with symgrad.backward_engine(engine):
        got = hvp(symgrad, symgrad.tensor)
    expected = hvp(torch, torch.tensor)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_traced_gradient_matches_a_fresh_eager_run(loss, rng):
    b_data = rng.standard_normal((3, 3))
    f = symgrad.value_and_grad(lambda a: LOSSES[loss](symgrad, a, symgrad.tensor(b_data)))
    for _ in range(2):
        a_data = _matrix(rng)
        value, gradient = f(a_data)
        with symgrad.backward_engine("tape"):
            a = symgrad.tensor(a_data, requires_grad=True)
            eager = LOSSES[loss](symgrad, a, symgrad.tensor(b_data))
            eager.backward()
        np.testing.assert_allclose(value, eager.item(), rtol=1e-12)
        np.testing.assert_allclose(gradient, a.grad.numpy(), rtol=1e-10, atol=1e-12)


BAD = [
    (lambda: symgrad.linalg.det(symgrad.ones(2, 3)), "square matrix"),
    (lambda: symgrad.ones(3).logdet(), "square matrix"),
    (lambda: symgrad.linalg.inv(symgrad.ones(2, 2, 3)), "square matrix"),
    (lambda: symgrad.linalg.solve(symgrad.eye(3), symgrad.ones(2)), "do not align"),
    (lambda: symgrad.linalg.solve(symgrad.ones(2, 3, 3), symgrad.ones(3)), "must be a vector"),
]


@pytest.mark.parametrize("call, words", BAD)
def test_refused_shapes_name_the_problem(call, words):
    with pytest.raises(ValueError, match=words):
        call()
