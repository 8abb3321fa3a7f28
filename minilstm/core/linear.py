"""Affine map y = x @ W + b and its backward.

Equations:
    y = x @ W + b
    dx = dy @ W.T          dW += x.T @ dy          db += sum_n dy[n]
With ``transposed=True`` the weight is stored as its transpose, W (K, D), and y = x @ W.T
(dW += dy.T @ x): that is how a tied output layer reuses the (V, E) embedding table.

Shapes: x (N, D), W (D, K) (or (K, D) transposed), b (K,) or None, y (N, K). N is any number of
rows: the LSTM uses this for its input projection with N = T*B rows (one product for all time
steps), the model for the output layer (K = V) and the optional dense head.

Notes: backward **adds** into the caller's dW and db (accumulation and weight sharing are free)
and **returns** dx (or None when ``need_dx=False``, which saves a product when x is data).
Memory: forward allocates y (N*K floats); backward allocates dx (N*D floats).
"""
from __future__ import annotations

import numpy as np

from ._check import float_array, gradient_buffer
from ._jit import kernel


@kernel
def add_column_sums(a, out):
    """out += a.sum(axis=0) for a (N, K): the bias gradient, sum over rows of dy."""
    out += a.sum(axis=0)


@add_column_sums.numba_variant
def add_column_sums_loops(a, out):
    # Numba's sum(axis=0) measured 4x slower than this row-by-row accumulation
    for n in range(a.shape[0]):
        for k in range(a.shape[1]):
            out[k] += a[n, k]


@kernel
def _linear_forward(x, W, b, transposed, y):
    if transposed:
        np.dot(x, W.T, y)
    else:
        np.dot(x, W, y)
    if b is not None:
        y += b


@kernel
def _linear_backward_params(dy, x, transposed, dW, db):
    if transposed:
        dW += np.dot(dy.T, x)
    else:
        dW += np.dot(x.T, dy)
    if db is not None:
        add_column_sums(dy, db)


@kernel
def _linear_backward_input(dy, W, transposed):
    if transposed:
        return np.dot(dy, W)
    return np.dot(dy, W.T)


def _check_weight(where, W, transposed):
    W = float_array(where, "W", W, [("K", None), ("D", None)] if transposed else [("D", None), ("K", None)])
    D, K = W.shape[::-1] if transposed else W.shape
    return W, D, K


def linear_forward(x, W, b=None, transposed=False):
    """y = x @ W + b (or x @ W.T + b when ``transposed``). Returns y (N, K)."""
    where = "linear_forward"
    W, D, K = _check_weight(where, W, transposed)
    x = float_array(where, "x", x, [("N", None), ("D", D)], W.dtype)
    if b is not None:
        b = float_array(where, "b", b, [("K", K)], W.dtype)
    y = np.empty((x.shape[0], K), dtype=W.dtype)
    _linear_forward(x, W, b, bool(transposed), y)
    return y


def linear_backward(dy, x, W, dW, db=None, need_dx=True, transposed=False):
    """Backward of :func:`linear_forward`: adds into ``dW`` (and ``db``), returns dx or None."""
    where = "linear_backward"
    W, D, K = _check_weight(where, W, transposed)
    x = float_array(where, "x", x, [("N", None), ("D", D)], W.dtype)
    dy = float_array(where, "dy", dy, [("N", x.shape[0]), ("K", K)], W.dtype)
    dW = gradient_buffer(where, "dW", dW, W.shape, W.dtype)
    if db is not None:
        db = gradient_buffer(where, "db", db, (K,), W.dtype)
    _linear_backward_params(dy, x, bool(transposed), dW, db)
    return _linear_backward_input(dy, W, bool(transposed)) if need_dx else None
