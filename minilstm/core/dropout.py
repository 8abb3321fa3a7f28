"""Inverted dropout with an explicit random generator.

Equations (training, drop probability p):
    mask = [u >= p] / (1 - p),  u ~ Uniform[0, 1) drawn from the caller's generator
    y    = x * mask                            kept units are scaled up, so inference is y = x
    dx   = dy * mask

Shapes: x any shape; mask the same shape and dtype as x.

Notes: the random numbers come from the ``rng`` argument (a ``numpy.random.Generator``), never
from hidden global state, so a seeded run is reproducible and a resumed run can restore the
generator. Pass ``mask=`` to reuse a mask (gradient checks hold it fixed). Memory: the mask is
one array of x's size, kept by the caller for the backward.
"""
from __future__ import annotations

import numpy as np

from ._check import float_array, probability
from ._jit import kernel


@kernel
def _apply_mask(x, mask, out):
    np.multiply(x, mask, out)


def dropout_mask(shape, p, rng, dtype=np.float32):
    """A fresh inverted-dropout mask: 0 with probability p, else 1 / (1 - p)."""
    p = probability("dropout_mask", "p", p)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"dropout_mask: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    keep = rng.random(shape, dtype=np.float64) >= p
    return keep.astype(dtype) * np.asarray(1.0 / (1.0 - p), dtype=dtype)


def dropout_forward(x, p, rng=None, training=True, mask=None):
    """Returns ``(y, mask)``; ``mask`` is None when nothing is dropped (p = 0 or inference)."""
    where = "dropout_forward"
    x = float_array(where, "x", x, [(f"d{i}", None) for i in range(np.ndim(x))])
    p = probability(where, "p", p)
    if mask is None:
        if not training or p == 0.0:
            return x, None
        if rng is None:
            raise ValueError(f"{where}: rng is required in training mode with p={p}")
        mask = dropout_mask(x.shape, p, rng, x.dtype)
    else:
        mask = float_array(where, "mask", mask, [(f"d{i}", n) for i, n in enumerate(x.shape)], x.dtype)
    y = np.empty_like(x)
    _apply_mask(x, mask, y)
    return y, mask


def dropout_backward(dy, mask):
    """dx = dy * mask (``mask=None`` means nothing was dropped: dx = dy)."""
    if mask is None:
        return dy
    dy = float_array("dropout_backward", "dy", dy, [(f"d{i}", n) for i, n in enumerate(mask.shape)],
                     mask.dtype)
    dx = np.empty_like(dy)
    _apply_mask(dy, mask, dx)
    return dx
