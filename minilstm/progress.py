"""What a training run shows and leaves behind: a progress bar, a metrics log, a loss curve.

* :class:`Progress` — a tqdm bar (loss, tokens/s, ETA against the budget) on a given stream,
  or plain lines when the bar is off or tqdm is missing; ``write`` prints above the bar.
* :class:`MetricsLog` — one JSON object per line (``metrics.jsonl``): ``{"kind": "train", ...}``
  every ``log_every`` steps, ``{"kind": "eval", ...}`` at each validation. A resumed run first
  drops the records past the checkpoint's step, so the log reads as one uninterrupted run.
* :func:`plot_losses` — train and validation curves to a PNG with matplotlib's Agg backend,
  written atomically; ``None`` (and no file) when matplotlib is not installed.
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

from ._io import atomic_write_bytes, atomic_write_text


def format_seconds(seconds: float | None) -> str:
    """``3725 -> "1:02:05"``; ``None`` or non-finite -> ``"?"``."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(max(0.0, seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):   # no isatty, or a closed stream
        return False


class Progress:
    """The progress display of a training run.

    ``total`` is the number of steps the budget allows (``None`` when only a time budget is
    set); ``initial`` the step a resumed run starts from. The bar is drawn only on a terminal:
    with ``bar=False``, without tqdm, or when ``stream`` is a file or a pipe (a log would fill
    with the bar's redraws), a plain status line is written every ``every`` steps instead.
    """

    def __init__(self, stream, total: int | None, initial: int = 0, bar: bool = True, every: int = 100):
        self.stream, self.total, self.every = stream, total, max(1, int(every))
        self._bar = None
        if bar and _is_terminal(stream):
            try:
                from tqdm import tqdm
            except ImportError:
                self.write("(tqdm is not installed: progress is shown as plain lines)")
            else:
                self._bar = tqdm(total=total, initial=initial, file=stream, unit="step",
                                 dynamic_ncols=True, leave=True, smoothing=0.1,
                                 bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")

    def write(self, text: str) -> None:
        """Print ``text`` (above the bar when there is one)."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def update(self, step: int, loss: float, tokens_per_s: float, eta_s: float | None) -> None:
        status = f"loss {loss:.4f}, {tokens_per_s:,.0f} tok/s, eta {format_seconds(eta_s)}"
        if self._bar is not None:
            self._bar.set_postfix_str(status, refresh=False)
            self._bar.update(step - self._bar.n)
        elif step % self.every == 0:
            total = f"/{self.total}" if self.total else ""
            self.write(f"step {step}{total}: {status}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class MetricsLog:
    """Append-only JSON-lines log at ``path`` (``None``: records are kept in memory only)."""

    def __init__(self, path):
        self.path = None if path is None else Path(path)
        self.records: list[dict] = []          # this run's records, in order

    def append(self, record: dict) -> None:
        record = {key: _json_number(value) for key, value in record.items()}
        self.records.append(record)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, allow_nan=False) + "\n")

    def read(self) -> list[dict]:
        """Every record in the file (a line cut short by a crash is skipped)."""
        if self.path is None or not self.path.is_file():
            return list(self.records)
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue        # the tail of a process killed mid-write
        return records

    def truncate_after(self, step: int) -> int:
        """Drop the records of steps after ``step`` (rewritten atomically); returns how many went."""
        if self.path is None or not self.path.is_file():
            return 0
        kept = [r for r in self.read() if isinstance(r.get("step"), int) and r["step"] <= step]
        dropped = len(self.path.read_text(encoding="utf-8").splitlines()) - len(kept)
        atomic_write_text(self.path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in kept))
        return dropped

    def start_fresh(self) -> None:
        if self.path is not None:
            atomic_write_text(self.path, "")


def _json_number(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None            # JSON has no NaN/Inf
    return value


def plot_losses(records: list, path, title: str = "") -> Path | None:
    """Train loss (per logged step) and validation loss (per evaluation) against the step.

    Returns the path written, or ``None`` when matplotlib is not available.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    train = [(r["step"], r["loss"]) for r in records if r.get("kind") == "train" and r.get("loss") is not None]
    val = [(r["step"], r["val_loss"]) for r in records if r.get("kind") == "eval" and r.get("val_loss") is not None]
    # Agg canvas attached to this figure only: no pyplot, no global backend switch, no GUI
    figure = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if train:
        axes.plot(*zip(*train), lw=0.8, alpha=0.8, label="train")
    if val:
        axes.plot(*zip(*val), "o-", lw=1.5, ms=3, label="validation")
    axes.set_xlabel("step")
    axes.set_ylabel("loss (nats per token)")
    if title:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    if train or val:
        axes.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())
