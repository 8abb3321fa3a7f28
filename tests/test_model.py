"""The language model: whole-model gradient checks, the contract, equivalent input paths."""
import numpy as np
import pytest

from gradcheck import assert_close, gradcheck
from minilstm.core import IGNORE_INDEX
from minilstm.model import LanguageModel, ModelConfig

CONFIGS = {
    "embedding-1-layer": dict(hidden_sizes=(4,)),
    "onehot-2-layers-dropout": dict(input_mode="onehot", hidden_sizes=(3, 4), dropout=0.3),
    "embedding-dropout-head-batchnorm": dict(hidden_sizes=(3, 2), embedding_dropout=0.2, head_hidden=5,
                                             head_norm="batch", head_dropout=0.25, dropout=0.2),
    "head-layernorm-tied": dict(hidden_sizes=(4,), head_hidden=3, head_norm="layer", tie_weights=True),
    "tied-no-head": dict(hidden_sizes=(3,), tie_weights=True),
}


def tiny_model(**overrides):
    cfg = dict(vocab_size=6, embedding_dim=3, hidden_sizes=(4,), dtype="float64", seed=3)
    cfg.update(overrides)
    model = LanguageModel(ModelConfig(**cfg))
    rng = np.random.default_rng(11)
    # random non-zero values everywhere, biases and norm parameters included
    model.params.data[:] = rng.normal(size=model.num_parameters) * 0.5
    return model


@pytest.mark.parametrize("name", list(CONFIGS))
def test_whole_model_gradient_check(name):
    model = tiny_model(**CONFIGS[name])
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 6, size=(2, 4))
    targets = rng.integers(0, 6, size=(2, 4))
    targets[1, 2] = IGNORE_INDEX
    state = [(rng.normal(size=(2, H)), rng.normal(size=(2, H))) for H in model.config.hidden_sizes]

    def loss():
        model.dropout_rng = np.random.default_rng(7)      # the same dropout masks every call
        return model.forward(ids, targets, state)[1]

    loss()
    model.zero_grad()
    model.backward()
    analytic = {n: model.params.grads[n].copy() for n in model.params.names()}
    tensors = dict(model.params.values)
    errors = gradcheck(loss, tensors, analytic)
    assert set(errors) == set(model.params.names())


def test_folded_embedding_equals_lookup_then_projection():
    """(E @ Wx)[ids] and E[ids] @ Wx: same loss and gradients, whichever path forward picks."""
    model = tiny_model(hidden_sizes=(4, 3))
    rng = np.random.default_rng(0)
    small = rng.integers(0, 6, size=(1, 3))   # T*B = 3 < V = 6: lookup then projection
    large = rng.integers(0, 6, size=(3, 4))   # T*B = 12 > V: folded table
    for ids in (small, large):
        results = []
        for fold in (True, False):
            model._folds_embedding = lambda T, B, fold=fold: fold
            _, loss, _ = model.forward(ids, ids)
            model.zero_grad()
            model.backward()
            results.append((loss, model.params.grad.copy()))
        assert results[0][0] == pytest.approx(results[1][0], rel=1e-14)
        assert_close("grads fold vs lookup", results[0][1], results[1][1], rtol=1e-12, atol=1e-14)


def test_contract_shapes_state_carry_and_eval():
    model = tiny_model(hidden_sizes=(4, 5), dropout=0.5)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 6, size=(3, 8))
    logits, loss, state = model.eval().forward(ids)
    assert logits.shape == (3, 8, 6) and loss is None
    assert [s[0].shape for s in state] == [(3, 4), (3, 5)]
    # eval mode is deterministic (no dropout) and carrying the state equals one long pass
    _, _, mid = model.forward(ids[:, :5])
    second, _, end = model.forward(ids[:, 5:], state=mid)
    assert_close("logits carried", second, logits[:, 5:], rtol=1e-13, atol=1e-14)
    assert_close("final h", end[1][0], state[1][0], rtol=1e-13, atol=1e-14)
    with pytest.raises(RuntimeError, match="call forward"):
        model.backward()


def test_model_input_errors():
    model = tiny_model()
    with pytest.raises(IndexError, match="outside the vocabulary of size 6"):
        model.forward(np.array([[0, 6]]))
    with pytest.raises(ValueError, match=r"ids has shape \(4,\), expected \(B, T\)"):
        model.forward(np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"targets has shape \(1, 3\), expected \(B, T\) = \(1, 2\)"):
        model.forward(np.array([[0, 1]]), np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match=r"state\[0\].h has shape \(2, 4\), expected \(B, H\) = \(1, 4\)"):
        model.forward(np.array([[0, 1]]), state=[(np.zeros((2, 4)), np.zeros((2, 4)))])


@pytest.mark.parametrize("field,value,message", [
    ("input_mode", "bytes", "input_mode: got 'bytes', expected one of"),
    ("hidden_sizes", (), "hidden_sizes: got ()"),
    ("dropout", 1.0, r"dropout: got 1.0, expected a probability in \[0, 1\)"),
    ("head_norm", "layer", "head_norm: got 'layer', expected 'none' unless head_hidden > 0"),
    ("tie_weights", True, r"output layer's input width \(512\) equals embedding_dim \(64\)"),
])
def test_config_errors(field, value, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{field: value})


def test_forget_bias_and_default_initialisation():
    model = LanguageModel(ModelConfig(hidden_sizes=(8, 8), forget_bias=2.5))
    for layer in range(2):
        b = model.params[f"lstm{layer}.b"]
        assert np.all(b[8:16] == 2.5)                                # forget gate block
        assert np.all(np.abs(b[:8]) <= 1 / np.sqrt(8)) and np.any(b[:8] != 0)
    assert model.params.data.dtype == np.float32
    again = LanguageModel(ModelConfig(hidden_sizes=(8, 8), forget_bias=2.5))
    np.testing.assert_array_equal(again.params.data, model.params.data)   # seeded
