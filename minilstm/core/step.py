"""One inference step of the whole model for n sequences, computed identically in both builds.

Generation runs these kernels once per token, so they are written for two things at once:
speed in the numba build (no allocation, short vectorisable loops) and *bit-identical* results
in the numba and numpy builds, so that a seed gives the same text with and without the JIT.
That rules out BLAS (the numpy and numba builds call different BLAS libraries whose summation
orders may differ): every product here accumulates in one fixed order,

    y[i, j] += x[i, k] * W[k, j]      for k = 0, 1, ..., K-1        (row-by-row "axpy" order)

which the numpy build performs as K whole-row updates and the numba build as loops; IEEE
float32/float64 multiplication and addition are correctly rounded, so both get the same bits.
The float32 nonlinearities use the rational tanh of ``lstm_cell`` in both builds; float64 ones
use exp (NumPy's and libm's exp may differ in the last bit, harmless for sampling at 1e-16).

The model is laid out for these kernels by ``minilstm.sample.plan_model``: one flat weight
vector ``weights`` and integer tables of offsets (``layers``: per layer H, D, offset of its input
table or Wx, of Wh, of b, of its state columns, and how many threads share its products;
``head``: the output head). The first layer's input projection is a row lookup in the table
E @ Wx (or Wx itself for one-hot input).

Shapes: tokens (n,); h, c (n, S) with S the sum of the layers' H; logits (n, V); the scratch
buffers xw_buf, z_buf are flat, at least n * (widest row) long.
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel, prange
from .lstm_cell import tanh_rational

HEAD_NONE, HEAD_DENSE, HEAD_LAYER_NORM, HEAD_AFFINE = 0, 1, 2, 3


@kernel
def matvec_rows(x, W, y):
    """y += x @ W for x (n, K), W (K, N), y (n, N), accumulated over k in order."""
    matvec_columns(x, W, y, 0, W.shape[1])


@kernel
def matvec_columns(x, W, y, lo, hi):
    """Columns [lo, hi) of ``y += x @ W``, accumulated over k in order (as :func:`matvec_rows`)."""
    for k in range(W.shape[0]):
        y[:, lo:hi] += x[:, k:k + 1] * W[k, lo:hi]


@matvec_columns.numba_variant
def matvec_columns_loops(x, W, y, lo, hi):
    # Four rows of W per pass over y: y[j] + a0*W0[j] + a1*W1[j] + ... evaluates left to right,
    # the very same additions in the same order as one row at a time, with a quarter of the
    # loads and stores of y (measured 1.7x faster at H=128 and H=512).
    # Loops run over views starting at column lo, indexed from 0 (a loop from a run-time lo
    # kept the compiler from vectorising it: measured 2.9x slower).
    K, N = W.shape[0], hi - lo
    for i in range(x.shape[0]):
        yi = y[i, lo:hi]
        k = 0
        while k + 4 <= K:
            a0, a1, a2, a3 = x[i, k], x[i, k + 1], x[i, k + 2], x[i, k + 3]
            W0, W1, W2, W3 = W[k, lo:hi], W[k + 1, lo:hi], W[k + 2, lo:hi], W[k + 3, lo:hi]
            for j in range(N):
                yi[j] = yi[j] + a0 * W0[j] + a1 * W1[j] + a2 * W2[j] + a3 * W3[j]
            k += 4
        while k < K:
            a, Wk = x[i, k], W[k, lo:hi]
            for j in range(N):
                yi[j] += a * Wk[j]
            k += 1


@kernel(parallel=True)
def matvec_rows_split(x, W, y, parts):
    """:func:`matvec_rows` with the N columns cut into ``parts`` blocks, one per thread in the
    numba build. Every output element gets the same additions in the same order as in
    matvec_rows, so the result is bit-identical whatever ``parts`` is. Block edges fall on
    multiples of 16 columns (whole vector registers)."""
    N = W.shape[1]
    for p in prange(parts):
        lo = (p * N // parts) // 16 * 16
        hi = N if p == parts - 1 else ((p + 1) * N // parts) // 16 * 16
        matvec_columns(x, W, y, lo, hi)


@kernel
def matvec(x, W, y, parts):
    """y += x @ W, on ``parts`` threads in the numba build (see the variant below). The numpy
    build has no threads to share the work, and the result is the same bits either way."""
    matvec_rows(x, W, y)


@matvec.numba_variant
def matvec_threads(x, W, y, parts):
    # parts > 1 only where the plan found the weights large enough to repay waking the threads
    if parts > 1:
        matvec_rows_split(x, W, y, parts)
    else:
        matvec_rows(x, W, y)


@kernel
def tanh_rational_array(x):
    """The float32 rational tanh of ``lstm_cell.tanh_rational``, elementwise, same operations."""
    bound = np.float32(7.90531110763549805)
    x = np.where(x > bound, bound, x)
    x = np.where(x < -bound, -bound, x)
    x2 = x * x
    p = np.float32(-2.76076847742355e-16) * np.ones_like(x)
    for coefficient in (2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
                        1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03):
        p = p * x2 + np.float32(coefficient)
    q = np.float32(1.19825839466702e-06) * np.ones_like(x)
    for coefficient in (1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03):
        q = q * x2 + np.float32(coefficient)
    return x * p / q


@kernel
def cell_step(xw, c, h, off):
    """One LSTM step from pre-activations xw (n, 4H), gates [i, f, o, g]; updates the state
    columns [off, off + H) of c and h (n, S) in place."""
    H = xw.shape[1] // 4
    cs, hs = c[:, off:off + H], h[:, off:off + H]
    if xw.dtype == np.float32:
        half = np.float32(0.5)
        s = half + half * tanh_rational_array(half * xw[:, :3 * H])
        g = tanh_rational_array(xw[:, 3 * H:])
    else:
        s = 1.0 / (1.0 + np.exp(-xw[:, :3 * H]))
        g = 2.0 / (1.0 + np.exp(-(xw[:, 3 * H:] + xw[:, 3 * H:]))) - 1.0
    cs[:] = s[:, H:2 * H] * cs + s[:, :H] * g
    tc = tanh_rational_array(cs) if xw.dtype == np.float32 else 2.0 / (1.0 + np.exp(-(cs + cs))) - 1.0
    hs[:] = s[:, 2 * H:] * tc


@cell_step.numba_variant
def cell_step_loops(xw, c, h, off):
    # Row by row on contiguous 1-D views, float32 and float64 in separate branch-free loops,
    # so each loop compiles to vector instructions; the arithmetic is the array version's.
    H = xw.shape[1] // 4
    for i in range(xw.shape[0]):
        a, ci, hi = xw[i], c[i][off:off + H], h[i][off:off + H]
        if xw.itemsize == 4:
            half = np.float32(0.5)
            for k in range(3 * H):
                a[k] = half + half * tanh_rational(half * a[k])
            for k in range(3 * H, 4 * H):
                a[k] = tanh_rational(a[k])
            for j in range(H):
                ci[j] = a[H + j] * ci[j] + a[j] * a[3 * H + j]
            for j in range(H):
                hi[j] = a[2 * H + j] * tanh_rational(ci[j])
        else:
            for k in range(3 * H):
                a[k] = 1.0 / (1.0 + np.exp(-a[k]))
            for k in range(3 * H, 4 * H):
                a[k] = 2.0 / (1.0 + np.exp(-(a[k] + a[k]))) - 1.0
            for j in range(H):
                ci[j] = a[H + j] * ci[j] + a[j] * a[3 * H + j]
            for j in range(H):
                hi[j] = a[2 * H + j] * (2.0 / (1.0 + np.exp(-(ci[j] + ci[j]))) - 1.0)


@kernel
def layer_norm_rows(a, eps):
    """a <- (a - mean) / sqrt(var + eps) per row, sums in order (cumsum in both builds) and
    every constant in a's dtype (Numba would otherwise promote float32 arithmetic to float64)."""
    C = a.shape[1]
    count, epsilon = a.dtype.type(C), a.dtype.type(eps)
    for i in range(a.shape[0]):
        mean = np.cumsum(a[i])[C - 1] / count
        centred = a[i] - mean
        var = np.cumsum(centred * centred)[C - 1] / count
        a[i] = centred / np.sqrt(var + epsilon)


@kernel
def forward_token(weights, layers, head, eps, tokens, h, c, xw_buf, z_buf, logits):
    """Feed tokens (n,) through every layer, updating h and c (n, S); write logits (n, V)."""
    n = tokens.shape[0]
    V = logits.shape[1]
    below, width = 0, 0
    for layer in range(layers.shape[0]):
        H, D, off_in = layers[layer, 0], layers[layer, 1], layers[layer, 2]
        off_wh, off_b, off_s = layers[layer, 3], layers[layer, 4], layers[layer, 5]
        parts = layers[layer, 6]
        G = 4 * H
        xw = xw_buf[:n * G].reshape((n, G))              # contiguous, so loops vectorise
        if layer == 0:                                   # xw = (E @ Wx)[token]: a row lookup
            table = weights[off_in:off_in + V * G].reshape(V, G)
            for i in range(n):
                xw[i] = table[tokens[i]]
        else:                                            # xw = h_below @ Wx
            xw[:] = 0.0
            matvec(h[:, below:below + D], weights[off_in:off_in + D * G].reshape(D, G), xw, parts)
        matvec(h[:, off_s:off_s + H], weights[off_wh:off_wh + H * G].reshape(H, G), xw, parts)
        xw += weights[off_b:off_b + G]                   # ... + h_{t-1} @ Wh + b
        cell_step(xw, c, h, off_s)
        below = off_s
        width = H
    output_head(weights, head, eps, h[:, below:below + width], z_buf, logits)


@kernel
def output_head(weights, head, eps, z, z_buf, logits):
    """logits (n, V) from the top layer's h (n, width): [dense, norm, ReLU,] then linear."""
    V = logits.shape[1]
    width = z.shape[1]
    kind, K, off_w, off_hb = head[0], head[1], head[2], head[3]
    off_scale, off_shift, off_out, off_outb = head[4], head[5], head[6], head[7]
    if kind != HEAD_NONE:                                # dense head: linear, norm, ReLU
        a = z_buf[:z.shape[0] * K].reshape((z.shape[0], K))
        a[:] = 0.0
        matvec_rows(z, weights[off_w:off_w + width * K].reshape(width, K), a)
        a += weights[off_hb:off_hb + K]
        if kind == HEAD_LAYER_NORM:
            layer_norm_rows(a, eps)
        if kind == HEAD_LAYER_NORM or kind == HEAD_AFFINE:   # gamma, beta or folded batch norm
            a *= weights[off_scale:off_scale + K]
            a += weights[off_shift:off_shift + K]
        a *= a > 0.0
        z = a
        width = K
    logits[:] = 0.0
    matvec_rows(z, weights[off_out:off_out + width * V].reshape(width, V), logits)
    logits += weights[off_outb:off_outb + V]
