"""From ids to the ``(B, T)`` batches the model trains on; splits into train/validation/test.

Three ways to batch, one :class:`Batch` type (``inputs``, ``targets``: batch-major ``(B, T)``,
``targets`` the next id after each input):

* :class:`StreamBatches` — stateful streams (char-rnn, stateful Keras). The ids are cut into B
  contiguous streams laid side by side; batch i holds columns ``i*T .. (i+1)*T`` of every
  stream, so batch i+1 continues exactly where batch i stopped and the hidden state can be
  carried across batches (truncated BPTT sees the text in order). The layout is reshaped once
  and every batch is a view; no randomness, so resuming is indexing.
* :func:`random_windows` — independent windows at random offsets (nanoGPT), drawn from a
  ``numpy.random.Generator`` the caller passes in.
* :class:`PoemBatches` — one padded poem per row, reshuffled each epoch from ``(seed, epoch)``;
  padding in ``targets`` is replaced by :data:`IGNORE_INDEX` so the loss skips it.

Both batch classes share ``len(batches)`` (batches per epoch), ``batches.batch(i, epoch)`` and
``batches.epoch(epoch, start=i)``, so a trainer can store "epoch, batch index" and resume.
Ids stay in the corpus' small unsigned dtype; nothing is one-hot encoded.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..core._check import positive_int
from ..core.loss import IGNORE_INDEX   # the target value the loss skips: one definition for both sides


class Batch(NamedTuple):
    inputs: np.ndarray    # (B, T) ids
    targets: np.ndarray   # (B, T) next ids; IGNORE_INDEX where excluded from the loss


class Splits(NamedTuple):
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def _integer_array(where: str, name: str, value, ndim: int) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{where}: {name} must be a numpy array of ids, got {type(value).__name__}")
    if value.dtype.kind not in "iu" or value.ndim != ndim:
        raise ValueError(f"{where}: {name} has dtype {value.dtype} and shape {value.shape}, "
                         f"expected a {ndim}-D integer array")
    if value.dtype.kind == "i" and value.size and value.min() < 0:
        raise ValueError(f"{where}: {name} holds negative ids (smallest {int(value.min())})")
    return value


class StreamBatches:
    """Stateful-stream batches of ``ids`` (see the module docstring).

    Stream b is ``ids[b*S : (b+1)*S]`` with ``S = (len(ids) - 1) // batch_size``; batch i is
    ``inputs[:, i*T:(i+1)*T]`` and ``targets`` the same shifted by one id. A final batch
    shorter than T is dropped (``drop_last=True``) or kept with fewer columns.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, *, drop_last: bool = True):
        ids = np.ascontiguousarray(_integer_array("StreamBatches", "ids", ids, 1))
        self.batch_size = positive_int("StreamBatches", "batch_size", batch_size)
        self.seq_len = positive_int("StreamBatches", "seq_len", seq_len)
        needed = self.batch_size * self.seq_len + 1
        if len(ids) < needed:
            raise ValueError(f"StreamBatches: {len(ids)} ids are too few for batch_size={batch_size} and "
                             f"seq_len={seq_len}: one batch needs at least batch_size*seq_len+1 = {needed}")
        self.stream_length = (len(ids) - 1) // self.batch_size
        used = self.batch_size * self.stream_length
        self._inputs = ids[:used].reshape(self.batch_size, self.stream_length)       # views, no copy
        self._targets = ids[1:used + 1].reshape(self.batch_size, self.stream_length)
        columns = self.stream_length / self.seq_len
        self._len = math.floor(columns) if drop_last else math.ceil(columns)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> Batch:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"StreamBatches: batch index must be an integer, got {i!r}")
        j = int(i) + (self._len if i < 0 else 0)
        if not 0 <= j < self._len:
            raise IndexError(f"StreamBatches: batch index {i} is outside 0..{self._len - 1}")
        columns = slice(j * self.seq_len, (j + 1) * self.seq_len)
        return Batch(self._inputs[:, columns], self._targets[:, columns])

    def batch(self, i: int, epoch: int = 0) -> Batch:
        """Batch ``i``; every epoch is the same pass over the streams."""
        return self[i]

    def epoch(self, epoch: int = 0, start: int = 0):
        """Iterate over the batches from index ``start`` (resuming mid-epoch)."""
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or not 0 <= start <= self._len:
            raise ValueError(f"StreamBatches: start must be an integer in 0..{self._len}, got {start!r}")
        return (self[i] for i in range(start, self._len))

    def __iter__(self):
        return self.epoch(0)

    def stream(self, b: int) -> np.ndarray:
        """The inputs of stream ``b`` over one epoch (the batches' rows ``b``, concatenated)."""
        return self._inputs[b, :min(self._len * self.seq_len, self.stream_length)]


def random_windows(ids: np.ndarray, batch_size: int, seq_len: int, rng: np.random.Generator) -> Batch:
    """``batch_size`` windows of ``seq_len`` ids at uniform random offsets (targets shifted by one).

    ``rng`` is required (a ``numpy.random.Generator``): the caller owns, seeds and saves it.
    """
    ids = _integer_array("random_windows", "ids", ids, 1)
    batch_size = positive_int("random_windows", "batch_size", batch_size)
    seq_len = positive_int("random_windows", "seq_len", seq_len)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"random_windows: rng must be a numpy.random.Generator "
                        f"(np.random.default_rng(seed)), got {type(rng).__name__}")
    if len(ids) < seq_len + 1:
        raise ValueError(f"random_windows: {len(ids)} ids are too few for seq_len={seq_len}: "
                         f"a window needs at least seq_len+1 = {seq_len + 1}")
    starts = rng.integers(0, len(ids) - seq_len, size=batch_size)
    windows = np.lib.stride_tricks.sliding_window_view(ids, seq_len + 1)[starts]   # (B, T+1) copy
    return Batch(windows[:, :-1], windows[:, 1:])


class PoemBatches:
    """Batches of whole front-padded poems (rows of ``poems``, shape ``(N, L)``).

    Inputs are ``row[:-1]``, targets ``row[1:]`` as int32 with every padding target set to
    ``ignore_index``; a batch of padding only has only ``ignore_index`` targets. Poems are
    reshuffled each epoch by ``np.random.default_rng([seed, epoch])`` (``shuffle=False`` keeps
    file order). ``trim`` drops the columns that are padding in every row of a batch (keeping
    at least one). The last, smaller batch is kept unless ``drop_last``.
    """

    def __init__(self, poems: np.ndarray, batch_size: int, *, pad_id: int, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = False, trim: bool = True,
                 ignore_index: int = IGNORE_INDEX):
        self.poems = _integer_array("PoemBatches", "poems", poems, 2)
        self.batch_size = positive_int("PoemBatches", "batch_size", batch_size)
        if poems.shape[1] < 2:
            raise ValueError(f"PoemBatches: poems have shape {poems.shape}, rows need at least 2 ids")
        needed = self.batch_size if drop_last else 1
        if len(poems) < needed:
            raise ValueError(f"PoemBatches: {len(poems)} poems are too few for batch_size={batch_size} "
                             f"with drop_last={drop_last}: at least {needed} needed")
        for name, value in (("pad_id", pad_id), ("seed", seed), ("ignore_index", ignore_index)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"PoemBatches: {name} must be an integer, got {value!r}")
        if ignore_index >= 0:
            raise ValueError(f"PoemBatches: ignore_index must be negative (it must not be a real id), got {ignore_index}")
        self.pad_id, self.seed, self.ignore_index = int(pad_id), int(seed), int(ignore_index)
        self.shuffle, self.trim = shuffle, trim
        count = len(poems) / self.batch_size
        self._len = math.floor(count) if drop_last else math.ceil(count)

    @classmethod
    def from_corpus(cls, corpus, batch_size: int, **kwargs) -> "PoemBatches":
        """Batches of a :class:`~.tang.PoemCorpus` (its padding id)."""
        return cls(corpus.poems, batch_size, pad_id=corpus.pad_id, **kwargs)

    def __len__(self) -> int:
        return self._len

    def order(self, epoch: int) -> np.ndarray:
        """The poem order of ``epoch`` (the same for the same seed and epoch)."""
        if not self.shuffle:
            return np.arange(len(self.poems))
        return np.random.default_rng([self.seed, int(epoch)]).permutation(len(self.poems))

    def batch(self, i: int, epoch: int = 0) -> Batch:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < self._len:
            raise IndexError(f"PoemBatches: batch index {i!r} is outside 0..{self._len - 1}")
        return self._make(self.order(epoch), i)

    def epoch(self, epoch: int = 0, start: int = 0):
        """Iterate over the batches of ``epoch`` from index ``start``."""
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or not 0 <= start <= self._len:
            raise ValueError(f"PoemBatches: start must be an integer in 0..{self._len}, got {start!r}")
        order = self.order(epoch)
        return (self._make(order, i) for i in range(start, self._len))

    def _make(self, order: np.ndarray, i: int) -> Batch:
        block = self.poems[order[i * self.batch_size:(i + 1) * self.batch_size]]   # (B, L) copy
        if self.trim:
            text = block != self.pad_id
            first = np.where(text.any(axis=1), text.argmax(axis=1), block.shape[1])
            block = block[:, min(int(first.min()), block.shape[1] - 2):]
        targets = block[:, 1:].astype(np.int32)
        targets[block[:, 1:] == self.pad_id] = self.ignore_index
        return Batch(block[:, :-1], targets)


def _split_bounds(where: str, n: int, fractions) -> tuple[int, int]:
    """Cut points of ``n`` items for (train, val, test) fractions; empty requested splits are errors."""
    try:
        train, val, test = (float(f) for f in fractions)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: fractions must be three numbers (train, val, test), got {fractions!r}") from None
    # 1e-9: decimal fractions such as 0.7 + 0.2 + 0.1 sum to 1 only up to rounding
    if min(train, val, test) < 0 or train == 0 or abs(train + val + test - 1) > 1e-9:
        raise ValueError(f"{where}: fractions must be >= 0 with train > 0 and sum to 1, got {fractions!r}")
    first = round(n * train)
    second = n if test == 0 else round(n * (train + val))
    for name, fraction, size in (("train", train, first), ("validation", val, second - first),
                                 ("test", test, n - second)):
        if fraction > 0 and size == 0:
            off = " (or a 0 fraction to turn validation off)" if name == "validation" else ""
            raise ValueError(f"{where}: the {name} split of {n} items with fraction {fraction} is empty; "
                             f"use more data or a larger fraction{off}")
    return first, second


def split_ids(ids: np.ndarray, fractions=(0.9, 0.1, 0.0)) -> Splits:
    """Split a token sequence by position: train first, then validation, then test (views)."""
    ids = _integer_array("split_ids", "ids", ids, 1)
    first, second = _split_bounds("split_ids", len(ids), fractions)
    return Splits(ids[:first], ids[first:second], ids[second:])


def split_poems(poems: np.ndarray, fractions=(0.9, 0.1, 0.0), seed: int = 0) -> Splits:
    """Split poems (rows) at random by ``seed``; each split keeps the file order of its poems."""
    poems = _integer_array("split_poems", "poems", poems, 2)
    first, second = _split_bounds("split_poems", len(poems), fractions)
    order = np.random.default_rng(seed).permutation(len(poems))
    return Splits(*(poems[np.sort(part)] for part in (order[:first], order[first:second], order[second:])))
