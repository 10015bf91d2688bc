"""Chunked evaluation: the gradient of a sum over many rows, a chunk of rows at a time.

Run: ``python examples/chunked_gradient.py``

The data (200,000 rows) is written to a memory-mapped ``.npy`` file and read back one
chunk at a time; the chunked value and gradient equal the hand-written NumPy closed form
on the whole batch, the peak memory of the evaluation (``tracemalloc``) stays near one
chunk's worth, and a loss written as a *mean* is refused with an error that says what to
do.  See ``docs/scaling.md``.
"""
from __future__ import annotations

import tempfile
import tracemalloc
from pathlib import Path

import numpy as np

import symgrad

symgrad.manual_seed(0)
rng = np.random.default_rng(0)
rows, features, chunk_size = 200_000, 10, 20_000

with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "X.npy"
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(rows, features))
    X[:] = rng.normal(size=(rows, features))
    true_w = np.linspace(-1.0, 1.0, features)
    y = X @ true_w + 0.1 * rng.normal(size=rows)
    X.flush()
    del X
    X = np.load(path, mmap_mode="r")  # read-only, paged in chunk by chunk
    w = np.zeros(features)

    loss = symgrad.value_and_grad(lambda w, X, y: ((X @ w - y) ** 2).sum())
    chunked_loss = symgrad.chunked(loss, chunk_size=chunk_size, batch_argnums=(1, 2))
    print(chunked_loss)
    chunked_loss(w, X, y)  # first call: probe, trace and compile

    tracemalloc.start()
    value, grad_w = chunked_loss(w, X, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    residual = np.asarray(X) @ w - y  # the hand-written closed form, on the whole batch
    print(f"{rows:,} rows in chunks of {chunk_size:,}: value = {value:.6g}")
    print("value equals sum((X @ w - y)**2):", bool(np.isclose(value, residual @ residual, rtol=1e-12)))
    print("gradient equals 2 X.T (X @ w - y):", bool(np.allclose(grad_w, 2 * np.asarray(X).T @ residual,
                                                                  rtol=1e-12)))
    chunk_mb = chunk_size * features * 8 / 1e6
    print(f"peak memory of the chunked call: {peak / 1e6:.2f} MB "
          f"(one chunk of X: {chunk_mb:.1f} MB, all of X: {rows * features * 8 / 1e6:.1f} MB)")
    print("peak below two chunks of X:", peak < 2 * chunk_mb * 1e6)

    # a few steps of gradient descent on the chunked gradient
    for step in range(3):
        value, grad_w = chunked_loss(w, X, y)
        w = w - 0.25 / rows * grad_w
        print(f"step {step}: loss / rows = {value / rows:.4f}")

    mean_loss = symgrad.grad(lambda w, X, y: ((X @ w - y) ** 2).mean())
    try:
        symgrad.chunked(mean_loss, chunk_size=chunk_size, batch_argnums=(1, 2))(w, X, y)
    except symgrad.NotAdditiveError as error:
        message = str(error)
        print("a mean over the batch is refused:", message.split(":")[0])
        print("what to do:", message[message.index("write"):message.index(" (divide")])
    del X
