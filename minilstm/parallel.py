"""Data parallelism on CPU threads: a batch cut into shards, each shard's forward and backward
on its own thread, the gradients combined. ``LanguageModel.forward``/``backward`` and
``forward_backward`` (both in one hand-over, as a training step runs them) use it whenever
``model.threads`` allows more than one shard.

Why. A training step at these sizes is a few hundred small matrix products (one per LSTM time
step) with elementwise passes in between. With BLAS threading each product, the cores meet at
a barrier once per product and the elementwise passes run on one core while the others wait.
The sequences of a batch are independent until the gradients are summed, so a shard of B/n
sequences per core runs the whole step with single-threaded BLAS and no barrier at all; the
threads meet once per training step (``forward_backward``). Measured on 2 cores, training steps
against one shard, in ``benchmarks/bench_kernels.py`` (contenders alternated in one process,
each timed back to back): 1.23-1.95x faster at every configuration of its grid, B=50 H=64 L=1
included (3.5 ms against 5.3 ms); at the Shakespeare example's default (E=64, H=512, B=64) 6 %
more steps in 50 seconds (measured when forward and backward were still two hand-overs).

How. Every shard is a *replica* of the model (``LanguageModel.replica``): the same parameter
values (read only during forward and backward, never copied), its own gradient buffer, tape
and dropout generator. The kernels release the GIL (``nogil``), so Python threads run them in
parallel; each thread asks OpenBLAS for one thread of its own (``openblas_set_num_threads_local``)
so that the shards do not also wake BLAS's thread pool and oversubscribe the cores.

The result is the unsharded step's up to rounding: the mean loss over all counted targets is
the count-weighted mean of the shards' means, and so is its gradient,

    L = sum_s (n_s / N) L_s,        dL/dθ = sum_s (n_s / N) dL_s/dθ,

with n_s the targets shard s counts (not ``ignore_index``) and N = sum_s n_s. Logits, carried
states and LSTM caches are joined by rows. What changes with the shard count: the last bits of
sums (BLAS adds in another order for another number of rows) and, with dropout, the masks (each
shard draws from a generator seeded from the model's, one draw per step, so a run is
reproducible and resumable for a given thread count). Batch norm normalises a training batch
with its own statistics, so a model with it is not sharded in training (it is in inference).

Teams. A shard of a few dozen sequences makes each per-step product of a wide LSTM layer thin,
and BLAS runs thin products well below its peak. Where the measurements at ``team_pays`` show it
pays (wide layers, thin shards), the shards' threads run such a layer's time loops together,
as a team (``core.lstm_team``): every thread computes its block of hidden units for the whole
batch, and the threads meet once per time step. Each shard still brings its own rows and gets
its own rows back, so nothing else changes, the gradients included (the same up to rounding).

How many shards: ``model.threads`` None (the default) means one per core this process may use
(or ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` when set lower), on the numba backend, on Linux
with OpenBLAS (whose per-thread control keeps the cores from being oversubscribed; elsewhere
one shard); an int caps it. Either way each shard gets at least ``MIN_SHARD_ROWS`` sequences.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from . import core

# When the shards' threads run an LSTM layer's time loop as a team (``core.lstm_team``: each
# thread computes its block of hidden units for the whole batch) instead of each shard alone.
# Measured on 2 cores (training steps, the two alternated in one process, 4 rounds, median),
# shard time / team time by H and sequences per shard:
#              16 rows   25 rows    32 rows     50 rows   64 rows
#     H=256              0.93x
#     H=384              1.05x
#     H=512    1.07x     1.03-1.10x 0.97-1.01x  1.00x     0.92x
#     H=768              1.17x
#     H=1024             1.22x      1.14x       0.92x     1.01x
# A thin shard's per-step product runs well below BLAS's peak and a team's products are wider;
# with wider shards that gain is gone and the team's copies and waits remain. So: layers of
# at least TEAM_MIN_H units, shards of at most TEAM_MAX_ROWS sequences and fewer than H / 16.
TEAM_MIN_H = 512
TEAM_MAX_ROWS = 32


def team_pays(H: int, rows: int) -> bool:
    """Whether shards of ``rows`` sequences run an H-unit LSTM layer faster as a team (above)."""
    return H >= TEAM_MIN_H and rows <= TEAM_MAX_ROWS and 16 * rows < H

# Fewer rows than this per shard leave the per-step products thin. Measured with 8 per shard
# (B=16, H=128, L=2, processes alternated): 14.2-14.5 ms per step against 18.2-22.4 unsharded.
MIN_SHARD_ROWS = 8

_lock = threading.Lock()
_team_lock = threading.Lock()
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


def shard_count(model, batch_size: int) -> int:
    """How many shards ``model.forward`` cuts a batch of ``batch_size`` sequences into (1: none),
    from ``model.threads``: None automatic (see the module notes), an int >= 1 at most that many."""
    threads = model.threads
    if threads is None:
        if core.backend() != "numba" or not _blas_libraries():
            return 1
        threads = available_threads()
    if model.training and model.config.head_norm == "batch":
        return 1                      # batch statistics span the whole batch
    return max(1, min(int(threads), batch_size // MIN_SHARD_ROWS))


def check_threads(threads):
    """``threads`` if it is None or an int >= 1, else a ValueError naming it."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
                                or threads < 1):
        raise ValueError(f"LanguageModel.threads: got {threads!r}, expected None (automatic) or an int >= 1")
    return None if threads is None else int(threads)


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
        cached = [model.replica() for _ in range(n)]     # each with threads = 1
        model._shard_replicas = cached
    return cached


def _team(model, n: int):
    """The ``core.Team`` of n members with which ``model``'s shards share wide LSTM layers; kept
    from step to step (its arrays are reused), new after a failed step. Its step starts now."""
    team = getattr(model, "_shard_team", None)
    if team is None or team.members != n or team.broken:
        team = model._shard_team = core.Team(n)
    team.start()
    return team


def _bounds(B: int, n: int) -> list:
    return [(s * B // n, (s + 1) * B // n) for s in range(n)]


def layer_team(model, layer: int):
    """The ``core.TeamMember`` with which ``model`` (a shard's replica) runs LSTM layer ``layer``,
    or None: the layer's shard runs alone (not in a sharded step, or the layer is too narrow)."""
    team = getattr(model, "_team", None)
    if team is None or not team_pays(model.config.hidden_sizes[layer], team.rows):
        return None
    return team


def _first_error(errors):
    """The error to re-raise from the shards': the first that is not a team member giving up
    because another member failed (that one's error says what went wrong)."""
    errors = [error for error in errors if error is not None]
    real = [error for error in errors if not isinstance(error, core.TeamAborted)]
    return (real or errors or [None])[0]


def _in_threads(run, n: int) -> list:
    """[run(0), ..., run(n-1)], each on a pool thread whose BLAS runs single-threaded; waits
    for all of them and re-raises the first error. This thread only waits: its own BLAS
    setting is never touched, so BLAS calls made here between steps keep all their threads.
    (Running shard 0 here instead, with this thread's BLAS set to one thread for the while,
    was measured: putting the setting back woke OpenBLAS's own pool, whose thread then spun on
    one of the two cores in about half the runs and doubled the step time.)"""
    with _team_lock:             # a team's threads must all run at once: one team at a time
        futures = [_executor(n).submit(run, s) for s in range(n)]
        wait(futures)            # every shard is done with the buffers before we go on
    error = _first_error([future.exception() for future in futures])
    if error is not None:
        raise error
    return [future.result() for future in futures]


@contextlib.contextmanager
def _team_member(team):
    """A shard's work as a member of ``team`` (or None): if it fails, the team is aborted so that
    the other members stop waiting for it."""
    try:
        yield
    except BaseException:
        if team is not None:
            team.abort()
        raise


class ShardedTape:
    """What ``LanguageModel.backward`` needs after a sharded forward: the replicas (each holding
    its own tape) and each shard's weight n_s / N in the mean loss."""

    def __init__(self, replicas, bounds, weights, team=None):
        self.replicas, self.bounds, self.weights, self.team = replicas, bounds, weights, team
        self.dlogits = True        # a training forward with targets: backward may run


def _loss_weights(counts) -> list:
    """Each shard's weight n_s / N in the mean loss, from the targets each one counts."""
    total = sum(counts)
    return [n / total if total else 0.0 for n in counts]


def _shard_backward(replica, weight) -> None:
    """A replica's backward into its own gradient buffer, scaled by its weight in the mean loss."""
    replica.zero_grad()
    replica.backward()
    replica.params.grad *= replica.params.dtype.type(weight)


def forward(model, ids, targets, state, shards: int, ignore_index, backward=False):
    """``LanguageModel.forward`` of a validated batch (ids (B, T), state checked) in ``shards``
    threads; same return value: logits (B, T, V), the mean loss (or None) and the final state.

    With ``backward`` (``LanguageModel.forward_backward``; targets required) each thread goes on
    to its shard's backward, so the threads meet once per training step instead of twice, the
    gradients are summed into ``model.params.grad`` and the logits are not assembled (None)."""
    B = ids.shape[0]
    if targets is not None:
        targets = np.asarray(targets)
        if targets.shape != ids.shape:
            where = "LanguageModel.forward_backward" if backward else "LanguageModel.forward"
            raise ValueError(f"{where}: targets has shape {targets.shape}, expected (B, T) = {ids.shape}")
    bounds = _bounds(B, shards)
    if backward:          # the weights are needed before the shards' forwards have counted
        shard_weights = _loss_weights([int(np.count_nonzero(targets[lo:hi] != ignore_index))
                                       for lo, hi in bounds])
    replicas = _replicas(model, shards)
    cfg = model.config
    if model.training and (cfg.dropout or cfg.embedding_dropout or cfg.head_dropout):
        for replica, seed in zip(replicas, model.dropout_rng.integers(0, 2**63, size=shards)):
            replica.dropout_rng = np.random.default_rng(seed)

    rows = -(-B // shards)                       # the widest shard's
    team = _team(model, shards) if any(team_pays(H, rows) for H in cfg.hidden_sizes) else None

    def run(s):
        lo, hi = bounds[s]
        replica = replicas[s]
        replica.training = model.training
        replica._team = None if team is None else core.TeamMember(team, s, rows)
        part = None if state is None else [(h[lo:hi], c[lo:hi]) for h, c in state]
        with _team_member(team):
            try:
                result = replica.forward(ids[lo:hi], None if targets is None else targets[lo:hi], part,
                                         ignore_index)
            finally:
                replica._team = None
            if backward:
                _shard_backward(replica, shard_weights[s])
        return result

    results = _in_threads(run, shards)
    new_state = [tuple(np.concatenate([result[2][layer][k] for result in results]) for k in range(2))
                 for layer in range(cfg.num_layers)]
    loss = None
    counts = [replica.tokens_in_loss for replica in replicas]
    weights = _loss_weights(counts)
    if targets is not None:
        loss = float(sum(w * result[1] for w, result in zip(weights, results)))
    model.tokens_in_loss = sum(counts)
    if backward:
        _sum_gradients(model, replicas)
        model._tape = None
        return None, loss, new_state
    model._tape = ShardedTape(replicas, bounds, weights, team)
    if targets is None or not model.training:
        model._tape.dlogits = None
    return np.concatenate([result[0] for result in results]), loss, new_state


def _sum_gradients(model, replicas) -> None:
    """model's gradient += every replica's (already weighted) gradient."""
    for replica in replicas:
        model.params.grad += replica.params.grad


def backward(model) -> None:
    """``LanguageModel.backward`` after a sharded forward: each replica's backward on its own
    thread, then ``params.grad += sum_s (n_s / N) * (replica s's gradient)``."""
    tape = model._tape

    def run(s):
        with _team_member(tape.team):
            _shard_backward(tape.replicas[s], tape.weights[s])

    _in_threads(run, len(tape.replicas))
    _sum_gradients(model, tape.replicas)
    model._tape = None


def joined_caches(tape) -> list:
    """Each layer's LSTM cache of a sharded forward, joined along the batch as one forward of
    the whole batch would have made it (``LanguageModel.lstm_caches``)."""
    per_shard = [replica.lstm_caches() for replica in tape.replicas]
    joined = []
    for layer in range(len(per_shard[0])):
        caches = [shard[layer] for shard in per_shard]
        first = caches[0]
        time_major = {name: np.concatenate([getattr(c, name) for c in caches], axis=1)
                      for name in ("gates", "c", "tanh_c", "h")}
        states = {name: np.concatenate([getattr(c, name) for c in caches]) for name in ("h0", "c0")}
        x = None if first.x is None else np.concatenate([c.x for c in caches], axis=1)
        joined.append(first._replace(x=x, **time_major, **states))
    return joined
