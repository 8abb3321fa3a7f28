"""Learning-rate schedules: exact values at chosen positions, and refusals of bad settings."""
import math

import pytest

from minilstm.schedule import Schedule


def test_constant_ignores_position():
    schedule = Schedule("constant", lr=0.01)
    assert {schedule(s, e) for s, e in [(0, 0), (999, 7), (10**6, 10**3)]} == {0.01}


def test_char_rnn_step_decay():
    # char-rnn: lr 2e-3, multiply by 0.97 at the end of every epoch from epoch 10 on
    schedule = Schedule("step", lr=2e-3, decay=0.97, decay_every=1, decay_start=10)
    assert [schedule(0, e) for e in range(10)] == [2e-3] * 10        # epochs 1..10 (e = 0..9 done)
    assert schedule(0, 10) == 2e-3 * 0.97                             # epoch 11
    assert schedule(0, 12) == 2e-3 * 0.97 ** 3                        # epoch 13


def test_step_decay_interval_floor_and_step_unit():
    every_third = Schedule("step", lr=1.0, decay=0.5, decay_every=3, decay_start=2)
    # decay events at the end of epochs 2, 5, 8, ...
    assert [every_third(0, e) for e in range(9)] == [1, 1, .5, .5, .5, .25, .25, .25, .125]
    floored = Schedule("step", lr=1.0, decay=0.1, decay_every=1, decay_start=1, min_lr=0.05)
    assert [floored(0, e) for e in range(4)] == [1.0, 0.1, 0.05, 0.05]
    by_steps = Schedule("step", lr=1.0, decay=0.5, decay_every=100, decay_start=100, unit="step")
    assert [by_steps(s, 0) for s in (0, 99, 100, 199, 200)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    zero_start = Schedule("step", lr=1.0, decay=0.5, decay_every=1, decay_start=0)
    assert zero_start(0, 0) == 1.0 and zero_start(0, 1) == 0.5       # no decay before anything ran


def test_cosine_with_warmup():
    schedule = Schedule("cosine", lr=1.0, warmup_steps=10, decay_steps=110, min_lr=0.1)
    assert schedule(0) == pytest.approx(0.1)          # (0 + 1) / 10 of the peak
    assert schedule(9) == pytest.approx(1.0)          # the last warm-up step reaches the peak
    assert schedule(10) == pytest.approx(1.0)
    assert schedule(60) == pytest.approx(0.55)        # half-way: the mean of peak and floor
    assert schedule(110) == pytest.approx(0.1) and schedule(10**6) == pytest.approx(0.1)
    rates = [schedule(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    quarter = 0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2
    assert schedule(35) == pytest.approx(quarter, rel=1e-12)


def test_cosine_over_seconds():
    schedule = Schedule("cosine", lr=1.0, warmup_steps=10, decay_seconds=600.0, min_lr=0.1)
    assert schedule(0, 0, 0.0) == pytest.approx(0.1)        # warm-up still counts steps
    assert schedule(10, 0, 0.0) == pytest.approx(1.0)
    assert schedule(10, 0, 300.0) == pytest.approx(0.55)    # half the seconds: the mean of peak and floor
    assert schedule(10**6, 0, 150.0) == schedule(20, 0, 150.0)   # the step count plays no part
    quarter = 0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2
    assert schedule(50, 0, 150.0) == pytest.approx(quarter, rel=1e-12)
    assert schedule(50, 0, 600.0) == pytest.approx(0.1) and schedule(50, 0, 1e9) == pytest.approx(0.1)
    assert "cosine: 1 -> 0.1 at 600 s" in schedule.describe()


def test_warmup_applies_to_every_kind():
    assert [Schedule("constant", lr=1.0, warmup_steps=4)(s) for s in range(5)] == [.25, .5, .75, 1, 1]
    step = Schedule("step", lr=1.0, warmup_steps=2, decay=0.5, decay_start=1, decay_every=1)
    assert step(0, 1) == 0.25                          # warm-up times one decay


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="linear"), r"Schedule.kind: got 'linear', expected one of"),
    (dict(lr=0.0), r"Schedule.lr: got 0.0"),
    (dict(lr=float("nan")), r"Schedule.lr: got nan"),
    (dict(min_lr=1.0, lr=0.5), r"Schedule.min_lr: got 1.0, expected a number in \[0, lr=0.5\]"),
    (dict(kind="step", decay=1.5), r"Schedule.decay: got 1.5, expected a factor in \(0, 1\]"),
    (dict(kind="step", decay_every=0), r"Schedule.decay_every: got 0"),
    (dict(kind="step", unit="batch"), r"Schedule.unit: got 'batch'"),
    (dict(kind="cosine", decay_steps=5, warmup_steps=5), r"Schedule.decay_steps: got 5, expected an integer > warmup_steps"),
    (dict(warmup_steps=-1), r"Schedule.warmup_steps: got -1"),
    (dict(kind="cosine", decay_seconds=-1.0), r"Schedule.decay_seconds: got -1.0, expected a finite number >= 0"),
    (dict(kind="cosine", decay_seconds=float("inf")), r"Schedule.decay_seconds: got inf"),
    (dict(kind="cosine", decay_steps=50, decay_seconds=60.0), r"Schedule.decay_steps: got 50, expected 0 when decay_seconds \(60\)"),
    (dict(kind="cosine"), r"Schedule.decay_steps: got 0, expected an integer > warmup_steps \(0\).*or set decay_seconds"),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Schedule(**kwargs)


def test_describe_mentions_the_shape():
    assert "0.97 every 1 epoch(s) from the end of epoch 10" in Schedule("step", lr=2e-3).describe()
    assert "cosine: 0.001 -> 0 at step 50" in Schedule("cosine", lr=1e-3, decay_steps=50).describe()
