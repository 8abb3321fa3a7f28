"""The autoregressive loops: priming on a prompt and generating tokens, entirely compiled.

``prime`` runs a prompt through the model as one sequence, layer by layer (the first layer's
input is a table lookup, every other layer's input projection is one product over all prompt
positions), leaving the final state and the logits of the last position. ``generate`` then
repeats, for ``steps`` tokens and n sequences at once: choose a token from the logits
(``decode.choose_token``), apply the constraints, feed the token back (``step.forward_token``).
The caller gets control back only after a chunk of tokens, so no Python runs per token; it
calls again, with all state carried in the arrays, to continue (which is how output streams).

Constraints, per sequence, with ``progress`` (n, 3) = [position in line, line number, next head]
carried across calls:
- acrostic: at the start of a line the next head token is forced; a line ends at a token of
  ``line_end``; once every head has been used, the sequence finishes at the end of its line;
- poem shape (``line_len`` > 0): ``line_len`` tokens from ``allowed_line`` (no punctuation),
  then ``comma`` (even lines) or ``period`` (odd lines), ``n_lines`` lines in all;
- a token in ``stop_mask`` finishes its sequence (it is still written to ``out``).
Finished sequences write -1.

Equivalence: priming then generating gives exactly the state and logits that feeding the same
tokens one at a time through ``forward_token`` gives (``tests/test_sample.py`` checks it), since
both perform the same operations in the same order.
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel
from .decode import choose_token
from .matvec import matvec_gates
from .step import INPUT_READY, forward_token, layer_step, output_head


@kernel
def prime(weights, layers, head, eps, prompt, h, c, logits):
    """Run ``prompt`` (T,) through the model from the state h, c (1, S); logits (1, V) <- the
    prediction after the last prompt token."""
    T = prompt.shape[0]
    V = logits.shape[1]
    below = np.empty((T, 1), dtype=h.dtype)
    for layer in range(layers.shape[0]):
        H, D, off_in = layers[layer, 0], layers[layer, 1], layers[layer, 2]
        off_wh, off_b, off_s = layers[layer, 3], layers[layer, 4], layers[layer, 5]
        parts = layers[layer, 6]
        G = 4 * H
        xw = np.zeros((T, G), dtype=h.dtype)
        if layer == 0:                                         # xw_t = (E @ Wx)[token_t]
            table = weights[off_in:off_in + V * G].reshape(V, G)
            for t in range(T):
                xw[t] = table[prompt[t]]
        else:                                                  # all positions in one product
            matvec_gates(below, weights[off_in:off_in + D * G], xw, parts)
        Wh = weights[off_wh:off_wh + H * G]
        b = weights[off_b:off_b + G]
        h_prev = np.empty((1, H), dtype=h.dtype)
        out = np.empty((T, H), dtype=h.dtype)
        for t in range(T):     # + h_{t-1} @ Wh + b, the cell (tokens, below, W_in unused: INPUT_READY)
            layer_step(INPUT_READY, prompt, h, Wh, Wh, b, h_prev, c, h, off_s, parts, xw[t])
            out[t] = h[0, off_s:off_s + H]
        below = out
    output_head(weights, head, eps, below[T - 1:T], np.empty(head[1] + 1, dtype=h.dtype), logits)


@kernel
def generate(weights, layers, head, eps, tokens, h, c, xw_buf, z_buf, logits, steps, out,
             temperature, top_k, top_p, greedy, penalty, seen, allowed_free, allowed_line,
             stop_mask, finished, rng, p, heads, line_end, line_len, n_lines, comma, period,
             progress):
    """Generate up to ``steps`` tokens per sequence into out (n, steps).

    Returns (steps done, -1) or, when the logits of sequence i are not finite, (step, i).
    """
    n = logits.shape[0]
    n_heads = heads.shape[0]
    for step in range(steps):
        alive = False
        for i in range(n):
            if finished[i]:
                out[i, step] = -1
                continue
            pos, line, nxt = progress[i, 0], progress[i, 1], progress[i, 2]
            token = -1
            forced_head = False
            allowed = allowed_free
            if line_len > 0:                                   # poem-shaped lines
                if pos == line_len:
                    token = comma if line % 2 == 0 else period
                elif pos == 0 and nxt < n_heads:
                    token = heads[nxt]
                    forced_head = True
                else:
                    allowed = allowed_line
            elif n_heads > 0 and pos == 0:                     # acrostic with free lines
                if nxt == n_heads:
                    finished[i] = True
                    out[i, step] = -1
                    continue
                token = heads[nxt]
                forced_head = True
            if token < 0:
                token = choose_token(logits[i], allowed, seen[i], temperature, top_k, top_p,
                                     greedy, penalty, rng, p)
                if token < 0:
                    return step, i
            out[i, step] = token
            seen[i, token] = True
            tokens[i] = token
            if forced_head:
                progress[i, 2] = nxt + 1
            if line_len > 0:
                if pos == line_len:
                    progress[i, 0] = 0
                    progress[i, 1] = line + 1
                    if line + 1 == n_lines:
                        finished[i] = True
                else:
                    progress[i, 0] = pos + 1
            elif n_heads > 0:
                progress[i, 0] = 0 if line_end[token] else pos + 1
            if stop_mask[token]:
                finished[i] = True
            if not finished[i]:
                alive = True
        forward_token(weights, layers, head, eps, tokens, h, c, xw_buf, z_buf, logits)
        if not alive:
            return step + 1, -1
    return steps, -1
