"""Training: one optimisation step (:func:`train_step`) and the :class:`Trainer` that runs a whole
training with budgets, schedules, validation, checkpoints, resuming and graceful stops.

    trainer = Trainer(model, TrainConfig(max_epochs=20, eval_every=500), train_ids, val_ids,
                      vocab=vocab, out_dir="runs/shakespeare")
    result = trainer.fit()          # FitResult(status="finished", reason="max_epochs=20 reached", ...)

What the trainer receives: the model (any ``LanguageModel``), a :class:`TrainConfig`, the
training data (a 1-D id array for ``"stream"``/``"windows"`` batching, a 2-D array of padded
poems or a ``PoemBatches`` for ``"poems"``), optional validation data of the same kind, the
vocabulary (stored in checkpoints, used for samples) and an output directory (``None``: nothing
is written). What it writes there: ``last.ckpt`` (latest state), ``best.ckpt`` (lowest
validation loss), ``epoch-NNN.ckpt`` (with ``save_epochs``), ``metrics.jsonl`` and ``loss.png``.
Every checkpoint resumes exactly (:mod:`minilstm.train_checkpoint`) and loads with
``load_model`` for sampling.

The loop, per step: budget and stop checks -> batch (epoch, index) -> learning rate from the
schedule -> ``train_step`` (state carried for stream batching, reset at epoch starts) -> log ->
at epoch ends and every ``eval_every`` steps validation (best.ckpt, early stopping, plot,
sample) -> last.ckpt at evaluations, epoch ends, every ``save_every`` steps and at the end.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import core
from ._signals import StopSignals
from .optimizers import make_optimizer
from .progress import MetricsLog, Progress, plot_losses
from .train_checkpoint import RunState, copy_model_state, load_training_checkpoint, restore_rng
from .train_config import TrainConfig, resumed_config
from .train_data import training_batches, validation_set
from .train_report import announce

__all__ = ["FitResult", "NonFiniteError", "StepResult", "TrainConfig", "Trainer", "train_step"]


class NonFiniteError(FloatingPointError):
    """The loss or the gradient is NaN or infinite; parameters were left untouched."""


@dataclass
class StepResult:
    loss: float          # mean cross-entropy of the batch, nats per token
    grad_norm: float     # global gradient norm before clipping
    state: list          # final (h, c) per layer, to carry into the next batch
    tokens: int          # tokens that counted in the loss


def train_step(model, optimizer, ids, targets, state=None, *, lr: float,
               clip_norm: float | None = None, clip_value: float | None = None) -> StepResult:
    """forward -> backward -> (check, clip) -> optimizer step, on one (B, T) batch.

    Raises :class:`NonFiniteError` *before* touching the parameters if the loss or the gradient
    is not finite, so the model stays as it was after the previous step.
    """
    model.train()
    model.zero_grad()
    loss, new_state = model.forward_backward(ids, targets, state)
    if not math.isfinite(loss):
        raise NonFiniteError(f"training loss is {loss}; the step was not applied")
    grads = model.params.grad
    norm = (core.clip_grad_norm(grads, clip_norm) if clip_norm else core.grad_norm(grads))
    if not math.isfinite(norm):
        raise NonFiniteError(f"gradient norm is {norm} (loss {loss:.4f}); the step was not applied")
    if clip_value:
        core.clip_grad_value(grads, clip_value)
    optimizer.step(lr)
    return StepResult(loss, norm, new_state, model.tokens_in_loss)


@dataclass
class FitResult:
    status: str                     # "finished", "early_stopped", "interrupted" or "stopped"
    reason: str                     # which budget, signal or patience ended the run
    step: int                       # optimizer steps taken in total
    epoch: float                    # epochs completed (fractional)
    best_val_loss: float | None     # lowest validation loss (None: never validated)
    best_step: int | None
    last_eval: dict | None          # the last validation's step, loss, bpc and perplexity
    elapsed_s: float                # wall-clock seconds of all runs so far
    checkpoint: Path | None         # last.ckpt as written at the end (None without out_dir)
    records: list = field(default_factory=list)   # this call's metrics records


class Trainer:
    """Runs :class:`TrainConfig` on a model and data; see the module docstring.

    ``stream`` receives every message and the progress bar (default ``sys.stdout``);
    ``on_step(trainer, record)`` is called after every step (``trainer.request_stop(reason)``
    ends the run after it); ``clock`` is the time source for budgets and rates.
    """

    def __init__(self, model, config: TrainConfig, train_data, val_data=None, vocab=None, out_dir=None, *,
                 stream=None, on_step=None, clock=time.monotonic):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"Trainer: config must be a TrainConfig, got {type(config).__name__}")
        if vocab is not None and len(vocab) != model.config.vocab_size:
            raise ValueError(f"Trainer: vocab has {len(vocab)} tokens but the model's vocab_size is "
                             f"{model.config.vocab_size}")
        self.model, self.vocab, self.clock, self.on_step = model, vocab, clock, on_step
        model.threads = config.threads or None        # 0 in the config: automatic
        self.stream = stream if stream is not None else sys.stdout
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.resumed_from = self._resume_path(config)
        checkpoint = load_training_checkpoint(self.resumed_from) if self.resumed_from else None
        if checkpoint is not None:
            config = resumed_config(config, checkpoint.config)
        self.data = training_batches(config.batching, train_data, config.batch_size, config.seq_len,
                                     seed=config.seed, windows_per_epoch=config.windows_per_epoch, vocab=vocab)
        self.config = config = self._resolve(config)
        self.validation = None
        if val_data is not None:
            pad = getattr(getattr(self.data, "batches", None), "pad_id", None)
            self.validation = validation_set(config.eval_batching or config.batching, val_data, config.eval_batch_size, config.seq_len,
                                             vocab=vocab, pad_id=pad, max_batches=config.eval_batches)
        if config.sample_length and vocab is not None and config.sample_prompt:
            try:
                vocab.encode(config.sample_prompt)
            except ValueError as exc:
                raise ValueError(f"TrainConfig.sample_prompt: {exc}") from None
        self.optimizer = make_optimizer(config.optimizer, model.params, **config.optimizer_options())
        self.schedule = config.make_schedule()
        self.run = RunState()
        self.carried = None                 # the (h, c) per layer carried into the next stream batch
        self.log = MetricsLog(None if self.out_dir is None else self.out_dir / "metrics.jsonl")
        self._stop_request = None
        self._saved_step = None             # step of the last last.ckpt written by this trainer
        self._prepared = False              # out_dir checked (and the log started) by a fit()
        if checkpoint is not None:
            self._restore(checkpoint)

    # ------------------------------------------------------------------ set-up
    def _resume_path(self, config) -> Path | None:
        if config.resume == "":
            return None
        if config.resume == "auto":
            if self.out_dir is None:
                raise ValueError("TrainConfig.resume: 'auto' needs an out_dir to look for last.ckpt in")
            last = self.out_dir / "last.ckpt"
            return last if last.is_file() else None
        path = Path(config.resume)
        if not path.is_file():
            raise FileNotFoundError(f"TrainConfig.resume: checkpoint {path} does not exist")
        return path

    def _resolve(self, config: TrainConfig) -> TrainConfig:
        """``config`` with its auto fields (0) replaced by the values this run uses."""
        values = {"eval_batch_size": config.eval_batch_size or config.batch_size}
        if config.batching == "windows":
            values["windows_per_epoch"] = len(self.data)
        if config.schedule == "cosine" and not (config.lr_decay_steps or config.lr_decay_seconds):
            budget = self.step_budget(config)
            if budget is not None:
                values["lr_decay_steps"] = max(budget, config.warmup_steps + 1)
            else:     # only a time budget: decay over the run's clock, to end with the budget
                values["lr_decay_seconds"] = config.max_seconds
        return dataclasses.replace(config, **values)

    def step_budget(self, config: TrainConfig | None = None) -> int | None:
        """The step at which the step or epoch budget ends the run (None: time budget only)."""
        config = config or self.config
        limits = [config.max_steps] if config.max_steps else []
        if config.max_epochs:
            limits.append(config.max_epochs * len(self.data))
        return min(limits) if limits else None

    def _restore(self, checkpoint) -> None:
        where = f"resume from {self.resumed_from}"
        if self.vocab is not None and checkpoint.loaded.vocab is not None and self.vocab != checkpoint.loaded.vocab:
            raise ValueError(f"{where}: the vocabulary differs from the checkpoint's")
        mine = self.data.describe()
        if checkpoint.data != mine:
            changed = [k for k in mine if checkpoint.data.get(k) != mine[k]]
            raise ValueError(f"{where}: the training data differ from the checkpoint's ({', '.join(changed)}): "
                             f"saved {checkpoint.data}, now {mine}")
        copy_model_state(checkpoint.loaded.model, self.model)     # only once nothing contradicts it
        self.optimizer.load_state(checkpoint.optimizer_arrays, checkpoint.optimizer_meta)
        restore_rng(self.model.dropout_rng, checkpoint.rng["dropout"], "dropout")
        if checkpoint.rng.get("data") is not None:
            restore_rng(self.data.rng, checkpoint.rng["data"], "data")
        self.carried = checkpoint.carried_state
        self.run = checkpoint.run
        self._saved_step = self.run.step

    def request_stop(self, reason: str = "stop requested") -> None:
        """End the run after the current step (status "stopped"); for callbacks."""
        self._stop_request = reason

    # ------------------------------------------------------------------ the run
    def fit(self) -> FitResult:
        """Train until a budget, early stopping, a signal or :meth:`request_stop` ends the run."""
        from .train_loop import run_loop    # imported here: train_loop imports train_step from this module
        self._started, self._base_elapsed = self.clock(), self.run.elapsed_s
        self._progress, self._stop_request, first_record = None, None, len(self.log.records)
        with StopSignals(self.config.handle_signals) as signals:
            try:
                self._prepare_out_dir()
                announce(self)
                self._progress = Progress(self.stream, self.step_budget(), self.run.step, self.config.progress)
                status, reason = run_loop(self, signals)
            finally:
                if self._progress is not None:
                    self._progress.close()
                self._progress = None
        self.say(f"{status}: {reason} at step {self.run.step} (epoch {self.epoch_position():.2f}), "
                 f"{self.elapsed():.1f} s in total")
        return FitResult(status, reason, self.run.step, self.epoch_position(), self.run.best_val_loss,
                         self.run.best_step, self.run.last_eval, self.run.elapsed_s,
                         None if self.out_dir is None else self.out_dir / "last.ckpt",
                         self.log.records[first_record:])

    def _prepare_out_dir(self) -> None:
        if self.out_dir is None or self._prepared:
            return                           # a second fit() continues this trainer's own run
        self._prepared = True
        last = self.out_dir / "last.ckpt"
        if self.resumed_from is None and last.exists():
            if not self.config.overwrite:
                raise ValueError(f"Trainer: {self.out_dir} already holds a run (last.ckpt); pass resume='auto' "
                                 "to continue it, overwrite=True to replace it, or another out_dir")
            for old in [last, self.out_dir / "best.ckpt", *self.out_dir.glob("epoch-*.ckpt")]:
                old.unlink(missing_ok=True)     # a stale best.ckpt would outlive the run it belonged to
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.resumed_from is None:
            self.log.start_fresh()
        else:
            self.log.truncate_after(self.run.step)   # drop what the previous run logged after its save

    # ------------------------------------------------------------------ helpers the loop uses
    def say(self, text: str) -> None:
        if getattr(self, "_progress", None) is not None:
            self._progress.write(text)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def elapsed(self) -> float:
        return self._base_elapsed + (self.clock() - self._started)

    def epoch_position(self) -> float:
        return self.run.epoch + self.run.batch_index / len(self.data)

    def plot(self) -> None:
        if self.out_dir is None or not self.config.plot:
            return
        if plot_losses(self.log.read(), self.out_dir / "loss.png") is None and not getattr(self, "_plot_notice", False):
            self._plot_notice = True
            self.say("(matplotlib is not installed: no loss.png; pip install matplotlib)")

    def checkpoint_problems(self) -> list:
        """Names of the state arrays that are not finite (such a state must never be saved)."""
        arrays = {"params": self.model.params.data, **self.optimizer.state_arrays()}
        for layer, (h, c) in enumerate(self.carried or []):
            arrays[f"carry.{layer}.h"], arrays[f"carry.{layer}.c"] = h, c
        return [name for name, a in arrays.items() if not np.isfinite(a).all()]
