"""PNG figures of the analyses: gate saturation, gradient flow through time, loss by position.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, so no global
figure state and no display needed), rendered to memory and written atomically. Each figure's
size in pixels is fixed by its ``figsize`` and ``dpi`` (no tight bounding box), so callers and
tests know what to expect: see :func:`figure_pixels`.
"""
from __future__ import annotations

import io

import numpy as np

from .._io import atomic_write_bytes
from .recording import SATURATION_GATES, Recording, gate_saturation

PANEL_INCHES = 3.0                   # gate-saturation panels are square, this wide
GRADIENT_FLOW_INCHES = (12.0, 4.5)
POSITION_LOSS_INCHES = (12.0, 4.0)
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def _new_figure(size_inches, dpi):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:        # pragma: no cover - matplotlib is a dependency
        raise ImportError("minilstm.inspect plots need matplotlib: pip install matplotlib") from exc
    return Figure(figsize=size_inches, dpi=dpi)


def _save(figure, path):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi)
    return atomic_write_bytes(path, buffer.getvalue())


def figure_pixels(size_inches, dpi) -> tuple:
    """(width, height) in pixels of a PNG drawn at ``size_inches`` and ``dpi``."""
    return int(round(size_inches[0] * dpi)), int(round(size_inches[1] * dpi))


def gate_saturation_size(num_layers: int) -> tuple:
    """Figure size in inches of :func:`plot_gate_saturation`: one row per layer, three gates."""
    return (PANEL_INCHES * len(SATURATION_GATES), PANEL_INCHES * num_layers)


def plot_gate_saturation(recording: Recording, path, *, low: float = 0.1, high: float = 0.9,
                         dpi: int = 100):
    """Scatter plots of gate saturation (Karpathy et al. 2015, figure 3): one row per layer, one
    panel per gate (input, forget, output), one point per unit at (fraction of steps below
    ``low``, fraction above ``high``). Points near the anti-diagonal are always saturated;
    points near the origin never are. Writes a PNG to ``path``; returns the path."""
    saturation = gate_saturation(recording, low, high)
    figure = _new_figure(gate_saturation_size(len(saturation)), dpi)
    axes = figure.subplots(len(saturation), len(SATURATION_GATES), squeeze=False)
    for layer, per_gate in enumerate(saturation):
        for col, gate in enumerate(SATURATION_GATES):
            ax = axes[layer, col]
            left, right = per_gate[gate]
            ax.plot([0, 1], [1, 0], color="#bbbbbb", lw=0.8)         # left + right = 1
            ax.scatter(left, right, s=8, alpha=0.6, color=COLOURS[col], edgecolors="none")
            ax.set_xlim(-0.02, 1.02)
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"layer {layer}, {gate} gate", fontsize=9)
            ax.tick_params(labelsize=7)
            if layer == len(saturation) - 1:
                ax.set_xlabel(f"fraction < {low} (left-saturated)", fontsize=8)
            if col == 0:
                ax.set_ylabel(f"fraction > {high} (right-saturated)", fontsize=8)
    figure.subplots_adjust(left=0.12, right=0.97, bottom=0.1, top=0.93, wspace=0.3, hspace=0.45)
    return _save(figure, path)


def _positive(a):
    return np.where(a > 0, a, np.nan)       # a log axis cannot show an exact zero: leave a gap


def _band(ax, flow, which, layer, colour, style):
    q25, median, q75 = flow.quartiles(which, layer)
    name = flow.label if len(flow.dh) == 1 else f"{flow.label}, layer {layer}"
    ax.plot(flow.distance, _positive(median), color=colour, ls=style, lw=1.4, label=name)
    ax.fill_between(flow.distance, _positive(q25), _positive(q75), color=colour, alpha=0.15, lw=0)


def plot_gradient_flow(flows, path, *, dpi: int = 100):
    """Two panels, ||dL/dh|| and ||dL/dc|| against the distance from the loss, log y: the median
    over windows with the interquartile band, for each :class:`~.gradient_flow.GradientFlow`
    (one colour per model, one line style per layer). Writes a PNG; returns the path."""
    if not flows:
        raise ValueError("plot_gradient_flow: flows is empty, expected GradientFlow results")
    figure = _new_figure(GRADIENT_FLOW_INCHES, dpi)
    axes = figure.subplots(1, 2)
    styles = ("-", "--", ":", "-.")
    for k, flow in enumerate(flows):
        colour = COLOURS[k % len(COLOURS)]
        for layer in range(len(flow.dh)):
            _band(axes[0], flow, "dh", layer, colour, styles[layer % len(styles)])
            if flow.dc is not None:
                _band(axes[1], flow, "dc", layer, colour, styles[layer % len(styles)])
    for ax, name in zip(axes, ("||dL/dh||", "||dL/dc|| (LSTM cell)")):
        ax.set_yscale("log")
        ax.set_xlabel("distance from the loss (steps)")
        ax.set_ylabel(f"{name} of the carried state")
        ax.grid(True, which="major", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, loc="lower left")
    figure.suptitle("Gradient flow through time: median and interquartile range over windows", fontsize=10)
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.9, wspace=0.22)
    return _save(figure, path)


def plot_per_position_loss(result, path, *, dpi: int = 100):
    """Left: mean loss against position in the window (with +-2 standard errors); right: mean
    loss by class of the predicted character, with counts. Writes a PNG; returns the path."""
    figure = _new_figure(POSITION_LOSS_INCHES, dpi)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    positions = np.arange(1, result.window + 1)
    left.plot(positions, result.mean, color=COLOURS[0], lw=1.4)
    left.fill_between(positions, result.mean - 2 * result.stderr, result.mean + 2 * result.stderr,
                      color=COLOURS[0], alpha=0.2, lw=0)
    left.set_xlabel("tokens of context (position in the window)")
    left.set_ylabel("mean loss (nats)")
    left.set_title(f"loss by position, {result.windows} windows of {result.window} from a zero state",
                   fontsize=9)
    left.grid(True, alpha=0.3)
    names = list(result.by_class)
    means = [result.by_class[name][0] for name in names]
    bars = right.bar(range(len(names)), means, color=COLOURS[1])
    for bar, name in zip(bars, names):
        right.annotate(f"n={result.by_class[name][1]}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                       ha="center", va="bottom", fontsize=7)
    right.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
    right.set_ylabel("mean loss (nats)")
    right.set_title("loss by class of the predicted character", fontsize=9)
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.2, top=0.9, wspace=0.25)
    return _save(figure, path)


def plot_cell_text(recording: Recording, path, *, layer: int, unit: int, quantity: str = "cell",
                   max_chars: int = 600, columns: int = 80, dpi: int = 100, title: str = ""):
    """The text with each character's background coloured by one unit's activation (blue -1,
    white 0, red +1): cell highlighting as a picture, for pages that cannot embed cells.html.

    Line breaks in the text start a new row (drawn as a coloured ``\\n`` cell, since the unit
    reacts to them too); rows wrap at ``columns`` characters.
    """
    if not 0 <= layer < recording.num_layers or not 0 <= unit < recording.hidden_sizes[layer]:
        raise ValueError(f"plot_cell_text: layer {layer}, unit {unit} not in a model with hidden sizes "
                         f"{recording.hidden_sizes}")
    values = np.clip(recording.activation(quantity, layer)[:max_chars, unit], -1.0, 1.0)
    rows, row = [], []
    for token, value in zip(recording.tokens[:max_chars], values):
        row.append(("\u21b5" if token == "\n" else token, value))
        if token == "\n" or len(row) == columns:
            rows.append(row)
            row = []
    if row:
        rows.append(row)
    cell_w, cell_h = 0.11, 0.2                              # inches per character cell
    figure = _new_figure((columns * cell_w + 0.2, len(rows) * cell_h + 0.5), dpi)
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, columns * cell_w + 0.2)
    ax.set_ylim(len(rows) * cell_h + 0.5, 0)
    ax.axis("off")
    from matplotlib import colormaps
    cmap = colormaps["bwr"]
    for r, cells in enumerate(rows):
        for c, (char, value) in enumerate(cells):
            x, y = 0.1 + c * cell_w, 0.4 + r * cell_h
            ax.add_patch(_rectangle((x, y), cell_w, cell_h, cmap(0.5 + 0.5 * value)))
            ax.text(x + cell_w / 2, y + cell_h * 0.72, char, ha="center", fontsize=7, family="monospace")
    ax.text(0.1, 0.25, title or f"layer {layer}, unit {unit}: {quantity} (blue -1, red +1)", fontsize=8)
    return _save(figure, path)


def _rectangle(xy, width, height, colour):
    from matplotlib.patches import Rectangle
    return Rectangle(xy, width, height, facecolor=colour, edgecolor="none")
