"""LSTM layer over a whole sequence: forward and full backpropagation through time (BPTT).

Equations (one step t, gate order [i, f, o, g] along the 4H axis; sigma = logistic sigmoid):

    a_t = x_t @ Wx + h_{t-1} @ Wh + b         pre-activations, (B, 4H)
    i_t = sigma(a_t[:, 0H:1H])                  input gate
    f_t = sigma(a_t[:, 1H:2H])                  forget gate
    o_t = sigma(a_t[:, 2H:3H])                  output gate
    g_t = tanh(a_t[:, 3H:4H])                   candidate cell
    c_t = f_t * c_{t-1} + i_t * g_t             cell state
    h_t = o_t * tanh(c_t)                       hidden state

The three sigmoid gates are contiguous so one pass applies one nonlinearity to 3H columns; use
:func:`reorder_gates` to convert to PyTorch's [i, f, g, o] order.

Shapes: T time steps, B batch, D input width, H hidden units. Everything is time-major:
``x[t]`` is a contiguous (B, D) block. Wx (D, 4H), Wh (H, 4H), b (4H,).

How the work is laid out (what makes it fast):
- the input projection ``x @ Wx`` for all T steps is one matrix product (``linear_forward``),
  or, for token inputs, rows read inside the time loop from a (V, 4H) table (``ids=``);
- the recurrence is one (B, H) @ (H, 4H) product per step, written straight into the step's
  gates block; from H = 96 up it is computed transposed, the form BLAS runs fastest there, into
  a (4H, B) buffer allocated once (see :func:`product_transposed`);
- bias, gate nonlinearities, cell update and ``tanh(c)`` are one fused elementwise pass per step;
- in the backward pass the weight gradients are single products over all T*B rows, done after
  the time loop; nothing is allocated inside either time loop.

References: Hochreiter & Schmidhuber (1997), "Long Short-Term Memory"; Graves (2013),
"Generating Sequences With Recurrent Neural Networks" (the formulation above, without peepholes).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._check import float_array, gradient_buffer, id_array
from ._jit import kernel
from .lstm_cell import add_rows, add_transposed, cell_backward, cell_forward
from .linear import _linear_forward, add_column_sums, linear_backward, linear_forward

GATE_ORDER = "ifog"


class LSTMCache(NamedTuple):
    """What the backward pass needs; memory 7*T*B*H floats plus whatever ``x`` holds."""
    gates: np.ndarray   # (T, B, 4H) post-activation gates [i, f, o, g]
    c: np.ndarray       # (T, B, H) cell states c_1..c_T
    tanh_c: np.ndarray  # (T, B, H) tanh(c_t), kept so backward needs no transcendental
    h: np.ndarray       # (T, B, H) hidden states h_1..h_T (also the layer's output)
    h0: np.ndarray      # (B, H)
    c0: np.ndarray      # (B, H)
    Wh: np.ndarray      # (H, 4H)
    b: np.ndarray       # (4H,)
    x: np.ndarray | None = None   # (T, B, D) input, for lstm_backward's input projection
    Wx: np.ndarray | None = None  # (D, 4H)
    team: object = None           # for a layer run by a team of threads: what its backward shares


# ----------------------------------------------------------------------------- drivers

@kernel
def transposed_copy(W):
    """A C-contiguous copy of W.T."""
    out = np.empty((W.shape[1], W.shape[0]), dtype=W.dtype)
    transpose_into(W, out)
    return out


@kernel
def transpose_into(W, out):
    """out <- W.T, for W (R, C) (any strides) and out (C, R)."""
    out[:] = W.T


@transpose_into.numba_variant
def transpose_into_loops(W, out):
    # In 16 x 16 tiles, each W row's run of 16 read once: the 16 output rows a tile writes stay
    # in the L1 cache together even when their stride is a large power of two (2 KB at H=512),
    # which 32 x 32 tiles' 32 rows do not. (H, 4H) -> (4H, H) at H=512: 0.9 ms, against 3.1 ms
    # in 32 x 32 tiles and 3.1 ms for NumPy's W.T.copy().
    R, C = W.shape
    for i0 in range(0, R, 16):
        for j0 in range(0, C, 16):
            for i in range(i0, min(i0 + 16, R)):
                src = W[i]
                for j in range(j0, min(j0 + 16, C)):
                    out[j, i] = src[j]


# The per-step products at or below this H are computed as written, above it transposed.
# Single-threaded OpenBLAS, microseconds per product for B = 16 / 25 / 32 sequences, as written
# against transposed (forward; the backward's dh product measured alike):
#     H =  64:   5.2 /  8.5 /  9.2  against   7.9 / 13.7 / 13.7
#     H =  80:   7.2 / 11.6 / 14.3  against  10.2 / 18.7 / 18.5
#     H =  96:  10.2 / 17.1 / 33.4  against  14.2 / 26.2 / 25.9
#     H = 128:  38.2 / 51.6 / 58.5  against  24.9 / 46.1 / 45.6
#     H = 512:   637 /  963 / 1028  against   429 /  827 /  809
# and the transposed form also needs a strided pass to read its output back (add_transposed,
# 1.7 ns per hidden unit against 0.5 for a plain add).
PLAIN_PRODUCT_MAX_H = 80


def product_transposed(H: int) -> bool:
    """Whether the per-step recurrent products of an H-unit layer are computed transposed,
    (h_{t-1} @ Wh)^T = Wh^T @ h_{t-1}^T, which BLAS runs faster for H > PLAIN_PRODUCT_MAX_H."""
    return H > PLAIN_PRODUCT_MAX_H


@kernel
def _recurrence_forward(xw, ids, h0, c0, Wh, b, transposed, gates, c, tanh_c, h):
    """Time loop of the forward pass. Fills gates, c, tanh_c, h (all preallocated).

    Step t's input projection is the rows ``xw[ids[t]]`` of the (N, 4H) table ``xw``: a table
    of V token projections with the token ids, or all T*B steps' projections with ids
    ``t*B + n`` (see :func:`lstm_recurrence_forward`). ``transposed``: how the recurrent product
    is computed (:func:`product_transposed`); the result is the same up to rounding.
    """
    T = gates.shape[0]
    B, H = h0.shape
    # Transposed, the product is Wh^T @ h_{t-1}^T with the weights as a row-major (4H, H) copy,
    # made once per sequence, into a (4H, B) buffer reused every step.
    WhT = transposed_copy(Wh) if transposed else Wh
    hwT = np.empty((4 * H, B) if transposed else (0, 0), dtype=Wh.dtype)
    for t in range(T):
        h_prev = h0 if t == 0 else h[t - 1]
        c_prev = c0 if t == 0 else c[t - 1]
        if transposed:                                    # gates_t <- x_t @ Wx + h_{t-1} @ Wh
            np.dot(WhT, h_prev.T, hwT)
            add_transposed(xw, ids[t], hwT, gates[t])
        else:
            np.dot(h_prev, Wh, gates[t])
            add_rows(xw, ids[t], gates[t])
        cell_forward(gates[t], b, c_prev, c[t], tanh_c[t], h[t])   # a_t = ... + b; the cell


@kernel
def _recurrence_backward(dh, dhT, dcT, gates, c, tanh_c, h, h0, c0, Wh, transposed, dgates, dWh, db):
    """Time loop of BPTT. Fills dgates (T, B, 4H) = dL/da_t; adds dL/dWh, dL/db into dWh, db.

    Returns (dh0, dc0). ``dh`` is the upstream gradient on every h_t, (dhT, dcT) on the final
    state; the gradient reaching h_{t-1} through the recurrence is dgates_t @ Wh.T, computed
    transposed as Wh @ dgates_t^T when ``transposed``, as in the forward pass.
    """
    T, B, H = c.shape
    # dL/dh_t arriving from step t+1, (H, B) when transposed, else (B, H); copies of dhT, which
    # must not be aliased (ascontiguousarray(dhT.T) would be dhT itself when B = 1)
    dh_back = np.empty((H, B) if transposed else (B, H), dtype=dhT.dtype)
    if transposed:
        dh_back[:] = dhT.T
    else:
        dh_back[:] = dhT
    dc_next = dcT.copy()   # dL/dc_t arriving from step t+1; becomes dL/dc_{t-1} in place
    dh_total = np.empty_like(dhT)            # (B, H): dh[t] + what came back from step t+1
    own_rows = np.arange(B)
    # As written, the product is dgates_t @ Wh^T with Wh^T as a C-contiguous (4H, H) copy made
    # once per sequence: single-threaded OpenBLAS runs it 1.3-1.8x faster than with the strided
    # view Wh.T (microseconds per product, B = 16 / 25 / 32: H = 64: 4.5 / 7.4 / 9.1 against
    # 5.0 / 13.4 / 15.3; H = 80: 7.4 / 12.7 / 14.3 against 15.3 / 20.8 / 23.8).
    WhT = Wh if transposed else transposed_copy(Wh)
    for t in range(T - 1, -1, -1):
        c_prev = c0 if t == 0 else c[t - 1]
        if transposed:
            add_transposed(dh[t], own_rows, dh_back, dh_total)
        else:
            np.add(dh[t], dh_back, dh_total)
        cell_backward(dh_total, dc_next, gates[t], c_prev, tanh_c[t], dgates[t])
        if transposed:                              # a_t = ... + h_{t-1} @ Wh  ->  dh_{t-1}
            np.dot(Wh, dgates[t].T, dh_back)
        else:
            np.dot(dgates[t], WhT, dh_back)
    weight_gradients(h0, h, dgates, dWh, db)
    dh0 = np.ascontiguousarray(dh_back.T) if transposed else dh_back
    return dh0, dc_next


@kernel
def weight_gradients(h0, h, dgates, dWh, db):
    """dWh += sum_t h_{t-1}^T @ dgates_t and db += sum_t,n dgates_t, after the time loop.

    a_t = ... + h_{t-1} @ Wh  ->  dWh += sum_t h_{t-1}^T @ da_t, as two products over all steps;
    a_t = ... + b             ->  db += sum_t,n da_t.
    """
    T, B, H = h.shape
    dWh += np.dot(h0.T, dgates[0])
    if T > 1:
        dWh += np.dot(h[:T - 1].reshape((T - 1) * B, H).T, dgates[1:].reshape((T - 1) * B, 4 * H))
    add_column_sums(dgates.reshape(T * B, 4 * H), db)


# ----------------------------------------------------------------------------- public API

def lstm_recurrence_forward(xw, h0, c0, Wh, b, ids=None, team=None):
    """The LSTM recurrence given the input projection ``xw = x @ Wx`` (T, B, 4H) and bias b.

    Lets a caller supply the projection some cheaper way: an embedding lookup followed by Wx
    is a lookup in the table ``E @ Wx``, and one-hot inputs select rows of Wx (``minilstm.model``).
    For those, pass the (V, 4H) table as ``xw`` and the (T, B) token ``ids``: each step reads its
    rows ``xw[ids[t]]`` straight from the table, which stays in cache, instead of a (T, B, 4H)
    copy being gathered first (saves 4*T*B*H floats of memory and traffic).
    Returns ``h`` (T, B, H), ``(hT, cT)`` and an :class:`LSTMCache`.

    ``team`` (a ``lstm_team.TeamMember``): this call is one member's rows of a batch whose time
    loop a team of threads shares (see ``lstm_team.py``); the result is the same up to rounding.
    """
    where = "lstm_recurrence_forward"
    Wh = float_array(where, "Wh", Wh, [("H", None), ("4H", None)])
    H = Wh.shape[0]
    if Wh.shape[1] != 4 * H:
        raise ValueError(f"{where}: Wh has shape {Wh.shape}, expected (H, 4H) = ({H}, {4 * H})")
    if ids is None:
        xw = float_array(where, "xw", xw, [("T", None), ("B", None), ("4H", 4 * H)], Wh.dtype)
        T, B, _ = xw.shape
        xw = xw.reshape(T * B, 4 * H)                        # step t, row n is row t*B + n
        ids = np.arange(T * B, dtype=np.int64).reshape(T, B)
    else:
        xw = float_array(where, "xw", xw, [("V", None), ("4H", 4 * H)], Wh.dtype)
        ids = id_array(where, "ids", ids, xw.shape[0], dims=[("T", None), ("B", None)])
        T, B = ids.shape
    h0, c0, b = _state_and_bias(where, h0, c0, b, B, H, Wh.dtype)
    if team is not None and T:
        def copy(rows):
            rows[:] = xw
        return team_forward(team, xw.shape[0], copy, ids, h0, c0, Wh, b)
    gates = np.empty((T, B, 4 * H), dtype=Wh.dtype)
    c, tanh_c, h = (np.empty((T, B, H), dtype=Wh.dtype) for _ in range(3))
    if T:
        with np.errstate(over="ignore"):   # exp overflow saturates the sigmoid to 0, as intended
            _recurrence_forward(xw, ids, h0, c0, Wh, b, product_transposed(H), gates, c, tanh_c, h)
    hT, cT = (h[-1].copy(), c[-1].copy()) if T else (h0.copy(), c0.copy())
    return h, (hT, cT), LSTMCache(gates, c, tanh_c, h, h0, c0, Wh, b)


def _state_and_bias(where, h0, c0, b, B, H, dtype):
    """h0, c0 (B, H) and b (4H,), checked."""
    return (float_array(where, "h0", h0, [("B", B), ("H", H)], dtype),
            float_array(where, "c0", c0, [("B", B), ("H", H)], dtype),
            float_array(where, "b", b, [("4H", 4 * H)], dtype))


def lstm_recurrence_backward(dh, dhT, dcT, cache: LSTMCache, dWh, db):
    """BPTT through :func:`lstm_recurrence_forward`.

    ``dh`` (T, B, H) is the upstream gradient on every h_t and ``(dhT, dcT)`` (B, H) on the final
    state; any of them may be ``None`` (zero). Adds dL/dWh and dL/db **into** ``dWh``, ``db`` (so
    truncated BPTT and gradient accumulation are free) and returns ``(dxw, dh0, dc0)`` where
    ``dxw`` (T, B, 4H) is the gradient on the pre-activations, i.e. on ``x @ Wx``.
    Memory: allocates dxw (4*T*B*H floats) and two (B, H) state gradients.
    """
    where = "lstm_recurrence_backward"
    T, B, H = cache.c.shape
    dtype = cache.Wh.dtype
    state_dims = [("B", B), ("H", H)]
    dh = (np.zeros((T, B, H), dtype) if dh is None
          else float_array(where, "dh", dh, [("T", T), ("B", B), ("H", H)], dtype))
    dhT = np.zeros((B, H), dtype) if dhT is None else float_array(where, "dhT", dhT, state_dims, dtype)
    dcT = np.zeros((B, H), dtype) if dcT is None else float_array(where, "dcT", dcT, state_dims, dtype)
    dWh = gradient_buffer(where, "dWh", dWh, cache.Wh.shape, dtype)
    db = gradient_buffer(where, "db", db, cache.b.shape, dtype)
    if cache.team is not None and T:
        return team_backward(cache, dh, dhT, dcT, dWh, db)
    dxw = np.empty((T, B, 4 * H), dtype=dtype)
    if not T:
        return dxw, dhT.copy(), dcT.copy()
    dh0, dc0 = _recurrence_backward(dh, dhT, dcT, cache.gates, cache.c, cache.tanh_c, cache.h,
                                    cache.h0, cache.c0, cache.Wh, product_transposed(H), dxw, dWh, db)
    return dxw, dh0, dc0


def lstm_forward(x, h0, c0, Wx, Wh, b, team=None):
    """One LSTM layer over a whole sequence.

    Shapes: x (T, B, D), h0 and c0 (B, H), Wx (D, 4H), Wh (H, 4H), b (4H,).
    Returns ``h`` (T, B, H) — every hidden state —, the final state ``(hT, cT)`` and the cache
    for :func:`lstm_backward`. Memory: the cache holds 7*T*B*H floats and references ``x``.
    ``team``: as in :func:`lstm_recurrence_forward`.
    """
    where = "lstm_forward"
    x = float_array(where, "x", x, [("T", None), ("B", None), ("D", None)])
    T, B, D = x.shape
    Wh = float_array(where, "Wh", Wh, [("H", None), ("4H", None)], x.dtype)
    H = Wh.shape[0]
    Wx = float_array(where, "Wx", Wx, [("D", D), ("4H", 4 * H)], x.dtype)
    if team is not None and T:   # the projection straight into this member's block of the team's table
        def project(rows):
            _linear_forward(x.reshape(T * B, D), Wx, None, False, rows)
        h0, c0, b = _state_and_bias(where, h0, c0, b, B, H, x.dtype)
        ids = np.arange(T * B, dtype=np.int64).reshape(T, B)
        h, state, cache = team_forward(team, T * B, project, ids, h0, c0, Wh, b)
        return h, state, cache._replace(x=x, Wx=Wx)
    xw = linear_forward(x.reshape(T * B, D), Wx).reshape(T, B, 4 * H)   # all steps at once
    h, state, cache = lstm_recurrence_forward(xw, h0, c0, Wh, b)
    return h, state, cache._replace(x=x, Wx=Wx)


def lstm_backward(dh, dhT, dcT, cache: LSTMCache, dWx, dWh, db):
    """Full BPTT through :func:`lstm_forward`.

    Upstream gradients: ``dh`` (T, B, H) on every h_t, ``dhT``/``dcT`` (B, H) on the final state
    (``None`` means zero). Adds into the caller's ``dWx``, ``dWh``, ``db`` and returns
    ``(dx, dh0, dc0)``.
    """
    T, B, H = cache.c.shape
    D = cache.x.shape[2]
    dxw, dh0, dc0 = lstm_recurrence_backward(dh, dhT, dcT, cache, dWh, db)
    # xw = x @ Wx  ->  dx = dxw @ Wx.T; dWx += x.T @ dxw  (one product each over all T*B rows)
    dx = linear_backward(dxw.reshape(T * B, 4 * H), cache.x.reshape(T * B, D), cache.Wx, dWx)
    return dx.reshape(T, B, D), dh0, dc0


def reorder_gates(w, src: str = GATE_ORDER, dst: str = "ifgo", axis: int = -1):
    """Permute the four gate blocks along ``axis`` (size 4H) from order ``src`` to ``dst``.

    ``reorder_gates(Wx)`` converts minilstm's [i, f, o, g] to PyTorch's [i, f, g, o];
    ``reorder_gates(w, "ifgo", "ifog")`` goes back. Returns a new array.
    """
    w = np.asarray(w)
    if sorted(src) != sorted("ifgo") or sorted(dst) != sorted("ifgo"):
        raise ValueError(f"reorder_gates: src={src!r} and dst={dst!r} must be orders of 'ifgo'")
    size = w.shape[axis]
    if size % 4:
        raise ValueError(f"reorder_gates: axis {axis} has size {size}, expected a multiple of 4")
    blocks = np.split(w, 4, axis=axis)
    return np.concatenate([blocks[src.index(gate)] for gate in dst], axis=axis)


from .lstm_team import team_backward, team_forward  # noqa: E402  (it imports from this module)
