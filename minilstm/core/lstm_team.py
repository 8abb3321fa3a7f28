"""The LSTM time loops shared by a team of threads, each owning a block of hidden units.

Equations: those of ``lstm.py``. Member m of an n-member team owns the hidden units
[lo, hi) = ``matvec.block_edges(H, n, m)`` (w = hi - lo of them) and their four gate columns
{q H + j : q = 0..3, j in [lo, hi)}, for every sequence of the joint batch:

    forward, step t:   pre = Wh[:, own]^T @ h_{t-1}^T          (4w, B)  reads all of h_{t-1}
                       a = xw_t[:, own] + pre^T + b[own]         (B, 4w)
                       the cell (lstm_cell.cell_forward) on units [lo, hi): gates_t[:, own],
                       c_t, tanh(c_t), h_t[:, lo:hi]
                       meet: every member has written its units of h_t
    backward, step t:  dh_total = dh_t[:, lo:hi] + dh_back^T     (B, w)
                       cell_backward on units [lo, hi): dgates_t[:, own]; dc in place
                       meet: every member has written its columns of dgates_t
                       dh_back = Wh[lo:hi] @ dgates_t^T          (w, B) = dL/dh_{t-1}[:, lo:hi]^T

Shapes: T, B (the joint batch: the members' rows, in member order), H as in ``lstm.py``.

Why. Batch shards (``minilstm.parallel``) give each core B/n sequences, so each core's per-step
product is (B/n, H) @ (H, 4H), and BLAS runs a thin product well below the core's peak. A team
gives each core all B sequences and 4H/n of the columns instead. Single-threaded OpenBLAS, in
microseconds, one shard of 25 sequences against one member of a 2-member team at B = 50:
forward H=512 828 against 584 (transposed, as ``lstm.py`` computes it), backward H=512 822
against 656, H=1024 4099 against 2719; at H=256 the two are within 10 %, and at H=128 a team
was no faster. The members meet once per step, a busy wait on shared counters (``team.meet``,
0.1-0.3 us on 2 cores): a hand-over through Python per step would cost more than a step.

Who does what. Each member brings its own rows (its input projection or token ids, its initial
state, its upstream gradients) and gets its rows back; the shared (T, B, .) arrays are allocated
by :meth:`Team.exchange` and reused from step to step. Weight gradients stay per member, over
its own rows, as in a shard (``lstm.weight_gradients``), so a member's gradient is exactly its
shard's.

Notes: all members must call with the same T, Wh and b, at the same time, each on its own
thread (a member alone waits for the others). A member that fails calls :meth:`Team.abort`;
the others' waits then end with ``TeamAborted`` instead of spinning. Memory, on top of a shard's
cache: the stacked input rows (R x 4H, R the members' rows of it) and, in backward, the whole
batch's dh and dgates.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._jit import kernel
from .lstm_cell import add_transposed_blocks, cell_backward, cell_forward, cell_row_forward
from .lstm import LSTMCache, transpose_into, weight_gradients
from .matvec import block_edges
from .team import TeamMember, meet, reuse, row_ranges


def own_columns(H: int, lo: int, hi: int) -> np.ndarray:
    """The gate columns of units [lo, hi): [i, f, o, g] each as a run of hi - lo columns."""
    return np.concatenate([np.arange(q * H + lo, q * H + hi) for q in range(4)])


# ----------------------------------------------------------------------------- kernels

@kernel
def cell_forward_units(a, b_own, lo, c_prev, c_t, tanh_c_t, h_t, gates_t):
    """``lstm_cell.cell_forward`` for the units [lo, lo + w) of (B, H) states: a (B, 4w) their
    pre-activations without bias, b_own (4w,); writes their post-activation gates into their
    columns of gates_t (B, 4H) and their columns of c_t, tanh_c_t, h_t."""
    w = a.shape[1] // 4
    hi = lo + w
    cell_forward(a, b_own, c_prev[:, lo:hi], c_t[:, lo:hi], tanh_c_t[:, lo:hi], h_t[:, lo:hi])
    H = c_t.shape[1]
    for q in range(4):
        gates_t[:, q * H + lo:q * H + hi] = a[:, q * w:(q + 1) * w]


@cell_forward_units.numba_variant
def cell_forward_units_loops(a, b_own, lo, c_prev, c_t, tanh_c_t, h_t, gates_t):
    # cell_forward_loops on row views of the units: (B, w) column slices would reach the loops
    # with an unknown stride, which the compiler does not vectorise (measured 3.5x slower).
    B, H = c_t.shape
    w = a.shape[1] // 4
    hi = lo + w
    fast = a.itemsize == 4
    for n in range(B):
        g = a[n]
        cell_row_forward(g, b_own, c_prev[n][lo:hi], c_t[n][lo:hi], tanh_c_t[n][lo:hi], h_t[n][lo:hi], fast)
        row = gates_t[n]
        for q in range(4):
            row[q * H + lo:q * H + hi] = g[q * w:(q + 1) * w]


@kernel
def cell_backward_units(dh, dc, lo, gates_t, c_prev, tanh_c_t, dgates_t):
    """``lstm_cell.cell_backward`` for the units [lo, lo + w): dh, dc (B, w) their gradients
    (dc becomes dL/dc_{t-1}); gates_t (B, 4H), c_prev, tanh_c_t (B, H) the forward's; writes
    their columns of dgates_t (B, 4H)."""
    B, w = dh.shape
    H = c_prev.shape[1]
    hi = lo + w
    own = np.empty((B, 4 * w), dtype=dh.dtype)
    d_own = np.empty((B, 4 * w), dtype=dh.dtype)
    for q in range(4):
        own[:, q * w:(q + 1) * w] = gates_t[:, q * H + lo:q * H + hi]
    cell_backward(dh, dc, own, c_prev[:, lo:hi], tanh_c_t[:, lo:hi], d_own)
    for q in range(4):
        dgates_t[:, q * H + lo:q * H + hi] = d_own[:, q * w:(q + 1) * w]


@cell_backward_units.numba_variant
def cell_backward_units_loops(dh, dc, lo, gates_t, c_prev, tanh_c_t, dgates_t):
    # cell_backward_loops on row views of the units (see cell_forward_units_loops). Written out
    # rather than shared with it through a per-row helper: both ways of sharing it that were
    # tried (twelve views, or one row with run-time offsets) kept the compiler from vectorising
    # the plain cell's loops, at B=25 H=128 2.3-2.8 us became 5.5-5.8 and 15.8-16.4 us.
    B, w = dh.shape
    H = c_prev.shape[1]
    hi = lo + w
    one = gates_t.dtype.type(1.0)
    for n in range(B):
        g, dg, d, dcn = gates_t[n], dgates_t[n], dh[n], dc[n]
        gi, gf, go, gg = g[lo:hi], g[H + lo:H + hi], g[2 * H + lo:2 * H + hi], g[3 * H + lo:3 * H + hi]
        di, df = dg[lo:hi], dg[H + lo:H + hi]
        do, dgg = dg[2 * H + lo:2 * H + hi], dg[3 * H + lo:3 * H + hi]
        tc, cp = tanh_c_t[n][lo:hi], c_prev[n][lo:hi]
        for j in range(w):
            do[j] = d[j] * tc[j] * go[j] * (one - go[j])                # do, through sigma'
        for j in range(w):
            dcn[j] += d[j] * go[j] * (one - tc[j] * tc[j])             # dc += dh * o * tanh'(c)
        for j in range(w):
            di[j] = dcn[j] * gg[j] * gi[j] * (one - gi[j])              # di
        for j in range(w):
            df[j] = dcn[j] * cp[j] * gf[j] * (one - gf[j])              # df
        for j in range(w):
            dgg[j] = dcn[j] * gi[j] * (one - gg[j] * gg[j])             # dg
        for j in range(w):
            dcn[j] *= gf[j]                                             # dc_prev = dc * f


@kernel
def own_weights_transposed(Wh, lo, hi, out):
    """out (4w, H) <- Wh[:, own]^T: a member's gate columns of Wh (H, 4H), as rows."""
    H, w = Wh.shape[0], hi - lo
    for q in range(4):
        transpose_into(Wh[:, q * H + lo:q * H + hi], out[q * w:(q + 1) * w])


@kernel
def _team_forward(sync, member, members, xw, ids, h0, c0, WhT_own, b_own, lo, gates, c, tanh_c, h):
    """Member ``member``'s share of the forward time loop. xw (R, 4H) stacked input rows, read
    as xw[ids[t]]; WhT_own (4w, H) = Wh[:, own]^T, b_own (4w,); fills its columns of the shared
    gates, c, tanh_c, h (T, B, .). Meets after the inputs are in place (round 1) and after each
    step (rounds 2..T+1). Returns False if the team was aborted."""
    T, B, H = h.shape
    w = WhT_own.shape[0] // 4
    pre = np.empty((4 * w, B), dtype=h.dtype)
    a = np.empty((B, 4 * w), dtype=h.dtype)
    if not meet(sync, member, members, 1):
        return False
    for t in range(T):
        if w > 0:
            h_prev = h0 if t == 0 else h[t - 1]
            c_prev = c0 if t == 0 else c[t - 1]
            np.dot(WhT_own, h_prev.T, pre)                      # own columns of h_{t-1} @ Wh
            add_transposed_blocks(xw, ids[t], lo, H, 4, pre, a)             # + x_t @ Wx
            cell_forward_units(a, b_own, lo, c_prev, c[t], tanh_c[t], h[t], gates[t])  # + b; the cell
        if not meet(sync, member, members, t + 2):              # all of h_t written
            return False
    return True


@kernel
def _team_backward(sync, member, members, dh, dhT, dcT, gates, c, tanh_c, c0, Wh_own, lo,
                   dgates, dh0, dc0):
    """Member ``member``'s share of BPTT: fills its columns of dgates (T, B, 4H) and its units of
    dh0, dc0 (B, H). Wh_own (w, 4H) = Wh[lo:hi]. Rounds: 1 inputs in place, then one per step,
    then T + 2 when dh0, dc0 are complete. Returns False if the team was aborted."""
    T, B, H = c.shape
    w = Wh_own.shape[0]
    hi = lo + w
    dh_back = np.empty((w, B), dtype=c.dtype)      # dL/dh_t from step t+1, own units, transposed
    dh_total = np.empty((B, w), dtype=c.dtype)
    dc = np.empty((B, w), dtype=c.dtype)
    own_rows = np.arange(B)
    if not meet(sync, member, members, 1):
        return False
    dh_back[:] = dhT[:, lo:hi].T
    dc[:] = dcT[:, lo:hi]
    for t in range(T - 1, -1, -1):
        if w > 0:
            c_prev = c0 if t == 0 else c[t - 1]
            add_transposed_blocks(dh[t], own_rows, lo, H, 1, dh_back, dh_total)
            cell_backward_units(dh_total, dc, lo, gates[t], c_prev, tanh_c[t], dgates[t])
        if not meet(sync, member, members, T - t + 1):          # all of dgates_t written
            return False
        if w > 0:                        # a_t = ... + h_{t-1} @ Wh  ->  own units of dh_{t-1}
            np.dot(Wh_own, dgates[t].T, dh_back)
    dh0[:, lo:hi] = dh_back.T
    dc0[:, lo:hi] = dc
    return meet(sync, member, members, T + 2)


# ----------------------------------------------------------------------------- public API

class _Shared(NamedTuple):
    """What a team's forward shares: the joint batch's arrays and who owns which rows."""
    ranges: list          # [lo, hi) of each member's rows of the batch
    gates: np.ndarray     # (T, B, 4H)
    c: np.ndarray         # (T, B, H)
    tanh_c: np.ndarray    # (T, B, H)
    h: np.ndarray         # (T, B, H)
    c0: np.ndarray        # (B, H)
    input_starts: list    # where each member's input rows start in ``xw``
    xw: np.ndarray        # (R, 4H) every member's input rows, stacked
    ids: np.ndarray       # (T, B) rows of xw for each step
    h0: np.ndarray        # (B, H)


def _agreed(where, items, names):
    """The one value of each field the members gave, or a ValueError naming the disagreement."""
    for k, name in enumerate(names):
        values = {item[k] for item in items}
        if len(values) > 1:
            raise ValueError(f"{where}: the team's members disagree on {name}: {sorted(map(str, values))}")
    return items[0][:len(names)]


def team_forward(member: TeamMember, input_rows: int, fill, ids, h0, c0, Wh, b):
    """One member's part of ``lstm.lstm_recurrence_forward`` over the team's joint batch.

    The member contributes ``input_rows`` rows of input projections, written by ``fill(rows)``
    into its (input_rows, 4H) block of the team's stacked table, and reads them as
    ``rows[ids[t]]`` (ids (T, B_m)); h0, c0 (B_m, H) its initial state. Returns its h (T, B_m, H)
    (a view of the joint array), (hT, cT) and an ``LSTMCache`` of views, whose ``team`` field
    lets ``lstm_recurrence_backward`` run the backward as a team too.
    """
    team, index = member.team, member.index
    T, B_m = ids.shape
    H, dtype = Wh.shape[0], Wh.dtype

    def combine(items, kept):
        _agreed("lstm team forward", items, ("T", "H", "dtype"))
        ranges = row_ranges([item[3] for item in items])
        starts = [int(s) for s in np.cumsum([0] + [item[4] for item in items])]
        B = ranges[-1][1]
        previous = kept if isinstance(kept, _Shared) else None
        floats = reuse(None if previous is None else (previous.gates, previous.c, previous.tanh_c,
                                                      previous.h, previous.c0, previous.xw, previous.h0),
                       [(T, B, 4 * H), (T, B, H), (T, B, H), (T, B, H), (B, H), (starts[-1], 4 * H), (B, H)],
                       dtype)
        ids_all, = reuse(None if previous is None else [previous.ids], [(T, B)], np.dtype(np.int64))
        return _Shared(ranges, *floats[:5], starts, floats[5], ids_all, floats[6])

    shared = team.exchange(index, (T, H, str(dtype), B_m, input_rows), combine)
    lo_r, hi_r = shared.ranges[index]
    start = shared.input_starts[index]
    fill(shared.xw[start:start + input_rows])
    shared.ids[:, lo_r:hi_r] = ids + start
    shared.h0[lo_r:hi_r] = h0
    shared.c0[lo_r:hi_r] = c0
    lo, hi = block_edges(H, team.members, index)
    own = own_columns(H, lo, hi)
    WhT_own = np.empty((4 * (hi - lo), H), dtype)
    own_weights_transposed(Wh, lo, hi, WhT_own)
    with np.errstate(over="ignore"):     # exp overflow saturates the sigmoid, as in lstm.py
        team.check(_team_forward(team.sync, index, team.members, shared.xw, shared.ids, shared.h0,
                                 shared.c0, WhT_own, np.ascontiguousarray(b[own]), lo,
                                 shared.gates, shared.c, shared.tanh_c, shared.h))
    mine = [a[:, lo_r:hi_r] for a in (shared.gates, shared.c, shared.tanh_c, shared.h)]
    final = (shared.h[-1, lo_r:hi_r].copy(), shared.c[-1, lo_r:hi_r].copy())
    return mine[3], final, LSTMCache(*mine, h0, c0, Wh, b, team=(member, shared))


def team_backward(cache, dh, dhT, dcT, dWh, db):
    """One member's part of ``lstm.lstm_recurrence_backward`` after :func:`team_forward`:
    shares the time loop, then adds the gradients of its own rows into dWh, db (as a shard
    would) and returns its (dxw, dh0, dc0)."""
    member, fwd = cache.team
    team, index = member.team, member.index
    T, B_m, H = dh.shape
    dtype = dh.dtype

    def combine(items, kept):
        B = fwd.ranges[-1][1]
        previous = kept if isinstance(kept, list) else None
        return reuse(previous, [(T, B, H), (B, H), (B, H), (T, B, 4 * H), (B, H), (B, H)], dtype)

    dh_all, dhT_all, dcT_all, dgates, dh0, dc0 = team.exchange(index, None, combine)
    lo_r, hi_r = fwd.ranges[index]
    dh_all[:, lo_r:hi_r] = dh
    dhT_all[lo_r:hi_r] = dhT
    dcT_all[lo_r:hi_r] = dcT
    lo, hi = block_edges(H, team.members, index)
    team.check(_team_backward(team.sync, index, team.members, dh_all, dhT_all, dcT_all, fwd.gates,
                              fwd.c, fwd.tanh_c, fwd.c0, cache.Wh[lo:hi], lo, dgates, dh0, dc0))
    dxw = np.ascontiguousarray(dgates[:, lo_r:hi_r])
    weight_gradients(cache.h0, np.ascontiguousarray(cache.h), dxw, dWh, db)
    return dxw, dh0[lo_r:hi_r].copy(), dc0[lo_r:hi_r].copy()
