"""The threads that generate text together: the caller's thread and a few helper threads.

A batch-1 token at H=512 reads 4 MB of weights and takes about 30 us, so the cores must share
every token, and they cannot afford to meet through Python or to wake a thread pool for each
one. Each member therefore runs a compiled loop over a whole chunk of tokens
(``core.generate.generate`` in member 0, ``core.generate.assist`` in the others), and the
members meet inside those loops on shared counters (``core.team.meet``). Python hands each
helper one call per chunk, on threads of its own started once per generation.

Member 0 is the caller's thread: it also computes the logits and chooses each token, while the
helpers already compute their part of the next token's recurrent product. A helper that fails
aborts the team (the others' waits end instead of spinning) and its error reaches the caller.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from .core._jit import atomic_store


class SampleTeam:
    """``members`` threads: this one (member 0) and ``members - 1`` helpers. Use as a context
    manager, or call :meth:`close`, so that the helper threads end."""

    def __init__(self, members: int):
        self.members = int(members)
        self._pool = (ThreadPoolExecutor(self.members - 1, thread_name_prefix="minilstm-sample")
                      if self.members > 1 else None)

    def new_sync(self) -> np.ndarray:
        """Fresh counters for one joint call: each member's meeting count at 8 * m (a cache line
        each), the stop / abort flag at 8 * members, and member 0's published step after it."""
        return np.zeros(8 * (self.members + 2), dtype=np.int64)

    def run(self, lead, helper):
        """Run ``lead(sync)`` here and ``helper(m, sync)`` on helper m, all at once; return what
        ``lead`` returns, once every helper has returned. The stop flag is raised when ``lead``
        returns (or fails), and by a helper that fails, whose error is then raised here."""
        sync = self.new_sync()
        if self.members == 1:
            return lead(sync)
        if self._pool is None:        # the others would wait for helpers that never start
            raise RuntimeError(f"SampleTeam.run: the team of {self.members} threads is closed")
        stop = 8 * self.members

        def guarded(m):
            try:
                _set_cpus(None if cpus is None else cpus[m])
                helper(m, sync)
            except BaseException:
                atomic_store(sync, stop, 1)
                raise

        cpus = _separate_cpus(self.members)
        own = _set_cpus(None if cpus is None else cpus[0])
        futures = [self._pool.submit(guarded, m) for m in range(1, self.members)]
        try:
            result = lead(sync)
        finally:
            atomic_store(sync, stop, 1)
            wait(futures)
            _set_cpus(own)
        for future in futures:
            if future.exception() is not None:
                raise future.exception()
        return result

    def close(self) -> None:
        """End the helper threads (after any call in progress); the team cannot run again."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _separate_cpus(members: int):
    """CPU sets that keep the members on different cores: helper m on the m-th CPU from the end
    of the allowed ones, member 0 on all the rest; None where that cannot be done.

    Why: a helper woken for a call was sometimes placed on the core of the thread that woke it,
    and two members busy-waiting for each other on one core take turns at scheduler speed. Three
    series of five calls at H=128 (2,000 characters each, after a 0.3 s pause) made
    33,523-267,444 chars/s, bimodal; with the members on separate cores, 185,471-268,441."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < members:
        return None
    helpers = allowed[len(allowed) - members + 1:][::-1]
    return [set(allowed[:len(allowed) - members + 1])] + [{cpu} for cpu in helpers]


def _set_cpus(cpus):
    """Restrict this thread to ``cpus`` (None: leave it); returns the set it had, or None."""
    if cpus is None:
        return None
    try:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, cpus)
        return before
    except OSError:               # a CPU set the system does not allow: run unpinned
        return None
