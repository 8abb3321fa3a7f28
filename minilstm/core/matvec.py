"""The sampler's matrix-vector products: one fixed summation order, and the layout they read.

Generation must give the same text with and without the JIT, so these products are computed
*bit-identically* in the numba and numpy builds. That rules out BLAS (the numpy and numba builds
call different BLAS libraries whose summation orders may differ): every product here
accumulates in one fixed order,

    y[i, j] += x[i, k] * W[k, j]      for k = 0, 1, ..., K-1        (row-by-row "axpy" order)

which the numpy build performs as K whole-row updates and the numba build as loops; IEEE
float32/float64 multiplication and addition are correctly rounded, so both get the same bits.

Column panels. The weights the sampler reads every token are stored as *column panels*: the
matrix W (K, N) cut into panels of ``PANEL`` columns (the last one narrower when PANEL does
not divide N), each panel stored whole, row after row, one after another:

    flat = [W[:, 0:64] row-major, W[:, 64:128] row-major, ..., W[:, 64 q:N] row-major]

so the panel that starts at column s begins at flat[K * s]. Why: a batch-1 step reads every
weight once, and reading them is what bounds it. A panel is one contiguous stream of K * PANEL
weights, and the PANEL sums of a row of x stay in vector registers while it streams
(:func:`matvec_panels`); row-major W would be read in K strided pieces per block of columns,
with y loaded and stored every few rows. Measured on 2 cores (Zen 4), float32, one product
H x 4H, against the row-major loop: H=512 (4 MB, two threads) 27 against 35 us; H=128 (256 KB,
one thread) 2.8 against 5.0-5.9 us. Whole generation at H=512, L=1, the two layouts
alternating: 29,961-30,279 against 23,731-25,741 chars/s, the same text.

Shapes: x (n, K); y (n, ·); W flat (K * N,) in column panels, or (K, N) row-major where a
kernel says so.
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel, local_array

PANEL = 64     # columns per panel: 4 AVX-512 or 8 AVX2 registers of float32 sums


def column_panels(W: np.ndarray) -> np.ndarray:
    """W (K, N) in the column-panel layout (flat, K * N), for :func:`matvec_panels`."""
    return np.concatenate([W[:, s:s + PANEL].reshape(-1) for s in range(0, W.shape[1], PANEL)])


@kernel
def matvec_rows(x, W, y):
    """y += x @ W for x (n, K), W (K, N) row-major, y (n, N), accumulated over k in order."""
    matvec_columns(x, W, 0, W.shape[1], y, 0)


@kernel
def matvec_columns(x, W, lo, hi, y, at):
    """y[:, at:at + hi - lo] += x @ W[:, lo:hi] for W (K, N) row-major, accumulated over k in
    order (as :func:`matvec_rows`)."""
    for k in range(W.shape[0]):
        y[:, at:at + hi - lo] += x[:, k:k + 1] * W[k, lo:hi]


@matvec_columns.numba_variant
def matvec_columns_loops(x, W, lo, hi, y, at):
    # Four rows of W per pass over y: y[j] + a0*W0[j] + a1*W1[j] + ... evaluates left to right,
    # the very same additions in the same order as one row at a time, with a quarter of the
    # loads and stores of y (measured 1.7x faster at H=128 and H=512; eight rows per pass
    # measured no faster). Fused multiply-adds (which would break the bit-identity between
    # builds) measured no faster either, nor did two rows per pass.
    # Loops run over views starting at column lo, indexed from 0 (a loop from a run-time lo
    # kept the compiler from vectorising it: measured 2.9x slower).
    K, N = W.shape[0], hi - lo
    for i in range(x.shape[0]):
        yi = y[i, at:at + N]
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


@kernel
def matvec_panels(x, W, lo, hi, y, at):
    """y[:, at:at + hi - lo] += x @ M[:, lo:hi], where W holds M (K, N) in column panels; lo is
    a multiple of PANEL and so is hi, or hi = N. Accumulated over k in order (as matvec_rows),
    so the result is the same bits as matvec_rows on M."""
    n, K = x.shape
    full = (hi - lo) // PANEL
    s = lo + full * PANEL
    rows = W[K * lo:K * s].reshape((full, K, PANEL)).transpose((1, 0, 2))   # rows[k] (full, PANEL)
    if s < hi:      # a narrower last panel: back to row-major (a copy), then one update per k
        row_major = np.concatenate((rows.reshape((K, full * PANEL)), W[K * s:K * hi].reshape((K, hi - s))), axis=1)
        matvec_columns(x, row_major, 0, hi - lo, y, at)
        return
    xs = x.T.reshape((K, n, 1, 1))           # whole panels: all of them updated at once per k
    acc = y[:, at:at + full * PANEL].reshape((n, full, PANEL)).copy()
    for k in range(K):
        acc += xs[k] * rows[k]
    y[:, at:at + full * PANEL] = acc.reshape((n, full * PANEL))


@matvec_panels.numba_variant
def matvec_panels_loops(x, W, lo, hi, y, at):
    K = x.shape[1]
    for s in range(lo, hi, PANEL):
        width = min(PANEL, hi - s)
        if width == PANEL and hi - s == PANEL + 1:      # a last panel of one column follows
            matvec_panel_column(x, W[K * s:K * (s + PANEL)].reshape((K, PANEL)), W[K * (s + PANEL):K * hi],
                                y, at + s - lo)
            return
        if width == PANEL:
            matvec_panel(x, W[K * s:K * (s + PANEL)].reshape((K, PANEL)), y, at + s - lo)
        else:                                # a narrower last panel: the row-major loop
            matvec_columns(x, W[K * s:K * hi].reshape((K, width)), 0, width, y, at + s - lo)


@kernel
def matvec_panel(x, panel, y, at):
    """y[:, at:at + PANEL] += x @ panel for one whole panel (K, PANEL), in order over k."""
    matvec_columns(x, panel, 0, PANEL, y, at)


@matvec_panel.numba_variant
def matvec_panel_loops(x, panel, y, at):
    # The PANEL sums of a row sit in acc, which the compiler keeps in vector registers
    # (local_array; a kernel of its own, so that nothing else in it keeps acc in memory), so the
    # loop over k does nothing but stream the panel in and multiply-add: acc[j] + a * Wk[j] is
    # the same rounding, in the same order, as y[j] += a * Wk[j].
    acc = local_array(panel, PANEL)
    for i in range(x.shape[0]):
        yi = y[i, at:at + PANEL]
        for j in range(PANEL):
            acc[j] = yi[j]
        for k in range(panel.shape[0]):
            a, Wk = x[i, k], panel[k]
            for j in range(PANEL):
                acc[j] = acc[j] + a * Wk[j]
        for j in range(PANEL):
            yi[j] = acc[j]


@kernel
def matvec_panel_column(x, panel, column, y, at):
    """y[:, at:at + PANEL + 1] += x @ [panel, column] for a whole panel (K, PANEL) and the one
    column (K,) after it, in order over k."""
    matvec_columns(x, panel, 0, PANEL, y, at)
    matvec_columns(x, column.reshape((column.shape[0], 1)), 0, 1, y, at + PANEL)


@matvec_panel_column.numba_variant
def matvec_panel_column_loops(x, panel, column, y, at):
    # A one-column panel is a chain of K dependent additions: alone (the 65th output of a
    # character model at K=512) it waited on their latency, 0.77 us. Summed in a scalar beside
    # the panel's loop, its additions fill the time the panel's stream leaves.
    acc = local_array(panel, PANEL)
    for i in range(x.shape[0]):
        yi = y[i, at:at + PANEL]
        for j in range(PANEL):
            acc[j] = yi[j]
        last = y[i, at + PANEL]
        for k in range(panel.shape[0]):
            a, Wk = x[i, k], panel[k]
            for j in range(PANEL):
                acc[j] = acc[j] + a * Wk[j]
            last = last + a * column[k]
        for j in range(PANEL):
            yi[j] = acc[j]
        y[i, at + PANEL] = last


@kernel
def block_edges(N, parts, p):
    """[lo, hi) of block p when N columns (or hidden units) are cut into ``parts`` blocks: near
    equal, edges on multiples of PANEL / 4 = 16 (whole vector registers; for a layer's hidden
    units, whole panels of its 4 gate columns each); blocks may come out empty."""
    unit = PANEL // 4
    lo = (p * N // parts) // unit * unit
    hi = N if p == parts - 1 else ((p + 1) * N // parts) // unit * unit
    return lo, hi
