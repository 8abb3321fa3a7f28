"""minilstm.inspect: recordings equal the model's own forward, chunking changes nothing, the
cell-highlighting page is well-formed and safe, the property finder finds a planted unit, the
plots are real PNGs, the step-by-step state gradients equal full BPTT and finite differences,
and the internals example runs.

Tolerances: 1e-12 in float64 wherever two computations of the same number differ only in the
order of floating-point operations (different matrix sizes, one pass or several); rounding
there is ~1e-15 relative, so 1e-12 leaves room for accumulation and catches any real mistake.
"""
from __future__ import annotations

import base64
import importlib.util
import json
import shutil
import struct
import subprocess
import sys
from dataclasses import replace
from html.parser import HTMLParser

import numpy as np
import pytest

from conftest import REPO
from gradcheck import assert_close, check_gradient, numerical_gradient
from minilstm import core
from minilstm.data import CharVocab, UnknownSymbolError
from minilstm.inspect import (CHAR_CLASSES, PROPERTIES, GradientFlow, VanillaRNN, cell_html, char_class,
                              correlations, find_property_units, gate_saturation, gradient_flow,
                              lstm_state_gradients, lstm_window_gradients, per_position_loss,
                              plot_gate_saturation, plot_gradient_flow, plot_per_position_loss,
                              property_values, record, sample_windows, write_cell_html)
from minilstm.inspect.cell_html import _script_json, dequantize
from minilstm.inspect.gradient_flow import slice_cache
from minilstm.inspect.plots import GRADIENT_FLOW_INCHES, POSITION_LOSS_INCHES, figure_pixels, gate_saturation_size
from minilstm.inspect.properties import inside_brackets, inside_quotes, line_position, speaker_name, vowel
from minilstm.model import LanguageModel, ModelConfig

TEXT = ('ROMEO:\nHe said "come (now)" & left.\n\nFirst Citizen:\nNay, [stay] <here>!\n'
        "JULIET:\nO 'twas 42 \"days\"; ok?\n") * 2
EXACT = 1e-12       # float64, same numbers computed in a different order (module docstring)

CONFIGS = {
    "embedding-2-layers": dict(hidden_sizes=(5, 4)),
    "onehot-dropout-layernorm-head": dict(input_mode="onehot", hidden_sizes=(4, 3), dropout=0.4,
                                          head_hidden=6, head_norm="layer"),
}


@pytest.fixture(scope="module")
def vocab():
    return CharVocab.build(TEXT)


def tiny_model(vocab, **overrides):
    """float64, random non-zero parameters everywhere (biases and norm parameters included)."""
    cfg = dict(vocab_size=len(vocab), embedding_dim=3, hidden_sizes=(4,), dtype="float64", seed=3)
    cfg.update(overrides)
    model = LanguageModel(ModelConfig(**cfg))
    model.params.data[:] = np.random.default_rng(11).normal(size=model.num_parameters) * 0.6
    return model


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# ----------------------------------------------------------------------------- recording

@pytest.mark.parametrize("name", list(CONFIGS))
def test_recorded_values_satisfy_the_lstm_equations(vocab, name):
    model = tiny_model(vocab, **CONFIGS[name])
    rec = record(model, vocab, TEXT, chunk=7)
    P = model.params
    ids = vocab.encode(TEXT).astype(np.int64)
    below = P["lstm0.Wx"][ids] if model.config.input_mode == "onehot" else P["embed.weight"][ids] @ P["lstm0.Wx"]
    for layer, H in enumerate(model.config.hidden_sizes):
        i, f, o, g = (rec.activation(q, layer) for q in ("input_gate", "forget_gate", "output_gate", "candidate"))
        c, h = rec.cell[layer], rec.hidden[layer]
        c_prev = np.vstack([np.zeros((1, H)), c[:-1]])
        h_prev = np.vstack([np.zeros((1, H)), h[:-1]])
        assert_close(f"layer {layer} c = f*c_prev + i*g", c, f * c_prev + i * g, EXACT, EXACT)
        assert_close(f"layer {layer} tanh_cell", rec.tanh_cell[layer], np.tanh(c), EXACT, EXACT)
        assert_close(f"layer {layer} h = o*tanh(c)", h, o * np.tanh(c), EXACT, EXACT)
        xw = below if layer == 0 else rec.hidden[layer - 1] @ P[f"lstm{layer}.Wx"]
        a = xw + h_prev @ P[f"lstm{layer}.Wh"] + P[f"lstm{layer}.b"]
        assert_close(f"layer {layer} gates [i, f, o, g]", np.hstack([i, f, o, g]),
                     np.hstack([sigmoid(a[:, :3 * H]), np.tanh(a[:, 3 * H:])]), EXACT, EXACT)


def test_recording_reproduces_the_models_logits_and_loss(vocab):
    model = tiny_model(vocab, hidden_sizes=(5, 4))
    rec = record(model, vocab, TEXT, chunk=9)
    ids = vocab.encode(TEXT).astype(np.int64)
    model.eval()
    logits, loss, _ = model.forward(ids[None, :-1], ids[None, 1:])
    top = model.lstm_caches()[-1].h[:, 0, :]          # what the model feeds its output layer
    assert_close("final-layer h", rec.hidden[-1][:-1], top, EXACT, EXACT)
    assert_close("logits from recorded h", rec.hidden[-1][:-1] @ model.params["out.W"] + model.params["out.b"],
                 logits[0], EXACT, EXACT)
    assert np.isnan(rec.loss[0]) and np.isfinite(rec.loss[1:]).all()
    assert_close("mean per-character loss", rec.mean_loss, loss, EXACT, EXACT)
    assert rec.text == TEXT and "".join(rec.tokens) == TEXT and len(rec) == len(TEXT)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_chunked_recording_equals_one_pass(vocab, name):
    model = tiny_model(vocab, **CONFIGS[name])
    whole = record(model, vocab, TEXT, chunk=len(TEXT))
    for chunk in (1, 5, 64):
        parts = record(model, vocab, TEXT, chunk=chunk)
        for field in ("input_gate", "forget_gate", "output_gate", "candidate", "cell", "tanh_cell", "hidden"):
            for layer in range(whole.num_layers):
                assert_close(f"chunk={chunk} {field}[{layer}]", getattr(parts, field)[layer],
                             getattr(whole, field)[layer], EXACT, EXACT)
        assert_close(f"chunk={chunk} loss", parts.loss[1:], whole.loss[1:], EXACT, EXACT)


def test_record_uses_eval_mode_and_restores_the_mode(vocab):
    model = tiny_model(vocab, hidden_sizes=(4,), dropout=0.5).train()
    first, second = record(model, vocab, TEXT), record(model, vocab, TEXT)
    assert model.training
    np.testing.assert_array_equal(first.hidden[0], second.hidden[0])   # no dropout noise


def test_record_rejects_bad_input(vocab):
    model = tiny_model(vocab)
    with pytest.raises(UnknownSymbolError, match="'Z'"):
        record(model, vocab, "ROMEO Z")
    skipped = record(model, vocab, "ROZMEO", unknown="skip")
    assert skipped.text == "ROMEO" and len(skipped) == 5
    with pytest.raises(ValueError, match="chunk=0"):
        record(model, vocab, "ROMEO", chunk=0)
    with pytest.raises(ValueError, match="empty"):
        record(model, vocab, "")
    with pytest.raises(ValueError, match="vocab has 3 tokens"):
        record(model, CharVocab.build("abc"), "abc")
    with pytest.raises(ValueError, match="quantity='x'"):
        skipped.activation("x", 0)


# ----------------------------------------------------------------------------- properties

def test_text_properties_position_by_position():
    tokens = tuple('ab "c(d)" e\nXY:\n')
    assert list(inside_quotes(tokens)) == [0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert list(inside_brackets(tokens)) == [0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert list(line_position(tokens)) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 0]
    assert list(speaker_name(tokens)) == [0] * 12 + [1, 1, 1, 0]
    v = vowel(tuple("ab."))
    assert v[0] == 1 and v[1] == 0 and np.isnan(v[2])
    assert [char_class(c) for c in "a \n.7€\x00"] == ["letters", "spaces", "newlines", "punctuation",
                                                   "digits", "punctuation", "other"]
    assert set(CHAR_CLASSES) == {"letters", "spaces", "punctuation", "newlines", "digits", "other"}
    assert speaker_name(tuple("Nay, let them go:\n")).sum() == 0


def test_correlations_equal_pearson_and_skip_not_applicable_positions():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    x[:, 2] = 1.0                                  # a constant unit correlates with nothing
    y = x[:, 0] * 0.5 + rng.normal(size=50)
    y[::7] = np.nan                                # positions where the property does not apply
    keep = ~np.isnan(y)
    r = correlations(x, y)
    for k in range(2):
        assert_close(f"r of column {k}", r[k], np.corrcoef(x[keep, k], y[keep])[0, 1], EXACT, EXACT)
    assert r[2] == 0.0
    assert np.isnan(correlations(x, np.ones(50))).all()


def test_find_property_units_ranks_a_planted_quote_unit_first(vocab):
    model = tiny_model(vocab, hidden_sizes=(5, 4))
    rec = record(model, vocab, TEXT)
    quotes = inside_quotes(rec.tokens)
    planted = [a.copy() for a in rec.tanh_cell]
    planted[1][:, 2] = 0.8 * quotes - 0.4 + 0.05 * np.sin(np.arange(len(rec)))   # noisy indicator
    found = find_property_units(replace(rec, tanh_cell=tuple(planted)), top=3)
    best = found["inside quotes"][0]
    assert (best.layer, best.unit, best.quantity) == (1, 2, "cell") and best.r > 0.95
    assert len(found["inside quotes"]) == 3
    assert abs(found["inside quotes"][1].r) < best.r
    absent = find_property_units(record(model, vocab, "ROMEO:\nO ok.\n"), {"quotes": inside_quotes})
    assert absent == {"quotes": []}
    with pytest.raises(ValueError, match="property 'short' has shape"):
        property_values(rec, {"short": np.zeros(3)})


# ----------------------------------------------------------------------------- the HTML page

VOID_ELEMENTS = {"meta", "input", "br", "img", "link", "hr"}    # elements without an end tag


class PageParser(HTMLParser):
    """Collects the spans of <pre id="text">, scripts, links and every attribute."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.spans, self.scripts, self.links, self.attributes = [], [], [], [], []
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.attributes.extend(attrs.items())
        self.ids.add(attrs.get("id"))
        if tag == "span" and self.stack and self.stack[-1][1].get("id") == "text":
            self.spans.append("")
        if tag == "script":
            self.scripts.append([attrs, ""])
        if tag == "a":
            self.links.append(attrs.get("href"))
        if tag not in VOID_ELEMENTS:
            self.stack.append((tag, attrs))

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1][0] == tag, f"</{tag}> closes {self.stack[-1:]} "
        self.stack.pop()

    def handle_data(self, data):
        if not self.stack:
            return
        tag, attrs = self.stack[-1]
        if tag == "span" and len(self.stack) > 1 and self.stack[-2][1].get("id") == "text":
            self.spans[-1] += data
        elif tag == "pre" and attrs.get("id") == "text":
            raise AssertionError(f"text outside a span: {data!r}")
        elif tag == "script":
            self.scripts[-1][1] += data


def test_cell_html_structure_escaping_and_data(vocab, tmp_path):
    hostile = TEXT + '</pre></script><script src="http://evil.example/x.js">alert("&amp;")</script>\n'
    hostile_vocab = CharVocab.build(hostile)
    model = tiny_model(hostile_vocab, hidden_sizes=(5, 4))
    rec = record(model, hostile_vocab, hostile)
    found = {q: find_property_units(rec, quantity=q, top=2) for q in ("cell", "hidden")}
    found["cell"]["</td><script>x</script>"] = []          # a hostile property name, escaped too
    path = write_cell_html(rec, tmp_path / "cells.html", property_units=found, title="<b>x</b> & y")
    page = path.read_text(encoding="utf-8")
    parser = PageParser()
    parser.feed(page)
    parser.close()
    assert not parser.stack, f"unclosed elements: {parser.stack}"
    assert parser.spans == list(hostile), "one span per character, the text round-trips"
    for char, escaped in (("<", "&lt;"), (">", "&gt;"), ("&", "&amp;"), ('"', "&quot;")):
        assert f"<span>{escaped}</span>" in page and f"<span>{char}</span>" not in page
    assert "&lt;/td&gt;&lt;script&gt;x&lt;/script&gt;" in page
    assert {"index", "viewer", "controls", "quantity", "layer", "unit", "text", "data"} <= parser.ids
    assert len(parser.scripts) == 2 and all("src" not in attrs for attrs, _ in parser.scripts)
    assert "http" not in page.replace(hostile, "") and "http" not in "".join(v or "" for _, v in parser.attributes)
    assert "<title>&lt;b&gt;x&lt;/b&gt; &amp; y</title>" in page
    data = json.loads(next(body for attrs, body in parser.scripts if attrs.get("id") == "data"))
    assert data["n"] == len(rec) and data["hidden_sizes"] == [5, 4]
    for q in ("cell", "hidden"):
        for layer in range(2):
            values = dequantize(data["values"][q][layer], data["n"])
            # one byte per value over [-1, 1]: the rounding error is at most half a step, 1/255
            assert_close(f"page {q}[{layer}]", values, rec.activation(q, layer).T, 0.0, 1 / 255 + 1e-12)
    expected = {f"#{s.quantity}-{s.layer}-{s.unit}" for units in found.values() for v in units.values() for s in v}
    assert expected and set(parser.links) == expected
    assert not list(tmp_path.glob(".*.tmp")), "the atomic write left a temporary file"


NODE_HARNESS = """
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const spans = Array.from({length: input.n}, () => ({style: {}}));
const quiet = {addEventListener() {}};
const elements = {data: {textContent: input.data}, text: Object.assign({children: spans}, quiet),
                  quantity: Object.assign({value: ""}, quiet), layer: Object.assign({value: ""}, quiet),
                  unit: Object.assign({value: ""}, quiet), status: {}, showing: {}};
global.document = {getElementById: (id) => elements[id]};
global.window = {location: {hash: input.hash}, addEventListener() {}};
global.atob = (s) => Buffer.from(s, "base64").toString("latin1");
eval(input.script);
console.log(JSON.stringify({colours: spans.map((s) => s.style.backgroundColor),
                            showing: elements.showing.textContent, unit: elements.unit.value}));
"""


def expected_colours(values):
    """The page's diverging scale, in Python: white to blue (v < 0) or red (v > 0) by |v|."""
    white, blue, red = np.array([247, 247, 247]), np.array([33, 102, 172]), np.array([178, 24, 43])
    colours = []
    for v in values:
        end = blue if v < 0 else red
        rgb = np.floor(white + min(abs(v), 1) * (end - white) + 0.5).astype(int)   # JS Math.round
        colours.append("rgb(" + ",".join(map(str, rgb)) + ")")
    return colours


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_page_script_colours_the_chosen_unit(vocab):
    """Runs the page's own JavaScript in node against a minimal DOM stand-in."""
    rec = record(tiny_model(vocab, hidden_sizes=(5, 4)), vocab, TEXT)
    found = {"cell": find_property_units(rec, top=1)}
    parser = PageParser()
    parser.feed(cell_html(rec, property_units=found))
    scripts = {attrs.get("id"): body for attrs, body in parser.scripts}
    first = next(units[0] for units in found["cell"].values() if units)
    for hash_, (q, layer, unit) in (("#hidden-1-2", ("hidden", 1, 2)), ("", ("cell", first.layer, first.unit))):
        stdin = json.dumps({"n": len(rec), "data": scripts["data"], "script": scripts[None], "hash": hash_})
        result = subprocess.run(["node", "-e", NODE_HARNESS], input=stdin, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        shown = json.loads(result.stdout)
        stored = np.clip(np.rint((rec.activation(q, layer)[:, unit] + 1) * 127.5), 0, 255) / 127.5 - 1
        assert shown["colours"] == expected_colours(stored), f"colours of {q} layer {layer} unit {unit}"
        assert shown["unit"] == str(unit) and f"layer {layer}, unit {unit}" in shown["showing"]


def test_embedded_json_cannot_close_its_script_element():
    payload = {"name": "</script><!-- & -->"}
    text = _script_json(payload)
    assert not set("<>&") & set(text) and json.loads(text) == payload


def test_cell_html_truncates_to_max_chars(vocab):
    rec = record(tiny_model(vocab), vocab, TEXT)
    parser = PageParser()
    parser.feed(cell_html(rec, max_chars=10))
    assert parser.spans == list(TEXT[:10])
    data = json.loads(next(body for attrs, body in parser.scripts if attrs.get("id") == "data"))
    assert data["n"] == 10 and len(base64.b64decode(data["values"]["cell"][0])) == 10 * 4
    with pytest.raises(ValueError, match="max_chars=0"):
        cell_html(rec, max_chars=0)


# ----------------------------------------------------------------------------- gates and plots

def png_size(path) -> tuple:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_gate_saturation_counts_steps_beyond_the_thresholds(vocab):
    rec = record(tiny_model(vocab, hidden_sizes=(5, 4)), vocab, TEXT)
    saturation = gate_saturation(rec, low=0.2, high=0.7)
    assert len(saturation) == 2
    for layer, per_gate in enumerate(saturation):
        for gate, (left, right) in per_gate.items():
            values = rec.activation(f"{gate}_gate", layer)
            for unit in range(values.shape[1]):
                assert left[unit] == np.count_nonzero(values[:, unit] < 0.2) / len(rec)
                assert right[unit] == np.count_nonzero(values[:, unit] > 0.7) / len(rec)
    with pytest.raises(ValueError, match="low=0.9, high=0.1"):
        gate_saturation(rec, low=0.9, high=0.1)


def test_plots_are_pngs_of_the_expected_size(vocab, tmp_path):
    model = tiny_model(vocab, hidden_sizes=(5, 4))
    rec = record(model, vocab, TEXT)
    ids = vocab.encode(TEXT).astype(np.int64)
    paths = {
        plot_gate_saturation(rec, tmp_path / "gates.png", dpi=50): figure_pixels(gate_saturation_size(2), 50),
        plot_gradient_flow(gradient_flow(model, ids, window=12, windows=3), tmp_path / "flow.png", dpi=50):
            figure_pixels(GRADIENT_FLOW_INCHES, 50),
        plot_per_position_loss(per_position_loss(model, ids, 10, vocab=vocab), tmp_path / "pos.png", dpi=50):
            figure_pixels(POSITION_LOSS_INCHES, 50),
    }
    assert figure_pixels(gate_saturation_size(2), 50) == (450, 300)   # 3 gates x 2 layers of 3-inch panels
    for path, size in paths.items():
        assert path.stat().st_size > 1000 and png_size(path) == size


# ----------------------------------------------------------------------------- gradient flow

def full_bptt(caches, dh_top):
    """One whole-sequence backward call per layer, top to bottom: (dh0, dc0) per layer and the
    parameter gradients."""
    grads = [(None if l == 0 else np.zeros_like(c.Wx), np.zeros_like(c.Wh), np.zeros_like(c.b))
             for l, c in enumerate(caches)]
    starts, upstream = [None] * len(caches), dh_top
    for layer in reversed(range(len(caches))):
        dWx, dWh, db = grads[layer]
        if layer == 0:
            _, dh0, dc0 = core.lstm_recurrence_backward(upstream, None, None, caches[0], dWh, db)
        else:
            upstream, dh0, dc0 = core.lstm_backward(upstream, None, None, caches[layer], dWx, dWh, db)
        starts[layer] = (dh0, dc0)
    return starts, grads


def test_step_by_step_state_gradients_equal_full_bptt(vocab):
    model = tiny_model(vocab, hidden_sizes=(5, 4, 3)).eval()
    rng = np.random.default_rng(2)
    ids = rng.integers(0, len(vocab), size=(3, 7))
    model.forward(ids)
    caches = model.lstm_caches()
    dh_top = rng.normal(size=(7, 3, 3))             # a random upstream gradient on every step
    grads = [(None if l == 0 else np.zeros_like(c.Wx), np.zeros_like(c.Wh), np.zeros_like(c.b))
             for l, c in enumerate(caches)]
    dh, dc = lstm_state_gradients(caches, dh_top, grads)
    starts, full_grads = full_bptt(caches, dh_top)
    for layer in range(3):
        assert_close(f"layer {layer} dh0", dh[layer][0], starts[layer][0], EXACT, EXACT)
        assert_close(f"layer {layer} dc0", dc[layer][0], starts[layer][1], EXACT, EXACT)
        for name, got, want in zip(("dWx", "dWh", "db"), grads[layer], full_grads[layer]):
            if want is not None:
                assert_close(f"layer {layer} {name}", got, want, EXACT, EXACT)
    for t in range(1, 7):                            # every later step: BPTT over the suffix from t
        suffix, _ = full_bptt([slice_cache(c, t, 7) for c in caches], dh_top[t:])
        for layer in range(3):
            assert_close(f"step {t} layer {layer} dh", dh[layer][t], suffix[layer][0], EXACT, EXACT)
            assert_close(f"step {t} layer {layer} dc", dc[layer][t], suffix[layer][1], EXACT, EXACT)


@pytest.mark.parametrize("head", [dict(head_hidden=5, head_norm="layer", tie_weights=True, embedding_dim=5),
                                  dict(head_hidden=4, head_norm="batch", dropout=0.3)])
def test_window_gradients_equal_finite_differences_of_the_models_loss(vocab, head):
    model = tiny_model(vocab, hidden_sizes=(4, 3), **head)
    if "head.norm.running_mean" in model.buffers:   # non-trivial running statistics
        model.buffers["head.norm.running_mean"][:] = np.linspace(-0.5, 0.5, 4)
        model.buffers["head.norm.running_var"][:] = np.linspace(0.5, 2.0, 4)
    windows = np.random.default_rng(4).integers(0, len(vocab), size=(2, 6))
    dh, dc = lstm_window_gradients(model, windows, last=2)
    targets = windows[:, 1:].copy()
    targets[:, :3] = core.IGNORE_INDEX
    state = [(np.zeros((2, H)), np.zeros((2, H))) for H in model.config.hidden_sizes]

    def loss():                                       # the summed loss of the last two predictions
        return model.forward(windows[:, :-1], targets, state)[1] * model.tokens_in_loss

    model.eval()
    for layer, (h0, c0) in enumerate(state):
        check_gradient(f"layer {layer} dL/dh0", dh[layer][0], numerical_gradient(loss, h0))
        check_gradient(f"layer {layer} dL/dc0", dc[layer][0], numerical_gradient(loss, c0))


def test_vanilla_rnn_state_gradients_equal_finite_differences():
    rnn = VanillaRNN(6, 4, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    inputs = rng.integers(0, 6, size=(5, 2))
    targets = rng.integers(0, 6, size=(5, 2))
    targets[:3] = core.IGNORE_INDEX
    h0 = rng.normal(size=(2, 4)) * 0.5
    grads = rnn.state_gradients(inputs, targets, h0)
    check_gradient("vanilla RNN dL/dh0", grads[0], numerical_gradient(lambda: rnn.loss(inputs, targets, h0), h0))


def test_gradient_flow_compares_trained_untrained_and_vanilla(vocab):
    model = tiny_model(vocab, hidden_sizes=(8, 8))
    ids = vocab.encode(TEXT).astype(np.int64)
    flows = gradient_flow(model, ids, window=30, windows=4, last=2, rng=5)
    assert [f.label for f in flows] == ["trained LSTM", "untrained LSTM", "vanilla tanh RNN (untrained)"]
    for flow in flows:
        assert isinstance(flow, GradientFlow)
        np.testing.assert_array_equal(flow.distance, np.arange(1, 31))
        assert all(a.shape == (4, 30) and np.isfinite(a).all() and (a > 0).all() for a in flow.dh)
    assert len(flows[0].dc) == 2 and flows[2].dc is None
    rnn = flows[2].quartiles("dh")[1]
    assert rnn[-1] < 1e-3 * rnn[0], "a tanh RNN with U(-1/sqrt(H), 1/sqrt(H)) weights loses its gradient"
    again = gradient_flow(LanguageModel(model.config), ids, window=30, windows=4, last=2, rng=5, contrast=False)
    np.testing.assert_array_equal(again[0].dh[0], flows[1].dh[0])   # "untrained" = the config's init
    with pytest.raises(ValueError, match="at least window \\+ 1"):
        sample_windows(ids[:10], 30, 2, 0)
    with pytest.raises(ValueError, match="last=31"):
        gradient_flow(model, ids, window=30, windows=2, last=31)


# ----------------------------------------------------------------------------- loss by position

def test_per_position_loss_matches_the_models_loss(vocab):
    model = tiny_model(vocab, hidden_sizes=(4,))
    ids = vocab.encode(TEXT).astype(np.int64)
    T = 10
    result = per_position_loss(model, ids, T, vocab=vocab, batch=3)
    windows = np.stack([ids[k * T:k * T + T + 1] for k in range((len(ids) - 1) // T)])
    model.eval()
    losses = [model.forward(w[None, :-1], w[None, 1:])[1] for w in windows]
    assert result.windows == len(windows) and result.mean.shape == (T,)
    assert_close("mean over positions", result.overall, np.mean(losses), EXACT, EXACT)
    counts = {name: count for name, (_, count) in result.by_class.items()}
    assert sum(counts.values()) == len(windows) * T
    assert counts["newlines"] == sum(vocab.decode(w[1:]).count("\n") for w in windows)
    assert json.loads(json.dumps(result.as_dict()))["window"] == T
    subset = per_position_loss(model, ids, T, max_windows=2)
    assert subset.windows == 2 and subset.by_class == {}
    with pytest.raises(ValueError, match="at least T \\+ 1"):
        per_position_loss(model, ids[:5], T)


# ----------------------------------------------------------------------------- the example

def load_example():
    spec = importlib.util.spec_from_file_location("internals_example", REPO / "examples" / "internals.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_help():
    result = subprocess.run([sys.executable, str(REPO / "examples" / "internals.py"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--text" in result.stdout and "--smoke" in result.stdout


def test_example_smoke_run(tmp_path, capsys):
    written = load_example().main(["--smoke", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    names = {"cells.html", "gate_saturation.png", "gradient_flow.png", "position_loss.png", "summary.json",
             "cells_line_position.png", "cells_inside_quotes.png", "cells_speaker_name.png"}
    assert {p.name for p in written.values()} == names
    for path in written.values():
        assert path.parent == tmp_path and path.stat().st_size > 0 and f"wrote {path}" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["property_units"]["cell"]) == set(PROPERTIES)
    assert "inside quotes" in out and "gradient flow" in out


def test_example_on_a_checkpoint_and_text_file(vocab, tmp_path, capsys):
    from minilstm.model_io import save_model
    example = load_example()
    checkpoint = save_model(tmp_path / "tiny.ckpt", tiny_model(vocab, dtype="float32"), vocab)
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    written = example.main([str(checkpoint), "--text", str(tmp_path / "text.txt"), "--out",
                            str(tmp_path / "out"), "--window", "20", "--windows", "2",
                            "--position-window", "20", "--chars", "60"])
    assert (tmp_path / "out" / "cells.html").is_file() and "cells_line_position.png" in {p.name for p in written.values()}
    assert "recorded 60 characters" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        example.parse_args([])                        # neither a checkpoint nor --smoke
    with pytest.raises(SystemExit):
        example.parse_args([str(checkpoint), "--chars", "0"])


def test_cell_text_picture_colours_each_character_by_the_unit(vocab, tmp_path):
    """One coloured cell per character: the pixel at a character's cell has the colour map's
    colour for that unit's value there (a unit at +1 is red, -1 blue)."""
    from matplotlib import colormaps
    from matplotlib.image import imread
    from minilstm.inspect import plot_cell_text
    recording = record(tiny_model(vocab), vocab, TEXT)
    path = plot_cell_text(recording, tmp_path / "cells.png", layer=0, unit=1, max_chars=30, columns=40, dpi=100)
    image = imread(path)
    values = np.clip(recording.activation("cell", 0)[:30, 1], -1, 1)
    # the first character's cell: x from 0.1 in, y from 0.4 in, 0.11 x 0.2 in; sample its lower-left corner
    pixel = image[int((0.4 + 0.17) * 100), int((0.1 + 0.01) * 100), :3]
    expected = np.array(colormaps["bwr"](0.5 + 0.5 * values[0])[:3])
    # 8-bit PNG rounding and anti-aliasing at the cell edge stay within 0.05 of the colour
    assert np.abs(pixel - expected).max() < 0.05
    with pytest.raises(ValueError, match="plot_cell_text: layer 0, unit 999"):
        plot_cell_text(recording, tmp_path / "bad.png", layer=0, unit=999)
