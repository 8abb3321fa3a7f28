"""Cell highlighting: one self-contained HTML page per recording.

The page shows the recorded text with each character's background coloured by one unit's
activation — tanh(c) or h, both in [-1, 1] — on a diverging blue-white-red scale, as in
Karpathy, Johnson & Fei-Fei (2015). Controls pick the quantity, layer and unit; an index table
lists the units most correlated with simple text properties, each linking to its view
(``#cell-<layer>-<unit>`` or ``#hidden-<layer>-<unit>``).

Self-contained: CSS and JavaScript are inline and the data is embedded as JSON, so the page
works offline and loads nothing. Every character is HTML-escaped into its own ``<span>``; the
JSON is escaped so no ``</script>`` can end its element early. Activations are stored as one
byte each, ``round((v + 1) * 127.5)`` (error at most 1/255, invisible in a colour), base64 per
quantity and layer, unit-major.
"""
from __future__ import annotations

import base64
import html
import json

import numpy as np

from .._io import atomic_write_text
from .properties import PROPERTIES
from .recording import Recording

QUANTITY_LABELS = {"cell": "cell state tanh(c)", "hidden": "hidden state h"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.5em; }
table { border-collapse: collapse; } td, th { padding: 0.2em 0.8em; text-align: left; vertical-align: top; }
tr:nth-child(even) { background: #f4f4f4; }
a.unit { font-family: monospace; margin-right: 0.8em; white-space: nowrap; }
#controls label { margin-right: 1em; }
#status { font-family: monospace; min-height: 1.3em; color: #555; }
#text { white-space: pre-wrap; word-wrap: break-word; font-family: monospace; font-size: 14px;
        line-height: 1.55; border: 1px solid #ccc; padding: 0.6em; }
#text span.nl::before { content: "\\21B5"; color: #888; }
.scale { display: inline-block; width: 12em; height: 0.9em; vertical-align: middle;
         background: linear-gradient(to right, rgb(33,102,172), rgb(247,247,247), rgb(178,24,43)); }
.note { color: #555; font-size: 0.9em; }
"""

SCRIPT = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("data").textContent);
  var spans = document.getElementById("text").children;
  var quantity = document.getElementById("quantity"), layer = document.getElementById("layer");
  var unit = document.getElementById("unit"), status = document.getElementById("status");
  var decoded = {}, current = null;
  var BLUE = [33, 102, 172], WHITE = [247, 247, 247], RED = [178, 24, 43];
  function values(q, l) {
    var key = q + ":" + l;
    if (!decoded[key]) {
      var raw = atob(data.values[q][l]), bytes = new Uint8Array(raw.length);
      for (var k = 0; k < raw.length; k++) { bytes[k] = raw.charCodeAt(k); }
      decoded[key] = bytes;
    }
    return decoded[key];
  }
  function colour(v) {
    var end = v < 0 ? BLUE : RED, a = Math.min(Math.abs(v), 1), rgb = [];
    for (var k = 0; k < 3; k++) { rgb.push(Math.round(WHITE[k] + a * (end[k] - WHITE[k]))); }
    return "rgb(" + rgb.join(",") + ")";
  }
  function show(q, l, u) {
    var sizes = data.hidden_sizes;
    l = Math.max(0, Math.min(sizes.length - 1, l)); u = Math.max(0, Math.min(sizes[l] - 1, u));
    quantity.value = q; layer.value = String(l); unit.max = sizes[l] - 1; unit.value = String(u);
    var bytes = values(q, l), n = data.n;
    for (var t = 0; t < n; t++) {
      var v = bytes[u * n + t] / 127.5 - 1;
      spans[t].style.backgroundColor = colour(v);
      spans[t].style.color = Math.abs(v) > 0.65 ? "#fff" : "#000";
    }
    current = {q: q, l: l, u: u};
    document.getElementById("showing").textContent = data.labels[q] + ", layer " + l + ", unit " + u;
  }
  function fromHash() {
    var m = /^#(cell|hidden)-(\\d+)-(\\d+)$/.exec(window.location.hash);
    if (m) { show(m[1], parseInt(m[2], 10), parseInt(m[3], 10)); return true; }
    return false;
  }
  function fromControls() {
    window.location.hash = quantity.value + "-" + layer.value + "-" + (parseInt(unit.value, 10) || 0);
  }
  quantity.addEventListener("change", fromControls);
  layer.addEventListener("change", fromControls);
  unit.addEventListener("change", fromControls);
  window.addEventListener("hashchange", fromHash);
  document.getElementById("text").addEventListener("mouseover", function (event) {
    var t = Array.prototype.indexOf.call(spans, event.target);
    if (t < 0 || !current) { return; }
    var v = values(current.q, current.l)[current.u * data.n + t] / 127.5 - 1, loss = data.loss[t];
    status.textContent = "character " + t + ": value " + v.toFixed(2) +
      (loss === null ? "" : ", loss " + loss.toFixed(2) + " nats");
  });
  if (!fromHash()) { show(data.start[0], data.start[1], data.start[2]); }
})();
"""


def _quantize(values: np.ndarray) -> str:
    """(T, H) values in [-1, 1] -> base64 of the (H, T) bytes round((v + 1) * 127.5)."""
    q = np.clip(np.rint((values.astype(np.float64).T + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return base64.b64encode(np.ascontiguousarray(q).tobytes()).decode("ascii")


def dequantize(encoded: str, n: int) -> np.ndarray:
    """Inverse of the page's encoding: (H, n) values from one base64 string."""
    raw = np.frombuffer(base64.b64decode(encoded), dtype=np.uint8)
    return raw.reshape(-1, n) / 127.5 - 1.0


def _script_json(payload: dict) -> str:
    """JSON that is safe inside <script>: no '<', '>' or '&' can start markup."""
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _text_spans(tokens) -> str:
    """One escaped <span> per token; newlines carry class "nl" (a CSS-only marker)."""
    parts = []
    for token in tokens:
        cls = ' class="nl"' if token == "\n" else ""
        parts.append(f"<span{cls}>{html.escape(token, quote=True)}</span>")
    return "".join(parts)


def _index_table(property_units: dict) -> str:
    """Rows of the property index: name, then links to the best units with their r."""
    rows = []
    for name, scores in property_units.items():
        if scores:
            links = " ".join(
                f'<a class="unit" href="#{s.quantity}-{s.layer}-{s.unit}">L{s.layer} U{s.unit} '
                f'(r={s.r:+.2f})</a>' for s in scores)
        else:
            links = '<span class="note">constant in this text (absent): nothing to correlate</span>'
        known = PROPERTIES.get(name)
        about = known.__doc__.strip().split("\n")[0] if known is not None else ""
        rows.append(f'<tr><td>{html.escape(name)}</td><td class="note">{html.escape(about)}</td>'
                    f"<td>{links}</td></tr>")
    return "\n".join(rows)


def _controls(recording: Recording) -> str:
    quantities = "".join(f'<option value="{q}">{html.escape(label)}</option>'
                         for q, label in QUANTITY_LABELS.items())
    layers = "".join(f'<option value="{l}">{l} ({H} units)</option>'
                     for l, H in enumerate(recording.hidden_sizes))
    return (f'<form id="controls" onsubmit="return false">'
            f'<label>quantity <select id="quantity">{quantities}</select></label>'
            f'<label>layer <select id="layer">{layers}</select></label>'
            f'<label>unit <input id="unit" type="number" min="0" value="0"></label></form>')


def cell_html(recording: Recording, *, property_units: dict | None = None,
              title: str = "LSTM cells", max_chars: int = 2000) -> str:
    """The page as a string (see the module docstring); :func:`write_cell_html` writes it.

    ``property_units``: ``{"cell" | "hidden": find_property_units(...)}`` for the index tables.
    Only the first ``max_chars`` tokens are shown (the page embeds every unit of every layer for
    them); correlations in the index are whatever ``property_units`` was computed on.
    """
    if isinstance(max_chars, bool) or not isinstance(max_chars, (int, np.integer)) or max_chars < 1:
        raise ValueError(f"cell_html: max_chars={max_chars!r}, expected a positive integer")
    property_units = property_units or {}
    n = min(len(recording), max_chars)
    first = next((units[0] for by_property in property_units.values()
                  for units in by_property.values() if units), None)
    start = [first.quantity, first.layer, first.unit] if first else ["cell", 0, 0]
    payload = {
        "n": n, "hidden_sizes": list(recording.hidden_sizes), "labels": QUANTITY_LABELS, "start": start,
        "values": {q: [_quantize(recording.activation(q, l)[:n]) for l in range(recording.num_layers)]
                   for q in QUANTITY_LABELS},
        "loss": [None if np.isnan(v) else round(float(v), 3) for v in recording.loss[:n]],
    }
    shown = (f"all {n} characters" if n == len(recording)
             else f"the first {n} of {len(recording)} characters")
    index = "".join(
        f"<h3>{html.escape(QUANTITY_LABELS.get(q, q))}</h3><table><tr><th>property</th>"
        f"<th>meaning</th><th>most correlated units (Pearson r)</th></tr>\n{_index_table(units)}</table>"
        for q, units in property_units.items())
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">{recording.num_layers} layer(s) of {list(recording.hidden_sizes)} units; '
        f"showing {shown}; mean loss {recording.mean_loss:.3f} nats per character. "
        'Colour: <span class="scale"></span> -1 (blue) to +1 (red).</p>',
        '<section id="index"><h2>Units that track text properties</h2>',
        index or '<p class="note">no property index was computed</p>', "</section>",
        '<section id="viewer"><h2>Cell highlighting: <span id="showing"></span></h2>',
        _controls(recording), '<div id="status"></div>',
        f'<pre id="text">{_text_spans(recording.tokens[:n])}</pre></section>',
        f'<script type="application/json" id="data">{_script_json(payload)}</script>',
        f"<script>{SCRIPT}</script>", "</body></html>", ""])


def write_cell_html(recording: Recording, path, **options):
    """Write :func:`cell_html` (same options) to ``path`` atomically; returns the path."""
    return atomic_write_text(path, cell_html(recording, **options))
