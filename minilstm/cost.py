"""What a training run will cost before it starts: parameters, memory and time per step.

All formulas follow what ``LanguageModel.forward/backward`` and the kernels actually allocate
and multiply, in the letters of the project (T time, B batch, N = T*B rows, V vocabulary,
E embedding width, H_l hidden size of layer l, D_l its input width, Hh dense-head width,
Ho the output layer's input width, s bytes per float).

Memory (bytes) of one training step, ``memory_estimate``:

    parameters   P*s          the flat buffer
    gradients    P*s          its twin
    optimizer    k*P*s        k = 2 (Adam m, v), 1 (RMSprop square_avg, SGD momentum buffer)
    activations  what the forward keeps for the backward:
                 8N (time-major int64 ids) + the first layer's input projection
                   one-hot: 4*N*H_0*s (rows of Wx); folded embedding (V < N): (V + N)*4*H_0*s;
                   embedding: (N*E + 4*N*H_0)*s, plus 2*N*E*s with embedding dropout
                 + sum_l 7*N*H_l*s          LSTM cache: gates (4H), c, tanh(c), h
                 + sum_l 2*N*H_l*s          dropout output and mask (when dropout > 0)
                 + head: N*Hh*s (ReLU) + N*Hh*s (norm cache) + 2*N*Hh*s (head dropout)
                 + 2*N*V*s + N*s            logits, their gradient (made with the loss), row losses
    backward     the largest set of gradient temporaries alive at once while the tape is held:
                 N*Ho*s (d output input) + max_l (N*H_l + 4*N*H_l + N*D_l)*s  (dh, dgates, dx)

Time, ``time_estimate``: the step's matrix products as (m, k, n, count) — forward input
projection, T recurrent (B, H)@(H, 4H) products per layer, head and output layer; in the
backward one input-gradient and one weight-gradient product per forward product, with the
recurrent weight gradient done once over all N rows. Their FLOPs (2*m*k*n each) are divided by
throughputs measured on this machine for those exact shapes (``probe_matmul``), because a
(50, 128)@(128, 512) recurrent product runs far below the peak of a (2500, 128)@(128, 65)
output product. Elementwise passes and Python overhead are not counted, so small models take
longer than estimated; the progress bar reports the real rate once training runs.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .model import ModelConfig, param_shapes

OPTIMIZER_SLOTS = {"adam": 2, "rmsprop": 1, "sgd": 1}


def parameter_count(config: ModelConfig) -> int:
    """Trainable parameters of a model built from ``config``."""
    return sum(math.prod(shape) for shape in param_shapes(config).values())


@dataclass
class MemoryEstimate:
    parameters: int    # bytes of the flat parameter buffer
    gradients: int     # bytes of the gradient buffer
    optimizer: int     # bytes of the optimizer's state buffers
    activations: int   # bytes the forward pass keeps for the backward
    backward: int      # bytes of the largest set of simultaneous backward temporaries

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer + self.activations + self.backward

    def describe(self) -> str:
        parts = ", ".join(f"{name} {_mib(getattr(self, name))}" for name in
                          ("parameters", "gradients", "optimizer", "activations", "backward"))
        return f"{_mib(self.total)} ({parts})"


def memory_estimate(config: ModelConfig, batch_size: int, seq_len: int,
                    optimizer: str = "adam", shards: int = 1) -> MemoryEstimate:
    """Peak memory of one training step of ``config`` on (batch_size, seq_len) batches.

    ``shards`` > 1: a data-parallel step (``minilstm.parallel``), where every shard also holds a
    gradient buffer of its own; the shards' activations add up to the whole batch's."""
    if optimizer not in OPTIMIZER_SLOTS:
        raise ValueError(f"memory_estimate: optimizer is {optimizer!r}, expected one of {tuple(OPTIMIZER_SLOTS)}")
    s = np.dtype(config.dtype).itemsize
    P = parameter_count(config)
    N, V, Hs = batch_size * seq_len, config.vocab_size, config.hidden_sizes
    floats = _first_projection_floats(config, N)
    for H in Hs:
        floats += 7 * N * H + (2 * N * H if config.dropout > 0 else 0)
    Hh = config.head_hidden
    if Hh:
        floats += N * Hh * (1 + (config.head_norm != "none") + 2 * (config.head_dropout > 0))
    floats += 2 * N * V + N
    widths = [config.embedding_dim if config.input_mode == "embedding" else 0] + list(Hs[:-1])
    backward = N * config.output_input_size + max(N * (5 * H + D) for H, D in zip(Hs, widths))
    gradient_buffers = 1 + shards if shards > 1 else 1
    return MemoryEstimate(parameters=P * s, gradients=gradient_buffers * P * s, optimizer=OPTIMIZER_SLOTS[optimizer] * P * s,
                          activations=8 * N + floats * s, backward=backward * s)


def _first_projection_floats(config: ModelConfig, N: int) -> int:
    """Floats held for the first layer's input projection xw (see model.py's module notes)."""
    four_h = 4 * config.hidden_sizes[0]
    if config.input_mode == "onehot":
        return N * four_h
    folded = config.vocab_size < N and config.embedding_dropout == 0
    if folded:
        return (config.vocab_size + N) * four_h
    E = config.embedding_dim
    return N * E + N * four_h + (2 * N * E if config.embedding_dropout > 0 else 0)


def matmul_shapes(config: ModelConfig, batch_size: int, seq_len: int) -> list:
    """The matrix products of one training step as ``(m, k, n, count)``: count products of an
    (m, k) by a (k, n) matrix (forward and backward; see the module docstring)."""
    B, T = batch_size, seq_len
    N, V, Hs = B * T, config.vocab_size, config.hidden_sizes
    shapes = []
    H0 = Hs[0]
    if config.input_mode == "embedding":
        E = config.embedding_dim
        rows = V if (V < N and config.embedding_dropout == 0) else N       # folded table or N rows
        shapes += [(rows, E, 4 * H0, 1), (rows, 4 * H0, E, 1), (E, rows, 4 * H0, 1)]
    for layer, H in enumerate(Hs):
        if layer:
            D = Hs[layer - 1]
            shapes += [(N, D, 4 * H, 1), (N, 4 * H, D, 1), (D, N, 4 * H, 1)]
        shapes += [(B, H, 4 * H, T), (B, 4 * H, H, T), (H, N, 4 * H, 1)]
    width = Hs[-1]
    if config.head_hidden:
        Hh = config.head_hidden
        shapes += [(N, width, Hh, 1), (N, Hh, width, 1), (width, N, Hh, 1)]
        width = Hh
    shapes += [(N, width, V, 1), (N, V, width, 1), (width, N, V, 1)]
    return shapes


def step_flops(config: ModelConfig, batch_size: int, seq_len: int) -> int:
    """Floating-point operations of the matrix products of one training step."""
    return sum(2 * m * k * n * count for m, k, n, count in matmul_shapes(config, batch_size, seq_len))


PROBE_MULTIPLY_ADDS = 1 << 24      # larger products are timed on fewer rows and scaled up


def probe_matmul(shapes, dtype="float32", seconds: float = 0.05, clock=time.perf_counter) -> dict:
    """Measured seconds per product for each distinct ``(m, k, n)`` in ``shapes``.

    Each shape is timed at least once (after one untimed warm-up) and repeated while its share of
    the ``seconds`` budget lasts; the fastest repetition is kept (the least disturbed by other
    work on the machine). A product above ``PROBE_MULTIPLY_ADDS`` is timed with its largest
    dimension halved until it fits, and the time scaled back by the ratios (time grows linearly in
    each dimension while the others are fixed); the shape stays as close as it can to the real
    one, and a large output layer neither stretches the probe nor allocates its (N, V) matrices.
    """
    distinct = sorted({(m, k, n) for m, k, n, *_ in shapes})
    share = seconds / max(1, len(distinct))
    rng = np.random.default_rng(0)
    timings = {}
    for m, k, n in distinct:
        m1, k1, n1 = dims = [m, k, n]
        while dims[0] * dims[1] * dims[2] > PROBE_MULTIPLY_ADDS:
            largest = dims.index(max(dims))
            dims[largest] = (dims[largest] + 1) // 2
        m1, k1, n1 = dims
        a = rng.random((m1, k1), dtype=np.float64).astype(dtype)
        b = rng.random((k1, n1), dtype=np.float64).astype(dtype)
        out = np.empty((m1, n1), dtype)
        np.dot(a, b, out)
        best, start = math.inf, clock()
        while True:
            t0 = clock()
            np.dot(a, b, out)
            best = min(best, clock() - t0)
            if clock() - start >= share:
                break
        timings[(m, k, n)] = max(best, 1e-9) * (m / m1) * (n / n1) * (k / k1)
    return timings


@dataclass
class TimeEstimate:
    flops: int              # matrix-product FLOPs of one training step
    seconds: float          # estimated seconds per step (matrix products only)

    @property
    def flops_per_second(self) -> float:
        return self.flops / self.seconds if self.seconds > 0 else math.inf

    def describe(self, tokens_per_step: int) -> str:
        return (f"{self.seconds * 1e3:.3g} ms per step ({self.flops / 1e9:.3g} GFLOP at a measured "
                f"{self.flops_per_second / 1e9:.3g} GFLOP/s; about {tokens_per_step / self.seconds:,.0f} "
                "tokens/s at best: elementwise work and overhead come on top)")


def time_estimate(config: ModelConfig, batch_size: int, seq_len: int, probe_seconds: float = 0.05,
                  clock=time.perf_counter) -> TimeEstimate:
    """Estimated seconds of one training step: each product's count times its measured time."""
    shapes = matmul_shapes(config, batch_size, seq_len)
    timings = probe_matmul(shapes, config.dtype, probe_seconds, clock)
    seconds = sum(count * timings[(m, k, n)] for m, k, n, count in shapes)
    return TimeEstimate(step_flops(config, batch_size, seq_len), seconds)


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:,.1f} MiB" if nbytes >= 2**20 else f"{nbytes / 2**10:,.1f} KiB"
