"""One LSTM time step's elementwise work: gate nonlinearities + cell update, and its backward.

The matrix products live in ``lstm.py``; these helpers do everything else for one step in a
single pass. Gate order along 4H is [i, f, o, g] (see ``lstm.py`` for the equations).

Two sources, one contract (see ``_jit.py``):
- the array version (below each ``@kernel``) is the numpy build: whole (B, H) blocks per ufunc,
  readable, and allocates a few (B, H) temporaries per step;
- the loop version (``@....numba_variant``) is compiled for the numba backend: one pass over
  the B*H units in short vectorised passes, nothing allocated. Several times faster than the
  array version under Numba, whose array expressions allocate and make 10+ passes over memory
  (forward 2.6 ns, backward 0.9 ns per unit at B=64, H=512).
``tests/test_backends.py`` checks the two agree in float32 and float64.

Nonlinearities in the loop version are written with ``exp`` only: Numba's scalar ``tanh`` calls
libm's, which measured ~7x slower than ``exp`` here, and tanh(a) = 2*sigma(2a) - 1 exactly.
Overflow is harmless: exp(+inf) = inf gives sigma = 0 and tanh = -1, the correct limits.
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel


@kernel
def tanh_rational(x):
    """tanh for float32 as a rational function (Eigen's coefficients): no exp, no branches, so
    the compiler vectorises loops that use it. Max abs error 4e-7 on float32 inputs
    (``tests/test_lstm_cell.py`` measures it); exact +-1 beyond |x| > 7.9; NaN in, NaN out."""
    bound = np.float32(7.90531110763549805)   # beyond it float32 tanh rounds to +-1
    # Clamp written so that NaN compares false and passes through: a NaN activation must
    # reach the loss, where the trainer stops on it, instead of being clamped to a number.
    x = bound if x > bound else x
    x = -bound if x < -bound else x
    x2 = x * x
    p = np.float32(-2.76076847742355e-16)
    p = p * x2 + np.float32(2.00018790482477e-13)
    p = p * x2 + np.float32(-8.60467152213735e-11)
    p = p * x2 + np.float32(5.12229709037114e-08)
    p = p * x2 + np.float32(1.48572235717979e-05)
    p = p * x2 + np.float32(6.37261928875436e-04)
    p = p * x2 + np.float32(4.89352455891786e-03)
    q = np.float32(1.19825839466702e-06)
    q = q * x2 + np.float32(1.18534705686654e-04)
    q = q * x2 + np.float32(2.26843463243900e-03)
    q = q * x2 + np.float32(4.89352518554385e-03)
    return x * p / q


@kernel
def sigmoid_inplace(a, fast):
    """a <- sigma(a) for a 1-D array: 0.5 + 0.5 tanh(a / 2) with the rational tanh when
    ``fast`` (float32), else 1 / (1 + exp(-a)). The branch sits outside the loops so each loop
    is a plain vectorisable pass."""
    if fast:
        half = a.dtype.type(0.5)
        for k in range(a.shape[0]):
            a[k] = half + half * tanh_rational(half * a[k])
    else:
        for k in range(a.shape[0]):
            a[k] = 1.0 / (1.0 + np.exp(-a[k]))


@kernel
def tanh_into(a, out, fast):
    """out <- tanh(a) for 1-D arrays: rational when ``fast``, else 2 / (1 + exp(-2a)) - 1
    (exact to rounding; exp(+inf) = inf gives the correct limit -1)."""
    if fast:
        for k in range(a.shape[0]):
            out[k] = tanh_rational(a[k])
    else:
        for k in range(a.shape[0]):
            out[k] = 2.0 / (1.0 + np.exp(-(a[k] + a[k]))) - 1.0


@kernel
def tanh_inplace(a, fast):
    """a <- tanh(a) for a 1-D array. Separate from :func:`tanh_into` because a loop whose input
    and output are the same array fails the compiler's run-time overlap check and falls back to
    scalar code (measured 6x slower than this single-array loop)."""
    if fast:
        for k in range(a.shape[0]):
            a[k] = tanh_rational(a[k])
    else:
        for k in range(a.shape[0]):
            a[k] = 2.0 / (1.0 + np.exp(-(a[k] + a[k]))) - 1.0


@kernel
def add_transposed(a, rows, bT, out):
    """out[n, :] <- a[rows[n], :] + bT[:, n], for bT (K, B) and out (B, K).

    How a step reads a matrix product that was computed transposed (see ``lstm.py``: from
    H = 96 up the per-step products run faster with the batch as the short, second axis of
    their output), added to rows of ``a`` picked by ``rows``: the step's own (B, K) block with
    rows = 0..B-1, or a (V, K) table of input projections with rows = the step's token ids.
    """
    add_transposed_blocks(a, rows, 0, 0, 1, bT, out)


@kernel
def add_transposed_blocks(a, rows, lo, stride, blocks, bT, out):
    """out[n, q w + j] <- a[rows[n], q stride + lo + j] + bT[q w + j, n] for q < blocks, with
    out (B, blocks w) and bT (blocks w, B): :func:`add_transposed` reading ``blocks`` runs of w
    columns of ``a`` (a team member's gate columns, see ``lstm_team.py``)."""
    w = out.shape[1] // blocks
    for q in range(blocks):
        out[:, q * w:(q + 1) * w] = a[rows, q * stride + lo:q * stride + lo + w] + bT[q * w:(q + 1) * w].T


@add_transposed_blocks.numba_variant
def add_transposed_blocks_loops(a, rows, lo, stride, blocks, bT, out):
    # Four batch rows per pass over K: each bT row is read once for four outputs, so the
    # strided reads touch a quarter of the cache lines (measured 2x faster than one row at a
    # time, 21 us against 43 us for B=32, K=2048). Loops run over views indexed from 0, which
    # the compiler vectorises.
    B, K = out.shape
    w = K // blocks
    n = 0
    while n + 4 <= B:
        for q in range(blocks):
            at, first = q * stride + lo, q * w
            a0, a1 = a[rows[n]][at:at + w], a[rows[n + 1]][at:at + w]
            a2, a3 = a[rows[n + 2]][at:at + w], a[rows[n + 3]][at:at + w]
            o0, o1 = out[n][first:first + w], out[n + 1][first:first + w]
            o2, o3 = out[n + 2][first:first + w], out[n + 3][first:first + w]
            for j in range(w):
                r = bT[first + j]
                o0[j] = a0[j] + r[n]
                o1[j] = a1[j] + r[n + 1]
                o2[j] = a2[j] + r[n + 2]
                o3[j] = a3[j] + r[n + 3]
        n += 4
    for m in range(n, B):
        for q in range(blocks):
            at, first = q * stride + lo, q * w
            am, om = a[rows[m]][at:at + w], out[m][first:first + w]
            for j in range(w):
                om[j] = am[j] + bT[first + j, m]


@kernel
def add_rows(a, rows, out):
    """out[n, :] <- out[n, :] + a[rows[n], :]: the input projections (rows of a (V, K) table, or
    the step's own block) added to a recurrent product computed in place (see ``lstm.py``)."""
    out += a[rows]


@add_rows.numba_variant
def add_rows_loops(a, rows, out):
    # Row by row: fancy indexing would allocate a (B, K) temporary every step.
    for n in range(out.shape[0]):
        src, dst = a[rows[n]], out[n]
        for k in range(out.shape[1]):
            dst[k] += src[k]


@kernel
def cell_forward(gates_t, b, c_prev, c_t, tanh_c_t, h_t):
    """Forward elementwise pass of one step.

    In: gates_t (B, 4H) holds x_t @ Wx + h_{t-1} @ Wh (the driver puts the two products there,
    see ``lstm.py``); bias b (4H,); c_prev (B, H).
    Out (written in place): gates_t post-activation [i, f, o, g]; c_t, tanh_c_t, h_t (B, H).
    """
    H = c_prev.shape[1]
    np.add(gates_t, b, gates_t)                      # a_t = x_t @ Wx + h_{t-1} @ Wh + b
    s = gates_t[:, :3 * H]                           # i, f, o = sigma(a): 1 / (1 + exp(-a))
    np.negative(s, s)
    np.exp(s, s)
    np.add(s, 1.0, s)
    np.divide(1.0, s, s)
    np.tanh(gates_t[:, 3 * H:], gates_t[:, 3 * H:])  # g = tanh(a)
    i, f, o, g = gates_t[:, :H], gates_t[:, H:2 * H], gates_t[:, 2 * H:3 * H], gates_t[:, 3 * H:]
    np.multiply(f, c_prev, c_t)                      # c = f * c_prev + i * g
    np.multiply(i, g, h_t)                           # (h_t holds i * g for a moment)
    np.add(c_t, h_t, c_t)
    np.tanh(c_t, tanh_c_t)
    np.multiply(o, tanh_c_t, h_t)                    # h = o * tanh(c)


@cell_forward.numba_variant
def cell_forward_loops(gates_t, b, c_prev, c_t, tanh_c_t, h_t):
    # One batch row at a time, as short passes that each compile to vector instructions
    # (measured 1.2-1.8x faster than one loop doing everything per unit, which does not).
    fast = gates_t.itemsize == 4      # float32: rational tanh; float64: exact, via exp
    for n in range(c_prev.shape[0]):
        cell_row_forward(gates_t[n], b, c_prev[n], c_t[n], tanh_c_t[n], h_t[n], fast)


@kernel
def cell_row_forward(g, b, cp, c, tc, h, fast):
    """The forward pass of one batch row, 1-D arrays: g (4H,) the products in, the gates out;
    b (4H,); cp, c, tc, h (H,). Loops only (a helper of the numba builds)."""
    H = cp.shape[0]
    for k in range(4 * H):
        g[k] += b[k]                                     # a_t
    sigmoid_inplace(g[:3 * H], fast)                     # i, f, o
    tanh_inplace(g[3 * H:], fast)                        # g
    for j in range(H):
        c[j] = g[H + j] * cp[j] + g[j] * g[3 * H + j]    # c = f * c_prev + i * g
    tanh_into(c, tc, fast)
    for j in range(H):
        h[j] = g[2 * H + j] * tc[j]                      # h = o * tanh(c)


@kernel
def cell_backward(dh, dc_next, gates_t, c_prev, tanh_c_t, dgates_t):
    """Backward elementwise pass of one step, from stored post-activation gates.

    In: dh (B, H) the whole gradient on h_t (upstream plus what step t+1 sent back); dc_next
    (B, H) gradient on c_t from step t+1; gates_t, c_prev, tanh_c_t from the forward.
    Out: dgates_t (B, 4H) = dL/da_t; dc_next is overwritten with dL/dc_{t-1}.
    """
    H = c_prev.shape[1]
    i, f, o, g = gates_t[:, :H], gates_t[:, H:2 * H], gates_t[:, 2 * H:3 * H], gates_t[:, 3 * H:]
    # h = o * tanh(c)          ->  do = dh * tanh(c);  dc += dh * o * (1 - tanh(c)^2)
    do = dh * tanh_c_t
    dc = dc_next + dh * o * (1.0 - tanh_c_t * tanh_c_t)
    # c = f * c_prev + i * g   ->  di = dc * g;  df = dc * c_prev;  dg = dc * i;  dc_prev = dc * f
    # then through the nonlinearities from their outputs: sigma' = s (1 - s), tanh' = 1 - y^2
    dgates_t[:, :H] = dc * g * i * (1.0 - i)
    dgates_t[:, H:2 * H] = dc * c_prev * f * (1.0 - f)
    dgates_t[:, 2 * H:3 * H] = do * o * (1.0 - o)
    dgates_t[:, 3 * H:] = dc * i * (1.0 - g * g)
    dc_next[:] = dc * f


@cell_backward.numba_variant
def cell_backward_loops(dh, dc_next, gates_t, c_prev, tanh_c_t, dgates_t):
    # Short loops that each write one output block: a loop writing several arrays while reading
    # several others needs more run-time overlap checks than the compiler will emit, and stays
    # scalar (the one-loop version measured 2.2x slower). Constants are in the arrays' dtype: a
    # float64 1.0 would promote float32 arithmetic to float64 and halve the vector width.
    B, H = c_prev.shape
    one = gates_t.dtype.type(1.0)
    for n in range(B):
        g, dg, d, dc = gates_t[n], dgates_t[n], dh[n], dc_next[n]
        tc, cp = tanh_c_t[n], c_prev[n]
        for j in range(H):
            o = g[2 * H + j]
            dg[2 * H + j] = d[j] * tc[j] * o * (one - o)         # do, through sigma'
        for j in range(H):
            dc[j] += d[j] * g[2 * H + j] * (one - tc[j] * tc[j])    # dc += dh * o * tanh'(c)
        for j in range(H):
            i, gg = g[j], g[3 * H + j]
            dg[j] = dc[j] * gg * i * (one - i)                   # di
        for j in range(H):
            f = g[H + j]
            dg[H + j] = dc[j] * cp[j] * f * (one - f)            # df
        for j in range(H):
            i, gg = g[j], g[3 * H + j]
            dg[3 * H + j] = dc[j] * i * (one - gg * gg)          # dg
        for j in range(H):
            dc[j] *= g[H + j]                                    # dc_prev = dc * f
