"""Rectified linear unit, used in the optional dense output head.

Equations:   y = max(x, 0)        dx = dy * [y > 0]
Shapes: any; y has x's shape. Notes: backward reads the stored output y (no copy of x kept).
"""
from __future__ import annotations

import numpy as np

from ._check import float_array
from ._jit import kernel


@kernel
def _relu(x, y):
    np.multiply(x, x > 0.0, y)      # (NaN * False is NaN: a NaN stays visible)


@kernel
def _relu_backward(dy, y, dx):
    np.multiply(dy, y > 0.0, dx)


def relu_forward(x):
    x = float_array("relu_forward", "x", x, [(f"d{i}", None) for i in range(np.ndim(x))])
    y = np.empty_like(x)
    _relu(x, y)
    return y


def relu_backward(dy, y):
    dy = float_array("relu_backward", "dy", dy, [(f"d{i}", n) for i, n in enumerate(y.shape)], y.dtype)
    dx = np.empty_like(dy)
    _relu_backward(dy, y, dx)
    return dx
