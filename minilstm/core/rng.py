"""A small random number generator that gives the same numbers compiled and interpreted.

L'Ecuyer's combined multiplicative generator (L'Ecuyer 1988, "Efficient and portable combined
random number generators", CACM 31(6)); period about 2.3e18:

    x1 <- 40014 * x1 mod 2147483563
    x2 <- 40692 * x2 mod 2147483399
    z  <- (x1 - x2) mod 2147483562, with 0 replaced by 2147483562
    u  =  z / 2147483563                      uniform on (0, 1), never 0 or 1

Why this one: every intermediate fits in a signed 64-bit integer (40692 * 2^31 < 2^47), so the
sampling kernels produce bit-identical draws with and without Numba and on every platform;
NumPy's generators cannot be called from compiled code, and 64-bit generators (PCG, xorshift*)
rely on wrap-around multiplication that plain Python integers do not do.

The state is an int64 array ``[x1, x2]`` that the kernels update in place; ``seed_state`` turns
any non-negative integer seed into a valid state.
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel

M1, A1 = 2147483563, 40014
M2, A2 = 2147483399, 40692


def seed_state(seed: int) -> np.ndarray:
    """A generator state for a non-negative integer seed (distinct seeds, distinct streams)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    state = np.array([1 + seed % (M1 - 1), 1 + (seed // (M1 - 1)) % (M2 - 1)], dtype=np.int64)
    for _ in range(8):           # move away from the small, correlated first values of nearby seeds
        uniform(state)
    return state


@kernel
def uniform(state):
    """Next uniform draw in (0, 1); advances ``state`` in place."""
    x1 = (40014 * state[0]) % 2147483563
    x2 = (40692 * state[1]) % 2147483399
    state[0] = x1
    state[1] = x2
    z = (x1 - x2) % 2147483562
    if z == 0:
        z = 2147483562
    return z / 2147483563.0
