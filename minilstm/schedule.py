"""Learning-rate schedules: a pure function of the training position, so resuming is free.

    schedule = Schedule("step", lr=2e-3, decay=0.97, decay_every=1, decay_start=10)
    lr = schedule(step, epoch)     # the rate for the step about to be taken

``step`` is the number of optimizer steps already taken, ``epoch`` the number of completed
epochs and ``seconds`` the run's clock (only a cosine over seconds reads it). Nothing is
accumulated between calls (no "multiply the current rate by 0.97" state), so a resumed run
recomputes exactly the rate an uninterrupted one would have used.

Shapes of the three kinds (lr0 = ``lr``, s = step, e = completed epochs, W = ``warmup_steps``):

* ``constant``: lr0.
* ``step``: lr0 * decay**n, never below ``min_lr``, where n counts the decay events so far. A
  decay event happens at the end of epoch k (k = 1, 2, ...; or after step k when ``unit`` is
  ``"step"``) when k >= max(decay_start, 1) and (k - max(decay_start, 1)) is a multiple of
  ``decay_every``. char-rnn's "multiply by 0.97 after every epoch from epoch 10 on" is
  ``decay=0.97, decay_every=1, decay_start=10``: epochs 1..10 train at lr0, epoch 11 at
  0.97*lr0, epoch 12 at 0.97**2*lr0, ...
* ``cosine``: after the warm-up, min_lr + (lr0 - min_lr) * (1 + cos(pi * p)) / 2 with
  p = (s - W) / (decay_steps - W) clipped to [0, 1]; ``min_lr`` from ``decay_steps`` on
  (Loshchilov & Hutter 2017, without restarts). With ``decay_seconds`` instead, p = t /
  decay_seconds clipped to [0, 1], t the seconds the run has been going: for a run with a time
  budget, whose step count is only known at the end, the decay then ends with the budget
  however fast the machine runs (a step count estimated from a few timed steps ends the decay
  early or cuts it off when the machine's speed drifts).

A linear warm-up multiplies any kind: step s < W uses (s + 1) / W of the rate above (Goyal et
al. 2017), so the first step is taken at lr0 / W rather than 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("constant", "step", "cosine")
DECAY_UNITS = ("epoch", "step")


@dataclass(frozen=True)
class Schedule:
    kind: str = "constant"        # "constant", "step" or "cosine"
    lr: float = 2e-3              # peak rate (after warm-up)
    warmup_steps: int = 0         # linear warm-up length in steps (0: none)
    decay: float = 0.97           # "step": factor applied at each decay event
    decay_every: int = 1          # "step": epochs (or steps) between decay events
    decay_start: int = 10         # "step": first epoch (or step) whose end triggers a decay
    unit: str = "epoch"           # "step": whether the two above count epochs or steps
    decay_steps: int = 0          # "cosine": step at which min_lr is reached
    decay_seconds: float = 0.0    # "cosine", instead of decay_steps: second at which min_lr is reached
    min_lr: float = 0.0           # floor of "step", end point of "cosine"

    def __post_init__(self):
        def bad(name, expected):
            raise ValueError(f"Schedule.{name}: got {getattr(self, name)!r}, expected {expected}")
        if self.kind not in SCHEDULES:
            bad("kind", f"one of {SCHEDULES}")
        if not _finite(self.lr) or self.lr <= 0:
            bad("lr", "a finite number > 0")
        if not _finite(self.min_lr) or not 0 <= self.min_lr <= self.lr:
            bad("min_lr", f"a number in [0, lr={self.lr}]")
        if not _integer(self.warmup_steps) or self.warmup_steps < 0:
            bad("warmup_steps", "an integer >= 0")
        if self.kind == "step":
            if not _finite(self.decay) or not 0 < self.decay <= 1:
                bad("decay", "a factor in (0, 1]")
            if not _integer(self.decay_every) or self.decay_every < 1:
                bad("decay_every", "an integer >= 1")
            if not _integer(self.decay_start) or self.decay_start < 0:
                bad("decay_start", "an integer >= 0")
            if self.unit not in DECAY_UNITS:
                bad("unit", f"one of {DECAY_UNITS}")
        if not _finite(self.decay_seconds) or self.decay_seconds < 0:
            bad("decay_seconds", "a finite number >= 0")
        if self.kind == "cosine" and self.decay_seconds > 0:
            if self.decay_steps:
                bad("decay_steps", f"0 when decay_seconds ({self.decay_seconds:g}) ends the decay: one or the other")
        elif self.kind == "cosine" and (not _integer(self.decay_steps) or self.decay_steps <= self.warmup_steps):
            bad("decay_steps", f"an integer > warmup_steps ({self.warmup_steps}): the step at which "
                "the rate reaches min_lr (or set decay_seconds)")

    def decay_events(self, step: int, epoch: int) -> int:
        """How many times the "step" schedule has decayed before ``step`` / after ``epoch`` epochs."""
        done = epoch if self.unit == "epoch" else step
        first = max(self.decay_start, 1)
        return 0 if done < first else (done - first) // self.decay_every + 1

    def __call__(self, step: int, epoch: int = 0, seconds: float = 0.0) -> float:
        """The learning rate of the step taken after ``step`` steps, ``epoch`` full epochs and
        ``seconds`` of the run."""
        if self.kind == "constant":
            rate = self.lr
        elif self.kind == "step":
            rate = max(self.min_lr, self.lr * self.decay ** self.decay_events(step, epoch))
        else:
            if self.decay_seconds > 0:
                progress = min(1.0, max(0.0, seconds / self.decay_seconds))
            else:
                span = self.decay_steps - self.warmup_steps
                progress = min(1.0, max(0.0, (step - self.warmup_steps) / span))
            rate = self.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (self.lr - self.min_lr)
        if step < self.warmup_steps:
            rate *= (step + 1) / self.warmup_steps
        return rate

    def describe(self) -> str:
        """One line for the start-of-training summary."""
        warm = f", {self.warmup_steps} warm-up steps" if self.warmup_steps else ""
        if self.kind == "constant":
            return f"constant {self.lr:g}{warm}"
        if self.kind == "step":
            return (f"step: {self.lr:g} x {self.decay:g} every {self.decay_every} {self.unit}(s) from the "
                    f"end of {self.unit} {max(self.decay_start, 1)} on, floor {self.min_lr:g}{warm}")
        end = f"{self.decay_seconds:g} s" if self.decay_seconds > 0 else f"step {self.decay_steps}"
        return f"cosine: {self.lr:g} -> {self.min_lr:g} at {end}{warm}"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
