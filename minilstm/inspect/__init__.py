"""Seeing inside the LSTM: instruments for gates, cell states and gradient flow.

The analyses of Karpathy, Johnson & Fei-Fei (2015), "Visualizing and Understanding Recurrent
Networks", for any minilstm model and text:

    rec = record(model, vocab, text)                  # every gate, c, tanh(c), h; loss per token
    units = find_property_units(rec)                  # units that track quotes, line length, ...
    write_cell_html(rec, "cells.html", property_units={"cell": units})
    plot_gate_saturation(rec, "gate_saturation.png")
    plot_gradient_flow(gradient_flow(model, ids), "gradient_flow.png")
    plot_per_position_loss(per_position_loss(model, ids, 100, vocab=vocab), "position_loss.png")

``examples/internals.py`` runs all of them on a checkpoint. Modules:

    recording.py      Recording, record (chunked, state carried), gate_saturation
    properties.py     text properties per position, char classes, find_property_units
    cell_html.py      the self-contained cell-highlighting page
    gradient_flow.py  state gradients through time via the kernels; the vanilla-RNN contrast
    position_loss.py  loss by position in the window and by character class
    plots.py          the PNG figures (matplotlib, Agg)
"""
from .cell_html import cell_html, write_cell_html
from .gradient_flow import (GradientFlow, VanillaRNN, gradient_flow, lstm_gradient_flow,
                            lstm_state_gradients, lstm_window_gradients, output_gradient,
                            rnn_gradient_flow, sample_windows)
from .plots import plot_cell_text, plot_gate_saturation, plot_gradient_flow, plot_per_position_loss
from .position_loss import PositionLoss, per_position_loss
from .properties import (CHAR_CLASSES, PROPERTIES, UnitScore, char_class, correlations,
                         find_property_units, property_values)
from .recording import Recording, gate_saturation, record

__all__ = [
    "CHAR_CLASSES", "GradientFlow", "PROPERTIES", "PositionLoss", "Recording", "UnitScore",
    "VanillaRNN", "cell_html", "char_class", "correlations", "find_property_units", "gate_saturation",
    "gradient_flow", "lstm_gradient_flow", "lstm_state_gradients", "lstm_window_gradients",
    "output_gradient",
    "per_position_loss", "plot_cell_text", "plot_gate_saturation", "plot_gradient_flow", "plot_per_position_loss",
    "property_values", "record", "rnn_gradient_flow", "sample_windows", "write_cell_html",
]
