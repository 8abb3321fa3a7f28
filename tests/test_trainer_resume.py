"""Resuming continues exactly: N steps in one run equal k steps + resume + N - k steps, bitwise,
whatever the batching, at step 1, mid-epoch and at an epoch boundary."""
import io
import itertools

import numpy as np
import pytest

from minilstm.data import PoemBatches
from minilstm.train import Trainer
from minilstm.train_checkpoint import load_training_checkpoint
from trainer_helpers import TRAIN, VAL, VOCAB, eval_records, poems, tiny_config, tiny_model, train_records

TOTAL = 20
STREAM_TRAIN = TRAIN[:300]            # 9 batches of 4x8 per epoch


def _data(mode):
    if mode == "poems":
        return PoemBatches(poems(24), 4, pad_id=0, seed=5), poems(8, seed=1)     # 6 batches per epoch
    return (STREAM_TRAIN if mode == "stream" else TRAIN), VAL


def _run(out_dir, mode, model_kw, max_steps, **overrides):
    train, val = _data(mode)
    # the first segment ends by its step budget; the extra evaluation a budget end adds
    # (eval_at_end) would be a record the uninterrupted run lacks, so it is off here
    config = tiny_config(batching=mode, max_steps=max_steps, max_epochs=0, eval_every=3, eval_at_end=False,
                         windows_per_epoch=9 if mode == "windows" else 0, **overrides)
    trainer = Trainer(tiny_model(**model_kw), config, train, val, VOCAB, out_dir, stream=io.StringIO())
    return trainer, trainer.fit()


def _assert_same_run(a_dir, a, b_dir, b):
    assert np.array_equal(b.model.params.data, a.model.params.data)
    for name, value in a.optimizer.state_arrays().items():
        assert np.array_equal(b.optimizer.state_arrays()[name], value), name
    assert b.optimizer.steps == a.optimizer.steps == TOTAL
    assert b.model.dropout_rng.bit_generator.state == a.model.dropout_rng.bit_generator.state
    assert b.data.rng_state() == a.data.rng_state()
    log_a = a.log.read()
    log_b = b.log.read()                      # the whole file: first part, then the resumed part
    assert train_records(log_b) == train_records(log_a) and len(train_records(log_a)) == TOTAL
    assert eval_records(log_b) == eval_records(log_a)
    saved_a, saved_b = (load_training_checkpoint(d / "last.ckpt") for d in (a_dir, b_dir))
    for field in ("step", "epoch", "batch_index", "tokens", "best_val_loss", "best_step", "last_eval"):
        assert getattr(saved_b.run, field) == getattr(saved_a.run, field), field
    assert (saved_a.carried_state is None) == (saved_b.carried_state is None)
    for (ha, ca), (hb, cb) in zip(saved_a.carried_state or [], saved_b.carried_state or []):
        assert np.array_equal(ha, hb) and np.array_equal(ca, cb)


@pytest.mark.parametrize("mode, model_kw, stop", [
    ("stream", dict(dropout=0.3), 1),                   # right after the first step
    ("stream", dict(dropout=0.3), 7),                   # mid-epoch: the carried state is in the checkpoint
    ("stream", dict(dropout=0.3), 9),                   # at the epoch boundary (9 batches per epoch)
    ("windows", dict(embedding_dropout=0.2), 7),        # the window generator's state is restored
    ("windows", dict(embedding_dropout=0.2), 9),
    ("poems", dict(dropout=0.2), 4),                    # the epoch's shuffle comes from (seed, epoch)
    ("poems", dict(dropout=0.2), 6),
])
def test_resume_is_bitwise_identical(tmp_path, mode, model_kw, stop):
    a, result_a = _run(tmp_path / "a", mode, model_kw, TOTAL)
    _, first = _run(tmp_path / "b", mode, model_kw, stop)
    assert first.step == stop
    saved = load_training_checkpoint(tmp_path / "b" / "last.ckpt")
    if mode == "stream":
        assert (saved.carried_state is None) == (stop % 9 == 0)    # dropped at epoch ends only
    b, result_b = _run(tmp_path / "b", mode, model_kw, TOTAL, resume="auto")
    assert b.resumed_from == tmp_path / "b" / "last.ckpt" and result_b.step == TOTAL
    assert result_b.best_val_loss == result_a.best_val_loss
    _assert_same_run(tmp_path / "a", a, tmp_path / "b", b)


def test_resume_after_a_crash_from_a_periodic_save(tmp_path):
    a, _ = _run(tmp_path / "a", "stream", dict(dropout=0.3), TOTAL, save_every=5)

    def crash(trainer, record):
        if record["step"] == 13:
            raise RuntimeError("simulated crash")
    train, val = _data("stream")
    config = tiny_config(max_steps=TOTAL, max_epochs=0, eval_every=3, save_every=5)
    with pytest.raises(RuntimeError, match="simulated crash"):
        Trainer(tiny_model(dropout=0.3), config, train, val, VOCAB, tmp_path / "b", stream=io.StringIO(),
                on_step=crash).fit()
    saved = load_training_checkpoint(tmp_path / "b" / "last.ckpt")
    assert saved.run.step == 12                       # the evaluation at step 12 saved it last
    b, _ = _run(tmp_path / "b", "stream", dict(dropout=0.3), TOTAL, save_every=5, resume="auto")
    _assert_same_run(tmp_path / "a", a, tmp_path / "b", b)   # the log lost the crashed run's step 13


def test_resuming_a_finished_run_changes_nothing(tmp_path):
    _run(tmp_path, "stream", {}, 5)
    before = (tmp_path / "last.ckpt").read_bytes()
    _, result = _run(tmp_path, "stream", {}, 5, resume="auto")
    assert (result.status, result.step, result.records) == ("finished", 5, [])
    assert (tmp_path / "last.ckpt").read_bytes() == before


def test_time_budget_counts_every_resumed_run(tmp_path):
    ticks = itertools.count()
    clock = lambda: next(ticks) * 0.1      # noqa: E731
    train, val = _data("stream")
    first = Trainer(tiny_model(), tiny_config(max_epochs=0, max_seconds=2.0), train, val, VOCAB, tmp_path,
                    stream=io.StringIO(), clock=clock).fit()
    assert first.elapsed_s >= 2.0
    second = Trainer(tiny_model(), tiny_config(max_epochs=0, max_seconds=4.0, resume="auto"), train, val, VOCAB,
                     tmp_path, stream=io.StringIO(), clock=clock).fit()
    assert second.reason == "max_seconds=4 reached" and 4.0 <= second.elapsed_s < 5.0
    saved = load_training_checkpoint(tmp_path / "last.ckpt").run.elapsed_s     # as of the final save
    assert second.step > first.step and 4.0 <= saved <= second.elapsed_s
