"""The LSTM layer: gradients, reference parity, state carry, accumulation and input checks."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
from conftest import product_form
from gradcheck import assert_close, gradcheck
from minilstm.core import (lstm_backward, lstm_forward, lstm_recurrence_backward,
                           lstm_recurrence_forward, reorder_gates)


def random_layer(rng, T, B, D, H, dtype=np.float64, scale=0.5):
    """Random non-zero inputs, initial state, weights *and biases* (zero biases hide bugs)."""
    normal = lambda *shape: (rng.normal(size=shape) * scale).astype(dtype)  # noqa: E731
    return dict(x=normal(T, B, D), h0=normal(B, H), c0=normal(B, H),
                Wx=normal(D, 4 * H), Wh=normal(H, 4 * H), b=normal(4 * H))


def layer_gradients(p, dh, dhT, dcT):
    h, (hT, cT), cache = lstm_forward(**p)
    grads = {k: np.zeros_like(p[k]) for k in ("Wx", "Wh", "b")}
    dx, dh0, dc0 = lstm_backward(dh, dhT, dcT, cache, grads["Wx"], grads["Wh"], grads["b"])
    return dict(grads, x=dx, h0=dh0, c0=dc0)


@pytest.mark.parametrize("T,B,D,H", [(3, 2, 3, 4), (5, 1, 2, 3), (4, 3, 1, 2)])
def test_every_input_and_parameter_gradient(rng, product_layout, T, B, D, H):
    p = random_layer(rng, T, B, D, H)
    U, UhT, UcT = rng.normal(size=(T, B, H)), rng.normal(size=(B, H)), rng.normal(size=(B, H))

    def loss():
        h, (hT, cT), _ = lstm_forward(**p)
        return np.sum(h * U) + np.sum(hT * UhT) + np.sum(cT * UcT)

    errors = gradcheck(loss, p, layer_gradients(p, U, UhT, UcT))
    assert set(errors) == {"x", "h0", "c0", "Wx", "Wh", "b"}


def test_two_stacked_layers_gradients(rng, product_layout):
    T, B, D, H1, H2 = 4, 2, 3, 3, 2
    p1, p2 = random_layer(rng, T, B, D, H1), random_layer(rng, T, B, H1, H2)
    del p2["x"]   # layer 2 reads layer 1's hidden states
    U, UhT, UcT = rng.normal(size=(T, B, H2)), rng.normal(size=(B, H1)), rng.normal(size=(B, H2))

    def forward():
        h1, (hT1, _), c1 = lstm_forward(**p1)
        h2, (_, cT2), c2 = lstm_forward(h1, **p2)
        return h1, h2, hT1, cT2, c1, c2

    def loss():
        _, h2, hT1, cT2, _, _ = forward()
        return np.sum(h2 * U) + np.sum(hT1 * UhT) + np.sum(cT2 * UcT)

    _, _, _, _, cache1, cache2 = forward()
    g2 = {k: np.zeros_like(v) for k, v in p2.items() if k in ("Wx", "Wh", "b")}
    dh1, dh02, dc02 = lstm_backward(U, None, UcT, cache2, g2["Wx"], g2["Wh"], g2["b"])
    g1 = {k: np.zeros_like(v) for k, v in p1.items() if k in ("Wx", "Wh", "b")}
    dx, dh01, dc01 = lstm_backward(dh1, UhT, None, cache1, g1["Wx"], g1["Wh"], g1["b"])
    tensors = {f"layer1.{k}": v for k, v in p1.items()} | {f"layer2.{k}": v for k, v in p2.items()}
    analytic = ({f"layer1.{k}": v for k, v in dict(g1, x=dx, h0=dh01, c0=dc01).items()}
                | {f"layer2.{k}": v for k, v in dict(g2, h0=dh02, c0=dc02).items()})
    gradcheck(loss, tensors, analytic)


def test_gradient_check_fails_on_a_wrong_gradient(rng):
    """The check is able to fail: a 1e-4 error in one element of dWh must be reported."""
    p = random_layer(rng, 3, 2, 2, 3)
    U = rng.normal(size=(3, 2, 3))

    def loss():
        return np.sum(lstm_forward(**p)[0] * U)

    analytic = layer_gradients(p, U, None, None)
    analytic["Wh"][1, 2] += 1e-4
    with pytest.raises(AssertionError, match=r"gradient of Wh is wrong.*at index \(1, 2\)"):
        gradcheck(loss, p, analytic)
    # and a classic bug, the gradient blocks of two gates swapped, is caught too
    wrong = reorder_gates(layer_gradients(p, U, None, None)["Wh"], "ifog", "fiog")
    with pytest.raises(AssertionError, match="gradient of Wh is wrong"):
        gradcheck(loss, {"Wh": p["Wh"]}, {"Wh": wrong})


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 9), B=st.integers(1, 9), D=st.integers(1, 9), H=st.integers(1, 9),
       seed=st.integers(0, 2**32 - 1), transposed=st.booleans())
def test_forward_matches_naive_reference(T, B, D, H, seed, transposed):
    p = random_layer(np.random.default_rng(seed), T, B, D, H, scale=1.0)
    with product_form(transposed):                             # both forms of the product
        h, (hT, cT), cache = lstm_forward(**p)
    h_ref, c_ref = reference.lstm(**p)
    # float64 end to end: only summation order differs, so errors are a few ulp of O(1) values
    assert_close("h", h, h_ref, rtol=1e-12, atol=1e-13)
    assert_close("c", cache.c, c_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(hT, h[-1])   # the final state is the last step, exactly
    np.testing.assert_array_equal(cT, cache.c[-1])


def test_float32_forward_close_to_float64_reference(rng, product_layout):
    p = random_layer(rng, 20, 4, 5, 16, scale=0.5)
    p32 = {k: v.astype(np.float32) for k, v in p.items()}
    h, _, _ = lstm_forward(**p32)
    assert h.dtype == np.float32
    h_ref, _ = reference.lstm(**p32)
    # float32 has eps 6e-8; the fast float32 tanh adds at most 4e-7 per nonlinearity, and the
    # recurrence carries errors across 20 steps; 2e-5 absolute on values in (-1, 1) leaves a
    # 10x margin over the measured ~2e-6 while a real bug would be off by 1e-2 or more.
    assert_close("h float32", h, h_ref, rtol=0, atol=2e-5)


def test_state_carry_one_pass_equals_three_chunks(rng, product_layout):
    p = random_layer(rng, 12, 3, 4, 5)
    U, UhT, UcT = rng.normal(size=(12, 3, 5)), rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    h_full, (hT_full, cT_full), cache = lstm_forward(**p)
    full = layer_gradients(p, U, UhT, UcT)

    state, hs, caches = (p["h0"], p["c0"]), [], []
    for k in range(3):
        h, state, c = lstm_forward(p["x"][4 * k:4 * k + 4], *state, p["Wx"], p["Wh"], p["b"])
        hs.append(h)
        caches.append(c)
    # row-wise results may be rounded differently when the products have other heights
    tol = dict(rtol=1e-13, atol=1e-14)
    assert_close("h (3 chunks vs 1 pass)", np.concatenate(hs), h_full, **tol)
    assert_close("hT", state[0], hT_full, **tol)
    assert_close("cT", state[1], cT_full, **tol)

    # truncated BPTT chained through the chunks equals full BPTT; weight gradients accumulate
    grads = {k: np.zeros_like(p[k]) for k in ("Wx", "Wh", "b")}
    dhT, dcT, dxs = UhT, UcT, []
    for k in reversed(range(3)):
        dx, dhT, dcT = lstm_backward(U[4 * k:4 * k + 4], dhT, dcT, caches[k], grads["Wx"],
                                     grads["Wh"], grads["b"])
        dxs.insert(0, dx)
    for name in ("Wx", "Wh", "b"):
        assert_close(f"d{name} (chunked)", grads[name], full[name], **tol)
    assert_close("dx (chunked)", np.concatenate(dxs), full["x"], **tol)
    assert_close("dh0 (chunked)", dhT, full["h0"], **tol)
    assert_close("dc0 (chunked)", dcT, full["c0"], **tol)


def test_backward_adds_into_parameter_buffers(rng):
    p = random_layer(rng, 3, 2, 2, 3)
    U = rng.normal(size=(3, 2, 3))
    once = layer_gradients(p, U, None, None)
    _, _, cache = lstm_forward(**p)
    grads = {k: np.full_like(p[k], 0.25) for k in ("Wx", "Wh", "b")}
    lstm_backward(U, None, None, cache, grads["Wx"], grads["Wh"], grads["b"])
    for name in grads:
        assert_close(f"d{name} accumulated", grads[name], once[name] + 0.25, rtol=1e-14, atol=1e-15)


def test_recurrence_api_matches_full_layer(rng, product_layout):
    p = random_layer(rng, 4, 2, 3, 2)
    h, state, _ = lstm_forward(**p)
    xw = np.einsum("tbd,dk->tbk", p["x"], p["Wx"])
    h2, state2, cache = lstm_recurrence_forward(xw, p["h0"], p["c0"], p["Wh"], p["b"])
    assert_close("h", h2, h, rtol=1e-13, atol=1e-14)
    U = np.random.default_rng(1).normal(size=h.shape)
    dWh, db = np.zeros_like(p["Wh"]), np.zeros_like(p["b"])
    dxw, _, _ = lstm_recurrence_backward(U, None, None, cache, dWh, db)
    full = layer_gradients(p, U, None, None)
    assert_close("dWh", dWh, full["Wh"], rtol=1e-13, atol=1e-14)
    assert_close("db", db, full["b"], rtol=1e-13, atol=1e-14)
    assert_close("dx from dxw", np.einsum("tbk,dk->tbd", dxw, p["Wx"]), full["x"], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_recurrence_reading_a_table_equals_the_gathered_projection(rng, product_layout, dtype):
    """``ids=``: each step reads its rows from a (V, 4H) table; the same additions in the same
    order as on the gathered (T, B, 4H) copy, so the results are identical, not just close."""
    T, B, H, V = 5, 6, 3, 4
    p = {k: v.astype(dtype) for k, v in random_layer(rng, T, B, 1, H).items()}
    table = rng.normal(size=(V, 4 * H)).astype(dtype)
    ids = rng.integers(0, V, size=(T, B))
    h, (hT, cT), cache = lstm_recurrence_forward(table, p["h0"], p["c0"], p["Wh"], p["b"], ids=ids)
    h2, (hT2, cT2), cache2 = lstm_recurrence_forward(table[ids], p["h0"], p["c0"], p["Wh"], p["b"])
    for a, b in ((h, h2), (hT, hT2), (cT, cT2), (cache.gates, cache2.gates)):
        assert np.array_equal(a, b)


def test_recurrence_table_errors_name_the_argument(rng):
    p = random_layer(rng, 2, 3, 1, 2)
    table = np.zeros((4, 8))
    with pytest.raises(IndexError, match=r"lstm_recurrence_forward: ids contains id 4 .* size 4"):
        lstm_recurrence_forward(table, p["h0"], p["c0"], p["Wh"], p["b"], ids=np.full((2, 3), 4))
    with pytest.raises(ValueError, match=r"lstm_recurrence_forward: xw has shape \(4, 7\), expected \(V, 4H\)"):
        lstm_recurrence_forward(np.zeros((4, 7)), p["h0"], p["c0"], p["Wh"], p["b"], ids=np.zeros((2, 3), int))


def test_zero_length_sequence_returns_initial_state(rng, product_layout):
    p = random_layer(rng, 0, 2, 3, 4)
    h, (hT, cT), cache = lstm_forward(**p)
    assert h.shape == (0, 2, 4)
    np.testing.assert_array_equal(hT, p["h0"])
    np.testing.assert_array_equal(cT, p["c0"])
    grads = [np.zeros_like(p[k]) for k in ("Wx", "Wh", "b")]
    dx, dh0, dc0 = lstm_backward(None, p["h0"], p["c0"], cache, *grads)
    np.testing.assert_array_equal(dh0, p["h0"])
    assert dx.shape == (0, 2, 3)


def test_nan_input_reaches_the_output(rng, product_layout):
    for dtype in (np.float32, np.float64):
        p = {k: v.astype(dtype) for k, v in random_layer(rng, 3, 2, 2, 3).items()}
        p["x"][1, 0, 0] = np.nan
        h, _, _ = lstm_forward(**p)
        assert np.isnan(h[1:, 0]).any(), dtype
        assert np.isfinite(h[0]).all() and np.isfinite(h[:, 1]).all()


@pytest.mark.parametrize("name,shape,message", [
    ("h0", (3, 5), r"lstm_recurrence_forward: h0 has shape \(3, 5\), expected \(B, H\) = \(2, 5\)"),
    ("Wx", (4, 20), r"lstm_forward: Wx has shape \(4, 20\), expected \(D, 4H\) = \(3, 20\)"),
    ("b", (5,), r"lstm_recurrence_forward: b has shape \(5,\), expected \(4H,\) = \(20,\)"),
    ("x", (4, 2), r"lstm_forward: x has shape \(4, 2\), expected \(T, B, D\)"),
])
def test_bad_shapes_name_argument_and_expectation(rng, name, shape, message):
    p = random_layer(rng, 4, 2, 3, 5)
    p[name] = np.zeros(shape)
    with pytest.raises(ValueError, match=message):
        lstm_forward(**p)


def test_bad_dtypes_are_refused(rng):
    p = random_layer(rng, 2, 2, 3, 4)
    p["Wh"] = p["Wh"].astype(np.float32)
    with pytest.raises(ValueError, match="lstm_forward: Wh has dtype float32, expected float64"):
        lstm_forward(**p)
    p = random_layer(rng, 2, 2, 3, 4)
    p["x"] = p["x"].astype(np.int64)
    with pytest.raises(ValueError, match="x has dtype int64, expected float32 or float64"):
        lstm_forward(**p)
    p = random_layer(rng, 2, 2, 3, 4)
    _, _, cache = lstm_forward(**p)
    with pytest.raises(ValueError, match="dWh must be a writeable C-contiguous array"):
        lstm_backward(None, None, None, cache, np.zeros_like(p["Wx"]),
                      np.zeros((16, 4)).T,
                      np.zeros_like(p["b"]))


def test_reorder_gates_to_pytorch_and_back(rng):
    H = 3
    w = np.concatenate([np.full((2, H), k) for k in range(4)], axis=1)   # blocks i=0 f=1 o=2 g=3
    torch_order = reorder_gates(w)
    assert [int(torch_order[0, k * H]) for k in range(4)] == [0, 1, 3, 2]   # i, f, g, o
    np.testing.assert_array_equal(reorder_gates(torch_order, "ifgo", "ifog"), w)
    with pytest.raises(ValueError, match="multiple of 4"):
        reorder_gates(np.zeros((2, 6)))


@pytest.mark.parametrize("B", [1, 3])   # B = 1: a transposed (1, H) block is contiguous, the aliasing trap
def test_backward_leaves_its_inputs_unchanged(rng, product_layout, B):
    p = random_layer(rng, 4, B, 2, 3)
    before = {k: v.copy() for k, v in p.items()}
    dh, dhT, dcT = rng.normal(size=(4, B, 3)), rng.normal(size=(B, 3)), rng.normal(size=(B, 3))
    upstream = [dh.copy(), dhT.copy(), dcT.copy()]
    layer_gradients(p, dh, dhT, dcT)
    for name, value in before.items():
        assert np.array_equal(p[name], value), name
    for value, kept in zip((dh, dhT, dcT), upstream):
        assert np.array_equal(value, kept)


@pytest.mark.parametrize("shape", [(1, 4), (5, 20), (33, 132), (64, 31)])   # whole and partial tiles
def test_transposed_copy(shape):
    from minilstm.core import lstm
    W = np.arange(shape[0] * shape[1], dtype=np.float32).reshape(shape)
    for fn in (lstm.transposed_copy.py, lstm.transposed_copy):
        out = fn(W)
        assert out.flags.c_contiguous and np.array_equal(out, W.T)
        assert not np.shares_memory(out, W)
    wide = np.arange(shape[0] * 3 * shape[1], dtype=np.float32).reshape(shape[0], 3 * shape[1])
    view = wide[:, shape[1]:2 * shape[1]]                    # strided: a block of gate columns
    for fn in (lstm.transpose_into.py, lstm.transpose_into_loops, lstm.transpose_into):
        out = np.full(shape[::-1], np.nan, np.float32)
        fn(view, out)
        assert np.array_equal(out, view.T)


def test_both_product_layouts_agree_and_the_default_depends_on_H(rng):
    """The two forms of the per-step product give one result up to summation order, forward
    and backward, and the form chosen by default follows H (plain below 96, where it is faster)."""
    from minilstm.core import lstm
    assert not lstm.product_transposed(64) and not lstm.product_transposed(80)
    assert lstm.product_transposed(96) and lstm.product_transposed(512)
    p = random_layer(rng, 6, 5, 4, 7)
    U, UhT, UcT = rng.normal(size=(6, 5, 7)), rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    results = {}
    for name, transposed in (("as written", False), ("transposed", True)):
        with product_form(transposed):
            h, (hT, cT), _ = lstm_forward(**p)
            results[name] = dict(layer_gradients(p, U, UhT, UcT), h=h, hT=hT, cT=cT)
    for key, value in results["as written"].items():
        # float64, O(1) values, the same terms summed in another order by BLAS: a few ulp
        assert_close(key, value, results["transposed"][key], rtol=1e-12, atol=1e-13)
