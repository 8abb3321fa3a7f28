"""The numba and numpy builds of every kernel agree, and backend selection works."""
import os
import subprocess
import sys

import numpy as np
import pytest

import minilstm
from gradcheck import assert_close
from minilstm import core
from minilstm.core import _jit, lstm_cell

needs_numba = pytest.mark.skipif(not core.numba_available(),
                                 reason="numba not importable or MINILSTM_DISABLE_JIT set")

# float64: the builds differ only in summation order inside BLAS calls and in libm vs NumPy's
# exp/tanh (<= 1 ulp each), so 1e-12 is ~1000x the measured differences.
# float32: the numba build uses a rational tanh (abs error <= 4e-7) and different rounding
# order; over a 6-step recurrence the measured difference is ~1e-6, so 1e-5 has a 10x margin.
TOLERANCE = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}


def run_all_kernels(dtype, seed=0):
    """Every public kernel once, returning a dict of named outputs (and updated buffers)."""
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.normal(size=s).astype(dtype)  # noqa: E731
    out = {}
    T, B, D, H, V = 6, 3, 4, 5, 7
    x, h0, c0, Wx, Wh, b = r(T, B, D), r(B, H), r(B, H), r(D, 4 * H), r(H, 4 * H), r(4 * H)
    h, (hT, cT), cache = core.lstm_forward(x, h0, c0, Wx, Wh, b)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    dx, dh0, dc0 = core.lstm_backward(r(T, B, H), r(B, H), r(B, H), cache, dWx, dWh, db)
    out.update(h=h, hT=hT, cT=cT, gates=cache.gates, dx=dx, dh0=dh0, dc0=dc0, dWx=dWx, dWh=dWh, db=db)
    ids = rng.integers(0, V, size=(T, B))
    table = r(V, D)
    out["embedding"] = core.embedding_forward(ids, table)
    dtable = np.zeros_like(table)
    core.embedding_backward(r(T, B, D), ids, dtable)
    out["dtable"] = dtable
    logits = r(T * B, V) * 5
    targets = rng.integers(-1, V, size=T * B)
    loss, dlogits, _ = core.softmax_cross_entropy(logits, targets)
    out.update(loss=np.array(loss), dlogits=dlogits,
               per_token=core.cross_entropy_per_token(logits, targets))
    W, bias = r(D, V), r(V)
    y = core.linear_forward(x.reshape(-1, D), W, bias)
    dW, dbias = np.zeros_like(W), np.zeros_like(bias)
    out.update(linear=y, dlinear=core.linear_backward(r(T * B, V), x.reshape(-1, D), W, dW, dbias),
               dW=dW, dbias=dbias)
    Wt = r(V, D)
    out["linear_T"] = core.linear_forward(x.reshape(-1, D), Wt, transposed=True)
    dWt = np.zeros_like(Wt)
    out["dlinear_T"] = core.linear_backward(r(T * B, V), x.reshape(-1, D), Wt, dWt, transposed=True)
    out["dWt"] = dWt
    out["relu"] = core.relu_forward(y)
    out["drelu"] = core.relu_backward(r(T * B, V), out["relu"])
    mask = core.dropout_mask(y.shape, 0.3, np.random.default_rng(seed), dtype)
    out["dropout"] = core.dropout_forward(y, 0.3, mask=mask)[0]
    gamma, beta = r(V), r(V)
    ln, ln_cache = core.layer_norm_forward(y, gamma, beta)
    dg, dbt = np.zeros_like(gamma), np.zeros_like(beta)
    out.update(layer_norm=ln, dlayer_norm=core.layer_norm_backward(y, ln_cache, dg, dbt), dgamma=dg)
    rm, rv = np.zeros(V, dtype), np.ones(V, dtype)
    bn, bn_cache = core.batch_norm_forward(y, gamma, beta, rm, rv)
    out.update(batch_norm=bn, dbatch_norm=core.batch_norm_backward(y, bn_cache, dg, dbt), rm=rm, rv=rv)
    p, g, m, v = r(40), r(40), np.zeros(40, dtype), np.zeros(40, dtype)
    for t in (1, 2):
        core.adam_update(p, g, m, v, t, lr=0.01, weight_decay=0.01)
    core.rmsprop_update(p, g, v, lr=0.01)
    core.sgd_update(p, g, m, lr=0.01, momentum=0.9, nesterov=True)
    out.update(norm=np.array(core.clip_grad_norm(g, 0.5)), clipped=g, params=p)
    return out


@needs_numba
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numba_and_numpy_builds_agree_on_every_kernel(dtype):
    with core.use_backend("numpy"):
        plain = run_all_kernels(dtype)
    with core.use_backend("numba"):
        jitted = run_all_kernels(dtype)
    assert plain.keys() == jitted.keys()
    for name in plain:
        assert jitted[name].dtype == plain[name].dtype, name
        assert_close(f"{name} ({np.dtype(dtype).name}, numba vs numpy)", jitted[name], plain[name],
                     **TOLERANCE[dtype])


@needs_numba
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loop_variants_agree_with_array_versions(dtype):
    """The hand-written loop variants, compiled and uncompiled, against the array versions."""
    rng = np.random.default_rng(3)
    B, H = 3, 4
    a = rng.normal(size=(B, 4 * H)).astype(dtype) * 3          # the products, less the bias
    c_prev = rng.normal(size=(B, H)).astype(dtype)
    bias = rng.normal(size=4 * H).astype(dtype)
    results = {}
    for label, fn in (("array", lstm_cell.cell_forward.py),
                      ("loops", lstm_cell.cell_forward_loops),
                      ("compiled", lstm_cell.cell_forward.jitted)):
        with core.use_backend("numba" if label == "compiled" else "numpy"):
            bufs = [a.copy()] + [np.empty((B, H), dtype) for _ in range(3)]
            fn(bufs[0], bias, c_prev, *bufs[1:])
            results[label] = bufs
    for label in ("loops", "compiled"):
        for name, a, ref in zip(("gates", "c", "tanh_c", "h"), results[label], results["array"]):
            assert_close(f"cell {name} {label}", a, ref, **TOLERANCE[dtype])


@needs_numba
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backward_loop_variant_agrees_with_array_version(dtype):
    """cell_backward's loop variant, compiled and uncompiled, against the array version: the
    gate gradients and the in-place output (dc_next -> dc_prev)."""
    rng = np.random.default_rng(4)
    B, H = 3, 5
    gates = rng.uniform(0.05, 0.95, size=(B, 4 * H)).astype(dtype)
    gates[:, 3 * H:] = rng.uniform(-0.95, 0.95, size=(B, H))   # the candidate is a tanh
    dh, dc_next, c_prev = (rng.normal(size=(B, H)).astype(dtype) for _ in range(3))
    tanh_c = np.tanh(rng.normal(size=(B, H))).astype(dtype)
    results = {}
    for label, fn in (("array", lstm_cell.cell_backward.py),
                      ("loops", lstm_cell.cell_backward_loops),
                      ("compiled", lstm_cell.cell_backward.jitted)):
        dgates, dcn = np.empty((B, 4 * H), dtype), dc_next.copy()
        fn(dh, dcn, gates, c_prev, tanh_c, dgates)
        results[label] = (dgates, dcn)
    for label in ("loops", "compiled"):
        for name, a, ref in zip(("dgates", "dc_next"), results[label], results["array"]):
            assert_close(f"cell backward {name} {label}", a, ref, **TOLERANCE[dtype])


@needs_numba
@pytest.mark.parametrize("B", [1, 3, 4, 9])   # below, at and past the four-row blocks
def test_add_transposed_loop_variant(B):
    """add_transposed's four-row loop variant is exact (one addition per element) for every
    batch size, including the rows left over after the blocks of four, with rows picked from a
    table (repeats allowed) or the block's own rows."""
    rng = np.random.default_rng(B)
    table = rng.normal(size=(5, 6)).astype(np.float32)
    bT = rng.normal(size=(6, B)).astype(np.float32)

    def loops(a, rows, bT, out):                    # the loop source, uncompiled
        lstm_cell.add_transposed_blocks_loops(a, rows, 0, 0, 1, bT, out)

    for rows in (rng.integers(0, 5, size=B), np.arange(B) % 5):
        for fn in (lstm_cell.add_transposed.py, loops, lstm_cell.add_transposed.jitted):
            out = np.full((B, 6), np.nan, np.float32)
            fn(table, rows, bT, out)
            assert np.array_equal(out, table[rows] + bT.T)


@needs_numba
def test_add_rows_loop_variant():
    """add_rows' loop variant adds the picked rows exactly, repeated rows included."""
    rng = np.random.default_rng(5)
    table = rng.normal(size=(5, 6)).astype(np.float32)
    rows = np.array([4, 0, 4, 2])
    start = rng.normal(size=(4, 6)).astype(np.float32)
    for fn in (lstm_cell.add_rows.py, lstm_cell.add_rows_loops, lstm_cell.add_rows.jitted):
        out = start.copy()
        fn(table, rows, out)
        assert np.array_equal(out, start + table[rows])


def test_tanh_rational_accuracy():
    x = np.linspace(-12, 12, 20_001).astype(np.float32)
    fn = lstm_cell.tanh_rational.jitted if core.numba_available() else lstm_cell.tanh_rational.py
    approx = np.array([fn(v) for v in x], dtype=np.float64)
    error = np.abs(approx - np.tanh(x.astype(np.float64)))
    assert error.max() <= 5e-7      # measured 3.9e-7; float32 spacing near 1 is 6e-8
    assert np.all(np.abs(approx) <= 1.0)
    assert np.all(approx[x > 0] > 0) and np.all(approx[x < 0] < 0)
    assert np.isnan(fn(np.float32(np.nan)))


def test_use_backend_restores_after_an_exception():
    before = minilstm.backend()
    with pytest.raises(RuntimeError):
        with minilstm.use_backend("numpy"):
            assert minilstm.backend() == "numpy"
            raise RuntimeError("boom")
    assert minilstm.backend() == before


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match=r"backend: got 'cuda', expected one of \('numba', 'numpy'\)"):
        minilstm.set_backend("cuda")


def _run(code, **env):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("MINILSTM_BACKEND", "MINILSTM_DISABLE_JIT")}
    environment.update(env)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=environment, timeout=300)
    return result


def test_environment_variables_select_the_backend():
    code = "import minilstm, sys; print(minilstm.backend(), 'numba' in sys.modules)"
    assert _run(code, MINILSTM_DISABLE_JIT="1").stdout.split() == ["numpy", "False"]
    assert _run(code, MINILSTM_BACKEND="numpy").stdout.split()[0] == "numpy"
    bad = _run(code, MINILSTM_BACKEND="gpu")
    assert bad.returncode != 0 and "MINILSTM_BACKEND='gpu' is not a backend" in bad.stderr


def test_package_works_when_numba_cannot_be_imported():
    """Simulates a machine without numba: importing it raises ImportError."""
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import numpy as np, minilstm\n"
        "from minilstm.core import lstm_forward\n"
        "x = np.ones((3, 2, 4), np.float32); z = np.zeros((2, 5), np.float32)\n"
        "h, _, _ = lstm_forward(x, z, z, np.full((4, 20), .1, np.float32), np.zeros((5, 20), np.float32), np.zeros(20, np.float32))\n"
        "info = minilstm.backend_info()\n"
        "print(minilstm.backend(), h.shape, info['numba'], info['numba_error'].startswith(('ImportError', 'ModuleNotFoundError')))\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["numpy", "(3,", "2,", "5)", "None", "True"]
    failed = _run("import sys; sys.modules['numba'] = None\nimport minilstm", MINILSTM_BACKEND="numba")
    assert failed.returncode != 0 and "MINILSTM_BACKEND=numba but numba cannot be imported" in failed.stderr


def test_backend_info_reports_the_policy():
    info = minilstm.backend_info()
    assert info["backend"] == minilstm.backend()
    assert info["jit_options"]["fastmath"] is False and info["jit_options"]["cache"] is True
    assert info["numba"] == (_jit._numba.__version__ if core.numba_available() else None)
