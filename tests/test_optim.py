"""Tests of ``symgrad.optim``: SGD, Adam, AdamW, RMSprop and Adagrad against torch's
trajectories, the learning-rate schedulers against torch's learning rates, and the base class.

The torch comparisons skip when torch is missing; everything else runs without it.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import symgrad
from symgrad import nn, optim

# ---------------------------------------------------------------------- a small problem
# loss(W, b) = mean((tanh(X @ W + b) - Y) ** 2), written once per library
RNG_SEED = 20240611
STEPS = 20


def _problem(dtype):
    rng = np.random.default_rng(RNG_SEED)
    data = {
        "X": rng.standard_normal((6, 3)),
        "Y": rng.standard_normal((6, 2)),
        "W": rng.standard_normal((3, 2)),
        "b": rng.standard_normal(2),
    }
    return {key: value.astype(dtype) for key, value in data.items()}


def _loss(lib, X, Y, W, b):
    return ((lib.tanh(X @ W + b) - Y) ** 2).mean()


SGD_CASES = [
    pytest.param(dict(lr=0.1), id="plain"),
    pytest.param(dict(lr=0.05, momentum=0.9), id="momentum"),
    pytest.param(dict(lr=0.05, momentum=0.9, dampening=0.3), id="dampening"),
    pytest.param(dict(lr=0.05, momentum=0.8, nesterov=True), id="nesterov"),
    pytest.param(dict(lr=0.1, weight_decay=0.01), id="weight-decay"),
    pytest.param(dict(lr=0.05, momentum=0.9, weight_decay=0.1, nesterov=True), id="all"),
    pytest.param(dict(lr=0.1, maximize=True), id="maximize"),
]

ADAM_CASES = [
    pytest.param(dict(), id="defaults"),
    pytest.param(dict(lr=0.05), id="lr"),
    pytest.param(dict(lr=0.05, betas=(0.8, 0.99)), id="betas"),
    pytest.param(dict(lr=0.05, betas=(0.3, 0.9)), id="small-beta1"),  # the other lerp formula
    pytest.param(dict(lr=0.05, weight_decay=0.1), id="weight-decay"),
    pytest.param(dict(lr=0.05, amsgrad=True), id="amsgrad"),
    pytest.param(dict(lr=0.05, eps=1e-3, amsgrad=True, weight_decay=0.01), id="all"),
    pytest.param(dict(lr=0.05, maximize=True), id="maximize"),
]

ADAMW_CASES = [
    pytest.param(dict(), id="defaults"),
    pytest.param(dict(lr=0.05, weight_decay=0.1), id="weight-decay"),
    pytest.param(dict(lr=0.05, weight_decay=0.3, amsgrad=True, betas=(0.3, 0.9)), id="amsgrad"),
    pytest.param(dict(lr=0.05, maximize=True), id="maximize"),
]

RMSPROP_CASES = [
    pytest.param(dict(), id="defaults"),
    pytest.param(dict(lr=0.01, alpha=0.9), id="alpha"),
    pytest.param(dict(lr=0.01, alpha=0.3), id="small-alpha"),
    pytest.param(dict(lr=0.01, centered=True), id="centered"),
    pytest.param(dict(lr=0.01, momentum=0.8), id="momentum"),
    pytest.param(dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1, eps=1e-3), id="all"),
    pytest.param(dict(lr=0.01, maximize=True), id="maximize"),
]

ADAGRAD_CASES = [
    pytest.param(dict(), id="defaults"),
    pytest.param(dict(lr=0.1, lr_decay=0.05), id="lr-decay"),
    pytest.param(dict(lr=0.1, initial_accumulator_value=0.5), id="initial-accumulator"),
    pytest.param(dict(lr=0.1, weight_decay=0.1, eps=1e-3), id="weight-decay-eps"),
    pytest.param(dict(lr=0.1, maximize=True), id="maximize"),
]

OPTIMIZER_CASES = [
    pytest.param(name, kw, id=f"{name}-{p.id}")
    for name, cases in (("SGD", SGD_CASES), ("Adam", ADAM_CASES), ("AdamW", ADAMW_CASES),
                        ("RMSprop", RMSPROP_CASES), ("Adagrad", ADAGRAD_CASES))
    for p in cases for kw in p.values
]

# end-to-end tolerances: both libraries compute the gradients themselves
TRAJECTORY_TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-11, atol=1e-13)}


# same gradients: only the rounding of the update itself differs
# (atol: about two ulps at the parameters' magnitude, 1 to 2, for an element that passes near zero)
SAME_GRADIENT_TOL = {np.float32: dict(rtol=1e-6, atol=4e-7), np.float64: dict(rtol=1e-14, atol=1e-15)}


def _torch_trajectory(torch, name, kwargs, data, dtype):
    t = {key: torch.tensor(value) for key, value in data.items()}
    params = [t["W"].requires_grad_(), t["b"].requires_grad_()]
    opt = getattr(torch.optim, name)(params, **kwargs)
    path = []
    for _ in range(STEPS):
        opt.zero_grad()
        _loss(torch, t["X"], t["Y"], *params).backward()
        opt.step()
        path.append([p.detach().numpy().copy() for p in params])
    return path


def _symgrad_trajectory(name, kwargs, data):
    s = {key: symgrad.tensor(value) for key, value in data.items()}
    params = [s["W"].requires_grad_(), s["b"].requires_grad_()]
    opt = getattr(optim, name)(params, **kwargs)
    path = []
    for _ in range(STEPS):
        opt.zero_grad()
        _loss(symgrad, s["X"], s["Y"], *params).backward()
        opt.step()
        path.append([p.detach().numpy().copy() for p in params])
    return path


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, kwargs", OPTIMIZER_CASES)
def test_trajectory_matches_torch(name, kwargs, dtype):
    torch = pytest.importorskip("torch")
    data = _problem(dtype)
    expected = _torch_trajectory(torch, name, kwargs, data, dtype)
    got = _symgrad_trajectory(name, kwargs, data)
    for step, (want_params, got_params) in enumerate(zip(expected, got)):
        for want, have in zip(want_params, got_params):
            assert have.dtype == want.dtype
            np.testing.assert_allclose(have, want, **TRAJECTORY_TOL[dtype], err_msg=f"step {step + 1}")
    # the problem is not trivial: the parameters moved
    assert not np.allclose(got[-1][0], data["W"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, kwargs", OPTIMIZER_CASES)
def test_update_rule_matches_torch_given_the_same_gradients(name, kwargs, dtype):
    """Fed identical gradients (of very different sizes), the update arithmetic is
    PyTorch's up to rounding: PyTorch fuses ``a + alpha * b`` into one FMA where NumPy
    rounds twice, so a few ulps may differ."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    start = rng.standard_normal((4, 3)).astype(dtype)
    grads = [(rng.standard_normal((4, 3)) * 10.0 ** rng.integers(-3, 2)).astype(dtype) for _ in range(STEPS)]
    tp = torch.tensor(start.copy(), requires_grad=True)
    sp = symgrad.tensor(start.copy(), requires_grad=True)
    t_opt = getattr(torch.optim, name)([tp], **kwargs)
    s_opt = getattr(optim, name)([sp], **kwargs)
    for step, grad in enumerate(grads):
        tp.grad = torch.tensor(grad)
        sp.grad = symgrad.tensor(grad)
        t_opt.step()
        s_opt.step()
        np.testing.assert_allclose(sp.detach().numpy(), tp.detach().numpy(), **SAME_GRADIENT_TOL[dtype],
                                   err_msg=f"step {step + 1}")


# ---------------------------------------------------------------------- hand-computed values
def test_sgd_step_by_hand():
    w = symgrad.tensor([1.0, -2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1, momentum=0.5, weight_decay=0.1)
    # step 1: g = 2w + 0.1w = 2.1w, buf = g, w -= 0.1 g
    (w * w).sum().backward()
    opt.step()
    np.testing.assert_allclose(w.detach().numpy(), [1.0 - 0.21, -2.0 + 0.42])
    buf1 = np.array([2.1, -4.2])
    np.testing.assert_allclose(opt.state[w]["momentum_buffer"].numpy(), buf1)
    # step 2: buf = 0.5 buf + g
    w0 = w.detach().numpy().copy()
    opt.zero_grad()
    (w * w).sum().backward()
    opt.step()
    buf2 = 0.5 * buf1 + 2.1 * w0
    np.testing.assert_allclose(w.detach().numpy(), w0 - 0.1 * buf2)


def test_adam_first_step_moves_by_lr_in_the_sign_of_the_gradient():
    w = symgrad.tensor([3.0, -0.001, 50.0], requires_grad=True)
    opt = optim.Adam([w], lr=0.01)
    (w ** 3).sum().backward()
    opt.step()
    # m1 = 0.1 g, v1 = 0.001 g^2: the step is lr * g / (|g| + eps/sqrt(0.001)*...) ~ lr * sign(g)
    np.testing.assert_allclose(w.detach().numpy(), [2.99, -0.001 - 0.01 * 3e-6 / (3e-6 + 1e-8), 49.99], rtol=1e-6)
    assert float(opt.state[w]["step"]) == 1.0


# ---------------------------------------------------------------------- in-place semantics
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_step_updates_in_place_and_shares_memory(name):
    w = symgrad.tensor([1.0, 2.0], requires_grad=True)
    view = w.detach()
    array = w.data.numpy()
    opt = getattr(optim, name)([w], lr=0.1)
    (w * w).sum().backward()
    version = w._version.value
    opt.step()
    assert w.is_leaf and w.requires_grad
    assert not np.allclose(w.detach().numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(view.numpy(), w.detach().numpy())
    np.testing.assert_array_equal(array, w.detach().numpy())
    assert w._version.value == version + 1


def test_step_after_recording_invalidates_the_graph_like_torch():
    w = symgrad.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    y = (w * w).sum()
    y.backward(retain_graph=True)
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_params_without_grad_are_left_alone():
    a = symgrad.tensor([1.0], requires_grad=True)
    b = symgrad.tensor([5.0], requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    (a * 2).sum().backward()
    opt.step()
    assert b.item() == 5.0 and b not in opt.state
    assert a.item() != 1.0


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    w = symgrad.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    (w * 3).sum().backward()
    grad = w.grad
    opt.zero_grad(set_to_none=set_to_none)
    if set_to_none:
        assert w.grad is None
    else:
        assert w.grad is grad
        np.testing.assert_array_equal(w.grad.numpy(), [0.0, 0.0])
    (w * 3).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 3.0])


def test_closure_is_called_with_grad_enabled_and_its_loss_returned():
    w = symgrad.tensor([2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with symgrad.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 4.0
    assert w.item() == 1.0


def test_module_parameters_train_with_each_optimizer():
    symgrad.manual_seed(3)
    x = symgrad.linspace(-1, 1, 16).reshape(16, 1)
    y = 3 * x - 0.5
    for make in (lambda p: optim.SGD(p, lr=0.2, momentum=0.5), lambda p: optim.Adam(p, lr=0.05)):
        model = nn.Linear(1, 1)
        opt = make(model.parameters())
        for _ in range(300):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
        assert loss.item() < 1e-4
        assert abs(model.weight.item() - 3) < 1e-2 and abs(model.bias.item() + 0.5) < 1e-2


# ---------------------------------------------------------------------- param groups and state
def test_param_groups_take_their_own_options_and_defaults():
    a = symgrad.tensor([1.0], requires_grad=True)
    b = symgrad.tensor([1.0], requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5}], lr=0.1, momentum=0.0)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert len(opt.param_groups[1]["params"]) == 1 and opt.param_groups[1]["params"][0] is b
    (a + b).sum().backward()
    opt.step()
    assert a.item() == pytest.approx(0.9) and b.item() == pytest.approx(0.5)
    opt.param_groups[0]["lr"] = 0.0  # changing a group's lr takes effect, as in PyTorch
    opt.step()
    assert a.item() == pytest.approx(0.9)


def test_optimizer_repr_lists_groups():
    opt = optim.SGD([symgrad.zeros(1, requires_grad=True)], lr=0.1)
    text = repr(opt)
    assert text.startswith("SGD (\nParameter Group 0\n") and "    lr: 0.1\n" in text and text.endswith("\n)")


@pytest.mark.parametrize("name, kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.1, weight_decay=0.2)), ("RMSprop", dict(lr=0.1, momentum=0.5, centered=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1)),
])
def test_state_dict_round_trip_continues_the_same_trajectory(name, kwargs):
    data = _problem(np.float64)

    def run(opt, params, steps):
        for _ in range(steps):
            opt.zero_grad()
            _loss(symgrad, symgrad.tensor(data["X"]), symgrad.tensor(data["Y"]), *params).backward()
            opt.step()

    params = [symgrad.tensor(data["W"], requires_grad=True), symgrad.tensor(data["b"], requires_grad=True)]
    opt = getattr(optim, name)(params, **kwargs)
    run(opt, params, 5)
    saved_values = [p.detach().numpy().copy() for p in params]
    saved_state = copy.deepcopy(opt.state_dict())  # state_dict() returns references, as in PyTorch
    run(opt, params, 5)
    reference = [p.detach().numpy().copy() for p in params]

    fresh = [symgrad.tensor(v, requires_grad=True) for v in saved_values]
    opt2 = getattr(optim, name)(fresh, lr=123.0)
    opt2.load_state_dict(saved_state)
    assert opt2.param_groups[0]["lr"] == 0.1
    run(opt2, fresh, 5)
    for want, have in zip(reference, fresh):
        np.testing.assert_array_equal(have.detach().numpy(), want)


# ---------------------------------------------------------------------- errors
ERROR_CASES = [
    pytest.param(lambda p: optim.SGD(p, lr=-0.1), ValueError, r"Invalid learning rate: -0\.1", id="sgd-negative-lr"),
    pytest.param(lambda p: optim.Adam(p, lr=-1.0), ValueError, r"Invalid learning rate: -1\.0", id="adam-negative-lr"),
    pytest.param(lambda p: optim.SGD(p, lr=0.1, momentum=-1), ValueError, "Invalid momentum value: -1",
                 id="negative-momentum"),
    pytest.param(lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), ValueError, "Invalid weight_decay value",
                 id="negative-weight-decay"),
    pytest.param(lambda p: optim.SGD(p, lr=0.1, nesterov=True), ValueError, "Nesterov momentum requires",
                 id="nesterov-without-momentum"),
    pytest.param(lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
                 "zero dampening", id="nesterov-with-dampening"),
    pytest.param(lambda p: optim.Adam(p, betas=(1.0, 0.999)), ValueError, "Invalid beta parameter at index 0: 1.0",
                 id="beta1-one"),
    pytest.param(lambda p: optim.Adam(p, betas=(0.9, -0.1)), ValueError, "Invalid beta parameter at index 1: -0.1",
                 id="beta2-negative"),
    pytest.param(lambda p: optim.Adam(p, betas=(0.9,)), ValueError, "betas must be a pair", id="betas-not-pair"),
    pytest.param(lambda p: optim.Adam(p, eps=-1e-8), ValueError, "Invalid epsilon value", id="negative-eps"),
    pytest.param(lambda p: optim.Adam(p, weight_decay=-1e-2), ValueError, "Invalid weight_decay value",
                 id="adam-negative-weight-decay"),
    pytest.param(lambda p: optim.AdamW(p, weight_decay=-0.1), ValueError, "Invalid weight_decay value: -0.1",
                 id="adamw-negative-weight-decay"),
    pytest.param(lambda p: optim.RMSprop(p, alpha=-0.1), ValueError, "Invalid alpha value: -0.1", id="rmsprop-alpha"),
    pytest.param(lambda p: optim.RMSprop(p, eps=-1.0), ValueError, "Invalid eps value: -1.0", id="rmsprop-eps"),
    pytest.param(lambda p: optim.RMSprop(p, momentum=-0.5), ValueError, "Invalid momentum value",
                 id="rmsprop-momentum"),
    pytest.param(lambda p: optim.RMSprop(p, lr=-1.0), ValueError, "Invalid learning rate", id="rmsprop-lr"),
    pytest.param(lambda p: optim.Adagrad(p, lr_decay=-1.0), ValueError, "Invalid lr_decay value", id="adagrad-decay"),
    pytest.param(lambda p: optim.Adagrad(p, initial_accumulator_value=-1.0), ValueError,
                 "Invalid initial_accumulator_value value", id="adagrad-accumulator"),
    pytest.param(lambda p: optim.Adagrad(p, eps=float("nan")), ValueError, "Invalid eps value: nan",
                 id="adagrad-nan-eps"),
    pytest.param(lambda p: optim.SGD([], lr=0.1), ValueError, "empty parameter list", id="no-parameters"),
    pytest.param(lambda p: optim.Adam(iter([])), ValueError, "empty parameter list", id="empty-generator"),
    pytest.param(lambda p: optim.SGD(p[0], lr=0.1), TypeError, "iterable of Tensors or dicts", id="single-tensor"),
    pytest.param(lambda p: optim.SGD([p[0] * 2], lr=0.1), ValueError, "can't optimize a non-leaf Tensor",
                 id="non-leaf"),
    pytest.param(lambda p: optim.SGD([1.0], lr=0.1), TypeError, "can only optimize Tensors", id="not-a-tensor"),
    pytest.param(lambda p: optim.SGD([p[0], p[0]], lr=0.1), ValueError, "same tensor twice", id="duplicate"),
    pytest.param(lambda p: optim.SGD([{"params": p}, {"params": p}], lr=0.1), ValueError,
                 "more than one parameter group", id="duplicate-across-groups"),
    pytest.param(lambda p: optim.SGD([{"lr": 0.1}]), ValueError, "'params' entry", id="group-without-params"),
]


@pytest.mark.parametrize("make, error, message", ERROR_CASES)
def test_errors(make, error, message):
    params = [symgrad.tensor([1.0, 2.0], requires_grad=True)]
    with pytest.raises(error, match=message):
        make(params)


def test_load_state_dict_with_mismatched_groups_raises():
    a = symgrad.zeros(2, requires_grad=True)
    b = symgrad.zeros(2, requires_grad=True)
    saved = optim.SGD([a, b], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="2 parameters, but the optimizer's group has 1"):
        optim.SGD([a], lr=0.1).load_state_dict(saved)


def test_adam_bias_correction_matches_formula_for_constant_gradient():
    # constant gradient g: m_t = (1 - b1^t) g, v_t = (1 - b2^t) g^2, so each step is lr * g / (|g| + eps')
    w = symgrad.tensor([0.0], requires_grad=True)
    opt = optim.Adam([w], lr=0.01, eps=0.0)
    for step in range(1, 6):
        w.grad = symgrad.tensor([4.0])
        opt.step()
        assert w.item() == pytest.approx(-0.01 * step, rel=1e-12)
    assert math.isclose(float(opt.state[w]["step"]), 5.0)


@pytest.mark.parametrize("name, kwargs", [
    ("RMSprop", dict(momentum=0.5, centered=True)), ("Adagrad", dict(initial_accumulator_value=0.1)),
    ("AdamW", dict(amsgrad=True)),
])
def test_state_dict_keys_match_torch_and_torch_resumes_from_ours(name, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    start = rng.standard_normal(3)
    grads = [rng.standard_normal(3) for _ in range(6)]
    sp, tp = symgrad.tensor(start.copy(), requires_grad=True), torch.tensor(start.copy(), requires_grad=True)
    s_opt, t_opt = getattr(optim, name)([sp], lr=0.1, **kwargs), getattr(torch.optim, name)([tp], lr=0.1, **kwargs)
    for grad in grads[:3]:
        sp.grad, tp.grad = symgrad.tensor(grad), torch.tensor(grad)
        s_opt.step(), t_opt.step()
    ours, theirs = s_opt.state_dict(), t_opt.state_dict()
    assert sorted(ours["state"][0]) == sorted(theirs["state"][0])
    for key, value in theirs["state"][0].items():
        np.testing.assert_allclose(ours["state"][0][key].numpy(), value.numpy(), rtol=1e-14, err_msg=key)
    shared = set(theirs["param_groups"][0]) & set(ours["param_groups"][0])
    assert {"lr", "weight_decay", "maximize", "params"} <= shared
    # torch continues from symgrad's saved state: the same remaining trajectory
    resumed_p = torch.tensor(sp.detach().numpy().copy(), requires_grad=True)
    resumed = getattr(torch.optim, name)([resumed_p], lr=0.1, **kwargs)
    resumed.load_state_dict({"state": {0: {k: torch.tensor(v.numpy()) for k, v in ours["state"][0].items()}},
                             "param_groups": theirs["param_groups"]})
    for grad in grads[3:]:
        sp.grad, resumed_p.grad = symgrad.tensor(grad), torch.tensor(grad)
        s_opt.step(), resumed.step()
    np.testing.assert_allclose(sp.detach().numpy(), resumed_p.detach().numpy(), rtol=1e-13)


def test_adamw_is_adam_with_decoupled_weight_decay():
    a, b = symgrad.tensor([1.0, -2.0], requires_grad=True), symgrad.tensor([1.0, -2.0], requires_grad=True)
    opts = [optim.AdamW([a], lr=0.1), optim.Adam([b], lr=0.1, weight_decay=0.01, decoupled_weight_decay=True)]
    assert opts[0].param_groups[0]["weight_decay"] == 0.01 and isinstance(opts[0], optim.Adam)
    for _ in range(3):
        for w, opt in zip((a, b), opts):
            opt.zero_grad()
            (w ** 2).sum().backward()
            opt.step()
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    coupled = symgrad.tensor([1.0, -2.0], requires_grad=True)
    opt = optim.Adam([coupled], lr=0.1, weight_decay=0.01)
    for _ in range(3):
        opt.zero_grad()
        (coupled ** 2).sum().backward()
        opt.step()
    assert not np.array_equal(a.detach().numpy(), coupled.detach().numpy())


# ---------------------------------------------------------------------- learning-rate schedulers
SCHEDULER_CASES = [
    pytest.param("StepLR", dict(step_size=3), id="step-defaults"),
    pytest.param("StepLR", dict(step_size=2, gamma=0.7), id="step-gamma"),
    pytest.param("StepLR", dict(step_size=1, gamma=1.5), id="step-growing"),
    pytest.param("CosineAnnealingLR", dict(T_max=5), id="cosine"),
    pytest.param("CosineAnnealingLR", dict(T_max=4, eta_min=0.01), id="cosine-eta-min"),
    pytest.param("CosineAnnealingLR", dict(T_max=1), id="cosine-one"),
]


def _schedule(lib, name, kwargs, epochs=14):
    """The learning rates of two parameter groups over ``epochs`` epochs, and the parameters."""
    w = lib.tensor([1.0, 2.0], dtype=lib.float64, requires_grad=True)
    v = lib.tensor([3.0], dtype=lib.float64, requires_grad=True)
    opt = lib.optim.SGD([{"params": [w]}, {"params": [v], "lr": 0.3}], lr=0.1, momentum=0.9)
    scheduler = getattr(lib.optim.lr_scheduler, name)(opt, **kwargs)
    lrs = []
    for _ in range(epochs):
        opt.zero_grad()
        ((w * w).sum() + (v * v).sum()).backward()
        opt.step()
        lrs.append(scheduler.get_last_lr())
        scheduler.step()
    return lrs, [w.detach().numpy().copy(), v.detach().numpy().copy()], scheduler, opt


@pytest.mark.parametrize("name, kwargs", SCHEDULER_CASES)
def test_scheduler_learning_rates_and_training_match_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    ours, our_params, scheduler, _ = _schedule(symgrad, name, kwargs)
    theirs, their_params, t_scheduler, _ = _schedule(torch, name, kwargs)
    assert ours == theirs  # the same chainable arithmetic: equal to the last bit
    assert len({tuple(lrs) for lrs in ours}) > 1
    for mine, their in zip(our_params, their_params):
        np.testing.assert_allclose(mine, their, rtol=1e-13)
    state, t_state = scheduler.state_dict(), t_scheduler.state_dict()
    for key in ("base_lrs", "last_epoch", "_last_lr"):
        assert state[key] == t_state[key], key


@pytest.mark.parametrize("name, kwargs", SCHEDULER_CASES)
def test_scheduler_state_dict_round_trip_resumes_the_schedule(name, kwargs):
    full, _, _, _ = _schedule(symgrad, name, kwargs, epochs=10)
    _, _, scheduler, opt = _schedule(symgrad, name, kwargs, epochs=4)
    saved_opt, saved = copy.deepcopy(opt.state_dict()), copy.deepcopy(scheduler.state_dict())
    assert "optimizer" not in saved
    w, v = symgrad.zeros(2, requires_grad=True), symgrad.zeros(1, requires_grad=True)
    opt2 = optim.SGD([{"params": [w]}, {"params": [v], "lr": 0.3}], lr=0.1, momentum=0.9)
    opt2.load_state_dict(saved_opt)
    scheduler2 = getattr(optim.lr_scheduler, name)(opt2, **kwargs)  # PyTorch's order: optimizer state, then this
    scheduler2.load_state_dict(saved)
    rest = []
    for _ in range(6):
        rest.append(scheduler2.get_last_lr())
        scheduler2.step()
    assert rest == full[4:]


def test_scheduler_step_with_an_epoch_warns_and_uses_the_closed_form():
    torch = pytest.importorskip("torch")
    results = []
    for lib in (symgrad, torch):
        opt = lib.optim.SGD([lib.zeros(1, requires_grad=True)], lr=1.0)
        scheduler = lib.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.1)
        opt.step()
        with pytest.warns(UserWarning, match=r"epoch parameter in `scheduler.step\(\)`"):
            scheduler.step(7)
        results.append(scheduler.get_last_lr())
    assert results[0] == results[1]


@pytest.mark.parametrize("make, error, message", [
    (lambda opt: optim.lr_scheduler.StepLR(opt, step_size=0), ValueError, "step_size must be a positive integer"),
    (lambda opt: optim.lr_scheduler.StepLR(opt, step_size=2.5), ValueError, "step_size must be a positive integer"),
    (lambda opt: optim.lr_scheduler.StepLR(opt, 2, gamma="0.1"), TypeError, "gamma must be a number"),
    (lambda opt: optim.lr_scheduler.CosineAnnealingLR(opt, T_max=0), ValueError, "T_max must be a positive integer"),
    (lambda opt: optim.lr_scheduler.CosineAnnealingLR(opt, 3, eta_min=None), TypeError, "eta_min must be a number"),
    (lambda opt: optim.lr_scheduler.StepLR(opt, 2, last_epoch=-2), ValueError, "last_epoch must be an integer >= -1"),
    (lambda opt: optim.lr_scheduler.StepLR(opt, 2, last_epoch=3), KeyError, "initial_lr' is not specified"),
    (lambda opt: optim.lr_scheduler.StepLR("sgd", 2), TypeError, "str is not an Optimizer"),
])
def test_scheduler_errors_leave_the_optimizer_unchanged(make, error, message):
    opt = optim.SGD([symgrad.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(error, match=message):
        make(opt)
    assert opt.param_groups[0]["lr"] == 0.1 and "initial_lr" not in opt.param_groups[0]
