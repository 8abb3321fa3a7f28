"""Affine map y = x @ W + b and its backward.

Equations:
    y = x @ W + b
    dx = dy @ W.T          dW += x.T @ dy          db += sum_n dy[n]

Shapes: x (N, D), W (D, K), b (K,) or None, y (N, K). N is any number of rows: the LSTM uses
this for its input projection with N = T*B rows (one product for all time steps), the model for
the output layer (K = V) and the optional dense head.

Notes: backward **adds** into the caller's dW and db (accumulation and weight sharing are free)
and **returns** dx (or None when ``need_dx=False``, which saves a product when x is data).
Memory: forward allocates y (N*K floats); backward allocates dx (N*D floats).
"""
from __future__ import annotations

import numpy as np

from ._check import float_array, gradient_buffer
from ._jit import kernel


@kernel
def _linear_forward(x, W, b, y):
    np.dot(x, W, y)
    if b is not None:
        y += b


@kernel
def _linear_backward_params(dy, x, dW, db):
    dW += np.dot(x.T, dy)
    if db is not None:
        db += dy.sum(axis=0)


@kernel
def _linear_backward_input(dy, W):
    return np.dot(dy, W.T)


def linear_forward(x, W, b=None):
    """y = x @ W + b for x (N, D), W (D, K), b (K,) or None. Returns y (N, K)."""
    where = "linear_forward"
    W = float_array(where, "W", W, [("D", None), ("K", None)])
    D, K = W.shape
    x = float_array(where, "x", x, [("N", None), ("D", D)], W.dtype)
    if b is not None:
        b = float_array(where, "b", b, [("K", K)], W.dtype)
    y = np.empty((x.shape[0], K), dtype=W.dtype)
    _linear_forward(x, W, b, y)
    return y


def linear_backward(dy, x, W, dW, db=None, need_dx=True):
    """Backward of :func:`linear_forward`: adds into ``dW`` (and ``db``), returns dx or None."""
    where = "linear_backward"
    W = float_array(where, "W", W, [("D", None), ("K", None)])
    D, K = W.shape
    x = float_array(where, "x", x, [("N", None), ("D", D)], W.dtype)
    dy = float_array(where, "dy", dy, [("N", x.shape[0]), ("K", K)], W.dtype)
    dW = gradient_buffer(where, "dW", dW, W.shape, W.dtype)
    if db is not None:
        db = gradient_buffer(where, "db", db, (K,), W.dtype)
    _linear_backward_params(dy, x, dW, db)
    return _linear_backward_input(dy, W) if need_dx else None
