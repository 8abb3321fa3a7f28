"""Recording what every LSTM unit does while the model reads a text.

The values come from the model's own forward pass (``model.forward`` in eval mode followed by
``model.lstm_caches()``): the kernels that train the model also produce what is recorded, so
there is no second implementation of the LSTM to drift from the first.

Alignment: row ``t`` of every array is the layer's state *after reading* ``tokens[t]``, and
``loss[t]`` is the surprise of ``tokens[t]`` given ``tokens[:t]`` (``-log p``, nats), so a
character and its colour in the cell highlighting describe the same moment. ``loss[0]`` is NaN:
nothing predicts the first token.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from .. import core
from ..model import LanguageModel

SATURATION_GATES = ("input", "forget", "output")
ACTIVATION_FIELDS = ("input_gate", "forget_gate", "output_gate", "candidate", "cell", "tanh_cell",
                     "hidden")


@dataclass
class Recording:
    """Per-step, per-layer LSTM internals for one text (see the module docstring for alignment).

    Every activation field is a tuple with one ``(T, H_l)`` array per layer, bottom to top, in
    the model's dtype; layers may differ in width, so they are not stacked.
    """
    text: str                   # the recorded text, decoded from ``ids``
    tokens: tuple               # the T tokens (characters for a CharVocab)
    ids: np.ndarray             # (T,) int64 token ids
    input_gate: tuple           # i_t = sigma(.) in (0, 1)
    forget_gate: tuple          # f_t
    output_gate: tuple          # o_t
    candidate: tuple            # g_t = tanh(.) in (-1, 1)
    cell: tuple                 # c_t = f_t * c_{t-1} + i_t * g_t (unbounded)
    tanh_cell: tuple            # tanh(c_t), as the kernel computed it: what cell highlighting shows
    hidden: tuple               # h_t = o_t * tanh(c_t), the layer's output
    loss: np.ndarray            # (T,) float64 nats; loss[t] = -log p(tokens[t] | tokens[:t]); loss[0] = NaN

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_layers(self) -> int:
        return len(self.cell)

    @property
    def hidden_sizes(self) -> tuple:
        return tuple(a.shape[1] for a in self.cell)

    @property
    def mean_loss(self) -> float:
        """Mean surprise over the predicted tokens (all but the first), in nats."""
        return float(np.nanmean(self.loss)) if len(self) > 1 else float("nan")

    def activation(self, quantity: str, layer: int) -> np.ndarray:
        """``(T, H)`` values of ``quantity`` ("cell" = tanh(c), "hidden" = h, or a field name)."""
        name = {"cell": "tanh_cell", "hidden": "hidden"}.get(quantity, quantity)
        if name not in ACTIVATION_FIELDS:
            raise ValueError(f"Recording.activation: quantity={quantity!r}, expected 'cell', 'hidden' "
                             f"or one of {ACTIVATION_FIELDS}")
        if not 0 <= layer < self.num_layers:
            raise ValueError(f"Recording.activation: layer={layer!r}, expected 0..{self.num_layers - 1}")
        return getattr(self, name)[layer]


def record(model: LanguageModel, vocab, text: str, *, chunk: int = 512,
           unknown: str = "error") -> Recording:
    """Run ``model`` over ``text`` and record every gate, cell and hidden state and each token's loss.

    The text is processed in chunks of ``chunk`` tokens with the LSTM state carried from one to
    the next, so the forward pass never holds more than one chunk's caches and logits; the result
    equals one pass over the whole text. ``unknown`` is passed to ``vocab.encode``: "error"
    (default) raises the vocabulary's ``UnknownSymbolError`` for symbols outside it, "skip" drops
    them (the recorded ``text`` is then the text without them).

    The model runs in eval mode (no dropout) and is put back in the mode it was in. Each forward
    replaces the model's pending backward pass, so do not call this between a training forward
    and its backward. Memory: the recording holds 7*T*sum(H) floats of the model's dtype (plus
    the forward pass's caches and logits for one chunk).
    """
    check_model_and_vocab("record", model, vocab)
    if not isinstance(text, str):
        raise TypeError(f"record: text must be a str, got {type(text).__name__}")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"record: chunk={chunk!r}, expected a positive integer (tokens per forward pass)")
    ids = np.asarray(vocab.encode(text, unknown=unknown), dtype=np.int64)
    if len(ids) == 0:
        raise ValueError("record: text is empty (after encoding), expected at least one token")
    T = len(ids)
    fields = {name: tuple(np.empty((T, H), model.dtype) for H in model.config.hidden_sizes)
              for name in ACTIVATION_FIELDS}
    loss = np.full(T, np.nan)
    with evaluating(model):
        state = None
        for start in range(0, T, chunk):
            stop = min(start + chunk, T)
            state = _record_chunk(model, ids, start, stop, state, fields, loss)
    tokens = tuple(vocab.token_of(int(i)) for i in ids)
    return Recording(text=vocab.decode(ids), tokens=tokens, ids=ids, loss=loss, **fields)


def _record_chunk(model, ids, start, stop, state, fields, loss):
    """Forward ``ids[start:stop]`` from ``state``; copy the caches into ``fields`` rows start..stop
    and the losses of the tokens these steps predict (``ids[start+1 : stop+1]``) into ``loss``."""
    logits, _, state = model.forward(ids[None, start:stop], state=state)
    for layer, cache in enumerate(model.lstm_caches()):
        H = cache.c.shape[2]
        gates = cache.gates[:, 0, :]                              # (T, 4H), order [i, f, o, g]
        for k, name in enumerate(("input_gate", "forget_gate", "output_gate", "candidate")):
            fields[name][layer][start:stop] = gates[:, k * H:(k + 1) * H]
        fields["cell"][layer][start:stop] = cache.c[:, 0, :]
        fields["tanh_cell"][layer][start:stop] = cache.tanh_c[:, 0, :]
        fields["hidden"][layer][start:stop] = cache.h[:, 0, :]
    predicted = ids[start + 1:stop + 1]                            # one short at the end of the text
    if len(predicted):
        loss[start + 1:start + 1 + len(predicted)] = core.cross_entropy_per_token(
            logits[0, :len(predicted)], predicted)
    return state


@contextlib.contextmanager
def evaluating(model: LanguageModel):
    """Run the block with ``model`` in eval mode (no dropout), then restore its mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        if was_training:
            model.train()


def check_model_and_vocab(where, model, vocab):
    if not isinstance(model, LanguageModel):
        raise TypeError(f"{where}: model must be a minilstm LanguageModel, got {type(model).__name__}")
    if vocab is not None and len(vocab) != model.config.vocab_size:
        raise ValueError(f"{where}: vocab has {len(vocab)} tokens, but the model's vocab_size is "
                         f"{model.config.vocab_size} (the vocabulary saved with the checkpoint belongs to it)")


def gate_saturation(recording: Recording, low: float = 0.1, high: float = 0.9) -> list:
    """How often each unit's gates sit near 0 or 1 (Karpathy et al. 2015, section 4.3).

    Returns one dict per layer, ``{"input" | "forget" | "output": (left, right)}``, where
    ``left`` (H,) is the fraction of steps the gate is below ``low`` (left-saturated: the gate is
    closed) and ``right`` (H,) the fraction above ``high`` (right-saturated: open).
    """
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"gate_saturation: low={low!r}, high={high!r}, expected 0 <= low < high <= 1")
    result = []
    for layer in range(recording.num_layers):
        per_gate = {}
        for gate in SATURATION_GATES:
            values = recording.activation(f"{gate}_gate", layer)
            per_gate[gate] = (np.mean(values < low, axis=0), np.mean(values > high, axis=0))
        result.append(per_gate)
    return result
