"""One inference step of the whole model for n sequences, computed identically in both builds.

Generation runs these kernels once per token, so they are written for two things at once:
speed in the numba build (no allocation, short vectorisable loops) and *bit-identical* results
in the numba and numpy builds, so that a seed gives the same text with and without the JIT.
Every product is one of ``matvec.py``, in its fixed summation order. The float32
nonlinearities use the rational tanh of ``lstm_cell`` in both builds; float64 ones use exp
(NumPy's and libm's exp may differ in the last bit, harmless for sampling at 1e-16).

The model is laid out for these kernels by ``minilstm.sample.plan_model``: one flat weight
vector ``weights`` and integer tables of offsets (``layers``: per layer H, D, offset of its input
table or Wx, of Wh, of b, of its state columns; ``edges``: the blocks each layer is cut into;
``head``: the output head). Every matrix the kernels multiply by is stored in column panels
(``matvec.column_panels``). The first layer's input projection is a row lookup in the table
E @ Wx (or Wx itself for one-hot input), stored row-major.

One order for every pre-activation, in every build and every kernel that computes one
(priming included):

    a_t = (h_{t-1} @ Wh  +  x_t @ Wx)  +  b        each product summed from zero, in matvec order

where x_t @ Wx is the table row for the first layer. The recurrent product comes first because
it needs only h_{t-1}: a thread can start it while another is still choosing the token.

Blocks. A layer is cut into blocks of hidden units, and its gate columns are stored block by
block (``minilstm.sample.block_major_columns``): block p owns units [lo, hi) and the gate
columns [4 lo, 4 hi), its gates [i, f, o, g] as four runs of hi - lo columns. A block needs no
other block's gates, so the blocks can run on different threads (a *team*, ``team.py``) with
no wait between the product and the cell; h_{t-1} and h_t live in different arrays, so no block
overwrites what another still reads. With one block this is the model's own layout, and the
result is the same bits whatever the blocks: every element sees the same operations.

Shapes: tokens (n,); h, c (n, S) with S the sum of the layers' H; logits (n, V); the scratch
buffers xw_buf, u_buf, z_buf are flat, at least n * (widest row) long.
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel
from .lstm_cell import tanh_rational
from .matvec import matvec_panels
from .team import meet

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
    # Every loop runs over a view from index 0: the tanh of g as a loop over a[3H:4H] was not
    # vectorised (0.77 us at H=256, against 0.08 us over a view; the whole step 1.2 -> 0.5 us).
    H = xw.shape[1] // 4
    for i in range(xw.shape[0]):
        a, ci, hi = xw[i], c[i][off:off + H], h[i][off:off + H]
        s, g = a[:3 * H], a[3 * H:]
        if xw.itemsize == 4:
            half = np.float32(0.5)
            for k in range(3 * H):
                s[k] = half + half * tanh_rational(half * s[k])
            for k in range(H):
                g[k] = tanh_rational(g[k])
        else:
            for k in range(3 * H):
                s[k] = 1.0 / (1.0 + np.exp(-s[k]))
            for k in range(H):
                g[k] = 2.0 / (1.0 + np.exp(-(g[k] + g[k]))) - 1.0
        i_gate, f_gate, o_gate = s[:H], s[H:2 * H], s[2 * H:]
        for j in range(H):
            ci[j] = f_gate[j] * ci[j] + i_gate[j] * g[j]
        if xw.itemsize == 4:
            for j in range(H):
                hi[j] = o_gate[j] * tanh_rational(ci[j])
        else:
            for j in range(H):
                hi[j] = o_gate[j] * (2.0 / (1.0 + np.exp(-(ci[j] + ci[j]))) - 1.0)


INPUT_READY, INPUT_LOOKUP, INPUT_PRODUCT = 0, 1, 2


@kernel
def recurrent_block(h_prev, Wh, lo, hi, xw):
    """xw (n, 4w) <- h_prev (n, H) @ Wh[:, 4 lo:4 hi], summed from zero in ``matvec`` order: the
    recurrent part of the pre-activations of block [lo, hi) (w = hi - lo units). It needs only
    h_{t-1}, so a thread can compute it before the step's token is known."""
    xw[:] = 0.0
    matvec_panels(h_prev, Wh, 4 * lo, 4 * hi, xw, 0)


@kernel
def finish_block(source, tokens, below, W_in, b, lo, hi, xw, u, c, h, off):
    """Block [lo, hi) of a layer step once xw holds its recurrent part (:func:`recurrent_block`):
    xw += the input projection u, xw += b, then the cell writes the state columns
    [off + lo, off + hi) of c and h (n, S). ``source`` says where u comes from:
        INPUT_READY    u (n, 4w) holds it (priming: one product over all prompt positions)
        INPUT_LOOKUP   rows tokens (n,) of the table W_in (V, 4H), flat row-major: E @ Wx or Wx
        INPUT_PRODUCT  below (n, D) @ W_in (D, 4H, column panels), summed from zero into u (n, 4w)
    """
    n = xw.shape[0]
    G = b.shape[0]
    if source == INPUT_LOOKUP:
        for i in range(n):             # int64: G * token overflows a small integer dtype
            row = G * np.int64(tokens[i])
            xw[i] += W_in[row + 4 * lo:row + 4 * hi]
    else:
        if source == INPUT_PRODUCT:
            u[:] = 0.0
            matvec_panels(below, W_in, 4 * lo, 4 * hi, u, 0)
        xw += u
    xw += b[4 * lo:4 * hi]
    cell_step(xw, c, h, off + lo)


@kernel
def token_layers(member, members, weights, layers, edges, vocab, tokens, h, h_next, c, xw_buf,
                 u_buf, sync, count, early):
    """One token through every layer, for n sequences: state h_{t-1} in h, h_t written to h_next
    (n, S), c updated in place. Each layer is cut into blocks of hidden units, block p owning
    units edges[layer, p:p + 2] (plan order: ``minilstm.sample.plan_model``).

    In a team of ``members`` threads, member m runs block m of each layer, and the members meet
    (``team.meet`` on ``sync``) before every layer but the first, when the layer below is
    complete, and at the end, when h_next is; ``count`` is the meeting count carried from
    call to call. Alone (members == 1) the caller runs every block in order. ``early``: the
    member's recurrent part of the first layer is already in xw_buf (:func:`recurrent_block`).
    xw_buf, u_buf: flat scratch of n * 4H, block p at [n 4 lo, n 4 hi). Returns the new count,
    or -1 if the team was aborted."""
    n = tokens.shape[0]
    first, last = (0, edges.shape[1] - 1) if members == 1 else (member, member + 1)
    below = 0
    for layer in range(layers.shape[0]):
        H, D, off_in = layers[layer, 0], layers[layer, 1], layers[layer, 2]
        off_wh, off_b, off_s = layers[layer, 3], layers[layer, 4], layers[layer, 5]
        G = 4 * H
        rows = vocab if layer == 0 else D                            # the lookup table or Wx
        if layer > 0 and members > 1:
            count += 1
            if not meet(sync, member, members, count):
                return -1
        for p in range(first, last):
            lo, hi = edges[layer, p], edges[layer, p + 1]
            xw = xw_buf[n * 4 * lo:n * 4 * hi].reshape((n, 4 * (hi - lo)))
            u = u_buf[n * 4 * lo:n * 4 * hi].reshape((n, 4 * (hi - lo)))
            if not (early and layer == 0):
                recurrent_block(h[:, off_s:off_s + H], weights[off_wh:off_wh + H * G], lo, hi, xw)
            finish_block(INPUT_LOOKUP if layer == 0 else INPUT_PRODUCT, tokens, h_next[:, below:below + D],
                         weights[off_in:off_in + rows * G], weights[off_b:off_b + G], lo, hi, xw, u,
                         c, h_next, off_s)
        below = off_s
    if members > 1:
        count += 1
        if not meet(sync, member, members, count):
            return -1
    return count


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
def forward_token(weights, layers, edges, head, eps, tokens, h, h_next, c, xw_buf, u_buf, z_buf, logits):
    """Feed tokens (n,) through every layer on this thread (:func:`token_layers`, all blocks in
    order): the state h, c (n, S) becomes h_next, c; logits (n, V) <- the prediction."""
    top = layers.shape[0] - 1
    token_layers(0, 1, weights, layers, edges, logits.shape[1], tokens, h, h_next, c, xw_buf, u_buf,
                 np.zeros(1, np.int64), 0, False)
    output_head(weights, head, eps, h_next[:, layers[top, 5]:layers[top, 5] + layers[top, 0]], z_buf, logits)


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
