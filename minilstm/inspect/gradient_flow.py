"""Gradient flow through time: how much of the loss's gradient reaches states far in the past.

For a window of T tokens, L is the summed loss of the last ``last`` predictions. The quantity
measured at distance d is the gradient of L with respect to the state (h, c) that step T-d hands
to step T-d+1 — what truncated BPTT carries between batches. Its size against d shows whether
the past can still be credited for the loss: an LSTM's additive cell path
(``c_t = f_t * c_{t-1} + i_t * g_t``) keeps it alive over many steps, a vanilla tanh recurrence
multiplies it by ``Wh.T * tanh'`` at every step and loses it (Bengio et al. 1994; Hochreiter &
Schmidhuber 1997; Pascanu et al. 2013).

The LSTM's gradients come from the library's kernels: one ``model.forward`` over the windows,
then the cached steps are sliced out and run backward one step at a time through
``lstm_backward`` / ``lstm_recurrence_backward``, each step handing its ``(dh0, dc0)`` to the
previous step as ``(dhT, dcT)``; that yields the state gradient at every step and sums to the
same parameter gradients as one full BPTT call (``tests/test_inspect.py`` checks both).

The vanilla RNN (:class:`VanillaRNN`) is the contrast only: a plain NumPy, float64, one-layer
tanh recurrence written here for this comparison, never trained.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import core
from ..model import LanguageModel
from .recording import check_model_and_vocab, evaluating


@dataclass
class GradientFlow:
    """State-gradient norms against the distance from the last loss position.

    ``dh[l]`` and ``dc[l]`` are (windows, T) arrays for layer l: entry ``[w, d-1]`` is
    ``||dL/dh||`` (or ``||dL/dc||``) of window w's state d steps before the last prediction.
    ``dc`` is ``None`` for a model without a cell (the vanilla RNN).
    """
    label: str
    distance: np.ndarray          # (T,) 1..T
    dh: list
    dc: list | None

    def quartiles(self, which: str = "dh", layer: int = 0) -> np.ndarray:
        """(3, T): the 25th, 50th and 75th percentile over windows at each distance."""
        norms = getattr(self, which)[layer]
        return np.percentile(norms, [25, 50, 75], axis=0)

    def summary(self, distances=(1, 10, 50, 100)) -> dict:
        """Median norms at a few distances, for printing and JSON: {layer: {which: {d: value}}}."""
        out = {}
        for layer in range(len(self.dh)):
            entry = {}
            for which in ("dh", "dc") if self.dc is not None else ("dh",):
                median = self.quartiles(which, layer)[1]
                entry[which] = {int(d): float(median[d - 1]) for d in distances if d <= len(median)}
            out[layer] = entry
        return out


# ----------------------------------------------------------------------------- LSTM, via the kernels

def slice_cache(cache: core.LSTMCache, start: int, stop: int) -> core.LSTMCache:
    """Steps ``start..stop-1`` of a whole-sequence cache as a cache of their own (views): its
    initial state is the state step ``start`` received."""
    h0 = cache.h0 if start == 0 else cache.h[start - 1]
    c0 = cache.c0 if start == 0 else cache.c[start - 1]
    x = None if cache.x is None else cache.x[start:stop]
    return cache._replace(gates=cache.gates[start:stop], c=cache.c[start:stop],
                          tanh_c=cache.tanh_c[start:stop], h=cache.h[start:stop], h0=h0, c0=c0, x=x)


def lstm_state_gradients(caches, dh_top, grads=None):
    """Backpropagate through a stack of LSTM layers one time step at a time with the kernels.

    ``caches``: one whole-sequence :class:`core.LSTMCache` per layer (bottom to top, layers above
    the first with their input ``x``), e.g. ``model.lstm_caches()``; ``dh_top`` (T, B, H_top): the
    gradient on the top layer's outputs. ``grads``: optional list of ``(dWx, dWh, db)`` per layer
    (``dWx`` None for the first) that parameter gradients are **added** into, as the kernels do.

    Returns ``(dh, dc)``: per layer, (T, B, H) arrays whose row t is dL/d(h, c) of the state that
    step t received (row 0: the initial state). Row T-1 is the gradient carried from the final step.
    """
    T, B, _ = dh_top.shape
    if grads is None:
        grads = [(None if l == 0 else np.zeros_like(cache.Wx), np.zeros_like(cache.Wh),
                  np.zeros_like(cache.b)) for l, cache in enumerate(caches)]
    dh_state = [np.zeros((T, B, cache.c.shape[2]), cache.c.dtype) for cache in caches]
    dc_state = [np.zeros_like(a) for a in dh_state]
    carried = [(np.zeros_like(a[0]), np.zeros_like(a[0])) for a in dh_state]   # from step t+1
    for t in range(T - 1, -1, -1):
        upstream = dh_top[t:t + 1]
        for layer in reversed(range(len(caches))):
            step = slice_cache(caches[layer], t, t + 1)
            dWx, dWh, db = grads[layer]
            dhT, dcT = carried[layer]
            if layer == 0:                       # the recurrence: its input gradient is not needed
                _, dh0, dc0 = core.lstm_recurrence_backward(upstream, dhT, dcT, step, dWh, db)
            else:                                # h = lstm(h_below): dx is the layer below's upstream
                upstream, dh0, dc0 = core.lstm_backward(upstream, dhT, dcT, step, dWx, dWh, db)
            carried[layer] = (dh0, dc0)
            dh_state[layer][t], dc_state[layer][t] = dh0, dc0
    return dh_state, dc_state


def output_gradient(model: LanguageModel, z: np.ndarray, logits: np.ndarray, targets: np.ndarray):
    """dL/dz for the output layer's input ``z`` (N, H_top), where L is the **sum** of the losses
    of the rows whose target is not ``core.IGNORE_INDEX``; ``logits`` (N, V) from the model's
    forward. Follows ``model.backward``'s kernels through the optional dense head (eval mode:
    dropout is the identity, batch norm uses its running statistics)."""
    cfg, P = model.config, model.params
    _, dlogits, count = core.softmax_cross_entropy(logits, targets, need_grad=True)
    dlogits *= count                                   # mean -> sum over the counted rows
    tied = cfg.tie_weights
    W_out = "embed.weight" if tied else "out.W"
    scratch = {name: np.zeros_like(P[name]) for name in P.names()     # parameter gradients: unused
               if name == W_out or name.startswith(("head.", "out."))}
    out_in = z
    if cfg.head_hidden:                                # rebuild the head's forward caches
        a = core.linear_forward(z, P["head.W"], P["head.b"])
        if cfg.head_norm == "layer":
            a, norm = core.layer_norm_forward(a, P["head.norm.gamma"], P["head.norm.beta"])
        elif cfg.head_norm == "batch":
            a, norm = core.batch_norm_forward(a, P["head.norm.gamma"], P["head.norm.beta"],
                                              model.buffers["head.norm.running_mean"].copy(),
                                              model.buffers["head.norm.running_var"].copy(), training=False)
        out_in = core.relu_forward(a)
    dz = core.linear_backward(dlogits, out_in, P[W_out], scratch[W_out], scratch["out.b"],
                              transposed=tied)         # logits = linear(out_in, W_out, out.b)
    if cfg.head_hidden:
        dz = core.relu_backward(dz, out_in)            # out_in = relu(a)
        if cfg.head_norm != "none":                    # a = norm(a)
            backward = core.layer_norm_backward if cfg.head_norm == "layer" else core.batch_norm_backward
            dz = backward(dz, norm, scratch["head.norm.gamma"], scratch["head.norm.beta"])
        dz = core.linear_backward(dz, z, P["head.W"], scratch["head.W"], scratch["head.b"])
    return dz


def lstm_window_gradients(model: LanguageModel, windows: np.ndarray, last: int = 1):
    """State gradients of ``model`` over ``windows`` (W, T+1) of token ids, from a zero state:
    inputs are the first T columns, L the summed loss of predicting the last ``last`` columns.
    Returns ``(dh, dc)`` as :func:`lstm_state_gradients` does (per layer, (T, W, H))."""
    inputs, targets = _split_windows("lstm_window_gradients", windows, last)
    W, T = inputs.shape
    with evaluating(model):
        logits, _, _ = model.forward(inputs)
        caches = model.lstm_caches()
    logits_tm = np.ascontiguousarray(logits.transpose(1, 0, 2)).reshape(T * W, -1)
    top = caches[-1].h                                         # (T, W, H): the output layer's input
    dz = output_gradient(model, top.reshape(T * W, -1), logits_tm, targets.T.reshape(-1))
    return lstm_state_gradients(caches, dz.reshape(top.shape))


def lstm_gradient_flow(model: LanguageModel, windows: np.ndarray, last: int = 1,
                       label: str = "LSTM") -> GradientFlow:
    """:class:`GradientFlow` of :func:`lstm_window_gradients` (same arguments)."""
    dh, dc = lstm_window_gradients(model, windows, last)
    return GradientFlow(label, np.arange(1, dh[0].shape[0] + 1), [_norms_by_distance(a) for a in dh],
                        [_norms_by_distance(a) for a in dc])


def _split_windows(where, windows, last):
    windows = np.asarray(windows)
    if windows.ndim != 2 or windows.shape[1] < 2 or windows.dtype.kind not in "iu":
        raise ValueError(f"{where}: windows has shape {windows.shape} dtype {windows.dtype}, "
                         "expected (W, T+1) integer token ids with T >= 1")
    T = windows.shape[1] - 1
    if isinstance(last, bool) or not isinstance(last, (int, np.integer)) or not 1 <= last <= T:
        raise ValueError(f"{where}: last={last!r}, expected 1..T = 1..{T} final positions in the loss")
    targets = windows[:, 1:].astype(np.int64)
    targets[:, :T - last] = core.IGNORE_INDEX
    return np.ascontiguousarray(windows[:, :-1]), targets


def _norms_by_distance(state_grads):
    """(T, W, H) state gradients indexed by step -> (W, T) norms indexed by distance - 1.
    Row t is the state step t received, t steps after the window start: distance T - t."""
    return np.linalg.norm(state_grads.astype(np.float64), axis=2).T[:, ::-1].copy()


# ----------------------------------------------------------------------------- the contrast

class VanillaRNN:
    """A one-layer tanh RNN language model in plain float64 NumPy, for contrast only.

    ``h_t = tanh(onehot(x_t) @ Wx + h_{t-1} @ Wh + b)``, ``logits_t = h_t @ Wo + bo``, every
    weight drawn from U(-1/sqrt(H), 1/sqrt(H)) (PyTorch's ``nn.RNN`` default). Never trained.
    """

    def __init__(self, vocab_size: int, hidden: int, rng: np.random.Generator):
        bound = 1.0 / np.sqrt(hidden)
        def draw(*shape):
            return rng.uniform(-bound, bound, size=shape)
        self.Wx, self.Wh, self.b = draw(vocab_size, hidden), draw(hidden, hidden), draw(hidden)
        self.Wo, self.bo = draw(hidden, vocab_size), draw(vocab_size)

    def forward(self, inputs: np.ndarray, h0: np.ndarray | None = None) -> np.ndarray:
        """Hidden states (T, B, H) for time-major ``inputs`` (T, B)."""
        T, B = inputs.shape
        h = np.empty((T, B, self.Wh.shape[0]))
        prev = np.zeros((B, self.Wh.shape[0])) if h0 is None else h0
        for t in range(T):
            prev = h[t] = np.tanh(self.Wx[inputs[t]] + prev @ self.Wh + self.b)
        return h

    def loss(self, inputs, targets, h0=None) -> float:
        """Summed loss over the counted (not ignored) targets, both time-major (T, B)."""
        h = self.forward(inputs, h0)
        logits = h.reshape(-1, h.shape[2]) @ self.Wo + self.bo
        return float(core.cross_entropy_per_token(logits, targets.reshape(-1)).sum())

    def state_gradients(self, inputs, targets, h0=None) -> np.ndarray:
        """(T, B, H): row t is dL/dh of the state step t received (L as in :meth:`loss`)."""
        h = self.forward(inputs, h0)
        T, B, H = h.shape
        logits = h.reshape(T * B, H) @ self.Wo + self.bo
        _, dlogits, count = core.softmax_cross_entropy(logits, targets.reshape(-1))
        dh_out = ((dlogits * count) @ self.Wo.T).reshape(T, B, H)    # logits = h @ Wo + bo
        grads, carried = np.empty_like(h), np.zeros((B, H))
        for t in range(T - 1, -1, -1):
            da = (dh_out[t] + carried) * (1.0 - h[t] * h[t])       # h = tanh(a)
            carried = grads[t] = da @ self.Wh.T                     # a = ... + h_prev @ Wh
        return grads


def rnn_gradient_flow(rnn: VanillaRNN, windows: np.ndarray, last: int = 1,
                      label: str = "vanilla tanh RNN") -> GradientFlow:
    inputs, targets = _split_windows("rnn_gradient_flow", windows, last)
    dh = rnn.state_gradients(inputs.T.astype(np.int64), np.ascontiguousarray(targets.T))
    return GradientFlow(label, np.arange(1, inputs.shape[1] + 1), [_norms_by_distance(dh)], None)


# ----------------------------------------------------------------------------- the public entry

def sample_windows(ids, window: int, count: int, rng) -> np.ndarray:
    """``count`` windows of ``window + 1`` consecutive ids at random starts: (count, window + 1)."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ValueError(f"sample_windows: ids has shape {ids.shape} dtype {ids.dtype}, expected 1-D integers")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"sample_windows: window={window!r}, expected a positive integer")
    if len(ids) < window + 1:
        raise ValueError(f"sample_windows: the text has {len(ids)} tokens, expected at least "
                         f"window + 1 = {window + 1}")
    rng = np.random.default_rng(rng)
    starts = rng.integers(0, len(ids) - window, size=count)
    return np.stack([ids[s:s + window + 1] for s in starts]).astype(np.int64)


def gradient_flow(model: LanguageModel, ids, *, window: int = 100, windows: int = 16, last: int = 1,
                  rng=0, contrast: bool = True) -> list:
    """Gradient flow through time for ``model``, the same architecture freshly initialised and
    (``contrast=True``) a vanilla tanh RNN as wide as the model's top layer, all on the same
    ``windows`` random windows of ``window`` tokens from ``ids``. Returns a list of
    :class:`GradientFlow` (trained, untrained, [RNN]) for :func:`~.plots.plot_gradient_flow`."""
    check_model_and_vocab("gradient_flow", model, None)
    if isinstance(windows, bool) or not isinstance(windows, (int, np.integer)) or windows < 1:
        raise ValueError(f"gradient_flow: windows={windows!r}, expected a positive integer")
    rng = np.random.default_rng(rng)
    batch = sample_windows(ids, window, windows, rng)
    fresh = LanguageModel(model.config)          # the configuration's own initialisation
    flows = [lstm_gradient_flow(model, batch, last, "trained LSTM"),
             lstm_gradient_flow(fresh, batch, last, "untrained LSTM")]
    if contrast:
        rnn = VanillaRNN(model.config.vocab_size, model.config.hidden_sizes[-1], rng)
        flows.append(rnn_gradient_flow(rnn, batch, last, "vanilla tanh RNN (untrained)"))
    return flows
