"""Training: one optimisation step (``train_step``), used by the trainer and the benchmarks."""
from __future__ import annotations

import math
from dataclasses import dataclass

from . import core


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
    _, loss, new_state = model.forward(ids, targets, state)
    model.zero_grad()
    model.backward()
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
