"""Graceful stops: SIGINT (Ctrl-C) and SIGTERM ask a training loop to stop after its current step.

    with StopSignals() as stop:
        while not stop.received:
            train_one_step()
        save()

The first signal only sets ``received`` (the loop finishes its step and saves); a second SIGINT
raises ``KeyboardInterrupt`` at once, for a user who does not want to wait (files are written
atomically, so nothing is left half-written either way). Handlers are installed only in the
main thread (Python delivers signals there and refuses ``signal.signal`` elsewhere), and the
previous handlers are always put back on exit.
"""
from __future__ import annotations

import signal
import threading

STOP_SIGNALS = ("SIGINT", "SIGTERM")


class StopSignals:
    def __init__(self, enabled: bool = True, names=STOP_SIGNALS):
        self.enabled = enabled
        self.signals = [getattr(signal, name) for name in names if hasattr(signal, name)]
        self.received: str | None = None     # name of the first stop signal, once one arrived
        self._previous: dict = {}

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt(f"second {name}: stopping without finishing the step")
        self.received = self.received or name

    def __enter__(self) -> "StopSignals":
        if self.enabled and threading.current_thread() is threading.main_thread():
            try:
                for signum in self.signals:
                    self._previous[signum] = signal.signal(signum, self._handle)
            except BaseException:
                self._restore()
                raise
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            # a handler installed from C (not by Python) reads back as None; SIG_DFL is its nearest
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous = {}
