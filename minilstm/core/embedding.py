"""Embedding lookup (gather) and its backward (scatter-add).

Equations:
    out[n] = table[ids[n]]                    gather rows
    dtable[ids[n]] += dout[n]  for every n    scatter-add: repeated ids accumulate

Shapes: ids any integer shape S (usually (T, B)), table (V, D), out S + (D,).

One-hot input: multiplying a one-hot vector e_k by a matrix W selects row k, so a model fed
one-hot characters (classic char-rnn) computes ``onehot(ids) @ Wx`` as ``embedding_forward(ids,
Wx)`` without ever building the (T, B, V) one-hot tensor, and its gradient is the scatter-add
into dWx. The same identity lets the model fold "embedding then input projection" into one
lookup in the table ``E @ Wx + b`` (see ``minilstm.model``).

Notes: backward **adds** into ``dtable`` and returns nothing (ids have no gradient). The numba
build loops over rows (a serial scatter-add: parallel scatter-adds with repeated ids race).
Memory: forward allocates out (N*D floats).
"""
from __future__ import annotations

import numpy as np

from ._check import float_array, gradient_buffer, id_array
from ._jit import kernel


@kernel
def _gather_rows(table, ids, out):
    np.take(table, ids, axis=0, out=out)


@_gather_rows.numba_variant
def _gather_rows_loops(table, ids, out):
    for n in range(ids.shape[0]):
        out[n, :] = table[ids[n], :]


@kernel
def _scatter_add_rows(dout, ids, dtable):
    np.add.at(dtable, ids, dout)


@_scatter_add_rows.numba_variant
def _scatter_add_rows_loops(dout, ids, dtable):
    D = dtable.shape[1]
    for n in range(ids.shape[0]):
        row = ids[n]
        for d in range(D):
            dtable[row, d] += dout[n, d]


def embedding_forward(ids, table):
    """Rows of ``table`` (V, D) selected by integer ``ids`` of any shape; returns ids.shape + (D,)."""
    where = "embedding_forward"
    table = float_array(where, "table", table, [("V", None), ("D", None)])
    V, D = table.shape
    ids = id_array(where, "ids", ids, V)
    out = np.empty((ids.size, D), dtype=table.dtype)
    _gather_rows(table, ids.reshape(-1), out)
    return out.reshape(ids.shape + (D,))


def embedding_backward(dout, ids, dtable):
    """Adds ``dout`` (ids.shape + (D,)) into the rows ``ids`` of ``dtable`` (V, D), in place."""
    where = "embedding_backward"
    dtable = gradient_buffer(where, "dtable", dtable)
    if dtable.ndim != 2:
        raise ValueError(f"{where}: dtable has shape {dtable.shape}, expected (V, D)")
    V, D = dtable.shape
    ids = id_array(where, "ids", ids, V)
    dims = [(f"S{i}", n) for i, n in enumerate(ids.shape)] + [("D", D)]
    dout = float_array(where, "dout", dout, dims, dtable.dtype)
    _scatter_add_rows(dout.reshape(ids.size, D), ids.reshape(-1), dtable)
