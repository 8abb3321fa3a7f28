"""Optimizer updates and gradient clipping on flat buffers."""
import math

import numpy as np
import pytest

import reference
from gradcheck import assert_close
from minilstm.core import (adam_update, clip_grad_norm, clip_grad_value, grad_norm, rmsprop_update,
                           sgd_update)


def test_adam_follows_the_paper_for_several_steps(rng):
    p = rng.normal(size=50)
    m, v = np.zeros(50), np.zeros(50)
    p_ref, m_ref, v_ref = p.copy(), m.copy(), v.copy()
    for t in range(1, 6):
        g = rng.normal(size=50)
        adam_update(p, g, m, v, t, lr=0.01, weight_decay=0.1)
        p_ref, m_ref, v_ref = reference.adam(p_ref, g, m_ref, v_ref, t, 0.01, 0.9, 0.999, 1e-8, 0.1)
    # same algebra, different grouping of the bias corrections: a few ulp
    assert_close("adam params", p, p_ref, rtol=1e-13)
    assert_close("adam m", m, m_ref, rtol=1e-14)
    assert_close("adam v", v, v_ref, rtol=1e-14)


def test_rmsprop_and_sgd_follow_their_equations(rng):
    p, s = rng.normal(size=20), np.zeros(20)
    p_ref, s_ref = p.copy(), s.copy()
    for _ in range(3):
        g = rng.normal(size=20)
        rmsprop_update(p, g, s, lr=0.01, alpha=0.95)
        p_ref, s_ref = reference.rmsprop(p_ref, g, s_ref, 0.01, 0.95, 1e-8)
    assert_close("rmsprop", p, p_ref, rtol=1e-14)
    for nesterov in (False, True):
        p, u = rng.normal(size=20), np.zeros(20)
        p_ref, u_ref = p.copy(), u.copy()
        for _ in range(3):
            g = rng.normal(size=20)
            sgd_update(p, g, u, lr=0.1, momentum=0.9, nesterov=nesterov)
            p_ref, u_ref = reference.sgd(p_ref, g, u_ref, 0.1, 0.9, nesterov)
        assert_close(f"sgd nesterov={nesterov}", p, p_ref, rtol=1e-14)
    p, g = rng.normal(size=5), rng.normal(size=5)
    expected = p - 0.1 * g
    sgd_update(p, g, np.zeros(5), lr=0.1)
    assert_close("plain sgd", p, expected, rtol=1e-15)


def test_global_norm_clipping(rng):
    g = rng.normal(size=1000) * 3
    norm = float(np.linalg.norm(g))
    before = g.copy()
    assert clip_grad_norm(g, 1.0) == pytest.approx(norm, rel=1e-12)
    assert np.linalg.norm(g) == pytest.approx(1.0, rel=1e-12)
    assert_close("direction kept", g * norm, before, rtol=1e-12)
    small = np.full(4, 0.1)
    clip_grad_norm(small, 5.0)
    assert np.all(small == 0.1)                      # below the threshold: untouched


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 1001])   # around the eight running sums
def test_norm_of_every_length(size):
    g = np.arange(size, dtype=np.float32) - 3.5
    # exact: small integers and halves, whose squares and sums float64 holds without rounding
    assert grad_norm(g) == math.sqrt(float(np.sum(g.astype(np.float64) ** 2)))


def test_norm_accumulates_in_float64():
    g = np.full(10_000_000, 1e-3, dtype=np.float32)  # float32 accumulation would drift
    assert grad_norm(g) == pytest.approx(math.sqrt(1e7) * float(np.float32(1e-3)), rel=1e-9)


def test_nan_norm_is_reported_not_hidden():
    g = np.array([1.0, np.nan, 2.0])
    assert math.isnan(clip_grad_norm(g, 1.0))
    assert g[0] == 1.0                               # nothing scaled by a NaN factor


def test_elementwise_clipping():
    g = np.array([-7.0, -0.5, 0.0, 3.0, 9.0])
    clip_grad_value(g, 5.0)
    np.testing.assert_array_equal(g, [-5.0, -0.5, 0.0, 3.0, 5.0])


def test_bad_optimizer_arguments():
    p, g = np.zeros(3), np.zeros(3)
    with pytest.raises(ValueError, match="step must be an integer >= 1, got 0"):
        adam_update(p, g, np.zeros(3), np.zeros(3), 0)
    with pytest.raises(ValueError, match=r"lr must be a finite number > 0, got nan"):
        adam_update(p, g, np.zeros(3), np.zeros(3), 1, lr=float("nan"))
    with pytest.raises(ValueError, match=r"state0 has shape \(4,\), expected \(3,\)"):
        rmsprop_update(p, g, np.zeros(4))
    with pytest.raises(ValueError, match="params has shape"):
        sgd_update(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="grads has dtype float32, expected float64"):
        sgd_update(p, g.astype(np.float32), np.zeros(3))
    with pytest.raises(ValueError, match="max_norm must be a finite number > 0"):
        clip_grad_norm(g, -1.0)
