"""Training checkpoints: a model checkpoint plus everything a run needs to continue exactly.

A training checkpoint is written by :func:`~minilstm.model_io.save_model`, so it loads with
``load_model`` for sampling without the corpus. Next to the model (configuration, vocabulary,
``params``, buffers) it holds:

metadata ``"training"``:
    ``format``          1
    ``config``          the resolved :class:`~minilstm.train_config.TrainConfig` as a dict
    ``run``             :class:`RunState`: step, epoch, batch index, tokens, elapsed and evaluation
                        seconds, best validation loss (None before the first evaluation; JSON
                        has no NaN/Inf) and its step, early-stopping counters, the last evaluation
    ``data``            batching mode, batches per epoch, shape and SHA-256 of the training data
    ``optimizer``       ``Optimizer.state_meta()``: name, step count, hyper-parameters
    ``rng``             ``{"dropout": model.dropout_rng state, "data": data generator state or None}``
                        (``bit_generator.state`` dicts; their 128-bit integers are exact in JSON)
    ``carried_state``   whether the arrays below are present
    ``status``          "running", "finished", "early_stopped", "interrupted"
arrays:
    ``optimizer.<slot>``           the optimizer's flat state buffers (Adam m and v, ...)
    ``carry.<layer>.h``, ``.c``    the hidden state carried into the next batch (stream batching
                                   mid-epoch only)
The library, NumPy, Numba and Python versions are recorded by ``save_checkpoint`` itself.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import CheckpointError, nonfinite_arrays
from .model_io import LoadedModel, load_model, save_model

FORMAT = 1


@dataclass
class RunState:
    """Where a run stands; every field is JSON-able and saved in each checkpoint."""
    step: int = 0                          # optimizer steps taken
    epoch: int = 0                         # completed epochs
    batch_index: int = 0                   # next batch within the current epoch
    tokens: int = 0                        # training tokens that counted in the loss so far
    elapsed_s: float = 0.0                 # wall-clock seconds of all runs so far, evaluation included
    eval_s: float = 0.0                    # of which spent validating
    best_val_loss: float | None = None     # lowest validation loss so far (None: no evaluation yet)
    best_step: int | None = None           # step of that evaluation
    patience_ref: float | None = None      # loss of the last improvement by at least min_delta
    evals_without_improvement: int = 0     # evaluations since then
    last_eval: dict | None = None          # {"step", "val_loss", "val_bpc", "val_ppl"} of the last evaluation

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "RunState":
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(values, dict) or set(values) - names:
            raise ValueError(f"RunState: expected a dict with fields {sorted(names)}, got {values!r}")
        return cls(**values)


@dataclass
class TrainingCheckpoint:
    loaded: LoadedModel             # model, vocabulary, metadata and the extra arrays
    config: dict                    # the resolved TrainConfig as saved
    run: RunState
    data: dict
    optimizer_meta: dict
    optimizer_arrays: dict
    rng: dict
    carried_state: list | None      # [(h, c)] per layer, or None
    status: str


def save_training_checkpoint(path, *, model, vocab, optimizer, config: dict, run: RunState, data: dict,
                             data_rng, carried_state, status: str = "running") -> Path:
    """Write a training checkpoint atomically (see the module docstring for its contents).

    Refuses (``ValueError``) to write non-finite parameters, optimizer state or carried state:
    a NaN checkpoint would replace a good one.
    """
    arrays = dict(optimizer.state_arrays())
    if carried_state is not None:
        for layer, (h, c) in enumerate(carried_state):
            arrays[f"carry.{layer}.h"], arrays[f"carry.{layer}.c"] = h, c
    bad = nonfinite_arrays(arrays)
    if bad:
        raise ValueError(f"refusing to save {path}: {', '.join(bad)} contain NaN or Inf")
    training = {
        "format": FORMAT,
        "config": config,
        "run": run.to_dict(),
        "data": data,
        "optimizer": optimizer.state_meta(),
        "rng": {"dropout": model.dropout_rng.bit_generator.state, "data": data_rng},
        "carried_state": carried_state is not None,
        "status": status,
    }
    return save_model(path, model, vocab, metadata={"training": training}, arrays=arrays)


def load_training_checkpoint(path) -> TrainingCheckpoint:
    """Read a training checkpoint; a file without training state is a :class:`CheckpointError`."""
    loaded = load_model(path)
    training = loaded.metadata.get("training")
    if not isinstance(training, dict) or training.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: no training state of format {FORMAT} (a model-only "
                              "checkpoint can initialise a new run but cannot be resumed)")
    arrays = loaded.arrays
    try:
        run = RunState.from_dict(training["run"])
        carried = None
        if training["carried_state"]:
            carried = [(arrays[f"carry.{layer}.h"], arrays[f"carry.{layer}.c"])
                       for layer in range(loaded.model.config.num_layers)]
        optimizer_arrays = {name: a for name, a in arrays.items() if name.startswith("optimizer.")}
        return TrainingCheckpoint(loaded, training["config"], run, training["data"], training["optimizer"],
                                  optimizer_arrays, training["rng"], carried, training["status"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path}: incomplete or invalid training state: {exc!r}") from exc


def copy_model_state(source, target) -> None:
    """Copy parameters and buffers of ``source`` into ``target`` (same configuration)."""
    if source.config != target.config:
        raise ValueError(f"the checkpoint's model configuration {source.config.to_dict()} differs from "
                         f"the model given to the trainer {target.config.to_dict()}")
    target.params.load_flat(source.params.data)
    for name, value in target.buffers.items():
        value[...] = source.buffers[name]


def restore_rng(generator: np.random.Generator, state: dict, what: str) -> None:
    try:
        generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"the saved {what} generator state cannot be restored: {exc}") from exc
