"""Shared benchmark plumbing: thread settings, timing, the PyTorch reference models, tables.

Import this module *before* numpy (it sets the BLAS thread count from ``--threads`` or
``MINILSTM_BENCH_THREADS``, default 2, which only takes effect before the libraries load).
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path


def set_threads(n: int) -> None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, str(n))


THREADS = int(os.environ.get("MINILSTM_BENCH_THREADS", "2"))
set_threads(THREADS)

import numpy  # noqa: E402,F401  (loads BLAS now, under the thread settings above)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def load_torch():
    """torch with ``THREADS`` intra-op threads, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(THREADS)
    return torch


# How long idle BLAS/OpenMP worker threads keep spinning after a call. Three thread pools live
# in one process here (numpy's OpenBLAS, scipy's for Numba, PyTorch's); a contender started while
# another pool still spins loses cores to it. A pause between contenders lets them go to sleep.
SETTLE_SECONDS = 0.3


def timed(fn, repeats: int) -> list:
    """Wall-clock seconds of ``repeats`` calls of fn()."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def alternate(contenders: dict, passes: int, repeats: int, warmup: int = 1, min_seconds: float = 0.0) -> dict:
    """Run the contenders A B C A B C ... (``passes`` rounds, with a settling pause between
    contenders) so slow drifts of a shared machine hit all of them alike. Each round times
    ``repeats`` calls, and more until the timed calls add up to ``min_seconds``.
    After each pause ``warmup`` calls run untimed: the first call wakes the contender's sleeping
    threads and reloads the caches the others evicted (B=50 T=50 H=64 L=1, five passes of three
    calls: minilstm 8.1-8.8 ms and PyTorch 8.1-9.6 ms counting that call, 6.9-7.7 ms and
    6.9-7.7 ms without it). One warm-up call is not the whole of it: calls of a few milliseconds
    keep getting faster for a while after a pause, so ``min_seconds`` measures the steady state
    that a training loop, which runs its steps back to back, lives in (B=50 T=50 H=64 L=1, four
    passes: 2 calls a round gave minilstm 7.7 ms and PyTorch 7.4 ms, 10 calls 5.4 and 6.8 ms).
    Returns {name: [seconds, ...]}; take the median."""
    results = {name: [] for name in contenders}
    for _ in range(passes):
        for name, fn in contenders.items():
            time.sleep(SETTLE_SECONDS)
            timed(fn, warmup)
            times = timed(fn, repeats)
            while sum(times) < min_seconds:
                times += timed(fn, 1)
            results[name].extend(times)
    return results


def median(values) -> float:
    return statistics.median(values)


def machine_summary() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    parts = [f"{cpu}, {os.cpu_count()} logical CPUs, {THREADS} threads", f"Python {platform.python_version()}",
             f"numpy {numpy.__version__}"]
    try:
        import numba
        parts.append(f"numba {numba.__version__}")
    except ImportError:
        parts.append("numba absent")
    torch = load_torch()
    parts.append(f"torch {torch.__version__}" if torch else "torch absent")
    from minilstm import malloc_status
    parts.append(f"malloc: {malloc_status()}")
    return "; ".join(parts)


def markdown_table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def char_lm_flops(B, T, V, E, hidden_sizes) -> int:
    """Floating-point operations (2 per multiply-add) of the matrix products of one training
    step of the char LM, counted the usual way (as PyTorch performs them):
    each LSTM layer does 2*T*B*(D + H)*4H forward and twice that backward (input and weight
    gradients), the output layer 2*T*B*H*V forward and twice that backward. Elementwise work
    and the Adam update are not counted. minilstm skips the first layer's input products
    (it looks rows up in E @ Wx), so its GFLOP/s figure is 'effective': this count / time."""
    total, D = 0, E
    for H in hidden_sizes:
        total += 3 * 2 * T * B * (D + H) * 4 * H
        D = H
    return total + 3 * 2 * T * B * D * V


def build_torch_char_lm(torch, V, E, H, L, seed=0, dropout=0.0, embedding_dropout=0.0):
    """embedding -> nn.LSTM(E, H, L) -> linear, the PyTorch side of every comparison
    (one nn.LSTM with num_layers=L: the form PyTorch's fused CPU kernels are built for).
    Dropout as minilstm's model places it: on the embeddings, and after every LSTM layer, the
    top one included (nn.LSTM's ``dropout`` covers all but the top one); 0 is the identity."""
    torch.manual_seed(seed)

    class CharLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(V, E)
            self.embed_dropout = torch.nn.Dropout(embedding_dropout)
            self.lstm = torch.nn.LSTM(E, H, num_layers=L, dropout=dropout if L > 1 else 0.0)
            self.dropout = torch.nn.Dropout(dropout)
            self.out = torch.nn.Linear(H, V)

        def forward(self, ids, state=None):        # ids (T, B), time-major like nn.LSTM
            h, state = self.lstm(self.embed_dropout(self.embed(ids)), state)
            return self.out(self.dropout(h)), state

    return CharLM()
