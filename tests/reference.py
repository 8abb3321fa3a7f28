"""Naive float64 reference implementations, written as plainly as possible.

Each follows the textbook equations step by step (per gate, per time step, per row) with no
fusion, no buffers and no shared code with ``minilstm.core``, so agreement is evidence that the
optimised kernels compute the same function.
"""
from __future__ import annotations

import math

import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def lstm(x, h0, c0, Wx, Wh, b):
    """Returns (hs (T, B, H), cs (T, B, H)) for gate order [i, f, o, g]."""
    x, h, c = (np.asarray(a, np.float64) for a in (x, h0, c0))
    Wx, Wh, b = (np.asarray(a, np.float64) for a in (Wx, Wh, b))
    H = h.shape[1]
    hs, cs = [], []
    for t in range(x.shape[0]):
        a = x[t] @ Wx + h @ Wh + b
        i = sigmoid(a[:, 0 * H:1 * H])
        f = sigmoid(a[:, 1 * H:2 * H])
        o = sigmoid(a[:, 2 * H:3 * H])
        g = np.tanh(a[:, 3 * H:4 * H])
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
        cs.append(c)
    return np.stack(hs), np.stack(cs)


def embedding(ids, table):
    ids = np.asarray(ids)
    out = np.zeros(ids.shape + (table.shape[1],))
    for index in np.ndindex(*ids.shape):
        out[index] = table[ids[index]]
    return out


def cross_entropy(logits, targets, ignore_index):
    """Mean over counted rows of -log softmax(z)[y], one row at a time with math.fsum."""
    losses = []
    for row, y in zip(np.asarray(logits, np.float64), targets):
        if y == ignore_index:
            continue
        m = max(row)
        lse = m + math.log(math.fsum(math.exp(v - m) for v in row))
        losses.append(lse - row[y])
    return math.fsum(losses) / len(losses) if losses else 0.0


def layer_norm(x, gamma, beta, eps):
    out = np.empty_like(x, dtype=np.float64)
    for n, row in enumerate(np.asarray(x, np.float64)):
        mu = row.mean()
        var = ((row - mu) ** 2).mean()
        out[n] = gamma * (row - mu) / math.sqrt(var + eps) + beta
    return out


def batch_norm_train(x, gamma, beta, eps):
    return layer_norm(np.asarray(x).T, np.ones(x.shape[0]), np.zeros(x.shape[0]), eps).T * gamma + beta


def adam(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay):
    """Kingma & Ba's Algorithm 1 with decoupled weight decay; returns new (p, m, v)."""
    p = p * (1 - lr * weight_decay)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def rmsprop(p, g, s, lr, alpha, eps):
    s = alpha * s + (1 - alpha) * g * g
    return p - lr * g / (np.sqrt(s) + eps), s


def sgd(p, g, u, lr, momentum, nesterov):
    u = momentum * u + g
    step = g + momentum * u if nesterov else u
    return p - lr * step, u
