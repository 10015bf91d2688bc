"""Semantics tests ported from the tools symgrad's users come from: PyTorch's
``test/test_autograd.py`` (``test_torch_autograd.py``, also run against torch when it is
installed), JAX's ``tests/api_test.py`` (``test_jax_api.py``) and its pytree parts with
``tests/tree_util_test.py`` (``test_jax_pytrees.py``), HIPS autograd's
``tests/test_core.py``, ``test_graphs.py`` and ``test_scalar_ops.py``
(``test_autograd_core.py``, ``test_autograd_scalar_ops.py``) and its ``test_dict.py``,
``test_list.py``, ``test_tuple.py`` and ``test_wrappers.py``
(``test_autograd_containers.py``), its ``test_systematic.py`` and ``test_linalg.py``
(``test_autograd_systematic.py``, ``test_autograd_linalg.py``, sharing the checks of
``systematic.py``), and micrograd's ``test/test_engine.py``
(``test_micrograd.py``).  Each module names its origin and says where symgrad deliberately
differs; the code is our own, checked against hand-derived closed forms, central finite
differences and the eager tape engine."""
