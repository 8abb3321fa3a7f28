"""Faults: non-finite losses, gradients and parameters stop training without touching the saved
checkpoints; SIGINT/SIGTERM stop cleanly with last.ckpt saved; SIGKILL at random moments never
leaves an unreadable checkpoint."""
import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from minilstm._signals import StopSignals
from minilstm.model_io import load_model
from minilstm.train import NonFiniteError, Trainer
from minilstm.train_checkpoint import load_training_checkpoint
from trainer_helpers import TRAIN, VAL, VOCAB, tiny_config, tiny_model

REPO = Path(__file__).resolve().parents[1]
CHILD = REPO / "tests" / "train_child.py"


def _snapshot(directory: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.ckpt"))}


def _poison_at(step, name="out.b"):
    def on_step(trainer, record):
        if record["step"] == step:
            trainer.model.params[name][0] = np.nan
    return on_step


@pytest.mark.parametrize("poison_step, message", [
    # poisoned after step 7: the forward of step 8 meets it
    (7, r"training stopped at step 8 \(epoch 1, batch 8 of 56, lr 0.002\): training loss is nan; the step was "
        r"not applied; no checkpoint was written: last.ckpt \(step 6\) and best.ckpt are unchanged"),
    # poisoned after step 9, whose evaluation and save come next: both refuse
    (9, r"training stopped at step 9: params contain NaN or Inf after the update \(learning rate too high\?\); "
        r"no validation was done; .*last.ckpt \(step 6\)"),
])
def test_nonfinite_stops_and_leaves_checkpoints_byte_identical(tmp_path, poison_step, message):
    trainer = Trainer(tiny_model(), tiny_config(eval_every=3), TRAIN, VAL, VOCAB, tmp_path, stream=io.StringIO(),
                      on_step=_poison_at(poison_step))
    saved = {}
    original = trainer.on_step

    def watch(trainer_, record):
        if record["step"] == poison_step:
            saved.update(_snapshot(tmp_path))          # the files as they stand before the fault
        original(trainer_, record)
    trainer.on_step = watch
    with pytest.raises(NonFiniteError, match=message):
        trainer.fit()
    assert set(saved) == {"best.ckpt", "last.ckpt"} and _snapshot(tmp_path) == saved
    error = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert error["kind"] == "error" and re.search(message, error["message"])
    assert load_training_checkpoint(tmp_path / "last.ckpt").run.step == 6


def test_nonfinite_gradient_is_named(tmp_path):
    model = tiny_model()
    backward, calls = model.backward, []

    def bad_backward():
        backward()
        calls.append(1)
        if len(calls) == 5:
            model.params.grad[3] = np.inf
    model.backward = bad_backward
    trainer = Trainer(model, tiny_config(eval_every=2), TRAIN, VAL, VOCAB, tmp_path, stream=io.StringIO())
    with pytest.raises(NonFiniteError, match=r"step 5 \(epoch 1, batch 5 of 56.*gradient norm is inf"):
        trainer.fit()
    assert load_training_checkpoint(tmp_path / "last.ckpt").run.step == 4


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")   # overflowing is the point here
def test_a_huge_learning_rate_never_reaches_a_checkpoint(tmp_path):
    stream = io.StringIO()
    trainer = Trainer(tiny_model(), tiny_config(optimizer="sgd", lr=1e38, clip_norm=0.0, eval_every=1), TRAIN,
                      VAL, VOCAB, tmp_path, stream=stream)
    with pytest.raises(NonFiniteError, match=r"training stopped at step \d+: .*(nan|inf|NaN or Inf)"):
        trainer.fit()
    assert "training stopped at step" in stream.getvalue()
    for path in tmp_path.glob("*.ckpt"):          # whatever was saved before the blow-up is finite
        saved = load_training_checkpoint(path)
        assert np.isfinite(saved.loaded.model.params.data).all()
        assert all(np.isfinite(a).all() for a in saved.optimizer_arrays.values())


def test_stop_signals_flag_then_force_and_restore():
    before = signal.getsignal(signal.SIGINT)
    with StopSignals() as stop:
        assert stop.installed and stop.received is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.received == "SIGTERM"              # the first signal only asks to stop
        with pytest.raises(KeyboardInterrupt, match="second SIGINT"):
            os.kill(os.getpid(), signal.SIGINT)        # a second Ctrl-C does not wait
    assert signal.getsignal(signal.SIGINT) is before and not stop.installed
    with StopSignals(enabled=False) as off:
        assert not off.installed and signal.getsignal(signal.SIGINT) is before


def _child_env():
    env = dict(os.environ)       # MINILSTM_DISABLE_JIT and NUMBA_CACHE_DIR pass through unchanged
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


class Lines:
    """The lines of a child's stdout, read by a thread so that every wait has a timeout."""

    def __init__(self, stream):
        self.queue = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self.queue.put(line.strip())
        self.queue.put(None)

    def until(self, prefix: str, timeout: float = 60.0) -> str:
        """The first line starting with ``prefix`` (earlier lines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {prefix!r} line from the child within {timeout} s") from None
            if line is None:
                raise AssertionError(f"the child's output ended before a {prefix!r} line")
            if line.startswith(prefix):
                return line


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_finishes_the_step_saves_last_and_exits_cleanly(tmp_path, signum):
    log = open(tmp_path / "stderr.txt", "w+")
    child = subprocess.Popen([sys.executable, str(CHILD), str(tmp_path / "run")], cwd=REPO, env=_child_env(),
                             stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        lines = Lines(child.stdout)
        signalled_at = int(lines.until("STEP 5").split()[1])
        child.send_signal(signum)
        result = json.loads(lines.until("RESULT ").removeprefix("RESULT "))
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    log.seek(0)
    assert child.returncode == 0, log.read()
    assert result["status"] == "interrupted" and result["reason"] == f"{signal.Signals(signum).name} received"
    assert result["step"] >= signalled_at
    saved = load_training_checkpoint(tmp_path / "run" / "last.ckpt")
    assert saved.run.step == result["step"] and saved.status == "interrupted"
    assert load_model(tmp_path / "run" / "last.ckpt").vocab is not None


def test_sigkill_at_20_random_moments_never_breaks_a_checkpoint(tmp_path):
    run = tmp_path / "run"
    log = open(tmp_path / "stderr.txt", "w+")
    zygote = subprocess.Popen([sys.executable, str(CHILD), "--zygote", str(run)], cwd=REPO, env=_child_env(),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
    delays = np.random.default_rng(2024).uniform(0.0, 0.15, size=20)    # seeded: the same moments each run
    steps, killed = [], []
    try:
        lines = Lines(zygote.stdout)
        lines.until("READY")
        for delay in delays:
            zygote.stdin.write("GO\n")
            zygote.stdin.flush()
            pid = int(lines.until("PID ").split()[1])
            lines.until("STEP ")                          # training under way
            time.sleep(delay)
            os.kill(pid, signal.SIGKILL)
            status = int(lines.until(f"EXIT {pid} ").split()[2])
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            killed.append(pid)
            if (run / "last.ckpt").exists() or steps:
                saved = load_training_checkpoint(run / "last.ckpt")     # verifies every checksum
                load_model(run / "last.ckpt")
                assert saved.run.step >= (steps[-1] if steps else 0), "a resumed run went backwards"
                steps.append(saved.run.step)
            if (run / "best.ckpt").exists():
                best = load_training_checkpoint(run / "best.ckpt")
                assert best.run.best_step == best.run.step
        zygote.stdin.write("QUIT\n")
        zygote.stdin.flush()
        assert zygote.wait(timeout=30) == 0
    finally:
        if zygote.poll() is None:
            zygote.kill()
    log.seek(0)
    assert len(killed) == 20 and len(steps) >= 19, log.read()[-2000:]
    assert steps[-1] > 20                                   # the runs made progress between kills
    # a killed writer leaves its temporary; the next writer removes those of dead processes
    leftovers = [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert all(f".{killed[-1]}." in name for name in leftovers), leftovers
