"""Saving and loading a model (with its vocabulary) as a checkpoint file.

A model checkpoint is a ``minilstm.checkpoint`` file whose metadata carries ``"kind":
"minilstm-model"``, the :class:`~minilstm.model.ModelConfig` and the vocabulary, and whose
arrays are ``params`` (the flat parameter buffer) and ``buffer.<name>`` (batch-norm running
statistics). A trainer adds its own arrays and metadata (optimizer moments, RNG and data
position) next to these; a model loads from any such file without the training corpus.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checkpoint import CheckpointError, load_checkpoint, nonfinite_arrays, read_header, save_checkpoint
from .data import Vocabulary
from .model import LanguageModel, ModelConfig, param_shapes
from .params import ParamLayout

KIND = "minilstm-model"


@dataclass
class LoadedModel:
    model: LanguageModel
    vocab: Vocabulary | None
    metadata: dict                                 # everything the saver stored
    arrays: dict = field(default_factory=dict)     # arrays beyond the model's own (trainer state)


def model_arrays(model: LanguageModel) -> dict:
    arrays = {"params": model.params.data}
    arrays.update({f"buffer.{name}": value for name, value in model.buffers.items()})
    return arrays


def save_model(path, model: LanguageModel, vocab: Vocabulary | None = None, *,
               metadata: dict | None = None, arrays: dict | None = None) -> Path:
    """Write ``model`` (and ``vocab``) atomically to ``path``; extra ``metadata`` and ``arrays``
    ride along. Refuses to write non-finite parameters: a NaN checkpoint is never useful and
    would overwrite a good one."""
    if vocab is not None and len(vocab) != model.config.vocab_size:
        raise ValueError(f"save_model: vocab has {len(vocab)} tokens, but the model's vocab_size "
                         f"is {model.config.vocab_size}")
    all_arrays = model_arrays(model)
    clash = set(all_arrays) & set(arrays or {})
    if clash:
        raise ValueError(f"save_model: extra arrays {sorted(clash)} would overwrite the model's own")
    all_arrays.update(arrays or {})
    bad = nonfinite_arrays(model_arrays(model))
    if bad:
        raise ValueError(f"save_model: refusing to save {path}: {', '.join(bad)} contain NaN or Inf")
    meta = dict(metadata or {})
    meta.update(kind=KIND, model=model.config.to_dict(),
                vocab=vocab.to_dict() if vocab is not None else None)
    return save_checkpoint(path, all_arrays, meta)


def read_model_config(path) -> ModelConfig:
    """The configuration stored in a checkpoint, without reading its arrays."""
    metadata = read_header(path)["metadata"]
    if metadata.get("kind") != KIND:
        raise CheckpointError(f"checkpoint {path}: not a model checkpoint (kind="
                              f"{metadata.get('kind')!r}, expected {KIND!r})")
    try:
        return ModelConfig.from_dict(metadata["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path}: invalid model configuration: {exc}") from exc


def load_model(path) -> LoadedModel:
    """Rebuild the model (and vocabulary) saved in ``path``; every contradiction between the
    stored configuration, vocabulary and arrays is a :class:`CheckpointError`."""
    config = read_model_config(path)
    dtype = np.dtype(config.dtype)
    expected = {"params": ((ParamLayout(param_shapes(config)).size,), dtype)}
    checkpoint = load_checkpoint(path)
    arrays, metadata = dict(checkpoint.arrays), checkpoint.metadata
    for name, (shape, kind) in expected.items():
        if name not in arrays:
            raise CheckpointError(f"checkpoint {path}: array {name!r} is missing")
        if arrays[name].shape != shape or arrays[name].dtype != kind:
            raise CheckpointError(
                f"checkpoint {path}: array {name!r} is {arrays[name].dtype}{arrays[name].shape}, but the "
                f"stored configuration needs {kind}{shape}")
    model = LanguageModel(config, init=False)
    model.params.load_flat(arrays.pop("params"))
    for name, value in model.buffers.items():
        saved = arrays.pop(f"buffer.{name}", None)
        if saved is None or saved.shape != value.shape or saved.dtype != value.dtype:
            raise CheckpointError(f"checkpoint {path}: buffer {name!r} is missing or has the wrong shape")
        value[...] = saved
    vocab = None
    if metadata.get("vocab") is not None:
        try:
            vocab = Vocabulary.from_dict(metadata["vocab"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path}: invalid vocabulary: {exc}") from exc
        if len(vocab) != config.vocab_size:
            raise CheckpointError(f"checkpoint {path}: the vocabulary has {len(vocab)} tokens but the "
                                  f"model was built for {config.vocab_size}")
    return LoadedModel(model.eval(), vocab, metadata, arrays)
