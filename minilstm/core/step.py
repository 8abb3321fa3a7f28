"""One inference step of the whole model for n sequences, computed identically in both builds.

Generation runs these kernels once per token, so they are written for two things at once:
speed in the numba build (no allocation, short vectorisable loops) and *bit-identical* results
in the numba and numpy builds, so that a seed gives the same text with and without the JIT.
Every product is one of ``matvec.py``, in its fixed summation order. The float32
nonlinearities use the rational tanh of ``lstm_cell`` in both builds; float64 ones use exp
(NumPy's and libm's exp may differ in the last bit, harmless for sampling at 1e-16).

The model is laid out for these kernels by ``minilstm.sample.plan_model``: one flat weight
vector ``weights`` and integer tables of offsets (``layers``: per layer H, D, offset of its input
table or Wx, of Wh, of b, of its state columns, and how many threads share its step;
``head``: the output head). Every matrix the kernels multiply by is stored in column panels
(``matvec.column_panels``). The first layer's input projection is a row lookup in the table
E @ Wx (or Wx itself for one-hot input), stored row-major. A layer shared by threads is cut
into blocks of hidden units, and its gate columns are stored block by block
(:func:`layer_block`), so each thread runs its block's product *and* cell update in one
parallel region per token.

Shapes: tokens (n,); h, c (n, S) with S the sum of the layers' H; logits (n, V); the scratch
buffers xw_buf, z_buf are flat, at least n * (widest row) long.
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel, prange
from .lstm_cell import tanh_rational
from .matvec import block_edges, matvec_panels

HEAD_NONE, HEAD_DENSE, HEAD_LAYER_NORM, HEAD_AFFINE = 0, 1, 2, 3


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


INPUT_READY, INPUT_LOOKUP, INPUT_PRODUCT = 0, 1, 2


@kernel
def layer_block(source, tokens, below, W_in, Wh, b, h_prev, c, h, off, parts, p, xw):
    """Block p of one step of one LSTM layer for n sequences: its pre-activations, then its
    cell update. The H hidden units are cut into ``parts`` blocks (:func:`block_edges`).

    The plan lays each layer out *block-major*: block p, units [lo, hi) with w = hi - lo, owns
    the columns [4 lo, 4 hi) of W_in, Wh and b, holding its gates [i, f, o, g] as four runs of
    w columns. So a block needs no other block's gates, and the blocks can run on different
    threads with no wait between the product and the cell. With one block this is the
    model's own layout. xw (flat, n * 4H) holds block p at [n 4 lo, n 4 hi) as a contiguous
    (n, 4w) array. Wh (H, 4H) is flat, in column panels, and so is W_in (flat) where it is a
    matrix. ``source`` says where the input projection comes from:
        INPUT_READY    xw already holds it (priming: one product over all prompt positions)
        INPUT_LOOKUP   rows tokens (n,) of the table W_in (V, 4H) row-major: E @ Wx or Wx
        INPUT_PRODUCT  below (n, D) @ W_in (D, 4H)
    then xw += h_prev @ Wh + b, in the fixed order of ``matvec.matvec_rows``, and the cell step
    writes the state columns [off + lo, off + hi) of c and h (n, S). h_prev (n, H) is h_{t-1}.
    """
    n = h.shape[0]
    G = b.shape[0]
    lo, hi = block_edges(G // 4, parts, p)
    xw_p = xw[n * 4 * lo:n * 4 * hi].reshape((n, 4 * (hi - lo)))
    if source == INPUT_LOOKUP:
        for i in range(n):             # int64: G * token overflows a small integer dtype
            row = G * np.int64(tokens[i])
            xw_p[i] = W_in[row + 4 * lo:row + 4 * hi]
    elif source == INPUT_PRODUCT:
        xw_p[:] = 0.0
        matvec_panels(below, W_in, 4 * lo, 4 * hi, xw_p, 0)
    matvec_panels(h_prev, Wh, 4 * lo, 4 * hi, xw_p, 0)
    xw_p += b[4 * lo:4 * hi]
    cell_step(xw_p, c, h, off + lo)


@kernel
def layer_step(source, tokens, below, W_in, Wh, b, h_prev, c, h, off, parts, xw):
    """One step of one LSTM layer (:func:`layer_block` for every block), the blocks on
    ``parts`` threads in the numba build (one parallel region per layer and token; one block,
    as in small layers, runs without waking the threads). h_prev (n, H) is scratch: with
    several blocks h_{t-1} is copied there first, since a block overwrites its units of h
    while other blocks still read them. The result is the same bits whatever ``parts`` is:
    every element sees the same operations."""
    H = b.shape[0] // 4
    if parts == 1:         # one block reads all of h_{t-1} before it writes h: no copy needed
        layer_block(source, tokens, below, W_in, Wh, b, h[:, off:off + H], c, h, off, 1, 0, xw)
        return
    h_prev[:] = h[:, off:off + H]
    layer_blocks_split(source, tokens, below, W_in, Wh, b, h_prev, c, h, off, parts, xw)


@kernel(parallel=True)
def layer_blocks_split(source, tokens, below, W_in, Wh, b, h_prev, c, h, off, parts, xw):
    """The blocks of :func:`layer_step`, one per thread (``prange``; in order in the numpy build)."""
    for p in prange(parts):
        layer_block(source, tokens, below, W_in, Wh, b, h_prev, c, h, off, parts, p, xw)


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
        rows = V if layer == 0 else D                    # the lookup table or Wx
        layer_step(INPUT_LOOKUP if layer == 0 else INPUT_PRODUCT, tokens, h[:, below:below + D],
                   weights[off_in:off_in + rows * G], weights[off_wh:off_wh + H * G], weights[off_b:off_b + G],
                   z_buf[:n * H].reshape((n, H)), c, h, off_s, parts, xw_buf[:n * G])
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
        matvec_panels(z, weights[off_w:off_w + width * K], 0, K, a, 0)
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
    matvec_panels(z, weights[off_out:off_out + width * V], 0, V, logits, 0)
    logits += weights[off_outb:off_outb + V]
