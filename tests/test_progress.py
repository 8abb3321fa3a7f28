"""Progress display, metrics log and loss plot."""
import io
import json
import sys

import pytest

from minilstm.progress import MetricsLog, Progress, format_seconds, plot_losses
from trainer_helpers import Terminal


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 59.4, 61, 3725, None, float("inf"), -3)] == \
        ["00:00", "00:59", "01:01", "1:02:05", "?", "?", "00:00"]


def test_plain_progress_lines_every_n_steps():
    stream = io.StringIO()
    progress = Progress(stream, total=30, bar=False, every=10)
    for step in range(1, 31):
        progress.update(step, 1.5, 1234.0, 60.0)
    progress.write("a message")
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines == ["step 10/30: loss 1.5000, 1,234 tok/s, eta 01:00", "step 20/30: loss 1.5000, 1,234 tok/s, eta 01:00",
                     "step 30/30: loss 1.5000, 1,234 tok/s, eta 01:00", "a message"]


def test_bar_goes_to_the_given_stream():
    stream = Terminal()
    progress = Progress(stream, total=4, initial=1, bar=True)
    for step in (2, 3, 4):
        progress.update(step, 0.25, 10.0, None)
    progress.write("between")
    progress.close()
    text = stream.getvalue()
    assert "4/4" in text and "loss 0.2500" in text and "eta ?" in text and "between\n" in text


def test_no_bar_on_a_file_or_pipe():
    """Output redirected to a log gets plain lines, not a bar's carriage-return redraws."""
    stream = io.StringIO()                     # isatty() is False, as for a file or a pipe
    progress = Progress(stream, total=200, bar=True, every=100)
    for step in range(1, 201):
        progress.update(step, 0.5, 100.0, 1.0)
    progress.close()
    assert "\r" not in stream.getvalue()
    assert stream.getvalue().splitlines() == ["step 100/200: loss 0.5000, 100 tok/s, eta 00:01",
                                              "step 200/200: loss 0.5000, 100 tok/s, eta 00:01"]


def test_metrics_log_append_read_truncate(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.start_fresh()
    for step in range(1, 6):
        log.append({"kind": "train", "step": step, "loss": 1.0 / step})
    log.append({"kind": "eval", "step": 5, "val_loss": float("nan")})      # JSON has no NaN: stored as null
    with open(log.path, "a") as handle:
        handle.write('{"kind": "train", "step": 6, "lo')                     # a line cut by a crash
    records = log.read()
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 5] and records[-1]["val_loss"] is None
    assert log.truncate_after(3) == 4                                          # steps 4, 5, 5 and the broken line
    assert [json.loads(line)["step"] for line in log.path.read_text().splitlines()] == [1, 2, 3]
    memory = MetricsLog(None)
    memory.append({"kind": "train", "step": 1, "loss": 2.0})
    assert memory.read() == [{"kind": "train", "step": 1, "loss": 2.0}] and memory.truncate_after(0) == 0


def test_plot_losses_png_and_without_matplotlib(tmp_path, monkeypatch):
    records = [{"kind": "train", "step": s, "loss": 3.0 / s} for s in range(1, 20)]
    records += [{"kind": "eval", "step": s, "val_loss": 3.2 / s} for s in (5, 10, 15)]
    path = plot_losses(records, tmp_path / "loss.png", title="tiny")
    assert path == tmp_path / "loss.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))                                   # written atomically
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    assert plot_losses(records, tmp_path / "other.png") is None and not (tmp_path / "other.png").exists()


@pytest.mark.parametrize("records", [[], [{"kind": "eval", "step": 1, "val_loss": None}]])
def test_plot_losses_with_nothing_to_draw(tmp_path, records):
    assert plot_losses(records, tmp_path / "empty.png").is_file()
