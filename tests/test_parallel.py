"""Data-parallel training steps (minilstm.parallel): the sharded step is the unsharded one."""
import numpy as np
import pytest

import minilstm
from minilstm import parallel
from minilstm.model import LanguageModel, ModelConfig
from minilstm.optimizers import make_optimizer
from minilstm.train import train_step
from minilstm.train_config import TrainConfig

V = 11


def model_and_batch(dtype="float64", B=24, T=6, **kw):
    config = ModelConfig(vocab_size=V, embedding_dim=5, hidden_sizes=(7, 6), dtype=dtype, seed=3, **kw)
    rng = np.random.default_rng(4)
    ids = rng.integers(0, V, (B, T))
    targets = rng.integers(0, V, (B, T))
    targets[:5] = -1                     # padding, unevenly spread over the shards
    targets[-3:, :4] = -1
    state = [(rng.standard_normal((B, H)).astype(dtype), rng.standard_normal((B, H)).astype(dtype))
             for H in config.hidden_sizes]
    return config, ids, targets, state


def unsharded(config, ids, targets, state):
    model = LanguageModel(config)
    _, loss, new_state = model.forward(ids, targets, state)
    model.zero_grad()
    model.backward()
    return model, loss, new_state


@pytest.mark.parametrize("shards", [2, 3, 5])
@pytest.mark.parametrize("extra", [{}, {"input_mode": "onehot"}, {"head_hidden": 9, "head_norm": "layer"}])
def test_sharded_gradient_equals_unsharded_float64(shards, extra):
    config, ids, targets, state = model_and_batch(**extra)
    reference, loss, new_state = unsharded(config, ids, targets, state)
    model = LanguageModel(config)
    sharded_loss, sharded_state = parallel.forward_backward(model, ids, targets, state, shards)
    # The same sums in another grouping (count-weighted shard means, BLAS over fewer rows):
    # float64 rounding, a few ulps of values of order 1, so 1e-12 relative is already loose.
    assert abs(sharded_loss - loss) <= 1e-12 * abs(loss)
    scale = np.abs(reference.params.grad).max()
    np.testing.assert_allclose(model.params.grad, reference.params.grad, rtol=0, atol=1e-12 * scale)
    assert model.tokens_in_loss == reference.tokens_in_loss == int(np.count_nonzero(targets != -1))
    for (h, c), (h_ref, c_ref) in zip(sharded_state, new_state):
        # each row's state is computed from that row alone; only BLAS's grouping differs
        np.testing.assert_allclose(h, h_ref, rtol=0, atol=1e-13)
        np.testing.assert_allclose(c, c_ref, rtol=0, atol=1e-13)


def test_sharded_train_step_float32_and_a_shard_with_no_targets():
    config, ids, targets, state = model_and_batch("float32", B=16)
    targets[:8] = -1                     # the first of two shards counts nothing
    results = []
    for threads in (1, 2):
        model = LanguageModel(config)
        optimizer = make_optimizer("adam", model.params)
        for _ in range(3):
            result = train_step(model, optimizer, ids, targets, state, lr=1e-2, threads=threads)
        results.append((model.params.data.copy(), result))
    (data1, r1), (data2, r2) = results
    assert r1.tokens == r2.tokens == int(np.count_nonzero(targets != -1)) == 8 * 6 - 3 * 4
    # float32 rounding of sums grouped differently, amplified by three Adam steps of 1e-2
    # (each parameter moves by about lr per step): 1e-5 is about 100 float32 ulps of 0.1
    np.testing.assert_allclose(data2, data1, rtol=0, atol=1e-5)
    assert abs(r1.loss - r2.loss) < 1e-5


def test_dropout_shards_are_reproducible_and_draw_once_from_the_model():
    config, ids, targets, state = model_and_batch(dropout=0.3, embedding_dropout=0.2)
    grads, rng_states = [], []
    for _ in range(2):
        model = LanguageModel(config)
        before = LanguageModel(config).dropout_rng
        parallel.forward_backward(model, ids, targets, state, 3)
        grads.append(model.params.grad.copy())
        before.integers(0, 2**63, size=3)          # the one draw a sharded step makes
        rng_states.append((model.dropout_rng.bit_generator.state, before.bit_generator.state))
    np.testing.assert_array_equal(grads[0], grads[1])
    for ours, expected in rng_states:              # so saving the model's generator resumes exactly
        assert ours == expected


def test_shard_count():
    model = LanguageModel(ModelConfig(vocab_size=V, hidden_sizes=(8,)))
    assert parallel.shard_count(model, 64, 1) == 1
    assert parallel.shard_count(model, 64, 4) == 4
    assert parallel.shard_count(model, 20, 4) == 20 // parallel.MIN_SHARD_ROWS
    assert parallel.shard_count(model, 3, 4) == 1
    with minilstm.use_backend("numpy"):             # the numpy build is not sharded by default
        assert parallel.shard_count(model, 64, None) == 1
    batch_norm = LanguageModel(ModelConfig(vocab_size=V, hidden_sizes=(8,), head_hidden=4, head_norm="batch"))
    assert parallel.shard_count(batch_norm, 64, 4) == 1      # statistics over the whole batch
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(ValueError, match=rf"threads={bad!r}, expected None \(automatic\) or an int >= 1"):
            parallel.shard_count(model, 64, bad)


def test_available_threads_follows_the_blas_environment(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert parallel.available_threads() == 1
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "100000")
    assert 1 <= parallel.available_threads() < 100000           # never more than the cores


def test_an_error_in_a_shard_reaches_the_caller_and_blas_threads_are_restored():
    config, ids, targets, state = model_and_batch()
    targets[-1, -1] = V                  # out of the vocabulary, in the last shard only
    setters = parallel._blas_libraries()
    before = [setter(1) for setter in setters]      # a setter returns the count it replaces
    for setter, count in zip(setters, before):
        setter(count)
    with pytest.raises(IndexError, match=f"targets contains id {V}"):
        parallel.forward_backward(LanguageModel(config), ids, targets, state, 3)
    assert [setter(count) for setter, count in zip(setters, before)] == before


def test_trainer_config_threads():
    assert TrainConfig(threads=2).threads == 2
    with pytest.raises(ValueError, match=r"TrainConfig.threads: got -1, expected an integer >= 0"):
        TrainConfig(threads=-1)


def test_openblas_is_controlled_where_it_is_loaded():
    """numpy's and scipy's wheels bring OpenBLAS >= 0.3.27 on Linux: each must be found with its
    per-thread control, or the automatic setting silently falls back to one shard."""
    import sys
    if not sys.platform.startswith("linux"):
        pytest.skip("the libraries are found through /proc/self/maps (Linux)")
    import scipy.linalg.cython_blas  # noqa: F401
    with open("/proc/self/maps") as maps:
        loaded = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    if not loaded:
        pytest.skip("no OpenBLAS in this process (another BLAS: one shard by design)")
    assert len(parallel._blas_libraries()) == len(loaded)
