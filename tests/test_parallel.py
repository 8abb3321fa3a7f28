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
    model.threads = 1
    logits, loss, new_state = model.forward(ids, targets, state)
    model.zero_grad()
    model.backward()
    return model, logits, loss, new_state


@pytest.mark.parametrize("shards", [2, 3])
@pytest.mark.parametrize("extra", [{}, {"input_mode": "onehot"}, {"head_hidden": 9, "head_norm": "layer"}])
def test_sharded_gradient_equals_unsharded_float64(shards, extra):
    config, ids, targets, state = model_and_batch(**extra)
    reference, reference_logits, loss, new_state = unsharded(config, ids, targets, state)
    model = LanguageModel(config)
    model.threads = shards
    logits, sharded_loss, sharded_state = model.forward(ids, targets, state)
    assert isinstance(model._tape, parallel.ShardedTape) and len(model._tape.replicas) == shards
    model.params.grad[:] = 1.0              # backward adds into the gradient, as unsharded
    model.backward()
    model.params.grad -= 1.0
    np.testing.assert_allclose(logits, reference_logits, rtol=0, atol=1e-13)
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
        model.threads = threads
        optimizer = make_optimizer("adam", model.params)
        for _ in range(3):
            result = train_step(model, optimizer, ids, targets, state, lr=1e-2)
        results.append((model.params.data.copy(), result))
    (data1, r1), (data2, r2) = results
    assert r1.tokens == r2.tokens == int(np.count_nonzero(targets != -1)) == 8 * 6 - 3 * 4
    # float32 rounding of sums grouped differently, amplified by three Adam steps of 1e-2
    # (each parameter moves by about lr per step): 1e-5 is about 100 float32 ulps of 0.1
    np.testing.assert_allclose(data2, data1, rtol=0, atol=1e-5)
    assert abs(r1.loss - r2.loss) < 1e-5


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_forward_backward_is_forward_then_backward(shards):
    config, ids, targets, state = model_and_batch(dropout=0.3)
    results = []
    for fused in (False, True):
        model = LanguageModel(config)
        model.threads = shards
        model.params.grad[:] = 1.0              # both add into the gradient
        if fused:
            loss, new_state = model.forward_backward(ids, targets, state)
        else:
            _, loss, new_state = model.forward(ids, targets, state)
            model.backward()
        assert model._tape is None              # nothing left for a second backward
        results.append((loss, new_state, model.params.grad.copy(), model.tokens_in_loss,
                        model.dropout_rng.bit_generator.state))
    (loss, new_state, grad, tokens, rng), (loss2, new_state2, grad2, tokens2, rng2) = results
    # the same kernels on the same shards in the same order: equal to the last bit
    assert loss2 == loss and tokens2 == tokens and rng2 == rng
    np.testing.assert_array_equal(grad2, grad)
    for (h, c), (h2, c2) in zip(new_state, new_state2):
        np.testing.assert_array_equal(h2, h)
        np.testing.assert_array_equal(c2, c)


def test_forward_backward_refuses_eval_mode_missing_targets_and_bad_input():
    config, ids, targets, state = model_and_batch()
    model = LanguageModel(config)
    with pytest.raises(ValueError, match="forward_backward: targets is None, expected"):
        model.forward_backward(ids, None)
    bad_ids = ids.copy()
    bad_ids[3, 2] = V
    with pytest.raises(IndexError, match=rf"LanguageModel.forward_backward: ids contains id {V} at \(3, 2\)"):
        model.forward_backward(bad_ids, targets)
    with pytest.raises(ValueError, match=r"LanguageModel.forward_backward: state\[1\].c has shape \(24, 5\), "
                                         r"expected \(B, H\) = \(24, 6\)"):
        model.forward_backward(ids, targets, [state[0], (state[1][0], state[1][1][:, :5])])
    for threads in (1, 2):                     # unsharded, and sharded
        model.threads = threads
        with pytest.raises(ValueError, match=r"LanguageModel.forward_backward: targets has shape \(24, 5\), "
                                             r"expected \(B, T\) = \(24, 6\)"):
            model.forward_backward(ids, targets[:, :5])
    assert not model.params.grad.any()         # refused before any gradient was added
    model.eval()
    with pytest.raises(RuntimeError, match="forward_backward: the model is in eval mode"):
        model.forward_backward(ids, targets)


def test_dropout_shards_are_reproducible_and_draw_once_from_the_model():
    config, ids, targets, state = model_and_batch(dropout=0.3, embedding_dropout=0.2)
    grads, rng_states = [], []
    for _ in range(2):
        model = LanguageModel(config)
        model.threads = 3
        before = LanguageModel(config).dropout_rng
        model.forward(ids, targets, state)
        model.zero_grad()
        model.backward()
        grads.append(model.params.grad.copy())
        before.integers(0, 2**63, size=3)          # the one draw a sharded step makes
        rng_states.append((model.dropout_rng.bit_generator.state, before.bit_generator.state))
    np.testing.assert_array_equal(grads[0], grads[1])
    for ours, expected in rng_states:              # so saving the model's generator resumes exactly
        assert ours == expected


def test_shard_count_and_the_threads_setting():
    model = LanguageModel(ModelConfig(vocab_size=V, hidden_sizes=(8,)))
    for threads, B, expected in ((1, 64, 1), (4, 64, 4), (4, 20, 20 // parallel.MIN_SHARD_ROWS), (4, 3, 1)):
        model.threads = threads
        assert parallel.shard_count(model, B) == expected
    model.threads = None
    with minilstm.use_backend("numpy"):             # the numpy build is not sharded by default
        assert parallel.shard_count(model, 64) == 1
    batch_norm = LanguageModel(ModelConfig(vocab_size=V, hidden_sizes=(8,), head_hidden=4, head_norm="batch"))
    batch_norm.threads = 4
    assert parallel.shard_count(batch_norm, 64) == 1          # training: statistics over the whole batch
    assert parallel.shard_count(batch_norm.eval(), 64) == 4   # inference: running statistics per row
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(ValueError, match=rf"LanguageModel.threads: got {bad!r}, expected None "
                                             r"\(automatic\) or an int >= 1"):
            model.threads = bad
    assert model.threads is None                     # a refused value leaves the setting alone


def test_available_threads_follows_the_blas_environment(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert parallel.available_threads() == 1
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "100000")
    assert 1 <= parallel.available_threads() < 100000           # never more than the cores


@pytest.mark.parametrize("row", [0, -1])
def test_an_error_in_a_shard_reaches_the_caller_and_this_threads_blas_is_untouched(row):
    config, ids, targets, state = model_and_batch()
    targets[row, -1] = V                 # out of the vocabulary, in the first or the last shard only
    setters = parallel._blas_libraries()
    before = [setter(1) for setter in setters]      # a setter returns the count it replaces
    for setter, count in zip(setters, before):
        setter(count)
    model = LanguageModel(config)
    model.threads = 3
    with pytest.raises(IndexError, match=f"targets contains id {V}"):
        model.forward(ids, targets, state)
    assert [setter(count) for setter, count in zip(setters, before)] == before


def test_trainer_config_threads():
    assert TrainConfig(threads=2).threads == 2
    assert TrainConfig().threads == 0                 # automatic
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


def test_sharded_inference_and_the_lstm_caches_of_the_whole_batch():
    config, ids, targets, state = model_and_batch(head_hidden=9, head_norm="batch")
    reference, model = LanguageModel(config).eval(), LanguageModel(config).eval()
    reference.threads, model.threads = 1, 3
    logits_ref, loss_ref, state_ref = reference.forward(ids, targets, state)
    logits, loss, new_state = model.forward(ids, targets, state)
    assert isinstance(model._tape, parallel.ShardedTape)
    # float64, the same operations per row; BLAS groups sums by block size: a few ulps
    np.testing.assert_allclose(logits, logits_ref, rtol=0, atol=1e-13)
    assert abs(loss - loss_ref) <= 1e-12 * loss_ref
    for ours, theirs in zip(model.lstm_caches(), reference.lstm_caches()):
        for name in ("gates", "c", "tanh_c", "h", "h0", "c0"):
            np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=0, atol=1e-13)
    with pytest.raises(RuntimeError, match="in training mode first"):
        model.backward()                              # an inference forward has nothing to undo
    np.testing.assert_array_equal(model.forward(ids, None, state)[0], logits)   # no targets: logits only


def test_trainer_sets_the_models_threads(tmp_path):
    from minilstm.train import Trainer
    model = LanguageModel(ModelConfig(vocab_size=V, embedding_dim=4, hidden_sizes=(8,)))
    data = np.random.default_rng(0).integers(0, V, 2000)
    Trainer(model, TrainConfig(threads=3, max_steps=1, batch_size=32, progress=False, estimate=False,
                               sample_length=0, plot=False, handle_signals=False), data)
    assert model.threads == 3
    Trainer(model, TrainConfig(max_steps=1, batch_size=32, progress=False, estimate=False,
                               sample_length=0, plot=False, handle_signals=False), data)
    assert model.threads is None
