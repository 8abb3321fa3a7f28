"""Text generation: priming, temperature / top-k / top-p / greedy / beam search, repetition
penalty, stop tokens and strings, n samples at once, acrostic and poem-shaped verse, streaming.

    sampler = Sampler(model, vocab)
    for piece in sampler.stream(SampleConfig(prompt="ROMEO:", length=500, temperature=0.8)):
        print(piece, end="", flush=True)

The prompt is run through the model as one sequence; then tokens are produced by the compiled
loop of ``core.generate`` in chunks (no Python per token) and yielded as text as each chunk
completes. A seed fixes the output: the same checkpoint and seed give the same text in any
process, with or without the JIT (all arithmetic of the sampling path is done in a fixed order,
see ``core/step.py``, and the random numbers come from ``core.rng``), whatever the number of
threads that generate together (``sample_team.py``; :func:`default_threads`).
"""
from __future__ import annotations

import math
import time
import unicodedata
import weakref
from dataclasses import dataclass, fields
from typing import Iterator

import numpy as np

from .core import backend
from .core.generate import assist, generate, prime
from .core.lstm_team import own_columns
from .core.rng import seed_state
from .core.matvec import PANEL, block_edges, column_panels, matvec_rows
from .core.step import HEAD_AFFINE, HEAD_DENSE, HEAD_LAYER_NORM, HEAD_NONE, forward_token
from .data import UnknownSymbolError
from .parallel import available_threads
from .sample_team import SampleTeam

# Each compiled call generates a chunk of tokens, and streaming yields after each. A call is
# sized to take about CHUNK_SECONDS at the speed measured so far (priming's, for the first), so
# the text comes steadily whatever the model's size, and the cost of a call (0.05-0.1 ms with a
# team of threads: waking the helpers and hearing back) stays near 1 %.
CHUNK_SECONDS = 0.01


def chunk_size(seconds: float, tokens: int, limit: int) -> int:
    """Tokens for the next call, when ``tokens`` took ``seconds``: CHUNK_SECONDS' worth, from 1
    to ``limit``."""
    if tokens <= 0 or seconds <= 0:
        return limit
    return int(min(max(CHUNK_SECONDS * tokens / seconds, 1), limit))


NEVER_GENERATED = ("pad", "start", "unk")     # specials a model should never emit
LINE_ENDS = "。！？!?."                          # default line ends for acrostic verse


class SamplingError(RuntimeError):
    """The model produced NaN or infinite logits; no token was emitted for that position."""


@dataclass
class SampleConfig:
    prompt: str = ""                  # text that primes the state (not generated)
    length: int = 500                 # tokens to generate after the prompt
    temperature: float = 1.0          # divides the logits: < 1 sharper, > 1 flatter
    top_k: int = 0                    # keep only the k most likely tokens (0: off)
    top_p: float = 1.0                # nucleus: smallest set with this much probability (1: off)
    greedy: bool = False              # always the most likely token
    beam: int = 1                     # beam width; > 1 runs beam search (deterministic)
    length_penalty: float = 1.0       # beam score = log p / ((5 + len) / 6) ** this (Wu et al. 2016)
    repetition_penalty: float = 1.0   # > 1 discourages tokens already generated (CTRL's rule)
    stop: tuple = ()                  # stop strings; one-token ones (e.g. "<EOP>") stop in the loop
    n: int = 1                        # independent samples generated together
    seed: int = 0                     # -1 draws a fresh seed (reported in Sampler.last_seed)
    unknown: str = "error"            # prompt symbols outside the vocabulary: error, map or skip
    acrostic: str = ""                # head characters: line k starts with the k-th one
    poem_line: int = 0                # poem shape: characters per line (5 or 7; 0: free text)
    poem_lines: int = 4               # poem shape: number of lines
    include_prompt: bool = False      # start the returned text with the prompt
    chunk: int = 1024                 # most tokens per compiled call (streaming yields after each;
                                      #   a call is sized to take about CHUNK_SECONDS)

    def __post_init__(self):
        self.stop = tuple(self.stop) if not isinstance(self.stop, str) else (self.stop,)
        self.validate()

    def validate(self) -> None:
        def bad(name, expected):
            raise ValueError(f"SampleConfig.{name}: got {getattr(self, name)!r}, expected {expected}")
        finite = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)  # noqa: E731
        integer = lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool)  # noqa: E731
        if not finite(self.temperature) or self.temperature <= 0:
            bad("temperature", "a finite number > 0 (use greedy=True for the most likely token)")
        if not integer(self.top_k) or self.top_k < 0:
            bad("top_k", "an integer >= 1, or 0 for no top-k filtering")
        if not finite(self.top_p) or not 0 < self.top_p <= 1:
            bad("top_p", "a number in (0, 1]")
        if not integer(self.length) or self.length < 0:
            bad("length", "an integer >= 0")
        for name in ("n", "beam", "chunk", "poem_lines"):
            if not integer(getattr(self, name)) or getattr(self, name) < 1:
                bad(name, "an integer >= 1")
        if not finite(self.repetition_penalty) or self.repetition_penalty <= 0:
            bad("repetition_penalty", "a finite number > 0 (1: off)")
        if not finite(self.length_penalty) or self.length_penalty < 0:
            bad("length_penalty", "a finite number >= 0")
        if not integer(self.seed) or self.seed < -1:
            bad("seed", "a non-negative integer, or -1 for a random one")
        if self.unknown not in ("error", "map", "skip"):
            bad("unknown", "'error', 'map' or 'skip'")
        if self.poem_line not in (0, 5, 7):
            bad("poem_line", "0 (free text), 5 or 7")
        if self.beam > 1 and (self.acrostic or self.poem_line or self.n > 1):
            bad("beam", "1 when acrostic, poem_line or n > 1 is used (beam search is for free text)")


# ----------------------------------------------------------------------------- model layout

@dataclass
class ModelPlan:
    """The model rearranged for the generation kernels (see ``core/step.py``)."""
    weights: np.ndarray    # flat, the model's dtype
    layers: np.ndarray     # (L, 6) int64: H, D, input table/Wx offset, Wh offset, b offset,
                           #   state offset
    edges: np.ndarray      # (L, members + 1) int64: layer l's block p owns units edges[l, p:p + 2]
    head: np.ndarray       # (8,) int64: kind, K, W, b, scale, shift, output W, output b offsets
    eps: float             # layer-norm epsilon
    state_width: int       # S = sum of H
    vocab_size: int

    @property
    def members(self) -> int:
        """Threads that generate together (one block of every layer each; 1: alone)."""
        return self.edges.shape[1] - 1


# Weights per Wh from which a team of threads pays. Measured on 2 cores, microseconds per token,
# a team of 2 (LEAD 16) against one thread, medians of 7: H=64 L=1 2.53 against 2.63, L=2 3.89
# against 4.81; H=128 L=1 3.44 against 5.01 (4.08 against 5.48 in another run), L=2 8.25
# against 12.55. From H=128 (2^16 weights) on, then; at H=64 one layer gains nothing.
PARALLEL_MIN_WEIGHTS = 1 << 16
# Member 0 computes the logits and chooses each token while the others start the next token's
# first-layer product, so its block of the first layer is this many units shorter. Per token,
# lead 16 against 0 (2 threads, medians of 5-7): H=512 L=1 27.9 against 30.1 us; H=512 L=2
# 84.8 against 84.5; H=256 9.70 against 9.83; H=192 7.75 against 7.61 (32 was worse at H=512).
LEAD = 16
MIN_UNITS_PER_MEMBER = 64      # more threads than H / 64 would each get too little to repay a meeting


def default_threads(model, min_weights: int = PARALLEL_MIN_WEIGHTS) -> int:
    """How many threads generate together by default: on the numba build, the cores this process
    may use (``parallel.available_threads``) when some layer has a Wh of ``min_weights`` entries
    or more, at most one per MIN_UNITS_PER_MEMBER units of the widest layer; else 1."""
    sizes = model.config.hidden_sizes
    if backend() != "numba" or max(H * 4 * H for H in sizes) < min_weights:
        return 1
    return max(1, min(available_threads(), max(sizes) // MIN_UNITS_PER_MEMBER))


def team_edges(H: int, members: int, lead: int = 0) -> np.ndarray:
    """The unit edges of a layer of H units cut into one block per member (``matvec.
    block_edges``: near equal, on multiples of PANEL / 4 = 16 units, so that a block's gate
    columns are whole panels), member 0's block ``lead`` units shorter (rounded down to 16; it
    is also the one that computes the logits and chooses the token)."""
    unit = PANEL // 4
    edges = [block_edges(H, members, p)[0] for p in range(members)] + [H]
    if members > 1:
        edges[1] = max(0, edges[1] - lead // unit * unit)
    return np.array(edges, dtype=np.int64)


def block_major_columns(edges) -> np.ndarray:
    """The column order of a layer cut into blocks of hidden units at ``edges`` (``core.step``):
    block by block, each block's gates [i, f, o, g] for its own units. Entry m is the model's
    column that becomes column m; with one block it is the identity."""
    H = int(edges[-1])
    return np.concatenate([own_columns(H, int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])]).astype(np.int64)


def plan_model(model, threads: int | None = None, min_weights: int = PARALLEL_MIN_WEIGHTS,
               lead: int = LEAD) -> ModelPlan:
    """Lay ``model`` out for the generation kernels, for a team of ``threads`` threads (default
    :func:`default_threads`): every layer is cut into one block of hidden units per thread
    (:func:`team_edges`; in the first layer member 0's is ``lead`` units shorter), its columns in
    :func:`block_major_columns` order. Every matrix the kernels multiply by is stored in column
    panels (``core.matvec``); the first layer's lookup table row-major. The text is the same
    whatever the threads (every output sees the same operations in the same order)."""
    cfg, P = model.config, model.params
    members = default_threads(model, min_weights) if threads is None else int(threads)
    if members < 1:
        raise ValueError(f"plan_model: threads must be >= 1, got {threads!r}")
    dtype = model.dtype
    blocks, offset = [], 0

    def put(array, panels=False):
        nonlocal offset
        if panels:
            array = column_panels(array)
        start = offset
        blocks.append(np.ascontiguousarray(array, dtype=dtype).reshape(-1))
        offset += blocks[-1].size
        return start

    rows, edges, state = [], [], 0
    for layer, H in enumerate(cfg.hidden_sizes):
        edges.append(team_edges(H, members, lead if layer == 0 else 0))
        order = block_major_columns(edges[-1])
        if layer == 0:
            Wx = P["lstm0.Wx"]
            if cfg.input_mode == "embedding":   # E @ Wx in the kernels' fixed order
                table = np.zeros((cfg.vocab_size, 4 * H), dtype)
                matvec_rows(np.ascontiguousarray(P["embed.weight"]), Wx, table)
                off_in, D = put(table[:, order]), cfg.embedding_dim
            else:
                off_in, D = put(Wx[:, order]), cfg.vocab_size
        else:
            off_in, D = put(P[f"lstm{layer}.Wx"][:, order], panels=True), cfg.hidden_sizes[layer - 1]
        rows.append([H, D, off_in, put(P[f"lstm{layer}.Wh"][:, order], panels=True),
                     put(P[f"lstm{layer}.b"][order]), state])
        state += H
    kind, K, off_w, off_hb, off_scale, off_shift = HEAD_NONE, 0, 0, 0, 0, 0
    if cfg.head_hidden:
        K = cfg.head_hidden
        off_w, off_hb = put(P["head.W"], panels=True), put(P["head.b"])
        kind = HEAD_DENSE
        if cfg.head_norm == "layer":
            kind, off_scale, off_shift = HEAD_LAYER_NORM, put(P["head.norm.gamma"]), put(P["head.norm.beta"])
        elif cfg.head_norm == "batch":       # inference batch norm is the affine map a*s + t
            scale = P["head.norm.gamma"] / np.sqrt(model.buffers["head.norm.running_var"] + 1e-5)
            shift = P["head.norm.beta"] - model.buffers["head.norm.running_mean"] * scale
            kind, off_scale, off_shift = HEAD_AFFINE, put(scale), put(shift)
    out_W = P["embed.weight"].T if cfg.tie_weights else P["out.W"]
    head = [kind, K, off_w, off_hb, off_scale, off_shift, put(out_W, panels=True), put(P["out.b"])]
    return ModelPlan(np.concatenate(blocks), np.array(rows, dtype=np.int64), np.array(edges, dtype=np.int64),
                     np.array(head, dtype=np.int64), 1e-5, state, cfg.vocab_size)


# ----------------------------------------------------------------------------- sampler

class Sampler:
    """Generates text from ``model`` (any LanguageModel) with ``vocab`` (its vocabulary)."""

    def __init__(self, model, vocab):
        if len(vocab) != model.config.vocab_size:
            raise ValueError(f"Sampler: vocab has {len(vocab)} tokens, the model expects "
                             f"{model.config.vocab_size}")
        self.model, self.vocab = model, vocab
        self.plan = plan_model(model)
        self._team = SampleTeam(1)
        self.last_seed = None
        V = len(vocab)
        self._never = np.zeros(V, dtype=bool)
        for name in NEVER_GENERATED:
            if name in vocab.specials:
                self._never[vocab.specials[name]] = True

    # -- prompt -----------------------------------------------------------------------
    def encode_prompt(self, prompt: str, unknown: str = "error") -> np.ndarray:
        """Prompt ids; an empty prompt becomes the start token, else a newline, else id 0."""
        if prompt:
            try:
                ids = np.asarray(self.vocab.encode(prompt, unknown=unknown), dtype=np.int64)
            except UnknownSymbolError as exc:     # the same error, saying where the symbols were
                raise UnknownSymbolError(exc.symbols, len(self.vocab), where="prompt") from None
            if ids.size:
                return ids
        for candidate in (self.vocab.specials.get("start"), self._id_or_none("\n")):
            if candidate is not None:
                return np.array([candidate], dtype=np.int64)
        return np.zeros(1, dtype=np.int64)

    def _id_or_none(self, token):
        try:
            return self.vocab.id_of(token)
        except (KeyError, ValueError):
            return None

    def _seed(self, seed: int) -> int:
        if seed == -1:
            seed = int(np.random.SeedSequence().entropy % (2**62))
        self.last_seed = seed
        return seed

    # -- the compiled loop ---------------------------------------------------------------
    def _masks(self, cfg: SampleConfig):
        V = len(self.vocab)
        allowed = ~self._never
        stop = np.zeros(V, dtype=bool)
        for text in cfg.stop:
            token = self._single_token(text)
            if token is not None:
                stop[token] = True
        punct = np.array([_is_punctuation(self.vocab.token_of(v)) for v in range(V)], dtype=bool)
        specials = np.zeros(V, dtype=bool)
        specials[list(self.vocab.specials.values())] = True
        allowed_line = allowed & ~punct & ~specials
        line_end = np.array([self.vocab.token_of(v) in LINE_ENDS for v in range(V)], dtype=bool)
        return allowed, allowed_line, stop, line_end

    def _single_token(self, text):
        if text in self.vocab.specials:                       # a special's name, e.g. "eop"
            return self.vocab.specials[text]
        try:
            ids = self.vocab.encode(text, unknown="error")
        except (UnknownSymbolError, ValueError):
            return self._id_or_none(text)                     # a special's token, e.g. "<EOP>"
        return int(ids[0]) if len(ids) == 1 else None

    def _poem_ids(self, cfg):
        if not cfg.poem_line:
            return -1, -1
        comma, period = self._id_or_none("，"), self._id_or_none("。")
        if comma is None or period is None:
            raise ValueError("SampleConfig.poem_line: the vocabulary has no '，' and '。' for verse lines")
        return comma, period

    def token_chunks(self, cfg: SampleConfig) -> Iterator[np.ndarray]:
        """Yield (n, k) arrays of generated ids (-1 after a sequence finished), chunk by chunk."""
        plan, V, n = self.plan, len(self.vocab), cfg.n
        dtype = plan.weights.dtype
        prompt = self.encode_prompt(cfg.prompt, cfg.unknown)
        heads = (np.asarray(self.vocab.encode(cfg.acrostic, unknown="error"), dtype=np.int64)
                 if cfg.acrostic else np.zeros(0, dtype=np.int64))
        comma, period = self._poem_ids(cfg)
        allowed, allowed_line, stop, line_end = self._masks(cfg)
        # The numpy build runs every block on this thread: its threads would take turns on the
        # interpreter lock (the same plan, the same text).
        team = self._team_of(plan.members if backend() == "numba" else 1)
        started = time.perf_counter()
        h1, c1, logits1 = self._prime(prompt, team)
        size = chunk_size(time.perf_counter() - started, len(prompt), cfg.chunk)
        h2 = np.repeat(h1[None], 2, axis=0).repeat(n, axis=1)     # (2, n, S): h_{t-1}, h_t
        c, logits = np.repeat(c1, n, axis=0), np.repeat(logits1, n, axis=0)
        xw_buf, u_buf, z_buf = (np.empty(n * self._widest(), dtype) for _ in range(3))
        tokens = np.full(n, prompt[-1], dtype=np.int64)
        seen = np.zeros((n, V), dtype=bool)
        finished = np.zeros(n, dtype=bool)
        progress = np.zeros((n, 3), dtype=np.int64)
        rng = seed_state(self._seed(cfg.seed))
        p = np.empty(V, dtype=np.float64)
        members, remaining = team.members, cfg.length
        while remaining > 0 and not finished.all():
            steps = min(size, remaining)
            out = np.full((n, steps), -1, dtype=np.int64)

            def lead(sync):
                return generate(members, plan.weights, plan.layers, plan.edges, plan.head, plan.eps,
                                tokens, h2, c, xw_buf, u_buf, z_buf, logits, steps, out,
                                float(cfg.temperature), int(cfg.top_k), float(cfg.top_p),
                                bool(cfg.greedy), float(cfg.repetition_penalty), seen, allowed,
                                allowed_line, stop, finished, rng, p, heads, line_end,
                                int(cfg.poem_line), int(cfg.poem_lines), comma, period, progress, sync)

            def helper(m, sync):
                assist(m, members, plan.weights, plan.layers, plan.edges, V, tokens, h2, c, xw_buf,
                       u_buf, sync)

            started = time.perf_counter()
            done, bad = team.run(lead, helper)
            size = chunk_size(time.perf_counter() - started, done, cfg.chunk)
            if bad == -2:
                raise RuntimeError("Sampler: a generation thread stopped the team")
            if bad >= 0:
                raise SamplingError(f"the model's logits for sample {bad} contain NaN or Inf at "
                                    f"generated position {cfg.length - remaining + done}; stopped")
            yield out[:, :done]
            remaining -= done

    def _team_of(self, members: int) -> SampleTeam:
        """The team of ``members`` threads this sampler generates with, kept from call to call
        (its helper threads wait, idle, in between): starting threads for every call measured
        as much as a few hundred tokens take at H=128."""
        if self._team.members != members:
            self._team.close()
            self._team = SampleTeam(members)
            weakref.finalize(self, self._team.close)
        return self._team

    def _widest(self) -> int:
        """Scratch elements per sequence the step kernels need: the widest 4H or dense head."""
        return int(max(4 * self.plan.layers[:, 0].max(), self.plan.head[1] + 1))

    def _prime(self, prompt: np.ndarray, team: SampleTeam | None = None):
        """h, c (1, S) and logits (1, V) after running ``prompt`` from the zero state, by
        ``team`` (default: this thread alone, every block in order)."""
        plan = self.plan
        dtype = plan.weights.dtype
        h = np.zeros((1, plan.state_width), dtype)
        c, logits = np.zeros_like(h), np.zeros((1, plan.vocab_size), dtype)
        outs = np.empty((len(prompt), plan.state_width), dtype)
        u = np.empty((len(prompt), 4 * int(plan.layers[:, 0].max())), dtype)
        args = (plan.weights, plan.layers, plan.edges, plan.head, plan.eps, prompt, h, c, logits, outs, u)
        team = team or SampleTeam(1)
        ok = team.run(lambda sync: prime(0, team.members, *args, sync),
                      lambda m, sync: prime(m, team.members, *args, sync))
        if not ok:
            raise RuntimeError("Sampler: a generation thread stopped the team")
        return h, c, logits

    # -- text -------------------------------------------------------------------------------
    def stream(self, cfg: SampleConfig) -> Iterator[str]:
        """Yield the text of sample 0 piece by piece as it is generated (requires n == 1)."""
        if cfg.n != 1:
            raise ValueError(f"Sampler.stream: n must be 1 for streaming, got {cfg.n} (use generate)")
        if cfg.beam > 1:
            yield self.beam_search(cfg)
            return
        if cfg.include_prompt and cfg.prompt:
            yield cfg.prompt
        pieces = _StopStrings(cfg.stop, self)
        previous = None
        for chunk in self.token_chunks(cfg):
            ids = [int(t) for t in chunk[0] if t >= 0]
            text = self._decode_continuing(previous, ids)
            previous = ids[-1] if ids else previous
            text, stopped = pieces.feed(text)
            if text:
                yield text
            if stopped:
                return

    def generate(self, cfg: SampleConfig) -> list:
        """All n samples as strings."""
        if cfg.beam > 1:
            return [self.beam_search(cfg)]
        ids = [[] for _ in range(cfg.n)]
        for chunk in self.token_chunks(cfg):
            for i in range(cfg.n):
                ids[i].extend(int(t) for t in chunk[i] if t >= 0)
        texts = []
        for row in ids:
            text, _ = _StopStrings(cfg.stop, self).feed(self._decode(row))
            texts.append((cfg.prompt if cfg.include_prompt else "") + text)
        return texts

    def _decode(self, ids) -> str:
        return self.vocab.decode(ids, skip_specials=True)

    def _decode_continuing(self, previous, ids) -> str:
        """Text of ``ids`` as it continues a text ending in token ``previous`` (word vocabularies
        put separators between tokens, so decode with the previous token and cut its text)."""
        if previous is None:
            return self._decode(ids)
        return self._decode([previous] + ids)[len(self._decode([previous])):]

    # -- beam search ------------------------------------------------------------------------
    def beam_search(self, cfg: SampleConfig) -> str:
        """Beam search of width ``cfg.beam`` with GNMT length normalisation; returns the best text."""
        plan, V, W = self.plan, len(self.vocab), cfg.beam
        dtype = plan.weights.dtype
        prompt = self.encode_prompt(cfg.prompt, cfg.unknown)
        h1, c1, logits1 = self._prime(prompt)
        allowed, _, stop, _ = self._masks(cfg)
        beams = [(0.0, [], h1[0], c1[0], logits1[0])]
        finished = []
        widest = self._widest()
        norm = lambda logp, length: logp / (((5 + length) / 6) ** cfg.length_penalty)  # noqa: E731
        for length in range(1, cfg.length + 1):
            candidates = []
            for score, ids, h, c, logits in beams:
                z = logits.astype(np.float64) / cfg.temperature
                if not np.all(np.isfinite(z)):
                    raise SamplingError(f"the model's logits contain NaN or Inf at beam step {length}")
                z = np.where(allowed, z, -np.inf)
                logp = z - (z.max() + np.log(np.cumsum(np.exp(z - z.max()))[-1]))
                for v in np.argsort(-logp, kind="stable")[:W]:
                    candidates.append((score + logp[v], ids + [int(v)], h, c))
            candidates.sort(key=lambda cand: -norm(cand[0], len(cand[1])))
            beams = []
            for score, ids, h, c in candidates:
                if stop[ids[-1]]:
                    finished.append((norm(score, len(ids)), ids))
                elif len(beams) < W:
                    beams.append((score, ids, h, c))
            if not beams or len(finished) >= W:
                break
            tokens = np.array([ids[-1] for _, ids, _, _ in beams], dtype=np.int64)
            h = np.stack([b[2] for b in beams]).astype(dtype)
            c = np.stack([b[3] for b in beams]).astype(dtype)
            logits = np.empty((len(beams), V), dtype)
            n = len(beams)
            h_next = np.empty_like(h)
            forward_token(plan.weights, plan.layers, plan.edges, plan.head, plan.eps, tokens, h, h_next, c,
                          *(np.empty(n * widest, dtype) for _ in range(3)), logits)
            beams = [(s, ids, h_next[k], c[k], logits[k]) for k, (s, ids, _, _) in enumerate(beams)]
        finished.extend((norm(s, len(ids)), ids) for s, ids, *_ in beams)
        best = max(finished, key=lambda item: item[0])[1] if finished else []
        text, _ = _StopStrings(cfg.stop, self).feed(self._decode(best))
        return (cfg.prompt if cfg.include_prompt else "") + text


class _StopStrings:
    """Cuts a stream of text at the first stop string (multi-token ones are found here)."""

    def __init__(self, stops, sampler):
        self.stops = [s for s in stops if s and sampler._single_token(s) is None]
        self.tail = ""

    def feed(self, text):
        if not self.stops:
            return text, False
        window = self.tail + text
        hits = [window.find(s) for s in self.stops if s in window]
        if hits:
            cut = min(hits) - len(self.tail)
            return text[:max(cut, 0)], True
        longest = max(len(s) for s in self.stops)
        self.tail = window[-(longest - 1):] if longest > 1 else ""
        return text, False


def _is_punctuation(token: str) -> bool:
    return len(token) >= 1 and all(unicodedata.category(ch)[0] in "PZC" or ch.isspace() for ch in token)


def sample_text(model, vocab, prompt: str = "", length: int = 200, temperature: float = 1.0,
                seed: int | None = 0) -> str:
    """The short form: ``length`` tokens after ``prompt`` at ``temperature``."""
    cfg = SampleConfig(prompt=prompt, length=length, temperature=temperature,
                       seed=-1 if seed is None else seed)
    return Sampler(model, vocab).generate(cfg)[0]


def config_fields():
    """Names of the SampleConfig fields (the CLI builds its flags from them)."""
    return [f.name for f in fields(SampleConfig)]
