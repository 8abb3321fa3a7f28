"""A team of threads that run one computation together, meeting at shared counters.

``Team.exchange`` is the hand-over in Python (each member gives its part, one of them combines
the parts, all get the result); ``meet`` is the meeting point inside compiled loops, a busy
wait on one int64 counter per member (acquire/release, ``_jit.atomic_load``/``atomic_store``),
which took 0.1-0.3 us on 2 cores. Used by ``lstm_team.py``, where the members meet once per
LSTM time step (see there for why), and by the sampler (``step.py``, ``generate.py``), where
they meet between the layers of every generated token.

A member that fails must call :meth:`Team.abort` (``minilstm.parallel`` does): every wait of
the others, in Python or in a kernel, then ends with :class:`TeamAborted` instead of forever.
"""
from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np

from ._jit import atomic_load, atomic_store, kernel, spin_pause


@kernel
def meet(sync, member, members, count):
    """Member ``member`` has finished round ``count``; wait until every member has. Returns False
    (at once) if the team was aborted. ``sync`` holds each member's count at 8 * member (one
    cache line each) and the abort flag at 8 * members."""
    atomic_store(sync, 8 * member, count)
    for m in range(members):
        spins = 0
        while atomic_load(sync, 8 * m) < count:
            if atomic_load(sync, 8 * members) != 0:
                return False
            spin_pause(spins)
            spins += 1
    return True


class TeamAborted(RuntimeError):
    """Raised in the members of a team when one of them failed (its own error is the cause)."""


class Team:
    """``members`` threads that run LSTM layers over their joint batch (see the module notes)."""

    def __init__(self, members: int):
        self.members = int(members)
        self.sync = np.zeros(8 * (self.members + 1), dtype=np.int64)
        self._items = [None] * self.members
        self._combine = None
        self._shared = None
        self._kept = []            # what each exchange of a step combined last time, for reuse
        self._position = 0
        self._barrier = threading.Barrier(self.members, action=self._run_combine)

    @property
    def broken(self) -> bool:
        """True once aborted: a new team is needed."""
        return self._barrier.broken or bool(self.sync[8 * self.members])

    def start(self) -> None:
        """A new step begins: its exchanges reuse, in order, the arrays of the last step's."""
        self._position = 0

    def _run_combine(self):
        k = self._position
        self._position += 1
        kept = self._kept[k] if k < len(self._kept) else None
        self._shared = self._combine(list(self._items), kept)
        if k < len(self._kept):
            self._kept[k] = self._shared
        else:
            self._kept.append(self._shared)
        self.sync[:] = 0           # every member waits here, none is inside a kernel

    def exchange(self, member: int, item, combine):
        """Give ``item``, wait for every member, and return ``combine([items in member order],
        kept)``, computed once for all of them; ``kept`` is what the same exchange of the last
        step returned (or None), whose arrays ``combine`` reuses where their shapes still fit:
        fresh arrays each step would cost page faults that measured as much as the team saves.
        (So the arrays of a step's caches are overwritten by the next step's.)"""
        self._items[member] = item
        self._combine = combine
        try:
            self._barrier.wait()
        except threading.BrokenBarrierError:
            raise TeamAborted("another member of the LSTM team failed") from None
        return self._shared

    def abort(self) -> None:
        """End every member's wait, now and later, with :class:`TeamAborted`."""
        atomic_store(self.sync, 8 * self.members, 1)
        self._barrier.abort()

    def check(self, ok: bool) -> None:
        if not ok:
            raise TeamAborted("another member of the LSTM team failed")


class TeamMember(NamedTuple):
    """Which team a layer runs in, and as which member; ``rows``: the most rows any member
    brings (what decides whether a team pays, see ``minilstm.parallel``)."""
    team: Team
    index: int
    rows: int = 0


def reuse(kept, shapes, dtype) -> list:
    """Arrays of the given shapes and dtype: those of ``kept`` (a sequence of arrays, or None)
    where shape and dtype match, new ones elsewhere."""
    kept = list(kept or [])
    arrays = []
    for k, shape in enumerate(shapes):
        old = kept[k] if k < len(kept) else None
        fits = isinstance(old, np.ndarray) and old.shape == tuple(shape) and old.dtype == dtype
        arrays.append(old if fits else np.empty(shape, dtype))
    return arrays


def row_ranges(rows) -> list:
    """[lo, hi) of each member's rows in the joint batch, from their row counts."""
    edges = np.concatenate([[0], np.cumsum(rows)]).astype(int)
    return list(zip(edges[:-1], edges[1:]))
