"""Finite-difference gradient checking and close-comparison helpers for the tests.

The check, for a scalar function L of arrays and an analytic gradient G of one of them:

    numeric_i = (-L(x + 2h e_i) + 8 L(x + h e_i) - 8 L(x - h e_i) + L(x - 2h e_i)) / (12 h)

(the fourth-order central difference: truncation error O(h^4), so with h = 1e-4 in float64 the
truncation error is ~1e-16 and the rounding error ~1e-16 * |L| / h ~ 1e-12 * |L|), and

    rel_i = |G_i - numeric_i| / max(|G_i|, |numeric_i|, floor)          max_i rel_i <= 1e-6

The floor (default 1e-3) keeps the ratio meaningful for entries that are zero or nearly so: for
those the condition reads |G_i - numeric_i| <= 1e-9, an absolute bound still ~1000x tighter
than any real bug but looser than the rounding error above for the |L| ~ 10 losses we use.

Losses are formed as sum(output * U) with a *random* upstream gradient U, never all-ones, so
every output element is weighted differently and a transposed or permuted gradient is caught.
"""
from __future__ import annotations

import numpy as np

STEP = 1e-4
FLOOR = 1e-3
RTOL = 1e-6


def numerical_gradient(loss, x: np.ndarray, step: float = STEP) -> np.ndarray:
    """d loss() / d x by the fourth-order central difference; ``loss`` reads ``x`` in place."""
    assert x.dtype == np.float64, "gradient checks run in float64"
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        values = []
        for k in (2, 1, -1, -2):
            flat[i] = old + k * step
            values.append(loss())
        flat[i] = old
        gflat[i] = (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * step)
    return grad


def relative_errors(analytic, numeric, floor: float = FLOOR) -> np.ndarray:
    analytic, numeric = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), floor)
    return np.abs(analytic - numeric) / scale


def check_gradient(name: str, analytic, numeric, rtol: float = RTOL, floor: float = FLOOR) -> float:
    """Assert max relative error <= rtol; the failure names the tensor, the worst error, where."""
    analytic, numeric = np.asarray(analytic), np.asarray(numeric)
    assert analytic.shape == numeric.shape, (
        f"{name}: analytic gradient has shape {analytic.shape}, numerical {numeric.shape}")
    rel = relative_errors(analytic, numeric, floor)
    worst = np.unravel_index(int(np.argmax(rel)), rel.shape) if rel.size else ()
    if rel.size and rel[worst] > rtol:
        absolute = np.abs(np.asarray(analytic, np.float64) - numeric)
        raise AssertionError(
            f"gradient of {name} is wrong: max relative error {rel[worst]:.3e} > {rtol:.0e} at index "
            f"{tuple(int(i) for i in worst)} (analytic {analytic[worst]:.10g}, numerical "
            f"{numeric[worst]:.10g}); max absolute error {absolute.max():.3e}")
    return float(rel.max()) if rel.size else 0.0


def gradcheck(loss, tensors: dict, analytic: dict, rtol: float = RTOL, floor: float = FLOOR) -> dict:
    """Check every ``analytic[name]`` against the numerical gradient of ``loss`` w.r.t.
    ``tensors[name]``; returns {name: max relative error}."""
    missing = set(tensors) ^ set(analytic)
    assert not missing, f"tensors without a gradient to check (or vice versa): {sorted(missing)}"
    return {name: check_gradient(name, analytic[name], numerical_gradient(loss, tensors[name]),
                                 rtol, floor)
            for name in tensors}


def assert_close(name: str, got, want, rtol: float, atol: float = 0.0) -> None:
    """Like numpy's assert_allclose but the message names the tensor and the worst element."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != expected {want.shape}"
    if not got.size:
        return
    excess = np.abs(got - want) - (atol + rtol * np.abs(want))
    worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
    if excess[worst] > 0 or not np.all(np.isfinite(got) == np.isfinite(want)):
        abs_err = np.abs(got - want)
        rel_err = abs_err / np.maximum(np.abs(want), np.finfo(np.float64).tiny)
        raise AssertionError(
            f"{name} differs: at index {tuple(int(i) for i in worst)} got {got[worst]:.10g}, expected "
            f"{want[worst]:.10g}; max absolute error {np.nanmax(abs_err):.3e}, max relative error "
            f"{np.nanmax(rel_err):.3e} (rtol={rtol:g}, atol={atol:g})")
