"""Gradient-check assertions for the tests, on top of ``minilstm.gradcheck``.

The numerical gradient (fourth-order central differences, h = 1e-4, float64) and the relative
error with its floor are defined and explained in ``minilstm/gradcheck.py``; here they become
assertions whose failures name the tensor, the worst error and where it is:

    rel_i = |G_i - numeric_i| / max(|G_i|, |numeric_i|, 1e-3)          max_i rel_i <= 1e-6

Losses are formed as sum(output * U) with a *random* upstream gradient U, never all-ones, so
every output element is weighted differently and a transposed or permuted gradient is caught.
"""
from __future__ import annotations

import numpy as np

from minilstm.gradcheck import FLOOR, RTOL, numerical_gradient, relative_errors  # noqa: F401


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
