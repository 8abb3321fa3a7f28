"""Look inside a trained LSTM language model: cells, gates, gradient flow, loss by position.

    python examples/internals.py best.ckpt --text input.txt --out internals/
    python examples/internals.py --smoke          # a tiny model trained for 40 steps, in seconds

Writes, into --out:
    cells.html            cell highlighting: the text coloured by any unit's tanh(c) or h, with an
                          index of the units most correlated with quotes, brackets, line position,
                          newlines, vowels, speaker names and whitespace (self-contained, offline)
    cells_*.png           the same highlighting as pictures, for the units of line position, quotes and speaker names
    gate_saturation.png   fraction of steps each unit's input/forget/output gate is < 0.1 or > 0.9
    gradient_flow.png     ||dL/dh|| and ||dL/dc|| against distance from the loss: the trained model,
                          the same architecture untrained, and a vanilla tanh RNN for contrast
    position_loss.png     mean loss by position in the window and by class of the predicted character
    summary.json          the numbers behind all of it
and prints a short summary. Without --text the tiny Shakespeare corpus is used (found or fetched
by ``minilstm.data.load_shakespeare``). The analyses follow Karpathy, Johnson & Fei-Fei (2015),
"Visualizing and Understanding Recurrent Networks".
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from minilstm import inspect
from minilstm._io import atomic_write_text
from minilstm.data import CharVocab, load_shakespeare, read_text
from minilstm.inspect import sample_windows
from minilstm.model import LanguageModel, ModelConfig
from minilstm.model_io import load_model, save_model
from minilstm.optimizers import Adam
from minilstm.train import train_step

SMOKE_TEXT = ('ROMEO:\nShe said "come (quickly) now" and left [alone].\n\n'
              'JULIET:\nThen "stay", I cried (in vain), and wept.\n\n') * 6


def cell_pictures(recording, found: dict, out: Path, chars: int) -> dict:
    """cells_<property>.png: the text coloured by the unit most correlated with each of a few
    properties (the pictures of cells.html, for pages that cannot run it)."""
    written = {}
    for name in ("line position", "inside quotes", "speaker name"):
        if found.get(name):
            best, key = found[name][0], "cells_" + name.replace(" ", "_")
            written[key] = inspect.plot_cell_text(
                recording, out / f"{key}.png", layer=best.layer, unit=best.unit,
                max_chars=min(chars, 800), title=f"{name}: layer {best.layer} unit {best.unit}, "
                                                  f"r = {best.r:+.2f} (tanh c: blue -1, red +1)")
    return written


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="internals.py", description=__doc__.split("\n\n")[0],
        epilog="Example: python examples/internals.py best.ckpt --text input.txt --out internals/")
    parser.add_argument("checkpoint", nargs="?", help="a model checkpoint (minilstm.model_io.save_model)")
    parser.add_argument("--text", help="UTF-8 text to analyse (default: tiny Shakespeare)")
    parser.add_argument("--out", help="output directory (default: internals/, or a new temporary "
                        "directory with --smoke)")
    parser.add_argument("--chars", type=int, default=5000,
                        help="characters recorded for cells, correlations and gate saturation (default 5000)")
    parser.add_argument("--offset", type=int, default=0, help="where in the text the recording starts")
    parser.add_argument("--html-chars", type=int, default=2000,
                        help="characters shown in cells.html (default 2000)")
    parser.add_argument("--chunk", type=int, default=512, help="tokens per forward pass while recording")
    parser.add_argument("--top", type=int, default=5, help="units listed per property (default 5)")
    parser.add_argument("--window", type=int, default=100, help="gradient-flow window length (default 100)")
    parser.add_argument("--windows", type=int, default=16, help="gradient-flow windows (default 16)")
    parser.add_argument("--last", type=int, default=1,
                        help="final positions whose summed loss is L in the gradient flow (default 1)")
    parser.add_argument("--position-window", type=int, default=100,
                        help="window length T for the loss by position (default 100)")
    parser.add_argument("--position-windows", type=int, default=256,
                        help="at most this many windows for the loss by position (default 256)")
    parser.add_argument("--unknown", choices=("error", "skip"), default="error",
                        help="symbols outside the vocabulary: stop with an error, or skip them")
    parser.add_argument("--seed", type=int, default=0, help="seed of the window sampling")
    parser.add_argument("--smoke", action="store_true",
                        help="train a tiny model for a few steps on a built-in text instead of loading a checkpoint")
    args = parser.parse_args(argv)
    if args.smoke == (args.checkpoint is not None):
        parser.error("give a CHECKPOINT or --smoke (exactly one)")
    for name in ("chars", "html_chars", "chunk", "top", "window", "windows", "last",
                 "position_window", "position_windows"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.offset < 0:
        parser.error(f"--offset must be >= 0, got {args.offset}")
    return args


def smoke_train(model, ids, steps: int = 40, seed: int = 0) -> float:
    """A few Adam steps on random windows (enough to move a tiny model off its initialisation)."""
    rng = np.random.default_rng(seed)
    optimizer = Adam(model.params)
    for _ in range(steps):
        windows = sample_windows(ids, 24, 8, rng)
        result = train_step(model, optimizer, windows[:, :-1], windows[:, 1:], lr=1e-2, clip_norm=5.0)
    return result.loss


def smoke_setup(args) -> tuple:
    """A tiny, briefly trained model saved as smoke.ckpt in the output directory (a new
    temporary one without --out), its text, and settings small enough for that text."""
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="minilstm-internals-"))
    vocab = CharVocab.build(SMOKE_TEXT)
    model = LanguageModel(ModelConfig(vocab_size=len(vocab), embedding_dim=4, hidden_sizes=(8, 8)))
    smoke_train(model, vocab.encode(SMOKE_TEXT).astype(np.int64))
    checkpoint = save_model(out / "smoke.ckpt", model, vocab)
    args.window = args.position_window = 20
    args.windows = 4
    return checkpoint, SMOKE_TEXT, out


def print_units(found: dict, chars: int) -> None:
    print(f"units most correlated with text properties (cell state tanh(c), Pearson r over {chars} characters):")
    for name, scores in found.items():
        listed = "  ".join(f"L{s.layer} U{s.unit} r={s.r:+.2f}" for s in scores)
        print(f"  {name:20s} {listed or 'absent from the text (constant)'}")


def saturation_summary(recording) -> list:
    """Per layer and gate: the mean fractions of left- and right-saturated steps over the units."""
    return [{gate: {"left": float(left.mean()), "right": float(right.mean())}
             for gate, (left, right) in layer.items()}
            for layer in inspect.gate_saturation(recording)]


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.smoke:
        checkpoint, text, out = smoke_setup(args)
    else:
        checkpoint, out = Path(args.checkpoint), Path(args.out or "internals")
        text = read_text(args.text) if args.text else load_shakespeare()
    loaded = load_model(checkpoint)
    model, vocab = loaded.model, loaded.vocab
    if vocab is None:
        sys.exit(f"internals.py: checkpoint {checkpoint} has no vocabulary; it cannot encode text")
    ids = vocab.encode(text, unknown=args.unknown).astype(np.int64)
    excerpt = text[args.offset:args.offset + args.chars]
    recording = inspect.record(model, vocab, excerpt, chunk=args.chunk, unknown=args.unknown)
    found = {q: inspect.find_property_units(recording, quantity=q, top=args.top) for q in ("cell", "hidden")}
    flows = inspect.gradient_flow(model, ids, window=args.window, windows=args.windows, last=args.last,
                                  rng=args.seed)
    positions = inspect.per_position_loss(model, ids, args.position_window, vocab=vocab,
                                          max_windows=args.position_windows)
    title = f"LSTM cells of {checkpoint.name}"
    written = {
        "cells": inspect.write_cell_html(recording, out / "cells.html", property_units=found,
                                         title=title, max_chars=args.html_chars),
        **cell_pictures(recording, found["cell"], out, args.html_chars),
        "gate_saturation": inspect.plot_gate_saturation(recording, out / "gate_saturation.png"),
        "gradient_flow": inspect.plot_gradient_flow(flows, out / "gradient_flow.png"),
        "position_loss": inspect.plot_per_position_loss(positions, out / "position_loss.png"),
    }
    summary = {
        "checkpoint": str(checkpoint), "recorded_chars": len(recording),
        "recorded_mean_loss": recording.mean_loss,
        "property_units": {q: {name: [vars(s) for s in scores] for name, scores in units.items()}
                           for q, units in found.items()},
        "gate_saturation": saturation_summary(recording),
        "gradient_flow": {flow.label: flow.summary() for flow in flows},
        "position_loss": positions.as_dict(),
    }
    written["summary"] = atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    print(f"model {checkpoint} ({model.num_parameters} parameters, layers {list(model.config.hidden_sizes)}); "
          f"recorded {len(recording)} characters, mean loss {recording.mean_loss:.3f} nats")
    print_units(found["cell"], len(recording))
    for flow in flows:
        medians = flow.summary((1, 10, args.window))[len(flow.dh) - 1]["dh"]
        print(f"gradient flow, {flow.label}, top layer median ||dL/dh|| at distance "
              + ", ".join(f"{d}: {v:.2e}" for d, v in medians.items()))
    print(f"loss by position: {positions.mean[0]:.3f} nats after 1 token of context, "
          f"{positions.mean[-1]:.3f} after {positions.window}; by class: "
          + ", ".join(f"{name} {mean:.3f}" for name, (mean, _) in positions.by_class.items()))
    for name, path in written.items():
        print(f"wrote {path}")
    return written


if __name__ == "__main__":
    main()
