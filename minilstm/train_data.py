"""The trainer's view of the data: batches by (epoch, index), validation passes, evaluation.

Three batching modes, chosen by ``TrainConfig.batching``:

* ``"stream"`` — :class:`~minilstm.data.StreamBatches` over a 1-D id array: B contiguous
  streams, batch i+1 continuing batch i, the hidden state carried from batch to batch within an
  epoch (truncated BPTT) and reset to zeros at each epoch start.
* ``"windows"`` — :func:`~minilstm.data.random_windows` from one seeded generator, zero state
  for every batch. An epoch is ``windows_per_epoch`` batches (by default as many as cover the
  training tokens once); the generator's state is saved in checkpoints.
* ``"poems"`` — :class:`~minilstm.data.PoemBatches` (a 2-D array of padded poems, or a batcher
  built by the caller), reshuffled each epoch from (seed, epoch), zero state per batch,
  padding targets set to ``IGNORE_INDEX``.

Validation always covers the whole split (or its first ``max_batches`` batches) in a fixed
order and reports the token-weighted mean loss: the sum of every counted token's loss over the
number of counted tokens. Streams are read as B continuous streams with the state carried from
batch to batch starting from zeros; windows as consecutive non-overlapping windows of T ids
(zero state each, as in training); poems in file order.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

import numpy as np

from .data import Batch, PoemBatches, StreamBatches, random_windows

BATCHING = ("stream", "windows", "poems")


def fingerprint(array: np.ndarray) -> str:
    """SHA-256 of an id array's shape, dtype and bytes (a resumed run checks it sees the same data)."""
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


class TrainingBatches:
    """``len()`` batches per epoch; ``batch(epoch, index)``; ``carries_state``; RNG state in/out."""

    carries_state = False

    def __init__(self, mode: str, batches_per_epoch: int, source: np.ndarray):
        self.mode = mode
        self._len = batches_per_epoch
        self.source = source                 # the ids or poems, for the fingerprint

    def __len__(self) -> int:
        return self._len

    def batch(self, epoch: int, index: int) -> Batch:
        raise NotImplementedError

    def rng_state(self) -> dict | None:
        return None

    def set_rng_state(self, state: dict | None) -> None:
        """Restore what :meth:`rng_state` returned."""

    def describe(self) -> dict:
        return {"batching": self.mode, "batches_per_epoch": self._len, "train_shape": list(self.source.shape),
                "train_sha256": fingerprint(self.source)}


class _Streams(TrainingBatches):
    carries_state = True

    def __init__(self, ids, batch_size, seq_len):
        self.batches = StreamBatches(ids, batch_size, seq_len)
        super().__init__("stream", len(self.batches), ids)

    def batch(self, epoch, index):
        return self.batches[index]


class _Windows(TrainingBatches):
    def __init__(self, ids, batch_size, seq_len, seed, per_epoch):
        self.ids, self.batch_size, self.seq_len = ids, batch_size, seq_len
        self.rng = np.random.default_rng([seed, 2])
        random_windows(ids, batch_size, seq_len, np.random.default_rng(0))     # validates the sizes
        super().__init__("windows", per_epoch or max(1, (len(ids) - 1) // (batch_size * seq_len)), ids)

    def batch(self, epoch, index):
        # the next draw of the saved generator: a resumed run continues the same sequence
        return random_windows(self.ids, self.batch_size, self.seq_len, self.rng)

    def rng_state(self):
        return self.rng.bit_generator.state

    def set_rng_state(self, state):
        if state is not None:
            self.rng.bit_generator.state = state


class _Poems(TrainingBatches):
    def __init__(self, batches: PoemBatches):
        self.batches = batches
        super().__init__("poems", len(batches), batches.poems)

    def batch(self, epoch, index):
        return self.batches.batch(index, epoch)


def _ids(where: str, name: str, data, ndim: int) -> np.ndarray:
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "iu" or data.ndim != ndim:
        got = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        kind = "a 1-D integer array of token ids" if ndim == 1 else "a 2-D integer array of padded poems or a PoemBatches"
        raise ValueError(f"{where}: {name} is a {got}, expected {kind}")
    return data


def _pad_id(where: str, vocab, poems) -> int:
    if isinstance(poems, PoemBatches):
        return poems.pad_id
    if vocab is None or "pad" not in vocab.specials:
        raise ValueError(f"{where}: poems batching of a plain array needs the padding id: pass a vocab "
                         "with a 'pad' special token, or a PoemBatches built with pad_id")
    return vocab.special_id("pad")


def training_batches(mode, data, batch_size: int, seq_len: int, *, seed: int = 0,
                     windows_per_epoch: int = 0, vocab=None) -> TrainingBatches:
    """The training batches for ``mode`` (see the module docstring) over ``data``."""
    where = "Trainer"
    if mode == "stream":
        return _Streams(_ids(where, "train_data", data, 1), batch_size, seq_len)
    if mode == "windows":
        return _Windows(_ids(where, "train_data", data, 1), batch_size, seq_len, seed, windows_per_epoch)
    if mode == "poems":
        if isinstance(data, PoemBatches):
            if data.batch_size != batch_size:
                raise ValueError(f"{where}: train_data is a PoemBatches with batch_size {data.batch_size}, "
                                 f"but TrainConfig.batch_size is {batch_size}; make them agree")
            return _Poems(data)
        poems = _ids(where, "train_data", data, 2)
        return _Poems(PoemBatches(poems, batch_size, pad_id=_pad_id(where, vocab, data), seed=seed))
    raise ValueError(f"{where}: batching is {mode!r}, expected one of {BATCHING}")


@dataclass
class ValidationSet:
    """A fixed list of validation batches and whether the state runs through them."""
    batches: list
    carries_state: bool
    tokens: int          # targets that count (not IGNORE_INDEX)


def validation_set(mode, data, batch_size: int, seq_len: int, *, vocab=None, pad_id=None,
                   max_batches: int = 0) -> ValidationSet:
    """The validation batches of ``data`` for ``mode`` (see the module docstring)."""
    where = "Trainer"
    if mode in ("stream", "windows"):
        ids = _ids(where, "val_data", data, 1)
        if len(ids) < 2:
            raise ValueError(f"{where}: val_data has {len(ids)} ids; validation needs at least 2")
        if mode == "stream":
            # B streams of the whole split; fewer streams when the split is shorter than B + 1
            streams = min(batch_size, len(ids) - 1)
            T = min(seq_len, (len(ids) - 1) // streams)
            batches = list(StreamBatches(ids, streams, T, drop_last=False))
        else:
            n = len(ids) - 1
            full = n // seq_len
            inputs = ids[:full * seq_len].reshape(full, seq_len)
            targets = ids[1:full * seq_len + 1].reshape(full, seq_len)
            batches = [Batch(inputs[i:i + batch_size], targets[i:i + batch_size])
                       for i in range(0, full, batch_size)]
            if n > full * seq_len:                                  # the tail shorter than T
                batches.append(Batch(ids[None, full * seq_len:-1], ids[None, full * seq_len + 1:]))
    elif mode == "poems":
        if isinstance(data, PoemBatches):
            poems, pad = data.poems, data.pad_id
        else:
            poems = _ids(where, "val_data", data, 2)
            pad = pad_id if pad_id is not None else _pad_id(where, vocab, data)
        batches = list(PoemBatches(poems, batch_size, pad_id=pad, shuffle=False).epoch(0))
    else:
        raise ValueError(f"{where}: batching is {mode!r}, expected one of {BATCHING}")
    if max_batches:
        batches = batches[:max_batches]
    tokens = sum(int(np.count_nonzero(b.targets >= 0)) for b in batches)
    if tokens == 0:
        raise ValueError(f"{where}: val_data has no target that counts (all padding?)")
    return ValidationSet(batches, mode == "stream", tokens)


@dataclass
class Evaluation:
    loss: float          # token-weighted mean cross-entropy, nats per token
    tokens: int          # tokens that counted
    seconds: float       # wall-clock time of the pass

    @property
    def bpc(self) -> float:
        """Bits per token (per character for a character vocabulary): loss / ln 2."""
        return self.loss / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss) if self.loss < 700 else math.inf     # exp overflows past ~709


def evaluate(model, validation: ValidationSet, clock=time.perf_counter) -> Evaluation:
    """Mean validation loss of ``model`` in inference mode (no dropout, no RNG draws, batch-norm
    running statistics); the model's training flag is restored afterwards."""
    start, was_training = clock(), model.training
    model.eval()
    try:
        total, count, state = 0.0, 0, None
        for batch in validation.batches:
            _, loss, final = model.forward(batch.inputs, batch.targets, state)
            total += loss * model.tokens_in_loss       # back from the batch mean to a sum
            count += model.tokens_in_loss
            state = final if validation.carries_state else None
    finally:
        model.training = was_training
    return Evaluation(total / count, count, clock() - start)
