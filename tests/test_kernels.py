"""Embedding, linear, softmax cross-entropy, dropout and the norm layers."""
import numpy as np
import pytest

import reference
from gradcheck import assert_close, gradcheck
from minilstm.core import (IGNORE_INDEX, batch_norm_backward, batch_norm_forward,
                           cross_entropy_per_token, dropout_backward, dropout_forward, dropout_mask,
                           embedding_backward, embedding_forward, layer_norm_backward,
                           layer_norm_forward, linear_backward, linear_forward, relu_backward,
                           relu_forward,
                           softmax_cross_entropy)


# ------------------------------------------------------------------ embedding

def test_embedding_gathers_rows_and_scatter_adds_repeated_ids(rng):
    table = rng.normal(size=(7, 3))
    ids = np.array([[1, 1, 4], [6, 1, 0]])
    out = embedding_forward(ids, table)
    assert_close("gather", out, reference.embedding(ids, table), rtol=0)
    dout = rng.normal(size=out.shape)
    dtable = np.full_like(table, 0.5)
    embedding_backward(dout, ids, dtable)
    expected = np.full_like(table, 0.5)
    for index in np.ndindex(*ids.shape):        # repeated ids (1 appears three times) accumulate
        expected[ids[index]] += dout[index]
    assert_close("scatter-add", dtable, expected, rtol=1e-15, atol=1e-15)


def test_embedding_gradient_check(rng):
    table = rng.normal(size=(5, 4))
    ids = rng.integers(0, 5, size=(4, 3))
    U = rng.normal(size=(4, 3, 4))
    dtable = np.zeros_like(table)
    embedding_backward(U, ids, dtable)
    gradcheck(lambda: np.sum(embedding_forward(ids, table) * U), {"table": table}, {"table": dtable})


def test_embedding_rejects_out_of_range_ids(rng):
    table = rng.normal(size=(5, 2))
    with pytest.raises(IndexError, match=r"contains id 5 at \(1,\), outside the vocabulary of size 5"):
        embedding_forward(np.array([0, 5]), table)
    with pytest.raises(IndexError, match="id -1"):
        embedding_backward(np.zeros((1, 2)), np.array([-1]), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="ids has dtype float64, expected an integer dtype"):
        embedding_forward(np.array([0.0]), table)


# ------------------------------------------------------------------ linear

@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_gradients(rng, with_bias):
    x, W = rng.normal(size=(5, 3)), rng.normal(size=(3, 4))
    b = rng.normal(size=4) if with_bias else None
    U = rng.normal(size=(5, 4))
    assert_close("y", linear_forward(x, W, b), x @ W + (b if with_bias else 0), rtol=1e-14, atol=1e-14)
    dW = np.zeros_like(W)
    db = np.zeros(4) if with_bias else None
    dx = linear_backward(U, x, W, dW, db)
    tensors, analytic = {"x": x, "W": W}, {"x": dx, "W": dW}
    if with_bias:
        tensors["b"], analytic["b"] = b, db
    gradcheck(lambda: np.sum(linear_forward(x, W, b) * U), tensors, analytic)
    assert linear_backward(U, x, W, dW, db, need_dx=False) is None


def test_linear_with_transposed_weight_gradients(rng):
    """The tied output layer: W stored (K, D), y = x @ W.T."""
    x, W, b, U = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=(5, 4))
    assert_close("y", linear_forward(x, W, b, transposed=True), x @ W.T + b, rtol=1e-14, atol=1e-14)
    dW, db = np.zeros_like(W), np.zeros_like(b)
    dx = linear_backward(U, x, W, dW, db, transposed=True)
    gradcheck(lambda: np.sum(linear_forward(x, W, b, transposed=True) * U),
              {"x": x, "W": W, "b": b}, {"x": dx, "W": dW, "b": db})


def test_relu_gradient(rng):
    x = rng.normal(size=(4, 5))
    x[np.abs(x) < 0.01] = 0.5        # keep finite differences away from the kink at 0
    U = rng.normal(size=x.shape)
    y = relu_forward(x)
    assert np.all(y == np.maximum(x, 0))
    gradcheck(lambda: np.sum(relu_forward(x) * U), {"x": x}, {"x": relu_backward(U, y)})


def test_linear_shape_errors(rng):
    with pytest.raises(ValueError, match=r"linear_forward: x has shape \(5, 2\), expected \(N, D\) = \(\?, 3\)"):
        linear_forward(rng.normal(size=(5, 2)), rng.normal(size=(3, 4)))
    with pytest.raises(ValueError, match=r"dW has shape \(4, 3\), expected \(3, 4\)"):
        linear_backward(np.zeros((5, 4)), np.zeros((5, 3)), np.zeros((3, 4)), np.zeros((4, 3)))


# ------------------------------------------------------------------ loss

def test_cross_entropy_matches_reference_and_ignores_padding(rng):
    logits = rng.normal(size=(6, 5)) * 3
    targets = np.array([0, 4, IGNORE_INDEX, 2, IGNORE_INDEX, 1])
    loss, dlogits, count = softmax_cross_entropy(logits, targets)
    assert count == 4
    assert loss == pytest.approx(reference.cross_entropy(logits, targets, IGNORE_INDEX), rel=1e-14)
    assert np.all(dlogits[[2, 4]] == 0.0)
    per_token = cross_entropy_per_token(logits, targets)
    assert per_token[2] == 0.0 and per_token.sum() / 4 == pytest.approx(loss, rel=1e-14)


def test_cross_entropy_gradient_check(rng):
    logits = rng.normal(size=(5, 4))
    targets = np.array([3, IGNORE_INDEX, 0, 0, 2])
    _, dlogits, _ = softmax_cross_entropy(logits, targets)
    gradcheck(lambda: softmax_cross_entropy(logits, targets, need_grad=False)[0],
              {"logits": logits}, {"logits": dlogits})


def test_cross_entropy_all_padding_contributes_exactly_zero(rng):
    logits = rng.normal(size=(3, 4))
    loss, dlogits, count = softmax_cross_entropy(logits, np.full(3, IGNORE_INDEX))
    assert (loss, count) == (0.0, 0)
    assert np.all(dlogits == 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_stays_finite_for_huge_logits(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype=dtype)
    loss, dlogits, _ = softmax_cross_entropy(logits, np.array([1, 0, 0]))
    assert np.isfinite(loss) and np.all(np.isfinite(dlogits))
    # row 0: target logit is 2e4 below the max -> loss 2e4; row 1: uniform -> log 3;
    # row 2: two tied maxima -> log 2
    assert loss == pytest.approx((2e4 + np.log(3) + np.log(2)) / 3, rel=1e-6)


def test_cross_entropy_bad_targets(rng):
    with pytest.raises(IndexError, match=r"targets contains id 7 at position 1, outside the vocabulary of size 4"):
        softmax_cross_entropy(rng.normal(size=(2, 4)), np.array([0, 7]))
    with pytest.raises(ValueError, match=r"targets has shape \(3,\), expected \(N,\) = \(2,\)"):
        softmax_cross_entropy(rng.normal(size=(2, 4)), np.array([0, 1, 2]))


# ------------------------------------------------------------------ dropout

def test_dropout_is_inverted_and_reproducible():
    x = np.ones((200, 50), dtype=np.float32)
    y1, mask1 = dropout_forward(x, 0.3, np.random.default_rng(5))
    y2, mask2 = dropout_forward(x, 0.3, np.random.default_rng(5))
    np.testing.assert_array_equal(y1, y2)
    kept = mask1 != 0
    assert np.allclose(y1[kept], 1 / 0.7)
    # 10,000 Bernoulli(0.3) draws: the dropped fraction has std 0.0046, so +-0.02 is > 4 sigma
    assert abs((~kept).mean() - 0.3) < 0.02
    assert dropout_forward(x, 0.3, training=False)[1] is None
    assert dropout_forward(x, 0.0, np.random.default_rng(0))[1] is None


def test_dropout_gradient_with_fixed_mask(rng):
    x = rng.normal(size=(4, 5))
    mask = dropout_mask(x.shape, 0.5, rng, np.float64)
    U = rng.normal(size=x.shape)
    gradcheck(lambda: np.sum(dropout_forward(x, 0.5, mask=mask)[0] * U), {"x": x},
              {"x": dropout_backward(U, mask)})


def test_dropout_bad_arguments():
    x = np.ones((2, 2))
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\), got 1.0"):
        dropout_forward(x, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="rng is required"):
        dropout_forward(x, 0.5)


# ------------------------------------------------------------------ norms

def test_layer_norm_matches_reference_and_gradients(rng):
    x, gamma, beta = rng.normal(size=(5, 6)) * 2 + 1, rng.normal(size=6), rng.normal(size=6)
    y, cache = layer_norm_forward(x, gamma, beta)
    assert_close("layer norm", y, reference.layer_norm(x, gamma, beta, 1e-5), rtol=1e-12, atol=1e-13)
    U = rng.normal(size=y.shape)
    dgamma, dbeta = np.zeros(6), np.zeros(6)
    dx = layer_norm_backward(U, cache, dgamma, dbeta)
    gradcheck(lambda: np.sum(layer_norm_forward(x, gamma, beta)[0] * U),
              {"x": x, "gamma": gamma, "beta": beta}, {"x": dx, "gamma": dgamma, "beta": dbeta})


def test_batch_norm_training_gradients_and_running_stats(rng):
    x, gamma, beta = rng.normal(size=(6, 4)) * 3 - 1, rng.normal(size=4), rng.normal(size=4)
    running_mean, running_var = np.zeros(4), np.ones(4)
    y, cache = batch_norm_forward(x, gamma, beta, running_mean, running_var, momentum=0.1)
    assert_close("batch norm", y, reference.batch_norm_train(x, gamma, beta, 1e-5), rtol=1e-12, atol=1e-13)
    assert_close("running_mean", running_mean, 0.1 * x.mean(axis=0), rtol=1e-14)
    assert_close("running_var", running_var, 0.9 + 0.1 * x.var(axis=0, ddof=1), rtol=1e-14)
    U = rng.normal(size=y.shape)
    dgamma, dbeta = np.zeros(4), np.zeros(4)
    dx = batch_norm_backward(U, cache, dgamma, dbeta)
    scratch_mean, scratch_var = np.zeros(4), np.ones(4)   # the check's own forwards update these

    def loss():
        return np.sum(batch_norm_forward(x, gamma, beta, scratch_mean, scratch_var)[0] * U)

    gradcheck(loss, {"x": x, "gamma": gamma, "beta": beta}, {"x": dx, "gamma": dgamma, "beta": dbeta})


def test_batch_norm_inference_uses_running_statistics(rng):
    x, gamma, beta = rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=4)
    mean, var = rng.normal(size=4), rng.uniform(0.5, 2, size=4)
    y, cache = batch_norm_forward(x, gamma, beta, mean.copy(), var.copy(), training=False)
    assert_close("inference", y, gamma * (x - mean) / np.sqrt(var + 1e-5) + beta, rtol=1e-14, atol=1e-14)
    U = rng.normal(size=y.shape)
    dgamma, dbeta = np.zeros(4), np.zeros(4)
    dx = batch_norm_backward(U, cache, dgamma, dbeta)
    gradcheck(lambda: np.sum(batch_norm_forward(x, gamma, beta, mean.copy(), var.copy(),
                                                training=False)[0] * U),
              {"x": x, "gamma": gamma, "beta": beta}, {"x": dx, "gamma": dgamma, "beta": dbeta})
    with pytest.raises(ValueError, match="needs N >= 2"):
        batch_norm_forward(x[:1], gamma, beta, mean.copy(), var.copy(), training=True)
