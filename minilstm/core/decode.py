"""Choosing the next token from a row of logits: temperature, top-k, top-p, greedy, penalties.

Equations, for logits z (V,) and a boolean ``allowed`` mask (constraints such as poem shapes):
    z_v <- z_v / r  if z_v > 0 else z_v * r        for tokens already generated (repetition
                                                    penalty r >= 1, Keskar et al. 2019, CTRL)
    greedy:   the first v with the largest z_v among allowed tokens
    else:     p_v ∝ exp((z_v - max z) / temperature) on allowed tokens
              top-k: keep p_v >= (k-th largest p);  top-p (nucleus, Holtzman et al. 2020):
              keep the largest p's whose mass first reaches top_p (ties at a cut are kept)
              v = first index with cumsum(p)_v > u * sum(p),  u ~ U(0, 1) from ``core.rng``

Shapes: logits (V,) float32 or float64; allowed, seen (V,) bool; scratch p (V,) float64.

Notes: everything after the penalty runs in float64. Sums are cumulative sums (sequential in
NumPy and in Numba alike, where ``np.sum`` would be pairwise in one and sequential in the other)
so both builds pick the same token from the same logits and the same generator state. Returns
-1 when a logit is NaN or infinite (the caller raises) and never an id outside [0, V).
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel
from .rng import uniform


@kernel
def choose_token(logits, allowed, seen, temperature, top_k, top_p, greedy, penalty, rng_state, p):
    if not np.all(np.isfinite(logits)):
        return -1
    z = logits.astype(np.float64)
    if penalty != 1.0:
        z = np.where(seen, np.where(z > 0, z / penalty, z * penalty), z)
    z = np.where(allowed, z, -np.inf)
    if not np.any(allowed):
        return -1                                        # nothing allowed: a constraint bug
    if greedy:
        return int(np.argmax(z))                         # the first of equal maxima
    p[:] = np.where(allowed, np.exp((z - z.max()) / temperature), 0.0)
    return _draw(p, top_k, top_p, rng_state)


@choose_token.numba_variant
def choose_token_loops(logits, allowed, seen, temperature, top_k, top_p, greedy, penalty, rng_state, p):
    V = logits.shape[0]
    for v in range(V):
        if not np.isfinite(logits[v]):
            return -1
    best = -1
    for v in range(V):
        z = np.float64(logits[v])
        if penalty != 1.0 and seen[v]:
            z = z / penalty if z > 0 else z * penalty
        p[v] = z
        if allowed[v] and (best < 0 or z > p[best]):
            best = v
    if best < 0 or greedy:
        return best
    top = p[best]
    for v in range(V):
        p[v] = np.exp((p[v] - top) / temperature) if allowed[v] else 0.0
    return _draw(p, top_k, top_p, rng_state)


@kernel
def _draw(p, top_k, top_p, rng_state):
    """Top-k and top-p filtering of the weights p (V,) in place, then one draw."""
    V = p.shape[0]
    if 0 < top_k < V:
        threshold = np.sort(p)[V - top_k]                # the k-th largest weight
        p[p < threshold] = 0.0
    if top_p < 1.0:
        ordered = np.sort(p)[::-1]
        mass = np.cumsum(ordered)
        cut = min(int(np.searchsorted(mass, top_p * mass[V - 1], side="left")), V - 1)
        p[p < ordered[cut]] = 0.0                        # smallest set reaching top_p of the mass
    cumulative = np.cumsum(p)
    v = min(int(np.searchsorted(cumulative, uniform(rng_state) * cumulative[V - 1], side="right")), V - 1)
    while p[v] == 0.0 and v > 0:                         # rounding at the very top of the range
        v -= 1
    return v
