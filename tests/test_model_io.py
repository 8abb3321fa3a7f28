"""Model checkpoints: round trip, refusal of NaN parameters, contradictions detected."""
import numpy as np
import pytest

from minilstm.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minilstm.data import CharVocab
from minilstm.model import LanguageModel, ModelConfig
from minilstm.model_io import load_model, read_model_config, save_model


def make(tmp_path, **kw):
    vocab = CharVocab.build("hello world")
    model = LanguageModel(ModelConfig(vocab_size=len(vocab), embedding_dim=4, hidden_sizes=(6, 5), **kw))
    return model, vocab, tmp_path / "model.ckpt"


def test_round_trip_gives_the_same_predictions(tmp_path):
    model, vocab, path = make(tmp_path, head_hidden=3, head_norm="batch")
    model.buffers["head.norm.running_mean"][:] = [0.5, -1.0, 2.0]
    save_model(path, model, vocab, metadata={"note": "x"}, arrays={"extra": np.arange(3)})
    loaded = load_model(path)
    ids = vocab.encode("hello").reshape(1, -1)
    np.testing.assert_array_equal(loaded.model.eval().forward(ids)[0], model.eval().forward(ids)[0])
    assert loaded.vocab == vocab and loaded.metadata["note"] == "x"
    np.testing.assert_array_equal(loaded.arrays["extra"], np.arange(3))
    assert read_model_config(path) == model.config


def test_nan_parameters_are_never_saved(tmp_path):
    model, vocab, path = make(tmp_path)
    save_model(path, model, vocab)
    model.params["lstm1.Wh"][0, 0] = np.nan
    with pytest.raises(ValueError, match="params contain NaN or Inf"):
        save_model(path, model, vocab)
    assert np.isfinite(load_model(path).model.params.data).all()   # the good file is intact


def test_contradictions_are_checkpoint_errors(tmp_path):
    model, vocab, path = make(tmp_path)
    save_model(path, model, vocab)
    ckpt = load_checkpoint(path)
    ckpt.metadata["model"]["hidden_sizes"] = [6, 7]                  # params no longer fit
    save_checkpoint(path, ckpt.arrays, ckpt.metadata)
    with pytest.raises(CheckpointError, match=r"array 'params' is float32\(\d+,\), but the stored configuration needs"):
        load_model(path)
    ckpt.metadata["model"]["hidden_sizes"] = [6, 5]
    ckpt.metadata["vocab"]["tokens"] = ckpt.metadata["vocab"]["tokens"][:-1]
    save_checkpoint(path, ckpt.arrays, ckpt.metadata)
    with pytest.raises(CheckpointError, match="vocabulary has 7 tokens but the model was built for 8"):
        load_model(path)
    save_checkpoint(path, {"x": np.zeros(2)}, {"kind": "other"})
    with pytest.raises(CheckpointError, match="not a model checkpoint"):
        load_model(path)
