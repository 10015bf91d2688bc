"""Views: what PyTorch shares memory for, symgrad copies and keeps in step.

In PyTorch, ``x[0]``, ``x[1:]``, ``x.T``, ``x.reshape(...)``, ``x.view(...)``,
``x.unsqueeze(0)``, ``x.expand(...)`` and what is made of them (``select``, ``narrow``,
``unbind``, ``split``, ``chunk``, ``movedim``...) are *views*: an in-place change of the
view changes ``x``, and an in-place change of ``x`` shows in the view.  symgrad's results
are copies (the tape keeps values that a later in-place change must not reach; see the
op table's ``view`` field).  So that a program never computes something else than in
PyTorch without a word, the tape marks each such result with the tensor it was taken
from (the *root*: the first tensor of a chain of views), the root's version, and the
chain of view ops from the root, and then:

* an in-place op on the marked result while its root is alive is **written through**: the
  root becomes the root with that part replaced (recorded ops: ``setitem`` for an index,
  the inverse reshape or transpose for the others), as PyTorch's root would
  (:func:`before_inplace`, :func:`write_through`).  So ``x[1:].mul_(2)``,
  ``w[0].zero_()`` and ``x.view(-1).add_(1)`` change ``x``.  Refused: a chain with an
  ``expand`` (PyTorch refuses it too: several elements share one memory location), and a
  root that is a leaf requiring grad while grad mode is on (as PyTorch);
* reading a marked result (as an op's operand, ``numpy()``, ``item()``, ``tolist()``)
  after its root changed in place some other way raises -- PyTorch's view would show the
  change, symgrad's copy cannot (:func:`check_fresh`).

A marked result whose root has been freed is an ordinary tensor.  ``detach()`` of a
marked result is marked too (PyTorch's shares the root's memory); ``clone()`` is not.
Functions PyTorch computes as copies although symgrad builds them from view ops
(``flip``, ``roll``) drop the mark (:func:`a_copy`).

>>> import symgrad
>>> x = symgrad.tensor([1.0, 2.0, 3.0])
>>> x[1:].mul_(2)
tensor([4., 6.])
>>> x
tensor([1., 4., 6.])
"""
from __future__ import annotations

import weakref
from typing import Any

from ..ops.structural import inverse_permutation
from .grad_mode import no_grad


def note(out: Any, base: Any, op_name: str, attrs: dict) -> None:
    """Mark ``out`` as what PyTorch's ``op_name(base, **attrs)`` would return as a view."""
    mark = base._view_of
    root = mark[0]() if mark is not None else None
    if root is None:
        root, chain = base, ((op_name, attrs),)
    else:
        chain = mark[3] + ((op_name, attrs),)
    out._view_of = (weakref.ref(root), root._version, root._version.value, chain)


def note_detached(out: Any, base: Any) -> None:
    """Mark ``out = base.detach()``: the same memory as ``base`` (so always in step with
    it), and, when ``base`` is marked, a view of ``base``'s root through a detach -- an
    in-place change is written through without being recorded, as PyTorch's shared memory
    changes without a record."""
    note(out, base, "detach", {})


def _describe(chain: tuple) -> str:
    return "".join("[...]" if op == "getitem" else f".{op}()" if op == "detach" else f".{op}(...)" for op, _ in chain)


def _shares_memory(chain: tuple) -> bool:
    """Whether a result through ``chain`` is its root's own memory: only detaches, which
    symgrad shares as PyTorch does."""
    return all(op == "detach" for op, _ in chain)


def before_inplace(tensor: Any, op_name: str, recording: bool) -> Any:
    """The live root an in-place ``op_name`` on ``tensor`` must be written through to
    (None: ``tensor`` is no view of a live tensor); raises, changing nothing, where
    PyTorch refuses the in-place op."""
    mark = tensor._view_of
    root = mark[0]()
    if root is None:  # the root is gone: nothing could show the difference
        tensor._view_of = None
        return None
    if _shares_memory(mark[3]):
        return None
    check_fresh(tensor)
    if any(op == "broadcast_to" for op, _ in mark[3]):
        raise RuntimeError(
            f"in-place {op_name} on x{_describe(mark[3])}, an expanded tensor: several of its elements are one "
            "element of the tensor it was expanded from (in PyTorch one memory location, which refuses it too). "
            "Call .clone() on the expanded tensor before changing it in place")
    if recording and root.is_leaf and root._requires_grad and not any(op == "detach" for op, _ in mark[3]):
        raise RuntimeError(
            f"a view of a leaf Variable that requires grad is being used in an in-place operation (in-place "
            f"{op_name} on x{_describe(mark[3])}): change it under `with symgrad.no_grad():`, or work on x.clone()")
    return root


def _put(base: Any, chain: tuple, value: Any) -> Any:
    """``base`` with its view ``chain`` replaced by ``value``, as recorded ops."""
    from .dispatch import apply_op

    if not chain:
        return value
    (op, attrs), rest = chain[0], chain[1:]
    if op == "detach":
        return _put(base, rest, value)
    inner = _put(apply_op(op, base, **attrs), rest, value) if rest else value
    if op == "getitem":
        return apply_op("setitem", base, inner, **attrs)
    if op == "transpose":
        return apply_op("transpose", inner, **attrs)
    if op == "permute":
        return apply_op("permute", inner, dims=inverse_permutation(attrs["dims"], base.ndim))
    return apply_op("reshape", inner, shape=tuple(base.shape))  # reshape, squeeze, unsqueeze


def write_through(tensor: Any, root: Any) -> None:
    """After an in-place op on ``tensor`` (a view of ``root`` in PyTorch): change ``root``
    as PyTorch's would be changed, and keep ``tensor`` fresh."""
    mark = tensor._view_of
    if any(op == "detach" for op, _ in mark[3]):  # through shared memory: a change no graph records
        with no_grad():
            root._inplace("setitem", _put(root.detach(), mark[3], tensor.detach()), index=(Ellipsis,))
    else:
        root._inplace("setitem", _put(root, mark[3], tensor), index=(Ellipsis,))
    tensor._view_of = (mark[0], root._version, root._version.value, mark[3])


def check_fresh(tensor: Any) -> None:
    """Refuse reading a marked tensor whose root changed in place after it was taken."""
    mark = tensor._view_of
    root = mark[0]()
    if root is None:
        tensor._view_of = None
    elif mark[1].value != mark[2] and not _shares_memory(mark[3]):
        raise RuntimeError(
            f"a tensor taken as x{_describe(mark[3])} from x of shape {tuple(root.shape)} is read after x was "
            "changed in place: in PyTorch it is a view of x and would show the change; symgrad's is a copy taken "
            "before it. Take it again after the change (or .clone() it before, to keep the old values on purpose)")


def handed_out(tensor: Any) -> Any:
    """The array ``numpy()`` and ``numpy.asarray`` hand out for a marked ``tensor``
    (refusing a stale one, as :func:`check_fresh`): its own values, read-only while its
    root is alive.  PyTorch's array would be the root's memory, so a write into it would
    change the root; a write into symgrad's copy would change nothing, so it raises
    (NumPy's "assignment destination is read-only") instead of being lost.  Through
    detaches only, the array is the root's own and stays writable, as PyTorch's."""
    check_fresh(tensor)
    mark = tensor._view_of
    if mark is None or _shares_memory(mark[3]):
        return tensor._data
    values = tensor._data.view()
    values.flags.writeable = False
    return values


def a_copy(tensor: Any) -> Any:
    """``tensor``, unmarked: the function that made it returns a copy in PyTorch too."""
    tensor._view_of = None
    return tensor
