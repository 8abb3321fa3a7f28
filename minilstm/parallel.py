"""Data-parallel training steps: the batch cut into shards, each shard's forward and backward on
its own thread, the gradients combined.

Why. A training step at these sizes is a few hundred small matrix products (one per LSTM time
step) with elementwise passes in between. With BLAS threading each product, the cores meet at
a barrier once per product and the elementwise passes run on one core while the others wait.
The sequences of a batch are independent until the gradients are summed, so a shard of B/n
sequences per core runs the whole step with single-threaded BLAS and no barrier at all; the
threads meet once per step. Measured on 2 cores, whole training steps (forward, backward),
processes alternated: 1.25x faster at B=50 H=128 (L=1 and L=3), 1.4x at H=64, 1.07x at B=64
H=512, where the per-step products are large enough for BLAS's own threads to be efficient.

How. Every shard is a *replica* of the model: the same parameter values (read only during
forward and backward, never copied), its own gradient buffer, tape and dropout generator. The
kernels release the GIL (``nogil``), so Python threads run them in parallel; each thread asks
OpenBLAS for one thread of its own (``openblas_set_num_threads_local``) so that the shards do
not also start BLAS's thread pool and oversubscribe the cores.

The result is the unsharded step's up to rounding: the mean loss over all counted targets is
the count-weighted mean of the shards' means, and so is its gradient,

    L = sum_s (n_s / N) L_s,        dL/dθ = sum_s (n_s / N) dL_s/dθ,

with n_s the targets shard s counts (not ``ignore_index``) and N = sum_s n_s. Carried states
are cut and joined by rows. What changes with the shard count: the last bits of sums (BLAS
adds in a different order for a different number of rows) and, with dropout, the masks (each
shard draws from a generator seeded from the model's, so a run is reproducible for a given
thread count). Batch norm normalises over the whole batch, so models with it are never sharded.

Where sharding is on: ``threads=None`` means one shard per core this process may use (or
``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` when set lower), with at least
``MIN_SHARD_ROWS`` sequences per shard, on the numba backend, on Linux with OpenBLAS (whose
per-thread control is what keeps the cores from being oversubscribed; elsewhere one shard).
"""
from __future__ import annotations

import ctypes
import os
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from . import core

# Fewer rows than this per shard leave the per-step products too thin to pay for a thread
# (B=8 per shard is still 1.2x faster than 2-thread BLAS on the full batch at H=128).
MIN_SHARD_ROWS = 8

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_blas: list | None = None      # OpenBLAS libraries with per-thread control; [] when unusable


def _blas_libraries() -> list:
    """The OpenBLAS libraries loaded in this process, if every BLAS here can be told to use one
    thread in the calling thread; else []. Found through /proc/self/maps (Linux)."""
    global _blas
    if _blas is not None:
        return _blas
    _blas = []
    if not sys.platform.startswith("linux"):
        return _blas
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (numba's BLAS: load it so it is listed)
    except ImportError:
        pass
    try:
        with open("/proc/self/maps") as maps:
            paths = set(re.findall(r"(/\S+\.so[.\d]*)$", maps.read(), re.M))
    except OSError:
        return _blas
    names = [os.path.basename(p).lower() for p in paths]
    if any(tag in name for name in names for tag in ("mkl_", "libblis", "libflexiblas")):
        return _blas                  # a BLAS whose threads this module cannot hold back
    libraries = []
    for path in sorted(p for p in paths if "openblas" in os.path.basename(p).lower()):
        library = ctypes.CDLL(path)
        setter = getattr(library, "openblas_set_num_threads_local", None)
        if setter is None:            # OpenBLAS older than 0.3.27
            return _blas
        setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
        libraries.append(setter)
    _blas = libraries
    return _blas


def _set_blas_threads(counts):
    """Set the calling thread's OpenBLAS thread count in each library; returns the old counts."""
    return [setter(n) for setter, n in zip(_blas_libraries(), counts)]


def _single_blas_thread():
    _set_blas_threads([1] * len(_blas_libraries()))


def available_threads() -> int:
    """Cores this process may use, lowered by OPENBLAS_NUM_THREADS or OMP_NUM_THREADS if set."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            cores = min(cores, int(value))
    return max(1, cores)


def shard_count(model, batch_size: int, threads: int | None = None) -> int:
    """How many shards a training step of ``batch_size`` sequences uses (1: not sharded).

    ``threads`` None: automatic (see the module notes); an int >= 1: at most that many.
    """
    if threads is None:
        if core.backend() != "numba" or not _blas_libraries():
            return 1
        threads = available_threads()
    elif isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"train_step: threads={threads!r}, expected None (automatic) or an int >= 1")
    if model.config.head_norm == "batch":
        return 1                      # batch statistics span the whole batch
    return max(1, min(int(threads), batch_size // MIN_SHARD_ROWS))


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=True)
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="minilstm-shard",
                                       initializer=_single_blas_thread)
            _pool_size = workers
        return _pool


def _replicas(model, n: int) -> list:
    """n replicas of ``model`` sharing its parameter values, each with its own gradient buffer."""
    cached = getattr(model, "_shard_replicas", None)
    if cached is None or len(cached) != n or cached[0].params.data is not model.params.data:
        cached = [model.replica() for _ in range(n)]
        model._shard_replicas = cached
    return cached


def _bounds(B: int, n: int) -> list:
    return [(s * B // n, (s + 1) * B // n) for s in range(n)]


def forward_backward(model, ids, targets, state, shards: int, ignore_index=core.IGNORE_INDEX):
    """Forward and backward of one training batch in ``shards`` threads.

    Leaves d(mean loss)/dθ in ``model.params.grad`` (overwritten, not added) and returns
    ``(loss, new_state)``; sets ``model.tokens_in_loss``. ``ids``, ``targets`` (B, T).
    """
    ids, targets = np.asarray(ids), np.asarray(targets)
    B = ids.shape[0]
    if targets.shape != ids.shape:
        raise ValueError(f"LanguageModel.forward: targets has shape {targets.shape}, "
                         f"expected (B, T) = {ids.shape}")
    bounds = _bounds(B, shards)
    replicas = _replicas(model, shards)
    cfg = model.config
    if cfg.dropout or cfg.embedding_dropout or cfg.head_dropout:
        for replica, seed in zip(replicas, model.dropout_rng.integers(0, 2**63, size=shards)):
            replica.dropout_rng = np.random.default_rng(seed)
    counts = [int(np.count_nonzero(targets[lo:hi] != ignore_index)) for lo, hi in bounds]
    total = sum(counts)
    weights = [n / total if total else 0.0 for n in counts]

    def run(s):
        lo, hi = bounds[s]
        replica = replicas[s].train()
        part = None if state is None else [(h[lo:hi], c[lo:hi]) for h, c in state]
        _, loss, new_state = replica.forward(ids[lo:hi], targets[lo:hi], part, ignore_index)
        replica.zero_grad()
        replica.backward()
        replica.params.grad *= replica.params.dtype.type(weights[s])
        return loss, new_state

    futures = [_executor(shards - 1).submit(run, s) for s in range(1, shards)]
    previous = _set_blas_threads([1] * len(_blas_libraries()))
    try:
        first = run(0)
    finally:
        _set_blas_threads(previous)
        wait(futures)            # every shard has finished with the buffers before we return
    results = [first] + [future.result() for future in futures]     # re-raises a shard's error
    grad = model.params.grad
    np.copyto(grad, replicas[0].params.grad)
    for replica in replicas[1:]:
        grad += replica.params.grad
    model.tokens_in_loss = total
    model._tape = None
    loss = sum(w * r[0] for w, r in zip(weights, results))
    new_state = [tuple(np.concatenate([r[1][layer][k] for r in results]) for k in range(2))
                 for layer in range(cfg.num_layers)]
    return float(loss), new_state
