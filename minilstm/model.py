"""The language model: embedding (or one-hot) -> L stacked LSTM layers -> optional dense head ->
linear -> softmax, with one contract used by the trainer and the sampler:

    logits, loss, state = model.forward(ids, targets=None, state=None)
    model.backward()          # adds d loss / d params into model.params.grad
    loss, state = model.forward_backward(ids, targets, state=None)   # the two, as a step runs them

``ids`` and ``targets`` are batch-major (B, T) integer arrays; ``state`` is a list with one
``(h, c)`` pair of (B, H_l) arrays per layer (``None`` = zeros) and the returned state is the
final one, to carry into the next batch (truncated BPTT). ``logits`` is a (B, T, V) view.
Internally everything is time-major; the change happens once, here.

``backward`` calls the core kernels in exactly the reverse order of ``forward`` and holds no
maths of its own: each line quotes the forward line it undoes.

Two equivalent ways into the first LSTM layer, chosen for speed, with identical results:
- embedding then projection, ``emb = E[ids]; xw = emb @ Wx``: T*B*E*4H multiply-adds;
- the folded table, ``xw = (E @ Wx)[ids]``: V*E*4H, cheaper whenever V < T*B (65 characters
  against 6,400 tokens in a batch), and its backward is a scatter-add plus two small products.
One-hot input is the fold with E = identity: ``xw = Wx[ids]``.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from types import SimpleNamespace

import numpy as np

from . import core, parallel
from .core._check import id_array
from .params import ParamLayout, Parameters, normal, uniform

INPUT_MODES = ("embedding", "onehot")
HEAD_NORMS = ("none", "layer", "batch")


@dataclass
class ModelConfig:
    vocab_size: int = 65                  # V: number of distinct tokens
    input_mode: str = "embedding"         # "embedding" (learned vectors) or "onehot" (char-rnn)
    embedding_dim: int = 64               # E: embedding width (unused for one-hot input)
    hidden_sizes: tuple = (512,)          # H of each LSTM layer, bottom to top (L = its length)
    dropout: float = 0.0                  # dropout on every LSTM layer's output
    embedding_dropout: float = 0.0        # dropout on the embedding vectors
    head_hidden: int = 0                  # width of an optional dense ReLU layer before the output
    head_norm: str = "none"               # normalisation in that head: "none", "layer", "batch"
    head_dropout: float = 0.0             # dropout after the head's ReLU
    tie_weights: bool = False             # output layer reuses the embedding table (sizes must match)
    forget_bias: float = 1.0              # initial forget-gate bias (Jozefowicz et al. 2015)
    dtype: str = "float32"                # "float32" for training, "float64" for gradient checks
    seed: int = 0                         # seed of the parameter initialisation

    def __post_init__(self):
        self.hidden_sizes = tuple(int(h) for h in np.atleast_1d(self.hidden_sizes))
        self.validate()

    def validate(self) -> None:
        def bad(name, expected):
            raise ValueError(f"ModelConfig.{name}: got {getattr(self, name)!r}, expected {expected}")
        if not isinstance(self.vocab_size, (int, np.integer)) or self.vocab_size < 2:
            bad("vocab_size", "an integer >= 2")
        if self.input_mode not in INPUT_MODES:
            bad("input_mode", f"one of {INPUT_MODES}")
        if self.input_mode == "embedding" and self.embedding_dim < 1:
            bad("embedding_dim", "a positive integer")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            bad("hidden_sizes", "one positive size per layer, e.g. (512, 512)")
        for name in ("dropout", "embedding_dropout", "head_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                bad(name, "a probability in [0, 1)")
        if self.head_hidden < 0:
            bad("head_hidden", "0 (no dense head) or a positive width")
        if self.head_norm not in HEAD_NORMS:
            bad("head_norm", f"one of {HEAD_NORMS}")
        if self.head_norm != "none" and not self.head_hidden:
            bad("head_norm", "'none' unless head_hidden > 0 (the norm belongs to the dense head)")
        if self.dtype not in ("float32", "float64"):
            bad("dtype", "'float32' or 'float64'")
        if self.tie_weights:
            if self.input_mode != "embedding":
                bad("tie_weights", "False with one-hot input (there is no embedding table to tie)")
            if self.output_input_size != self.embedding_dim:
                bad("tie_weights", f"False unless the output layer's input width "
                    f"({self.output_input_size}) equals embedding_dim ({self.embedding_dim})")

    @property
    def num_layers(self) -> int:
        return len(self.hidden_sizes)

    @property
    def output_input_size(self) -> int:
        return self.head_hidden or self.hidden_sizes[-1]

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"ModelConfig: unknown fields {sorted(unknown)}")
        return cls(**values)


def param_shapes(cfg: ModelConfig) -> dict:
    """Name -> shape of every trainable array, in the order of the flat buffer."""
    shapes, V = {}, cfg.vocab_size
    if cfg.input_mode == "embedding":
        shapes["embed.weight"] = (V, cfg.embedding_dim)
    width = cfg.embedding_dim if cfg.input_mode == "embedding" else V
    for layer, H in enumerate(cfg.hidden_sizes):
        shapes[f"lstm{layer}.Wx"] = (width, 4 * H)
        shapes[f"lstm{layer}.Wh"] = (H, 4 * H)
        shapes[f"lstm{layer}.b"] = (4 * H,)
        width = H
    if cfg.head_hidden:
        shapes["head.W"] = (width, cfg.head_hidden)
        shapes["head.b"] = (cfg.head_hidden,)
        if cfg.head_norm != "none":
            shapes["head.norm.gamma"] = (cfg.head_hidden,)
            shapes["head.norm.beta"] = (cfg.head_hidden,)
        width = cfg.head_hidden
    if not cfg.tie_weights:
        shapes["out.W"] = (width, V)
    shapes["out.b"] = (V,)
    return shapes


class LanguageModel:
    """Stacked-LSTM language model over one flat parameter buffer (``self.params``)."""

    def __init__(self, config: ModelConfig, init: bool = True):
        config.validate()
        self.config = config
        self.dtype = np.dtype(config.dtype)
        self.params = Parameters(ParamLayout(param_shapes(config)), self.dtype)
        self.buffers = {}      # non-trained state saved with the model (batch-norm statistics)
        if config.head_norm == "batch":
            self.buffers["head.norm.running_mean"] = np.zeros(config.head_hidden, self.dtype)
            self.buffers["head.norm.running_var"] = np.ones(config.head_hidden, self.dtype)
        self.training = True
        self.dropout_rng = np.random.default_rng([config.seed, 1])   # explicit, saved on resume
        self._tape = None
        self.tokens_in_loss = 0     # targets counted by the last forward's loss
        self._threads = None        # batch shards side by side (minilstm.parallel); None: automatic
        self._team = None           # set on a shard's replica while its team shares LSTM layers
        if init:
            self.initialize(np.random.default_rng(config.seed))

    # ------------------------------------------------------------------ set-up
    def initialize(self, rng: np.random.Generator) -> None:
        """PyTorch's defaults: LSTM and linear weights U(-1/sqrt(fan), 1/sqrt(fan)), embedding
        N(0, 1), norm gain 1 and shift 0; then the forget-gate bias set to ``forget_bias``."""
        for name, value in self.params.values.items():
            if name == "embed.weight":
                value[...] = normal(rng, value.shape, 1.0, self.dtype)
            elif name.startswith("lstm"):
                H = self.config.hidden_sizes[int(name[4:name.index(".")])]
                value[...] = uniform(rng, value.shape, 1.0 / np.sqrt(H), self.dtype)
                if name.endswith(".b"):
                    value[H:2 * H] = self.config.forget_bias     # gate order [i, f, o, g]
            elif name in ("head.W", "out.W"):
                value[...] = uniform(rng, value.shape, 1.0 / np.sqrt(value.shape[0]), self.dtype)
            elif name in ("head.b", "out.b"):
                fan_in = self.params["head.W"].shape[0] if name == "head.b" else self.config.output_input_size
                value[...] = uniform(rng, value.shape, 1.0 / np.sqrt(fan_in), self.dtype)
            elif name == "head.norm.gamma":
                value[...] = 1.0
            else:                                                 # head.norm.beta
                value[...] = 0.0

    def train(self) -> "LanguageModel":
        self.training = True
        return self

    def eval(self) -> "LanguageModel":
        self.training = False
        return self

    def replica(self) -> "LanguageModel":
        """A model that shares this one's parameter values and buffers but has its own gradient
        buffer, tape and dropout generator: one shard of a data-parallel step."""
        other = copy.copy(self)
        other.params = self.params.sharing_values()
        other.dropout_rng = np.random.default_rng(0)   # reseeded from ours at each sharded step
        other._tape = None
        other._shard_replicas = None
        other._shard_team = None
        other._threads = 1
        return other

    @property
    def threads(self) -> int | None:
        """Up to how many shards of a batch ``forward`` and ``backward`` compute side by side, one
        thread each (``minilstm.parallel``): None (the default) picks one per core where that is
        known to pay, 1 computes the whole batch on this thread (BLAS's threads share products)."""
        return self._threads

    @threads.setter
    def threads(self, value) -> None:
        self._threads = parallel.check_threads(value)

    def zero_grad(self) -> None:
        self.params.zero_grad()

    @property
    def num_parameters(self) -> int:
        return self.params.count

    def initial_state(self, batch_size: int) -> list:
        return [(np.zeros((batch_size, H), self.dtype), np.zeros((batch_size, H), self.dtype))
                for H in self.config.hidden_sizes]

    def _check_state(self, state, B, where):
        if state is None:
            return self.initial_state(B)
        if len(state) != self.config.num_layers:
            raise ValueError(f"{where}: state has {len(state)} layers, expected "
                             f"{self.config.num_layers} (one (h, c) pair per layer)")
        for layer, ((h, c), H) in enumerate(zip(state, self.config.hidden_sizes)):
            for name, a in (("h", h), ("c", c)):
                if np.shape(a) != (B, H):
                    raise ValueError(f"{where}: state[{layer}].{name} has shape "
                                     f"{np.shape(a)}, expected (B, H) = ({B}, {H})")
        return state

    def _folds_embedding(self, T, B) -> bool:
        return self.config.input_mode == "embedding" and (
            self.config.vocab_size < T * B and (self.config.embedding_dropout == 0 or not self.training))

    # ------------------------------------------------------------------ forward
    def _checked_batch(self, where, ids, state):
        """ids as a (B, T) id array, the state checked (zeros for None), and the shard count."""
        ids = id_array(where, "ids", ids, self.config.vocab_size, dims=[("B", None), ("T", None)])
        return ids, self._check_state(state, ids.shape[0], where), parallel.shard_count(self, ids.shape[0])

    def forward(self, ids, targets=None, state=None, ignore_index=core.IGNORE_INDEX):
        ids, state, shards = self._checked_batch("LanguageModel.forward", ids, state)
        if shards > 1:                                  # the batch in shards, one thread each
            return parallel.forward(self, ids, targets, state, shards, ignore_index)
        return self._forward("LanguageModel.forward", ids, targets, state, ignore_index)

    def _forward(self, where, ids, targets, state, ignore_index):
        """``forward`` of a checked batch on this thread."""
        cfg, P = self.config, self.params
        B, T = ids.shape
        train, rng = self.training, self.dropout_rng
        tape = SimpleNamespace(ids=np.ascontiguousarray(ids.T), B=B, T=T, layers=[], dlogits=None)
        tape.fold = self._folds_embedding(T, B)
        # first LSTM layer's input projection xw = x @ Wx0 (see the module notes)
        H0 = cfg.hidden_sizes[0]
        rows = None          # the recurrence reads xw[rows[t]] from a (V, 4H) table when set
        if cfg.input_mode == "onehot":
            xw, rows = P["lstm0.Wx"], tape.ids                                   # onehot @ Wx0
        elif tape.fold:
            xw = core.linear_forward(P["embed.weight"], P["lstm0.Wx"])           # E @ Wx0
            rows = tape.ids                                                      # rows of it
        else:
            emb = core.embedding_forward(tape.ids, P["embed.weight"])             # E[ids]
            tape.emb, tape.emb_mask = core.dropout_forward(emb, cfg.embedding_dropout, rng, train)
            xw = core.linear_forward(tape.emb.reshape(T * B, -1), P["lstm0.Wx"]).reshape(T, B, 4 * H0)
        new_state = []
        for layer in range(cfg.num_layers):
            Wh, b = P[f"lstm{layer}.Wh"], P[f"lstm{layer}.b"]
            team = parallel.layer_team(self, layer)     # shards sharing this layer's time loop
            if layer == 0:
                h, final, cache = core.lstm_recurrence_forward(xw, *state[0], Wh, b, ids=rows, team=team)
            else:
                h, final, cache = core.lstm_forward(h, *state[layer], P[f"lstm{layer}.Wx"], Wh, b, team=team)
            h, mask = core.dropout_forward(h, cfg.dropout, rng, train)
            tape.layers.append((cache, mask))
            new_state.append(final)
        z = h.reshape(T * B, -1)
        if cfg.head_hidden:
            tape.head_in = z
            a = core.linear_forward(z, P["head.W"], P["head.b"])
            if cfg.head_norm == "layer":
                a, tape.norm = core.layer_norm_forward(a, P["head.norm.gamma"], P["head.norm.beta"])
            elif cfg.head_norm == "batch":
                a, tape.norm = core.batch_norm_forward(
                    a, P["head.norm.gamma"], P["head.norm.beta"], self.buffers["head.norm.running_mean"],
                    self.buffers["head.norm.running_var"], training=train)
            tape.relu = core.relu_forward(a)
            z, tape.head_mask = core.dropout_forward(tape.relu, cfg.head_dropout, rng, train)
        tape.out_in = z
        W_out = P["embed.weight"] if cfg.tie_weights else P["out.W"]
        logits = core.linear_forward(z, W_out, P["out.b"], transposed=cfg.tie_weights)
        loss = None
        if targets is not None:
            targets = np.asarray(targets)
            if targets.shape != (B, T):
                raise ValueError(f"{where}: targets has shape {targets.shape}, expected (B, T) = ({B}, {T})")
            loss, tape.dlogits, tape.count = core.softmax_cross_entropy(
                logits, np.ascontiguousarray(targets.T).reshape(-1), ignore_index, need_grad=train)
        self.tokens_in_loss = tape.count if targets is not None else 0
        self._tape = tape
        return logits.reshape(T, B, -1).transpose(1, 0, 2), loss, new_state

    def lstm_caches(self) -> list:
        """Each layer's ``core.LSTMCache`` from the last forward: post-activation gates
        [i, f, o, g], cell states, tanh of the cells and hidden states, all (T, B, .), exactly as
        the kernels computed them (for analysis; the next forward or backward drops them)."""
        if self._tape is None:
            raise RuntimeError("LanguageModel.lstm_caches: run forward first (backward clears them)")
        if isinstance(self._tape, parallel.ShardedTape):
            return parallel.joined_caches(self._tape)
        return [cache for cache, _ in self._tape.layers]

    # ------------------------------------------------------------------ backward
    def forward_backward(self, ids, targets, state=None, ignore_index=core.IGNORE_INDEX):
        """``forward(ids, targets, state)`` then ``backward()``, as a training step runs them:
        adds d(mean loss)/d(params) into ``params.grad`` and returns ``(loss, final state)``.
        The same numbers as the two calls. The batch's shards (``minilstm.parallel``) each run
        their forward and backward back to back on one thread, so the threads meet once per
        step instead of twice, and the logits are never joined into one array."""
        if not self.training:
            raise RuntimeError("LanguageModel.forward_backward: the model is in eval mode; call train() first")
        if targets is None:
            raise ValueError("LanguageModel.forward_backward: targets is None, expected (B, T) target ids")
        where = "LanguageModel.forward_backward"
        ids, state, shards = self._checked_batch(where, ids, state)
        if shards > 1:
            _, loss, new_state = parallel.forward(self, ids, targets, state, shards, ignore_index, backward=True)
        else:
            _, loss, new_state = self._forward(where, ids, targets, state, ignore_index)
            self.backward()
        return loss, new_state

    def backward(self) -> None:
        """Adds d(mean loss)/d(params) into ``params.grad``; needs a training-mode forward with targets."""
        tape = self._tape
        if tape is None or tape.dlogits is None:
            raise RuntimeError("LanguageModel.backward: call forward(ids, targets) in training mode first")
        if isinstance(tape, parallel.ShardedTape):
            return parallel.backward(self)              # each shard's backward, then the sum
        cfg, P, G = self.config, self.params, self.params.grads
        T, B = tape.T, tape.B
        tied = cfg.tie_weights
        # logits = linear(z, W_out, out.b)
        dz = core.linear_backward(tape.dlogits, tape.out_in, P["embed.weight"] if tied else P["out.W"],
                                  G["embed.weight"] if tied else G["out.W"], G["out.b"], transposed=tied)
        if cfg.head_hidden:
            dz = core.dropout_backward(dz, tape.head_mask)                     # z = dropout(relu)
            dz = core.relu_backward(dz, tape.relu)                             # relu = relu(a)
            if cfg.head_norm == "layer":                                       # a = layer_norm(a)
                dz = core.layer_norm_backward(dz, tape.norm, G["head.norm.gamma"], G["head.norm.beta"])
            elif cfg.head_norm == "batch":                                     # a = batch_norm(a)
                dz = core.batch_norm_backward(dz, tape.norm, G["head.norm.gamma"], G["head.norm.beta"])
            dz = core.linear_backward(dz, tape.head_in, P["head.W"], G["head.W"], G["head.b"])
        dh = dz.reshape(T, B, -1)
        for layer in reversed(range(cfg.num_layers)):
            cache, mask = tape.layers[layer]
            dh = core.dropout_backward(dh, mask)                               # h = dropout(h)
            Wh, b = G[f"lstm{layer}.Wh"], G[f"lstm{layer}.b"]
            if layer == 0:                                                     # the recurrence
                dxw, _, _ = core.lstm_recurrence_backward(dh, None, None, cache, Wh, b)
            else:                                                              # h = lstm(h_below)
                dh, _, _ = core.lstm_backward(dh, None, None, cache, G[f"lstm{layer}.Wx"], Wh, b)
        if cfg.input_mode == "onehot":                                         # xw = Wx0[ids]
            core.embedding_backward(dxw, tape.ids, G["lstm0.Wx"])
        elif tape.fold:
            dtable = np.zeros((cfg.vocab_size, dxw.shape[2]), self.dtype)
            core.embedding_backward(dxw, tape.ids, dtable)                     # xw = table[ids]
            dE = core.linear_backward(dtable, P["embed.weight"], P["lstm0.Wx"], G["lstm0.Wx"])
            G["embed.weight"] += dE        # table = E @ Wx0 (E may also feed a tied output)
        else:
            demb = core.linear_backward(dxw.reshape(T * B, -1), tape.emb.reshape(T * B, -1),
                                        P["lstm0.Wx"], G["lstm0.Wx"])          # xw = emb @ Wx0
            demb = core.dropout_backward(demb.reshape(T, B, -1), tape.emb_mask)
            core.embedding_backward(demb, tape.ids, G["embed.weight"])         # emb = E[ids]
        self._tape = None      # the caches are large; a second backward would be a bug anyway
