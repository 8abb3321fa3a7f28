"""One training step and the optimizer objects around the fused updates."""
import numpy as np
import pytest

from minilstm.model import LanguageModel, ModelConfig
from minilstm.optimizers import make_optimizer
from minilstm.train import NonFiniteError, train_step


def small_model(**kw):
    return LanguageModel(ModelConfig(vocab_size=5, embedding_dim=4, hidden_sizes=(8,), seed=1, **kw))


def test_training_learns_a_repeating_sequence():
    model = small_model()
    optimizer = make_optimizer("adam", model.params)
    ids = np.tile(np.arange(5), (4, 5))[:, :21]                 # 0 1 2 3 4 0 1 ...
    state, losses = None, []
    for _ in range(60):
        result = train_step(model, optimizer, ids[:, :-1], ids[:, 1:], state, lr=0.03, clip_norm=5.0)
        state, losses = result.state, losses + [result.loss]
    assert losses[0] > 1.4                       # about log(5) = 1.61 at the start
    assert losses[-1] < 0.05                     # the next symbol is fully determined
    assert result.tokens == 4 * 20 and optimizer.steps == 60


def test_nonfinite_loss_stops_before_the_update():
    model = small_model()
    optimizer = make_optimizer("sgd", model.params)
    model.params["out.b"][0] = np.inf
    before = model.params.data.copy()
    ids = np.zeros((2, 6), dtype=np.int64)
    with pytest.raises(NonFiniteError, match="the step was not applied"):
        train_step(model, optimizer, ids, ids, lr=0.1)
    np.testing.assert_array_equal(model.params.data, before)
    assert optimizer.steps == 0


@pytest.mark.parametrize("name", ["adam", "rmsprop", "sgd"])
def test_optimizer_state_round_trip(name):
    model = small_model()
    optimizer = make_optimizer(name, model.params, **({"momentum": 0.9} if name == "sgd" else {}))
    ids = np.arange(12).reshape(2, 6) % 5
    for _ in range(3):
        train_step(model, optimizer, ids, ids, lr=0.01)
    arrays, meta = optimizer.state_arrays(), optimizer.state_meta()
    fresh = make_optimizer(name, small_model().params, **meta["hyper"])
    fresh.load_state({k: v.copy() for k, v in arrays.items()}, meta)
    assert fresh.steps == 3
    for key in arrays:
        np.testing.assert_array_equal(fresh.state_arrays()[key], arrays[key])
    with pytest.raises(ValueError, match="saved optimizer is"):
        make_optimizer("adam" if name != "adam" else "sgd", small_model().params).load_state(arrays, meta)


def test_unknown_optimizer():
    with pytest.raises(ValueError, match=r"optimizer: got 'adagrad', expected one of \('adam', 'rmsprop', 'sgd'\)"):
        make_optimizer("adagrad", small_model().params)
