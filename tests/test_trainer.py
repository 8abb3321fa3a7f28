"""Trainer: budgets, batching modes, state carrying, validation, early stopping, checkpoints,
outputs and configuration errors (resume, faults and signals have their own files)."""
import io
import itertools
import json
import math
import signal
import threading

import numpy as np
import pytest

from minilstm.data import PoemBatches
from minilstm.model_io import load_model
from minilstm.schedule import Schedule
from minilstm.train import TrainConfig, Trainer
from minilstm.train_checkpoint import load_training_checkpoint
from minilstm.train_data import evaluate, validation_set
from trainer_helpers import (TRAIN, VAL, VOCAB, Terminal, eval_records, make_trainer, poems, tiny_config, tiny_model,
                             train_records)


def test_fit_learns_and_leaves_loadable_checkpoints(tmp_path):
    trainer = make_trainer(tmp_path, max_epochs=3, eval_every=20)
    result = trainer.fit()
    n = len(trainer.data)
    assert (result.status, result.reason, result.step, result.epoch) == ("finished", "max_epochs=3 reached", 3 * n, 3.0)
    evals = eval_records(result.records)
    assert [s for s, _ in evals] == sorted({20, 40, 60, 80, 100, 120, 140, 160, n, 2 * n, 3 * n})
    assert evals[-1][1] < evals[0][1] - 0.3          # it learns: well below the first evaluation
    assert result.best_val_loss == min(v for _, v in evals)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "last.ckpt", "metrics.jsonl"]
    loaded = load_model(tmp_path / "last.ckpt")       # loads for sampling, with its vocabulary
    assert loaded.vocab == VOCAB
    np.testing.assert_array_equal(loaded.model.params.data, trainer.model.params.data)
    saved = load_training_checkpoint(tmp_path / "last.ckpt")
    assert saved.config == trainer.config.to_dict() and saved.status == "finished"
    assert saved.run.step == 3 * n and saved.run.best_val_loss == result.best_val_loss
    best = load_training_checkpoint(tmp_path / "best.ckpt")
    assert best.run.step == best.run.best_step == result.best_step


@pytest.mark.parametrize("budget, expected_step, reason", [
    (dict(max_steps=7, max_epochs=0), 7, "max_steps=7 reached"),
    (dict(max_steps=500, max_epochs=1), 56, "max_epochs=1 reached"),
    (dict(max_steps=9, max_epochs=1), 9, "max_steps=9 reached"),          # the first limit wins
])
def test_step_and_epoch_budgets(budget, expected_step, reason):
    result = make_trainer(**budget).fit()
    assert (result.step, result.reason) == (expected_step, reason)


def test_time_budget_with_a_controlled_clock():
    ticks = itertools.count()
    clock = lambda: next(ticks) * 0.25     # noqa: E731  every reading advances 0.25 s
    trainer = Trainer(tiny_model(), tiny_config(max_epochs=0, max_seconds=10.0), TRAIN, VAL, VOCAB,
                      stream=io.StringIO(), clock=clock)
    result = trainer.fit()
    assert result.reason == "max_seconds=10 reached" and result.elapsed_s >= 10.0
    assert 3 <= result.step <= 20              # a handful of clock readings per step
    train = [r for r in result.records if r["kind"] == "train"]
    assert train[-2]["elapsed_s"] < 10.0 <= result.elapsed_s     # else the check before the last step stops


def test_cosine_over_a_time_budget_follows_the_clock():
    # The rate of each step is the cosine at the clock's reading when the step starts, so it
    # reaches min_lr when the budget ends whatever the number of steps that took.
    ticks = itertools.count()
    clock = lambda: next(ticks) * 0.25     # noqa: E731  every reading advances 0.25 s
    config = tiny_config(max_epochs=0, max_seconds=10.0, schedule="cosine", lr=1e-3, min_lr=1e-5)
    result = Trainer(tiny_model(), config, TRAIN, VAL, VOCAB, stream=io.StringIO(), clock=clock).fit()
    assert result.reason == "max_seconds=10 reached"
    train = [r for r in result.records if r["kind"] == "train"]
    assert len(train) >= 3
    rates = [r["lr"] for r in train]
    assert all(a > b for a, b in zip(rates, rates[1:]))          # the clock advances every step
    assert rates[0] < 1e-3 and rates[-1] > 1e-5                  # read after the start, before the end
    resolved = Schedule("cosine", lr=1e-3, decay_seconds=10.0, min_lr=1e-5)
    for record, previous in zip(train[1:], train):
        # the rate is read between the clock readings logged after the step before and this one
        assert resolved(0, 0, record["elapsed_s"]) <= record["lr"] <= resolved(0, 0, previous["elapsed_s"])


@pytest.mark.parametrize("field, value, message", [
    ("batching", "shuffled", r"TrainConfig.batching: got 'shuffled', expected one of \('stream', 'windows', 'poems'\)"),
    ("optimizer", "adagrad", r"TrainConfig.optimizer: got 'adagrad', expected one of"),
    ("schedule", "linear", r"TrainConfig.schedule: got 'linear'"),
    ("batch_size", 0, r"TrainConfig.batch_size: got 0, expected an integer >= 1"),
    ("seq_len", 2.5, r"TrainConfig.seq_len: got 2.5, expected an integer >= 1"),
    ("max_steps", True, r"TrainConfig.max_steps: got True, expected an integer >= 0"),
    ("lr", float("inf"), r"TrainConfig.lr: got inf, expected a finite number > 0"),
    ("beta2", 1.0, r"TrainConfig.beta2: got 1.0, expected a number in \[0, 1\)"),
    ("clip_norm", -1.0, r"TrainConfig.clip_norm: got -1.0, expected a finite number >= 0"),
    ("lr_decay_unit", "batch", r"TrainConfig.lr_decay_unit: got 'batch'"),
    ("lr_decay_seconds", -1.0, r"TrainConfig.lr_decay_seconds: got -1.0, expected a finite number >= 0"),
    ("nesterov", True, r"TrainConfig.nesterov: got True, expected False unless optimizer is 'sgd' with momentum > 0"),
    ("progress", "yes", r"TrainConfig.progress: got 'yes', expected True or False"),
    ("max_epochs", 0, r"TrainConfig.max_epochs: got 0, expected a budget"),
])
def test_config_errors_name_field_value_and_expectation(field, value, message):
    settings = {"max_epochs": 1, field: value}
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)


def test_config_dict_round_trip_and_numpy_scalars():
    config = TrainConfig(batch_size=np.int64(3), lr=np.float32(0.5))
    assert type(config.batch_size) is int and config.batch_size == 3
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown fields \['learning_rate'\]"):
        TrainConfig.from_dict({"learning_rate": 1.0})


def _spy_states(model):
    """Record the state argument of every forward (identity of its first h): training steps
    call ``forward_backward``, evaluation ``forward``."""
    calls, forward, forward_backward = [], model.forward, model.forward_backward

    def record(state, final):
        calls.append((model.training, None if state is None else id(state[0][0]), id(final[0][0])))

    def spy_forward(ids, targets=None, state=None, *args, **kw):
        logits, loss, final = forward(ids, targets, state, *args, **kw)
        if not model.training:
            record(state, final)
        return logits, loss, final

    def spy_forward_backward(ids, targets, state=None, *args, **kw):
        loss, final = forward_backward(ids, targets, state, *args, **kw)
        record(state, final)
        return loss, final
    model.forward, model.forward_backward = spy_forward, spy_forward_backward
    return calls


def test_stream_state_is_carried_within_an_epoch_and_reset_at_epoch_starts():
    model = tiny_model()
    calls = _spy_states(model)
    trainer = make_trainer(model=model, train=TRAIN[:200], val=None, max_epochs=2)   # 6 batches an epoch
    trainer.fit()
    train_calls = [c for c in calls if c[0]]
    assert len(train_calls) == 12
    for k, (_, given, _) in enumerate(train_calls):
        if k % 6 == 0:
            assert given is None, f"step {k + 1} starts an epoch but got a carried state"
        else:
            assert given == train_calls[k - 1][2], f"step {k + 1} did not get step {k}'s final state"


@pytest.mark.parametrize("mode", ["windows", "poems"])
def test_windows_and_poems_start_every_batch_from_zeros(mode):
    model = tiny_model()
    calls = _spy_states(model)
    data = PoemBatches(poems(), 4, pad_id=0) if mode == "poems" else TRAIN
    val = poems(8, seed=1) if mode == "poems" else VAL
    trainer = Trainer(model, tiny_config(batching=mode, max_steps=10, max_epochs=0, eval_every=5), data, val,
                      VOCAB, stream=io.StringIO())
    result = trainer.fit()
    assert result.step == 10 and all(given is None for training, given, _ in calls)
    assert len([c for c in calls if not c[0]]) > 0                  # validation ran, also from zeros


def test_windows_epoch_length_and_poems_batch_size_check():
    trainer = make_trainer(batching="windows", max_epochs=1)
    assert len(trainer.data) == (len(TRAIN) - 1) // (4 * 8) == trainer.config.windows_per_epoch
    assert make_trainer(batching="windows", windows_per_epoch=3, max_epochs=2).fit().step == 6
    with pytest.raises(ValueError, match="PoemBatches with batch_size 5, but TrainConfig.batch_size is 4"):
        make_trainer(batching="poems", train=PoemBatches(poems(), 5, pad_id=0), val=None)
    with pytest.raises(ValueError, match="needs the padding id"):
        make_trainer(batching="poems", train=poems(), val=None)
    with pytest.raises(ValueError, match="train_data is a float64 array of shape"):
        make_trainer(train=TRAIN.astype(float))


def _mean_loss_by_hand(model, rows_inputs, rows_targets):
    """Token-weighted mean over rows, each row run as ONE sequence from the zero state."""
    model.eval()
    total, count = 0.0, 0
    for x, y in zip(rows_inputs, rows_targets):
        _, loss, _ = model.forward(x[None], y[None])
        total += loss * model.tokens_in_loss
        count += model.tokens_in_loss
    return total / count, count


def test_stream_validation_reads_b_continuous_streams():
    model = tiny_model(dtype="float64")        # float64: chunked and whole-stream passes agree to 1e-12
    ids = np.arange(103) % len(VOCAB)
    validation = validation_set("stream", ids, 4, 7, max_batches=0)
    assert validation.carries_state and validation.tokens == 4 * 25   # (103 - 1) // 4 = 25 per stream
    assert [b.inputs.shape for b in validation.batches] == [(4, 7)] * 3 + [(4, 4)]   # the short tail kept
    streams = ids[:100].reshape(4, 25), ids[1:101].reshape(4, 25)
    expected, count = _mean_loss_by_hand(model, *streams)
    result = evaluate(model, validation)
    assert result.tokens == count and result.loss == pytest.approx(expected, rel=1e-12)
    assert result.bpc == pytest.approx(result.loss / math.log(2)) and result.perplexity == pytest.approx(math.exp(result.loss))
    short = validation_set("stream", ids[:4], 8, 50)                  # fewer ids than streams: 3 streams of 1
    assert short.tokens == 3


def test_windows_and_poems_validation_cover_every_target():
    model = tiny_model(dtype="float64")
    ids = np.arange(30) % len(VOCAB)
    windows = validation_set("windows", ids, 2, 8)
    assert windows.tokens == 29 and [b.inputs.shape for b in windows.batches] == [(2, 8), (1, 8), (1, 5)]
    rows = [ids[k:k + 8] for k in (0, 8, 16)] + [ids[24:29]]
    expected, _ = _mean_loss_by_hand(model, rows, [ids[k + 1:k + 9] for k in (0, 8, 16)] + [ids[25:30]])
    assert evaluate(model, windows).loss == pytest.approx(expected, rel=1e-12)
    block = poems(5, 10, seed=3)
    padded = validation_set("poems", block, 2, 0, pad_id=0)
    batches = list(PoemBatches(block, 2, pad_id=0, shuffle=False).epoch(0))
    assert not any((b.targets == 0).any() for b in batches)          # padding is never a target that counts
    rows = [(x, y) for b in batches for x, y in zip(b.inputs, b.targets)]
    expected, count = _mean_loss_by_hand(model, *zip(*rows))
    assert padded.tokens == count == sum(int(np.count_nonzero(b.targets >= 0)) for b in batches)
    assert evaluate(model, padded).loss == pytest.approx(expected, rel=1e-12)   # token-weighted, not batch-weighted


def test_early_stopping_with_patience_and_min_delta():
    # min_delta of 10 nats: no evaluation after the first can count as an improvement
    result = make_trainer(eval_every=3, patience=2, min_delta=10.0, max_epochs=5).fit()
    assert (result.status, result.step) == ("early_stopped", 9)
    assert result.reason == "no improvement of 10.0 in 2 evaluations"
    assert result.best_step in (3, 6, 9)         # "best" is still the lowest loss seen


def test_epoch_checkpoints_and_save_every(tmp_path):
    trainer = make_trainer(tmp_path, train=TRAIN[:200], val=None, max_epochs=3, save_epochs=True, save_every=4)
    trainer.fit()
    names = sorted(p.name for p in tmp_path.glob("*.ckpt"))
    assert names == ["epoch-001.ckpt", "epoch-002.ckpt", "epoch-003.ckpt", "last.ckpt"]    # no val: no best
    for k in (1, 2, 3):
        saved = load_training_checkpoint(tmp_path / f"epoch-{k:03d}.ckpt")
        assert (saved.run.step, saved.run.epoch, saved.run.batch_index, saved.carried_state) == (6 * k, k, 0, None)


def test_metrics_log_contents(tmp_path):
    result = make_trainer(tmp_path, eval_every=5, max_steps=10, log_every=3).fit()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == result.records
    kinds = [(r["kind"], r["step"]) for r in lines]
    # a train record every 3 steps, one flushed before each evaluation, one at the end
    assert kinds == [("train", 3), ("train", 5), ("eval", 5), ("train", 6), ("train", 9), ("train", 10), ("eval", 10)]
    train = [r for r in lines if r["kind"] == "train"]
    assert [r["steps"] for r in train] == [3, 2, 1, 3, 1]
    assert all({"loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s", "epoch", "eval_s"} <= set(r) for r in train)
    for r in (r for r in lines if r["kind"] == "eval"):
        assert r["val_bpc"] == pytest.approx(r["val_loss"] / math.log(2))
        assert r["val_ppl"] == pytest.approx(math.exp(r["val_loss"]))
        assert r["val_tokens"] == len(VAL) - 1 - (len(VAL) - 1) % 4
    elapsed = [r["elapsed_s"] for r in lines]
    assert elapsed == sorted(elapsed) and lines[-1]["eval_s"] > 0


def test_start_report_progress_bar_and_samples():
    stream = Terminal()
    make_trainer(stream=stream, max_steps=6, max_epochs=0, eval_every=3, progress=True, estimate=True,
                 sample_length=12, sample_prompt="ab").fit()
    text = stream.getvalue()
    for expected in ("new run (nothing is saved: no out_dir)", "model: vocab_size=9", "train: max_epochs=0, max_steps=6",
                     "parameters: ", "memory estimate per step: ", "time estimate: ", "ms per step",
                     "schedule: constant 0.002", "tok/s", "eta ", "sample at step 3", "sample at step 6",
                     "finished: max_steps=6 reached at step 6"):
        assert expected in text, expected
    assert "6/6" in text                                    # the bar reached its total


def test_loss_plot_and_missing_matplotlib(tmp_path, monkeypatch):
    make_trainer(tmp_path / "a", max_steps=4, max_epochs=0, eval_every=2, plot=True).fit()
    assert (tmp_path / "a" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)        # import fails
    monkeypatch.setitem(__import__("sys").modules, "matplotlib.backends.backend_agg", None)
    stream = io.StringIO()
    make_trainer(tmp_path / "b", stream=stream, max_steps=4, max_epochs=0, eval_every=2, plot=True).fit()
    assert not (tmp_path / "b" / "loss.png").exists()
    assert stream.getvalue().count("matplotlib is not installed") == 1


def test_an_existing_run_is_not_silently_replaced(tmp_path):
    make_trainer(tmp_path, max_steps=3, max_epochs=0, eval_every=1).fit()
    assert (tmp_path / "best.ckpt").exists()
    with pytest.raises(ValueError, match="already holds a run.*resume='auto'.*overwrite=True"):
        make_trainer(tmp_path, max_steps=3, max_epochs=0).fit()
    make_trainer(tmp_path, val=None, max_steps=2, max_epochs=0, overwrite=True).fit()
    assert not (tmp_path / "best.ckpt").exists()              # the old run's best went with it
    assert load_training_checkpoint(tmp_path / "last.ckpt").run.step == 2


def test_resume_refuses_other_trajectory_data_or_model(tmp_path):
    make_trainer(tmp_path, max_steps=3, max_epochs=0).fit()
    with pytest.raises(ValueError, match=r"batch_size \(checkpoint 4, now 2\), lr \(checkpoint 0.002, now 0.01\)"):
        make_trainer(tmp_path, max_steps=6, max_epochs=0, resume="auto", lr=0.01, batch_size=2)
    model = tiny_model()
    before = model.params.data.copy()
    with pytest.raises(ValueError, match="the training data differ from the checkpoint's"):
        make_trainer(tmp_path, model=model, train=TRAIN[:-8], max_steps=6, max_epochs=0, resume="auto")
    assert np.array_equal(model.params.data, before)          # a refused resume leaves the model alone
    with pytest.raises(ValueError, match="model configuration"):
        make_trainer(tmp_path, model=tiny_model(hidden_sizes=(10,)), max_steps=6, max_epochs=0, resume="auto")
    with pytest.raises(FileNotFoundError, match="TrainConfig.resume: checkpoint .*nope.ckpt does not exist"):
        make_trainer(tmp_path, resume=str(tmp_path / "nope.ckpt"))


def test_cosine_schedule_resolves_its_length_from_the_budget():
    assert make_trainer(schedule="cosine", max_steps=30, max_epochs=1).config.lr_decay_steps == 30
    assert make_trainer(schedule="cosine", max_steps=0, max_epochs=2).config.lr_decay_steps == 112
    timed = make_trainer(schedule="cosine", max_epochs=0, max_seconds=5.0).config   # only a time budget
    assert (timed.lr_decay_steps, timed.lr_decay_seconds) == (0, 5.0)
    assert make_trainer(schedule="cosine", max_steps=30, max_epochs=0, max_seconds=5.0).config.lr_decay_seconds == 0
    with pytest.raises(ValueError, match=r"TrainConfig.lr_decay_seconds: got 60.0, expected 0 when lr_decay_steps \(30\)"):
        tiny_config(schedule="cosine", lr_decay_steps=30, lr_decay_seconds=60.0)
    result = make_trainer(schedule="cosine", max_steps=10, max_epochs=0, warmup_steps=2, min_lr=1e-4).fit()
    rates = [r["lr"] for r in result.records if r["kind"] == "train"]
    assert rates[0] == pytest.approx(1e-3) and rates[1] == pytest.approx(2e-3) and rates[-1] < 3e-4


def test_step_decay_follows_epochs():
    result = make_trainer(train=TRAIN[:200], val=None, max_epochs=4, schedule="step", lr_decay=0.5,
                          lr_decay_start=2).fit()
    rates = [r["lr"] for r in result.records]                 # 6 steps per epoch
    assert rates == [2e-3] * 12 + [1e-3] * 6 + [5e-4] * 6


def test_signal_handlers_are_restored_and_skipped_off_the_main_thread():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    make_trainer(max_steps=2, max_epochs=0).fit()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(result=make_trainer(max_steps=2, max_epochs=0).fit()))
    thread.start()
    thread.join()
    assert outcome["result"].status == "finished"


def test_on_step_callback_can_stop_the_run():
    seen = []

    def on_step(trainer, record):
        seen.append(record["step"])
        if record["step"] == 4:
            trainer.request_stop("enough for this test")
    trainer = Trainer(tiny_model(), tiny_config(), TRAIN, VAL, VOCAB, stream=io.StringIO(), on_step=on_step)
    result = trainer.fit()
    assert (result.status, result.reason, seen) == ("stopped", "enough for this test", [1, 2, 3, 4])


def test_a_second_fit_continues_the_same_run(tmp_path):
    def stop_once(trainer, record):
        if record["step"] == 4:
            trainer.request_stop("pause")
    paused = Trainer(tiny_model(dropout=0.2), tiny_config(max_steps=10, max_epochs=0, eval_every=3), TRAIN, VAL,
                     VOCAB, tmp_path / "a", stream=io.StringIO(), on_step=stop_once)
    assert paused.fit().status == "stopped"
    paused.on_step = None
    second = paused.fit()
    assert (second.status, second.step, [r["step"] for r in second.records][0]) == ("finished", 10, 5)
    straight = make_trainer(tmp_path / "b", model=tiny_model(dropout=0.2), max_steps=10, max_epochs=0, eval_every=3)
    straight.fit()
    assert np.array_equal(paused.model.params.data, straight.model.params.data)
    for records in (train_records, eval_records):
        assert records(paused.log.read()) == records(straight.log.read())


def test_eval_batches_limits_validation():
    trainer = make_trainer(eval_batches=2, eval_batch_size=3)
    assert len(trainer.validation.batches) == 2 and trainer.validation.tokens == 2 * 3 * 8


def test_a_budget_ending_between_evaluations_still_scores_the_final_parameters(tmp_path):
    """max_steps=10 with eval_every=4: evaluations at 4 and 8, then one more at 10 (eval_at_end);
    the extra pass leaves the trajectory alone, and a run ending on an evaluation step is not
    evaluated twice."""
    on = make_trainer(tmp_path / "on", max_steps=10, max_epochs=0, eval_every=4)
    off = make_trainer(tmp_path / "off", max_steps=10, max_epochs=0, eval_every=4, eval_at_end=False)
    result_on, result_off = on.fit(), off.fit()
    assert [r["step"] for r in result_on.records if r["kind"] == "eval"] == [4, 8, 10]
    assert [r["step"] for r in result_off.records if r["kind"] == "eval"] == [4, 8]
    assert result_on.last_eval["step"] == 10 and result_off.last_eval["step"] == 8
    assert np.array_equal(on.model.params.data, off.model.params.data)
    assert train_records(result_on.records) == train_records(result_off.records)
    ends_on_eval = make_trainer(tmp_path / "eight", max_steps=8, max_epochs=0, eval_every=4).fit()
    assert [r["step"] for r in ends_on_eval.records if r["kind"] == "eval"] == [4, 8]


def test_eval_batching_chooses_the_validation_layout_apart_from_training():
    """Windows training validated as continuous streams (the state carried through the split),
    and the other way round; poems cannot be read as streams."""
    streamed = make_trainer(batching="windows", eval_batching="stream", eval_batch_size=3)
    assert streamed.validation.carries_state and len(streamed.validation.batches[0].inputs) == 3
    windowed = make_trainer(batching="stream", eval_batching="windows")
    assert not windowed.validation.carries_state
    assert not make_trainer(batching="windows").validation.carries_state
    with pytest.raises(ValueError, match="TrainConfig.eval_batching: got 'stream'"):
        tiny_config(batching="poems", eval_batching="stream")
    with pytest.raises(ValueError, match="TrainConfig.eval_batching: got 'rows'"):
        tiny_config(eval_batching="rows")
