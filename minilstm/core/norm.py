"""Layer normalisation and batch normalisation over (N, C) activations, forward and backward.

Layer norm normalises each row over its C features; batch norm normalises each feature over the
N rows of the batch (training) or with running statistics (inference).

Equations (per row for layer norm, per column for batch norm, K = number of values averaged):
    mu   = mean(x)              var = mean((x - mu)^2)          (biased, as in both papers)
    rstd = 1 / sqrt(var + eps)  xhat = (x - mu) * rstd          y = gamma * xhat + beta
Backward (training; sums over the same K values):
    dgamma += sum(dy * xhat)    dbeta += sum(dy)                dxhat = dy * gamma
    dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
Batch norm inference uses the running statistics, so it is a fixed affine map:
    y = gamma * (x - running_mean) * rstd_running + beta       dx = dy * gamma * rstd_running
Running statistics follow PyTorch: r = (1 - momentum) r + momentum * batch_stat, with the
unbiased variance (K / (K - 1)) var for running_var.

Shapes: x (N, C); gamma, beta, running_mean, running_var (C,).

Notes: backward **adds** into dgamma and dbeta and returns dx. The cache holds xhat (N*C) and
rstd. References: Ba, Kiros & Hinton (2016), "Layer Normalization"; Ioffe & Szegedy (2015),
"Batch Normalization".
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._check import float_array, gradient_buffer
from ._jit import kernel


class NormCache(NamedTuple):
    xhat: np.ndarray        # (N, C) normalised input
    rstd: np.ndarray        # (N,) for layer norm, (C,) for batch norm
    gamma: np.ndarray       # (C,)
    batch_stats: bool       # True: statistics came from x (gradient flows through them)


@kernel
def _normalise_rows(x, eps, xhat, rstd):
    """Layer-norm statistics of each row of x (N, C)."""
    C = x.shape[1]
    mu = x.sum(axis=1) / C
    centred = x - mu.reshape((-1, 1))
    var = (centred * centred).sum(axis=1) / C
    rstd[:] = 1.0 / np.sqrt(var + eps)
    xhat[:] = centred * rstd.reshape((-1, 1))


@kernel
def _normalise_rows_backward(dxhat, xhat, rstd, dx):
    """dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), each mean over a row."""
    C = xhat.shape[1]
    mean_d = (dxhat.sum(axis=1) / C).reshape((-1, 1))
    mean_dx = ((dxhat * xhat).sum(axis=1) / C).reshape((-1, 1))
    dx[:] = rstd.reshape((-1, 1)) * (dxhat - mean_d - xhat * mean_dx)


def _check_affine(where, x, gamma, beta):
    x = float_array(where, "x", x, [("N", None), ("C", None)])
    C = x.shape[1]
    gamma = float_array(where, "gamma", gamma, [("C", C)], x.dtype)
    beta = float_array(where, "beta", beta, [("C", C)], x.dtype)
    return x, gamma, beta


def layer_norm_forward(x, gamma, beta, eps=1e-5):
    """Returns ``(y, cache)``; y (N, C)."""
    x, gamma, beta = _check_affine("layer_norm_forward", x, gamma, beta)
    xhat = np.empty_like(x)
    rstd = np.empty(x.shape[0], dtype=x.dtype)
    _normalise_rows(x, eps, xhat, rstd)
    return xhat * gamma + beta, NormCache(xhat, rstd, gamma, True)


def layer_norm_backward(dy, cache: NormCache, dgamma, dbeta):
    """Adds into dgamma, dbeta (C,); returns dx (N, C)."""
    return _affine_backward("layer_norm_backward", dy, cache, dgamma, dbeta, rows=True)


def batch_norm_forward(x, gamma, beta, running_mean, running_var, training=True,
                       momentum=0.1, eps=1e-5):
    """Returns ``(y, cache)``. In training mode, updates running_mean/var **in place**."""
    where = "batch_norm_forward"
    x, gamma, beta = _check_affine(where, x, gamma, beta)
    N, C = x.shape
    for name, buffer in (("running_mean", running_mean), ("running_var", running_var)):
        gradient_buffer(where, name, buffer, (C,), x.dtype)   # updated in place, so no copies
    if training:
        if N < 2:
            raise ValueError(f"{where}: x has {N} row(s); training-mode batch norm needs N >= 2")
        # batch norm over rows is layer norm over the columns of x.T
        xhat_t = np.empty((C, N), dtype=x.dtype)
        rstd = np.empty(C, dtype=x.dtype)
        xt = np.ascontiguousarray(x.T)
        _normalise_rows(xt, eps, xhat_t, rstd)
        mean, var = xt.mean(axis=1), xt.var(axis=1)
        running_mean *= 1.0 - momentum
        running_mean += momentum * mean
        running_var *= 1.0 - momentum
        running_var += momentum * var * (N / (N - 1))
        xhat = np.ascontiguousarray(xhat_t.T)
    else:
        rstd = (1.0 / np.sqrt(running_var + eps)).astype(x.dtype)
        xhat = (x - running_mean) * rstd
    return xhat * gamma + beta, NormCache(xhat, rstd, gamma, training)


def batch_norm_backward(dy, cache: NormCache, dgamma, dbeta):
    """Adds into dgamma, dbeta (C,); returns dx (N, C), through the batch statistics in
    training mode and through the fixed running statistics in inference mode."""
    return _affine_backward("batch_norm_backward", dy, cache, dgamma, dbeta, rows=False)


def _affine_backward(where, dy, cache, dgamma, dbeta, rows):
    N, C = cache.xhat.shape
    dy = float_array(where, "dy", dy, [("N", N), ("C", C)], cache.xhat.dtype)
    gradient_buffer(where, "dgamma", dgamma, (C,), dy.dtype)
    gradient_buffer(where, "dbeta", dbeta, (C,), dy.dtype)
    dgamma += (dy * cache.xhat).sum(axis=0)       # y = gamma * xhat + beta
    dbeta += dy.sum(axis=0)
    dxhat = dy * cache.gamma
    if not cache.batch_stats:                     # inference batch norm: fixed statistics
        return dxhat * cache.rstd
    if rows:
        dx = np.empty_like(dxhat)
        _normalise_rows_backward(dxhat, cache.xhat, cache.rstd, dx)
        return dx
    dx_t = np.empty((C, N), dtype=dy.dtype)
    _normalise_rows_backward(np.ascontiguousarray(dxhat.T), np.ascontiguousarray(cache.xhat.T),
                             cache.rstd, dx_t)
    return np.ascontiguousarray(dx_t.T)
