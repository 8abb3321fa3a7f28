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
                helper(m, sync)
            except BaseException:
                atomic_store(sync, stop, 1)
                raise

        futures = [self._pool.submit(guarded, m) for m in range(1, self.members)]
        try:
            result = lead(sync)
        finally:
            atomic_store(sync, stop, 1)
            wait(futures)
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
