"""Finite-difference gradient checking, for the tests and for ``minilstm gradcheck``.

The numerical gradient of a scalar function L with respect to x, element i:

    numeric_i = (-L(x + 2h e_i) + 8 L(x + h e_i) - 8 L(x - h e_i) + L(x - 2h e_i)) / (12 h)

the fourth-order central difference: truncation error O(h^4), so with h = 1e-4 in float64 the
truncation error is ~1e-16 and the rounding error ~1e-16 * |L| / h ~ 1e-12 * |L|. Compared with
the analytic gradient G by

    rel_i = |G_i - numeric_i| / max(|G_i|, |numeric_i|, floor),      pass: max_i rel_i <= 1e-6

The floor (1e-3) keeps the ratio meaningful for entries that are zero or nearly so: for them the
condition reads |G_i - numeric_i| <= 1e-9, still ~1000x tighter than any real bug.

``model_gradcheck`` runs this on every parameter of a tiny float64 LanguageModel with random
non-zero weights (biases included), random initial states, padding in the targets and dropout
masks held fixed, so a user can verify the backward pass on their own machine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STEP = 1e-4
FLOOR = 1e-3
RTOL = 1e-6


def numerical_gradient(loss, x: np.ndarray, step: float = STEP) -> np.ndarray:
    """d loss() / d x by the fourth-order central difference; ``loss`` reads ``x`` in place."""
    if x.dtype != np.float64:
        raise ValueError(f"numerical_gradient: x has dtype {x.dtype}, expected float64 "
                         "(float32 differences are too coarse to check anything)")
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        values = []
        for k in (2, 1, -1, -2):
            flat[i] = old + k * step
            values.append(loss())
        flat[i] = old
        gflat[i] = (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * step)
    return grad


def relative_errors(analytic, numeric, floor: float = FLOOR) -> np.ndarray:
    analytic, numeric = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), floor)
    return np.abs(analytic - numeric) / scale


@dataclass
class GradcheckRow:
    name: str
    shape: tuple
    max_relative_error: float
    max_absolute_error: float
    passed: bool


def model_gradcheck(seed: int = 0, batch: int = 2, steps: int = 4, **config) -> list:
    """Check every parameter of a tiny float64 model; returns one GradcheckRow per parameter.

    ``config`` overrides ModelConfig fields (default: vocabulary 7, embedding 3, two LSTM layers
    of 4 and 3 units, dropout 0.25, a dense head of 5 with layer norm).
    """
    from .model import LanguageModel, ModelConfig
    settings = dict(vocab_size=7, embedding_dim=3, hidden_sizes=(4, 3), dropout=0.25, head_hidden=5,
                    head_norm="layer", dtype="float64", seed=seed)
    settings.update(config)
    settings["dtype"] = "float64"
    model = LanguageModel(ModelConfig(**settings))
    rng = np.random.default_rng(seed)
    model.params.data[:] = rng.normal(size=model.num_parameters) * 0.5
    V = model.config.vocab_size
    ids = rng.integers(0, V, size=(batch, steps))
    targets = rng.integers(0, V, size=(batch, steps))
    targets[-1, -1] = -1                                      # a padded position
    state = [(rng.normal(size=(batch, H)), rng.normal(size=(batch, H))) for H in model.config.hidden_sizes]

    def loss():
        model.dropout_rng = np.random.default_rng(seed + 1)  # identical dropout masks every call
        return model.forward(ids, targets, state)[1]

    loss()
    model.zero_grad()
    model.backward()
    rows = []
    for name in model.params.names():
        analytic = model.params.grads[name].copy()
        numeric = numerical_gradient(loss, model.params.values[name])
        rel = relative_errors(analytic, numeric)
        rows.append(GradcheckRow(name, analytic.shape, float(rel.max()),
                                 float(np.abs(analytic - numeric).max()), bool(rel.max() <= RTOL)))
    return rows
