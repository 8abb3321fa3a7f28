"""Fine-tuning: start a new run from a checkpoint's parameters on a different corpus, with the
vocabulary question answered explicitly.

    tune = prepare_finetune("runs/shakespeare/best.ckpt", new_text, vocab="extend")
    Trainer(tune.model, TrainConfig(lr=5e-4), *split_ids(tune.ids)[:2], vocab=tune.vocab,
            out_dir="runs/tuned").fit()

``vocab="same"`` keeps the checkpoint's vocabulary; every symbol of the new text must be in it,
otherwise :class:`FinetuneVocabularyError` lists the unknown symbols. ``vocab="extend"`` appends
the new symbols after the existing ids (``Vocabulary.extend``) and grows the model to match
(:func:`extend_model`): every old parameter is copied, and the rows and columns that belong to
the new symbols — embedding rows, one-hot input-weight rows, output-weight columns and output
biases — take the values a fresh model of the new size gets from the same seed.

What extension preserves exactly, for text made of old symbols: the embedding (or one-hot
weight) rows of the old ids, hence the hidden states; and the old ids' logits, since the output
columns of old ids are unchanged and new ids only append columns. What it cannot preserve: the
probabilities, because the softmax now also sums over the new logits, so every old probability
is scaled by the same factor 1 - P(new symbols). The distribution over the old symbols
*conditioned on emitting an old symbol* is the old distribution.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import UnknownSymbolError
from .model import LanguageModel
from .model_io import load_model

VOCAB_MODES = ("same", "extend")


class FinetuneVocabularyError(ValueError):
    """The new text has symbols outside the checkpoint's vocabulary (with ``vocab="same"``)."""

    def __init__(self, symbols: dict, path):
        self.symbols = dict(symbols)        # symbol -> count, most frequent first
        shown = ", ".join(f"{s!r} x{c}" for s, c in list(self.symbols.items())[:30])
        more = f", ... ({len(self.symbols) - 30} more)" if len(self.symbols) > 30 else ""
        super().__init__(f"fine-tuning with vocab='same': the new text has {len(self.symbols)} symbol(s) that "
                         f"the vocabulary of {path} lacks: {shown}{more}. Use vocab='extend' to add them "
                         "(the model grows to match), or clean the text")


@dataclass
class FinetuneConfig:
    init_from: str = ""            # checkpoint whose parameters start the new run ("": a freshly initialised model)
    vocab: str = "same"            # "same": the new text must fit the checkpoint's vocabulary; "extend": add its new symbols

    def __post_init__(self):
        if not isinstance(self.init_from, str):
            raise ValueError(f"FinetuneConfig.init_from: got {self.init_from!r}, expected a path string")
        if self.vocab not in VOCAB_MODES:
            raise ValueError(f"FinetuneConfig.vocab: got {self.vocab!r}, expected one of {VOCAB_MODES}")


@dataclass
class FineTune:
    model: LanguageModel     # initialised from the checkpoint (grown when the vocabulary was extended)
    vocab: object            # the vocabulary to train and save with
    ids: np.ndarray          # the new text encoded with it
    added: tuple             # symbols appended to the vocabulary (empty for "same")
    source: Path             # the checkpoint


def prepare_finetune(path, text, vocab: str = "same") -> FineTune:
    """Load ``path`` and prepare model, vocabulary and ids for training on ``text``."""
    if vocab not in VOCAB_MODES:
        raise ValueError(f"prepare_finetune: vocab is {vocab!r}, expected one of {VOCAB_MODES}")
    loaded = load_model(path)
    if loaded.vocab is None:
        raise ValueError(f"prepare_finetune: checkpoint {path} has no vocabulary; the new text cannot be encoded")
    old = loaded.vocab
    if vocab == "same":
        try:
            ids = old.encode(text)
        except UnknownSymbolError as exc:
            raise FinetuneVocabularyError(exc.symbols, path) from None
        return FineTune(loaded.model.train(), old, ids, (), Path(path))
    new = old.extend(text)
    added = new.tokens[len(old):]
    model = extend_model(loaded.model, len(new)) if added else loaded.model
    return FineTune(model.train(), new, new.encode(text), tuple(added), Path(path))


def extend_model(model: LanguageModel, vocab_size: int) -> LanguageModel:
    """A copy of ``model`` for ``vocab_size >= model.config.vocab_size`` tokens.

    Old parameters are copied into the leading block of each (possibly larger) array; the rest
    keeps the initialisation of a fresh model with the new configuration (same seed), which is
    how a model of that size would have started. Buffers (batch-norm statistics) do not depend
    on the vocabulary and are copied.
    """
    old_cfg = model.config
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size < old_cfg.vocab_size:
        raise ValueError(f"extend_model: vocab_size is {vocab_size!r}, expected an integer >= the model's "
                         f"{old_cfg.vocab_size}")
    grown = LanguageModel(dataclasses.replace(old_cfg, vocab_size=int(vocab_size)))
    for name, old in model.params.values.items():
        new = grown.params[name]
        if new.ndim != old.ndim or any(n < o for n, o in zip(new.shape, old.shape)):
            raise ValueError(f"extend_model: {name} cannot grow from {old.shape} to {new.shape}")
        new[tuple(slice(0, n) for n in old.shape)] = old
    for name, value in model.buffers.items():
        grown.buffers[name][...] = value
    return grown
