"""Fine-tuning: vocabulary "same" (coverage enforced) or "extend" (the model grows; what is
preserved is checked exactly)."""
import dataclasses
import io

import numpy as np
import pytest

from minilstm.finetune import FinetuneConfig, FinetuneVocabularyError, extend_model, prepare_finetune
from minilstm.model import LanguageModel
from minilstm.model_io import load_model, save_model
from minilstm.train import Trainer
from trainer_helpers import TEXT, TRAIN, VAL, VOCAB, tiny_config, tiny_model

NEW_TEXT = "a fable: Zed dazed a cab. " * 20       # ':', 'Z', 'l', 'z' are new


def _checkpoint(tmp_path, **model_kw):
    """A briefly trained model (parameters away from their initial values) and its file."""
    trainer = Trainer(tiny_model(**model_kw), tiny_config(max_steps=5, max_epochs=0), TRAIN, VAL, VOCAB,
                      tmp_path / "run", stream=io.StringIO())
    trainer.fit()
    return tmp_path / "run" / "last.ckpt", trainer.model


def test_same_vocabulary_requires_coverage(tmp_path):
    path, model = _checkpoint(tmp_path)
    tune = prepare_finetune(path, TEXT[:200], vocab="same")
    assert tune.vocab == VOCAB and tune.added == () and tune.model.training
    np.testing.assert_array_equal(tune.ids, VOCAB.encode(TEXT[:200]))
    assert np.array_equal(tune.model.params.data, model.params.data)
    with pytest.raises(FinetuneVocabularyError, match=r"4 symbol\(s\) that the vocabulary of .*last.ckpt lacks: "
                                                      r"':' x20, 'Z' x20, 'l' x20, 'z' x20\. Use vocab='extend'") as info:
        prepare_finetune(path, NEW_TEXT, vocab="same")
    assert info.value.symbols == {":": 20, "Z": 20, "l": 20, "z": 20}
    with pytest.raises(ValueError, match=r"prepare_finetune: vocab is 'grow', expected one of \('same', 'extend'\)"):
        prepare_finetune(path, NEW_TEXT, vocab="grow")


@pytest.mark.parametrize("model_kw", [dict(), dict(input_mode="onehot"), dict(embedding_dim=12, tie_weights=True),
                                      dict(head_hidden=5, head_norm="batch")])
def test_extend_copies_old_parameters_and_initialises_new_ones_like_a_fresh_model(tmp_path, model_kw):
    path, old = _checkpoint(tmp_path, **model_kw)
    tune = prepare_finetune(path, NEW_TEXT, vocab="extend")
    V, new_v = len(VOCAB), len(tune.vocab)
    assert tune.vocab.tokens[:V] == VOCAB.tokens and tune.added == (":", "Z", "l", "z") and new_v == V + 4
    assert tune.model.config == dataclasses.replace(old.config, vocab_size=new_v)
    np.testing.assert_array_equal(tune.ids, tune.vocab.encode(NEW_TEXT))
    fresh = LanguageModel(tune.model.config)
    for name, value in tune.model.params.values.items():
        before = old.params[name]
        block = tuple(slice(0, n) for n in before.shape)
        assert np.array_equal(value[block], before), name
        if value.shape != before.shape:          # only vocabulary-sized axes grow
            grown = np.ones(value.shape, bool)
            grown[block] = False
            assert np.array_equal(value[grown], fresh.params[name][grown]), name
    for name, value in old.buffers.items():
        assert np.array_equal(tune.model.buffers[name], value)


@pytest.mark.parametrize("input_mode", ["embedding", "onehot"])
def test_extension_preserves_states_and_old_logits(tmp_path, input_mode):
    _, old = _checkpoint(tmp_path, input_mode=input_mode)
    grown = extend_model(old, len(VOCAB) + 5)
    ids = TRAIN[:64].reshape(4, 16)
    old_logits, _, old_state = old.eval().forward(ids)
    new_logits, _, new_state = grown.eval().forward(ids)
    for (h0, c0), (h1, c1) in zip(old_state, new_state):
        if input_mode == "onehot":               # rows gathered from Wx: the same numbers, exactly
            assert np.array_equal(h0, h1) and np.array_equal(c0, c1)
        else:                                    # folded table E @ Wx: a taller product, same rows
            np.testing.assert_allclose(h1, h0, rtol=0, atol=1e-6)   # float32 rounding at most
    V = len(VOCAB)
    # Old logits: old output columns and biases, unchanged. BLAS may block a wider product
    # differently, so a float32 rounding difference (~1e-7 relative) is all that may differ.
    np.testing.assert_allclose(new_logits[..., :V], old_logits, rtol=2e-6, atol=2e-6)

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    p_old, p_new = softmax(old_logits.astype(np.float64)), softmax(new_logits.astype(np.float64))
    # new logits enter the normaliser: old probabilities shrink by the same factor 1 - P(new) ...
    np.testing.assert_allclose(p_new[..., :V], p_old * (1 - p_new[..., V:].sum(-1, keepdims=True)), rtol=1e-5)
    # ... so the distribution over old symbols, given that one is emitted, is the old one
    np.testing.assert_allclose(softmax(new_logits[..., :V].astype(np.float64)), p_old, rtol=1e-5, atol=1e-7)
    assert (p_new[..., :V].sum(-1) < 1).all()


def test_fine_tuning_run_on_the_extended_model(tmp_path):
    path, _ = _checkpoint(tmp_path)
    tune = prepare_finetune(path, NEW_TEXT, vocab="extend")
    trainer = Trainer(tune.model, tiny_config(max_steps=6, max_epochs=0, eval_every=3), tune.ids[:400],
                      tune.ids[400:], tune.vocab, tmp_path / "tuned", stream=io.StringIO())
    result = trainer.fit()
    assert result.step == 6 and result.best_val_loss is not None
    loaded = load_model(tmp_path / "tuned" / "best.ckpt")
    assert loaded.vocab == tune.vocab and loaded.model.config.vocab_size == len(tune.vocab)


def test_extend_without_new_symbols_and_bad_sizes(tmp_path):
    path, old = _checkpoint(tmp_path)
    tune = prepare_finetune(path, TEXT[:100], vocab="extend")
    assert tune.added == () and tune.vocab == VOCAB and tune.model.config == old.config
    with pytest.raises(ValueError, match=r"extend_model: vocab_size is 3, expected an integer >= the model's 9"):
        extend_model(old, 3)
    bare = tmp_path / "bare.ckpt"
    save_model(bare, tiny_model())
    with pytest.raises(ValueError, match="has no vocabulary"):
        prepare_finetune(bare, TEXT, vocab="same")


def test_finetune_config_choices():
    assert FinetuneConfig().vocab == "same"
    with pytest.raises(ValueError, match=r"FinetuneConfig.vocab: got 'grow', expected one of \('same', 'extend'\)"):
        FinetuneConfig(vocab="grow")
    with pytest.raises(ValueError, match=r"FinetuneConfig.init_from: got 3"):
        FinetuneConfig(init_from=3)
