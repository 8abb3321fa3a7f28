"""Fused softmax + cross-entropy: the loss and the gradient of the logits in one pass.

Equations, for each row n whose target is not ``ignore_index`` (M such rows):
    m_n    = max_v z[n, v]                               (stability: exp never overflows)
    lse_n  = m_n + log sum_v exp(z[n, v] - m_n)          log-sum-exp
    loss_n = lse_n - z[n, y_n]                           nats
    loss   = (1/M) sum_n loss_n
    dz[n, v] = (softmax(z[n])_v - [v == y_n]) / M        (0 on ignored rows)

Shapes: logits z (N, V), targets y (N,) with values in [0, V) or ``ignore_index``.

Notes: because softmax and cross-entropy are fused the gradient is produced by the forward call
(``need_grad=False`` skips it for evaluation); there is no separate backward. Ignored rows —
padding in batches of poems — contribute nothing, and a batch with no counted row has loss 0
and an all-zero gradient. Finite for logits of +-1e4 (every exp argument is <= 0).
Memory: allocates dz (N*V floats) and the per-row losses (N floats).
"""
from __future__ import annotations

import numpy as np

from ._check import float_array
from ._jit import kernel

IGNORE_INDEX = -1   # target value excluded from the loss (padding)


@kernel
def _softmax_xent(logits, targets, ignore_index, scale, row_loss, dlogits, need_grad):
    """Fills row_loss (N,) and, when need_grad, dlogits (N, V) = scale * (softmax - onehot)."""
    keep = targets != ignore_index
    safe_targets = np.where(keep, targets, 0)
    m = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - m)
    s = e.sum(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(s[:, 0])
    picked = np.take_along_axis(logits, safe_targets[:, None], axis=1)[:, 0]
    row_loss[:] = np.where(keep, lse - picked, 0.0)
    if need_grad:
        np.multiply(e, scale / s, dlogits)
        dlogits[np.arange(logits.shape[0]), safe_targets] -= scale
        dlogits[~keep] = 0.0


@_softmax_xent.numba_variant
def _softmax_xent_loops(logits, targets, ignore_index, scale, row_loss, dlogits, need_grad):
    # One exp per logit: the exponentials are parked in dlogits while their sum accumulates,
    # then scaled in place into the softmax.
    N, V = logits.shape
    for n in range(N):
        y = targets[n]
        if y == ignore_index:
            row_loss[n] = 0.0
            if need_grad:
                dlogits[n, :] = 0.0
            continue
        m = logits[n, 0]
        for v in range(1, V):
            m = max(m, logits[n, v])
        s = 0.0
        if need_grad:
            for v in range(V):
                dlogits[n, v] = np.exp(logits[n, v] - m)
                s += dlogits[n, v]
            inv = scale / s
            for v in range(V):
                dlogits[n, v] *= inv
            dlogits[n, y] -= scale
        else:
            for v in range(V):
                s += np.exp(logits[n, v] - m)
        row_loss[n] = m + np.log(s) - logits[n, y]


def _validate(where, logits, targets, ignore_index):
    logits = float_array(where, "logits", logits, [("N", None), ("V", None)])
    N, V = logits.shape
    targets = np.asarray(targets)
    if targets.dtype.kind not in "iu":
        raise ValueError(f"{where}: targets has dtype {targets.dtype}, expected an integer dtype")
    if targets.shape != (N,):
        raise ValueError(f"{where}: targets has shape {targets.shape}, expected (N,) = ({N},)")
    bad = ((targets < 0) | (targets >= V)) & (targets != ignore_index)
    if bad.any():
        n = int(np.argmax(bad))
        raise IndexError(f"{where}: targets contains id {int(targets[n])} at position {n}, outside "
                         f"the vocabulary of size {V} (and not ignore_index={ignore_index})")
    return logits, np.ascontiguousarray(targets, dtype=np.int64)


def softmax_cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, need_grad=True):
    """Mean cross-entropy (nats) over the rows whose target is not ``ignore_index``.

    Returns ``(loss, dlogits, count)``: loss a Python float, dlogits (N, V) the gradient of the
    mean loss (``None`` when ``need_grad=False``), count the number of rows that counted.
    """
    where = "softmax_cross_entropy"
    logits, targets = _validate(where, logits, targets, ignore_index)
    N, V = logits.shape
    count = int(np.count_nonzero(targets != ignore_index))
    scale = 1.0 / count if count else 0.0
    row_loss = np.empty(N, dtype=logits.dtype)
    dlogits = np.empty((N, V), dtype=logits.dtype) if need_grad else np.empty((0, V), logits.dtype)
    if N:
        _softmax_xent(logits, targets, ignore_index, scale, row_loss, dlogits, need_grad)
    loss = float(np.sum(row_loss, dtype=np.float64) * scale)
    return loss, (dlogits if need_grad else None), count


def cross_entropy_per_token(logits, targets, ignore_index=IGNORE_INDEX):
    """Loss of every row in nats, (N,) float64; 0 on ignored rows. For analysis and evaluation."""
    where = "cross_entropy_per_token"
    logits, targets = _validate(where, logits, targets, ignore_index)
    row_loss = np.empty(logits.shape[0], dtype=logits.dtype)
    if logits.shape[0]:
        _softmax_xent(logits, targets, ignore_index, 0.0, row_loss,
                      np.empty((0, logits.shape[1]), logits.dtype), False)
    return row_loss.astype(np.float64)
