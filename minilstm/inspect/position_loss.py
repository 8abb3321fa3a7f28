"""Loss by position in the window and by character class.

A model trained with truncated BPTT on windows of T tokens from a zero initial state learns to
cope with little context at the start of a window; the mean loss against the position shows how
quickly context pays off (and where it stops paying). The loss by class of the predicted
character shows what the model finds hard: word starts after a space, the first letter of a line.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import core
from ..model import LanguageModel
from .properties import CHAR_CLASSES, char_class
from .recording import check_model_and_vocab, evaluating


@dataclass
class PositionLoss:
    """Mean loss (nats) over non-overlapping windows, each started from a zero state."""
    window: int                    # T: predictions per window
    windows: int                   # how many windows were averaged
    mean: np.ndarray               # (T,) mean loss of the prediction made after t+1 tokens of context
    stderr: np.ndarray             # (T,) standard error of that mean
    by_class: dict = field(default_factory=dict)   # class -> (mean loss, count) of the predicted token

    @property
    def overall(self) -> float:
        return float(self.mean.mean())

    def as_dict(self) -> dict:
        """JSON-able numbers: the overall mean, per position and per class."""
        return {"window": self.window, "windows": self.windows, "mean_loss": self.overall,
                "by_position": [float(v) for v in self.mean],
                "by_class": {name: {"mean_loss": mean, "count": count}
                             for name, (mean, count) in self.by_class.items()}}


def per_position_loss(model: LanguageModel, ids, T: int, *, vocab=None, batch: int = 32,
                      max_windows: int | None = None) -> PositionLoss:
    """Mean loss at each position of windows of ``T`` predictions cut from ``ids`` (1-D ids).

    The windows are consecutive and non-overlapping (``ids[k*T : k*T + T + 1]``); with
    ``max_windows`` only that many, evenly spread over the text, are used. ``batch`` windows go
    through one forward pass. With ``vocab`` the loss is also split by the class
    (:data:`~.properties.CHAR_CLASSES`) of the predicted token.
    """
    check_model_and_vocab("per_position_loss", model, vocab)
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ValueError(f"per_position_loss: ids has shape {ids.shape} dtype {ids.dtype}, "
                         "expected 1-D integer token ids")
    for name, value in (("T", T), ("batch", batch), ("max_windows", max_windows or 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"per_position_loss: {name}={value!r}, expected a positive integer")
    count = (len(ids) - 1) // T
    if count < 1:
        raise ValueError(f"per_position_loss: ids has {len(ids)} tokens, expected at least T + 1 = {T + 1}")
    starts = np.arange(count) * T
    if max_windows is not None and max_windows < count:
        starts = starts[np.linspace(0, count - 1, max_windows).round().astype(int)]
    losses = _window_losses(model, ids, starts, T, batch)                 # (windows, T)
    result = PositionLoss(T, len(starts), losses.mean(axis=0),
                          losses.std(axis=0) / np.sqrt(len(starts)))
    if vocab is not None:
        classes = np.array([CHAR_CLASSES.index(char_class(token)) for token in vocab.tokens])
        predicted = classes[ids[starts[:, None] + np.arange(1, T + 1)]]
        for k, name in enumerate(CHAR_CLASSES):
            chosen = losses[predicted == k]
            if chosen.size:
                result.by_class[name] = (float(chosen.mean()), int(chosen.size))
    return result


def _window_losses(model, ids, starts, T, batch):
    """Per-token losses (windows, T) in eval mode, ``batch`` windows per forward pass."""
    out = np.empty((len(starts), T))
    with evaluating(model):
        for first in range(0, len(starts), batch):
            chosen = starts[first:first + batch]
            windows = ids[chosen[:, None] + np.arange(T + 1)].astype(np.int64)
            logits, _, _ = model.forward(windows[:, :-1])
            out[first:first + len(chosen)] = core.cross_entropy_per_token(
                logits.reshape(-1, logits.shape[2]), windows[:, 1:].reshape(-1)).reshape(len(chosen), T)
    return out
