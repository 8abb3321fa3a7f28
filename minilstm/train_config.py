"""``TrainConfig``: every setting of a training run, with one comment per field.

The command line is generated from this dataclass (each field becomes ``--field-name`` with its
comment as help), so the fields use plain types and every choice is validated here with an
error naming the field, the value and what was expected.

Fields marked "auto" take 0 to mean "derive it": the trainer stores the derived value in its
resolved configuration (printed at start, saved in every checkpoint), and a resumed run keeps
the value saved in the checkpoint.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .optimizers import OPTIMIZERS
from .schedule import DECAY_UNITS, SCHEDULES, Schedule
from .train_data import BATCHING


@dataclass
class TrainConfig:
    # budget: training stops at the first limit reached (0 = no limit of that kind)
    max_epochs: int = 10            # stop after this many passes over the training data
    max_steps: int = 0              # stop after this many optimizer steps in total
    max_seconds: float = 0.0        # stop after this much wall-clock time, summed over resumed runs
    # data
    batching: str = "stream"        # "stream" (state carried across batches), "windows" (random windows) or "poems" (padded poems)
    batch_size: int = 50            # B: sequences per batch
    seq_len: int = 50               # T: time steps per batch and truncated-BPTT length (unused by "poems")
    windows_per_epoch: int = 0      # "windows": batches per epoch (auto: enough to cover the training ids once)
    seed: int = 0                   # seed of the data order (random windows, poem shuffling)
    # optimizer
    optimizer: str = "adam"         # "adam", "rmsprop" or "sgd"
    lr: float = 2e-3                # peak learning rate
    beta1: float = 0.9              # Adam: decay of the first moment
    beta2: float = 0.999            # Adam: decay of the second moment
    alpha: float = 0.95             # RMSprop: decay of the squared-gradient average (char-rnn: 0.95)
    eps: float = 1e-8               # Adam / RMSprop: added to the denominator
    momentum: float = 0.0           # SGD: momentum factor in [0, 1)
    nesterov: bool = False          # SGD: Nesterov momentum
    weight_decay: float = 0.0       # decoupled for Adam (AdamW), L2 added to the gradient otherwise
    # learning-rate schedule (see minilstm.schedule)
    schedule: str = "constant"      # "constant", "step" or "cosine"
    warmup_steps: int = 0           # linear warm-up over this many steps (any schedule)
    lr_decay: float = 0.97          # "step": multiply the rate by this at each decay event
    lr_decay_every: int = 1         # "step": epochs (or steps) between decay events
    lr_decay_start: int = 10        # "step": the end of this epoch (or step) is the first decay event
    lr_decay_unit: str = "epoch"    # "step": what lr_decay_every and lr_decay_start count, "epoch" or "step"
    lr_decay_steps: int = 0         # "cosine": step at which min_lr is reached (auto: the step budget)
    lr_decay_seconds: float = 0.0   # "cosine", instead of lr_decay_steps: second of the run at which min_lr is reached (auto: max_seconds when there is no step or epoch budget)
    min_lr: float = 0.0             # "cosine": final rate; "step": the rate never goes below it
    # gradient clipping
    clip_norm: float = 5.0          # rescale the gradient when its global L2 norm exceeds this (0: off)
    clip_value: float = 0.0         # clamp every gradient element to [-clip_value, clip_value] (0: off)
    threads: int = 0                # batch shards computed side by side, one thread each (0: auto, one per core; 1: off); sets model.threads
    # evaluation and early stopping
    eval_every: int = 1000          # validate every this many steps (0: only at epoch ends)
    eval_at_epoch_end: bool = True  # also validate after every epoch
    eval_at_end: bool = True        # also validate when a budget or a stop request ends the run between evaluations
    eval_batching: str = ""         # validation layout: "" (as batching), "stream" (B continuous streams, state carried) or "windows" (zero-state windows of seq_len)
    eval_batch_size: int = 0        # B of validation batches (auto: batch_size)
    eval_batches: int = 0           # validate on the first this many batches only (0: the whole split)
    patience: int = 0               # stop after this many evaluations without improvement (0: never)
    min_delta: float = 0.0          # an improvement must lower the validation loss by at least this (nats)
    # checkpoints (in the trainer's out_dir)
    save_every: int = 0             # also write last.ckpt every this many steps (0: at evaluations and epoch ends)
    save_epochs: bool = False       # keep epoch-NNN.ckpt after every epoch
    resume: str = ""                # "": new run; "auto": continue out_dir/last.ckpt if present; or a checkpoint path
    overwrite: bool = False         # let a new run replace the run already in out_dir
    # output
    progress: bool = True           # a progress bar on a terminal (plain status lines when off or redirected)
    log_every: int = 10             # write a train record to metrics.jsonl every this many steps
    plot: bool = True               # draw loss.png (train and validation curves) at each evaluation
    estimate: bool = True           # print memory and time-per-step estimates at start (a ~50 ms probe)
    sample_length: int = 200        # tokens sampled and printed at each evaluation (0: no sample)
    sample_temperature: float = 0.8  # temperature of that sample
    sample_prompt: str = ""         # text the sample starts from
    handle_signals: bool = True     # SIGINT/SIGTERM finish the step, save last.ckpt and return "interrupted"

    def __post_init__(self):
        for field in dataclasses.fields(self):   # CLI values may arrive as NumPy scalars
            value = getattr(self, field.name)
            if isinstance(value, np.generic):
                setattr(self, field.name, value.item())
        self.validate()

    def validate(self) -> None:
        def bad(name, expected):
            raise ValueError(f"TrainConfig.{name}: got {getattr(self, name)!r}, expected {expected}")
        integer = lambda v: isinstance(v, int) and not isinstance(v, bool)                    # noqa: E731
        number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)  # noqa: E731
        for name in ("max_epochs", "max_steps", "windows_per_epoch", "warmup_steps", "lr_decay_start",
                     "lr_decay_steps", "eval_every", "eval_batch_size", "eval_batches", "patience",
                     "save_every", "sample_length", "threads"):
            if not integer(getattr(self, name)) or getattr(self, name) < 0:
                bad(name, "an integer >= 0")
        for name in ("batch_size", "seq_len", "lr_decay_every", "log_every"):
            if not integer(getattr(self, name)) or getattr(self, name) < 1:
                bad(name, "an integer >= 1")
        if not integer(self.seed):
            bad("seed", "an integer")
        for name in ("max_seconds", "lr_decay_seconds", "weight_decay", "min_lr", "clip_norm", "clip_value",
                     "min_delta"):
            if not number(getattr(self, name)) or getattr(self, name) < 0:
                bad(name, "a finite number >= 0")
        if not (self.max_epochs or self.max_steps or self.max_seconds):
            bad("max_epochs", "a budget: set at least one of max_epochs, max_steps, max_seconds above 0")
        for name, choices in (("batching", BATCHING), ("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("lr_decay_unit", DECAY_UNITS)):
            if getattr(self, name) not in choices:
                bad(name, f"one of {choices}")
        if self.eval_batching and (self.eval_batching not in ("stream", "windows") or self.batching == "poems"):
            bad("eval_batching", "'' (as batching), or 'stream' or 'windows' when batching is not 'poems'")
        if not number(self.lr) or self.lr <= 0:
            bad("lr", "a finite number > 0")
        if self.min_lr > self.lr:
            bad("min_lr", f"a rate no higher than lr={self.lr}")
        for name in ("beta1", "beta2", "alpha", "momentum"):
            if not number(getattr(self, name)) or not 0 <= getattr(self, name) < 1:
                bad(name, "a number in [0, 1)")
        if not number(self.eps) or self.eps <= 0:
            bad("eps", "a finite number > 0")
        if not number(self.lr_decay) or not 0 < self.lr_decay <= 1:
            bad("lr_decay", "a factor in (0, 1]")
        if self.schedule == "cosine" and self.lr_decay_steps and self.lr_decay_steps <= self.warmup_steps:
            bad("lr_decay_steps", f"0 (auto) or more than warmup_steps ({self.warmup_steps})")
        if self.lr_decay_steps and self.lr_decay_seconds:
            bad("lr_decay_seconds", f"0 when lr_decay_steps ({self.lr_decay_steps}) ends the decay: one or the other")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            bad("nesterov", "False unless optimizer is 'sgd' with momentum > 0")
        if not number(self.sample_temperature) or self.sample_temperature <= 0:
            bad("sample_temperature", "a finite number > 0")
        for name in ("resume", "sample_prompt"):
            if not isinstance(getattr(self, name), str):
                bad(name, "a string")
        for name in ("nesterov", "eval_at_epoch_end", "save_epochs", "overwrite", "progress", "plot",
                     "estimate", "handle_signals"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "True or False")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"TrainConfig: unknown fields {sorted(unknown)}")
        return cls(**values)

    def optimizer_options(self) -> dict:
        """Keyword arguments of ``make_optimizer`` for the chosen optimizer."""
        if self.optimizer == "adam":
            return dict(beta1=self.beta1, beta2=self.beta2, eps=self.eps, weight_decay=self.weight_decay)
        if self.optimizer == "rmsprop":
            return dict(alpha=self.alpha, eps=self.eps, weight_decay=self.weight_decay)
        return dict(momentum=self.momentum, weight_decay=self.weight_decay, nesterov=self.nesterov)

    def make_schedule(self) -> Schedule:
        """The schedule of a resolved configuration (lr_decay_steps or lr_decay_seconds filled in
        for cosine)."""
        return Schedule(self.schedule, self.lr, self.warmup_steps, self.lr_decay, self.lr_decay_every,
                        self.lr_decay_start, self.lr_decay_unit, self.lr_decay_steps, self.lr_decay_seconds,
                        self.min_lr)


# Fields that change the sequence of parameters a run goes through: a resumed run must keep them
# (auto fields left at 0 adopt the checkpoint's resolved value).
TRAJECTORY_FIELDS = ("batching", "batch_size", "seq_len", "windows_per_epoch", "seed", "optimizer", "lr",
                     "beta1", "beta2", "alpha", "eps", "momentum", "nesterov", "weight_decay", "schedule",
                     "warmup_steps", "lr_decay", "lr_decay_every", "lr_decay_start", "lr_decay_unit",
                     "lr_decay_steps", "lr_decay_seconds", "min_lr", "clip_norm", "clip_value")
AUTO_FIELDS = ("windows_per_epoch", "lr_decay_steps", "lr_decay_seconds", "eval_batch_size")


def resumed_config(config: TrainConfig, saved: dict) -> TrainConfig:
    """``config`` with the checkpoint's resolved auto values; ``ValueError`` listing every
    trajectory field the two disagree on."""
    differences = []
    for name in TRAJECTORY_FIELDS:
        mine, theirs = getattr(config, name), saved.get(name)
        if name in AUTO_FIELDS and mine == 0:
            continue
        if mine != theirs:
            differences.append(f"{name} (checkpoint {theirs!r}, now {mine!r})")
    if differences:
        raise ValueError("resume: the configuration differs from the checkpoint's in fields that change "
                         f"the training trajectory: {', '.join(differences)}. Resume with the saved values, "
                         "or start a new run initialised from the checkpoint (fine-tuning)")
    return dataclasses.replace(config, **{name: saved[name] for name in AUTO_FIELDS
                                          if getattr(config, name) == 0 and name in saved})
