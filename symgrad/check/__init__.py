"""Verification toolkit: prove that a gradient is right.

* :func:`gradcheck` / :func:`gradgradcheck` -- every backward engine against central
  finite differences (float64) and against each other, first and second derivatives;
* :func:`check_function` -- a custom ``symgrad.autograd.Function``'s ``backward`` (and its
  ``sympy`` form, when it has one) against finite differences;
* :func:`check_grad` -- a NumPy gradient function against finite differences, per element
  (SciPy's ``check_grad(f, grad_f, x, *args)``, with ``argnums``, ``elementwise`` and
  ``value_and_grad``); :func:`check_hvp` and :func:`check_hessian` for second derivatives;
* :mod:`symgrad.check.numerical` -- the finite differences every check (and the command
  line) uses, each estimate with its own error;
* :func:`detect_anomaly` -- NaN/inf produced in backward raises, naming the forward op and
  where it was created;
* ``symgrad.check.pytest_plugin`` -- fixtures ``gradcheck`` and ``rng`` for a user's tests.

Failures raise :class:`GradcheckError` whose message is the full report; with
``raise_exception=False`` the :class:`GradcheckResult` (truthy when all agree) is returned.
"""
from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled
from .engines import available_engines, engine_status
from .gradcheck import DEFAULT_ENGINES, gradcheck, gradgradcheck
from .handwritten import check_function, check_grad, check_hessian, check_hvp
from .numerical import numerical_jacobian
from .report import (EngineUnavailableError, EngineUnavailableWarning, Float32Warning, GradcheckError,
                     GradcheckResult, Kink, KinkWarning, Mismatch, SympyFormWarning, Tolerances,
                     default_tolerances)

__all__ = [
    "gradcheck", "gradgradcheck", "check_function", "check_grad", "check_hvp", "check_hessian", "detect_anomaly", "is_anomaly_enabled",
    "AnomalyError", "GradcheckError", "GradcheckResult", "Mismatch", "Kink", "Tolerances", "default_tolerances",
    "KinkWarning", "Float32Warning", "SympyFormWarning", "EngineUnavailableWarning", "EngineUnavailableError", "available_engines",
    "engine_status", "numerical_jacobian", "DEFAULT_ENGINES",
]
