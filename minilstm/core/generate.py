"""The autoregressive loops: priming on a prompt and generating tokens, entirely compiled.

``prime`` runs a prompt through the model as one sequence, layer by layer (the first layer's
input is a table lookup, every other layer's input projection is one product over all prompt
positions), leaving the final state and the logits of the last position. ``generate`` then
repeats, for ``steps`` tokens and n sequences at once: choose a token from the logits
(``decode.choose_token``), apply the constraints, feed the token back (``step.token_layers``).
The caller gets control back only after a chunk of tokens, so no Python runs per token; it
calls again, with all state carried in the arrays, to continue (which is how output streams).

Teams. Both loops can run as a team of threads (``minilstm.sample_team``), each member owning
one block of hidden units of every layer (``step.py``) and meeting the others on shared
counters (``team.meet``): in ``prime`` after every position, in ``generate`` before every layer
but the first and after the last. Member 0 runs ``generate``; the others run ``assist``, which
starts the next token's first-layer recurrent product h_{t-1} @ Wh as soon as h_{t-1} is
complete, while member 0 computes the logits and chooses the token, and waits for member 0's
word (``sync[8 (members + 1)]``, the step whose tokens are chosen) only to add the token's
input. Per token at H=512 L=1 on two cores: 27.9 us, against 31-32 us with a parallel region
per layer and token, where the logits and the choice kept the second core idle.

Constraints, per sequence, with ``progress`` (n, 3) = [position in line, line number, next head]
carried across calls:
- acrostic: at the start of a line the next head token is forced; a line ends at a token of
  ``line_end``; once every head has been used, the sequence finishes at the end of its line;
- poem shape (``line_len`` > 0): ``line_len`` tokens from ``allowed_line`` (no punctuation),
  then ``comma`` (even lines) or ``period`` (odd lines), ``n_lines`` lines in all;
- a token in ``stop_mask`` finishes its sequence (it is still written to ``out``).
Finished sequences write -1.

Equivalence: priming then generating gives exactly the state and logits that feeding the same
tokens one at a time through ``step.forward_token`` gives, alone or as a team of any size
(``tests/test_sample.py`` checks it), since every element sees the same operations in order.
"""
from __future__ import annotations

import numpy as np

from ._jit import atomic_load, atomic_store, kernel, spin_pause
from .decode import choose_token
from .matvec import matvec_panels
from .step import INPUT_LOOKUP, INPUT_READY, finish_block, output_head, recurrent_block, token_layers
from .team import meet


@kernel
def prime(member, members, weights, layers, edges, head, eps, prompt, h, c, logits, outs, u, sync):
    """Run ``prompt`` (T,) through the model from the state h, c (1, S), leaving the final state
    there and, in member 0, logits (1, V) <- the prediction after the last prompt token.

    Layer by layer: above the first layer, the input projections of all T positions first (one
    product over the layer below's outputs), then the T recurrent steps (the first layer looks
    its table rows up at each step, as generating does). As member ``member`` of a team
    of ``members`` threads it runs block ``member`` of each layer and meets the others after
    every position; alone (0 of 1) it runs every block. outs (T, S) and u (T, >= 4H) are
    scratch shared by the team: the layers' outputs at every position, and the input
    projections of the layers above the first (whose rows are looked up, as in generating).
    Returns False if the team was aborted."""
    T = prompt.shape[0]
    first, last = (0, edges.shape[1] - 1) if members == 1 else (member, member + 1)
    count, below = 0, 0
    for layer in range(layers.shape[0]):
        H, D, off_in = layers[layer, 0], layers[layer, 1], layers[layer, 2]
        off_wh, off_b, off_s = layers[layer, 3], layers[layer, 4], layers[layer, 5]
        G = 4 * H
        Wh, b = weights[off_wh:off_wh + H * G], weights[off_b:off_b + G]
        table = weights[off_in:off_in + logits.shape[1] * G]   # the first layer's (E @ Wx) rows
        if layer > 0:                          # this member's input projections, all positions
            for p in range(first, last):       # in one product over the layer below's outputs
                lo, hi = edges[layer, p], edges[layer, p + 1]
                u[:, 4 * lo:4 * hi] = 0.0
                matvec_panels(outs[:, below:below + D], weights[off_in:off_in + D * G], 4 * lo, 4 * hi, u, 4 * lo)
        xw = np.empty(G, dtype=h.dtype)
        for t in range(T):
            previous = h[:, off_s:off_s + H] if t == 0 else outs[t - 1:t, off_s:off_s + H]
            for p in range(first, last):
                lo, hi = edges[layer, p], edges[layer, p + 1]
                xw_p = xw[4 * lo:4 * hi].reshape((1, 4 * (hi - lo)))
                recurrent_block(previous, Wh, lo, hi, xw_p)
                finish_block(INPUT_LOOKUP if layer == 0 else INPUT_READY, prompt[t:t + 1], outs, table, b,
                             lo, hi, xw_p, u[t, 4 * lo:4 * hi].reshape((1, 4 * (hi - lo))), c,
                             outs[t:t + 1], off_s)
            if members > 1:
                count += 1
                if not meet(sync, member, members, count):
                    return False
        for p in range(first, last):    # every member has read h_0 (it met the others since)
            lo, hi = edges[layer, p], edges[layer, p + 1]
            h[:, off_s + lo:off_s + hi] = outs[T - 1:T, off_s + lo:off_s + hi]
        below = off_s
    if member == 0:
        width = layers[layers.shape[0] - 1, 0]
        output_head(weights, head, eps, outs[T - 1:T, below:below + width], np.empty(head[1] + 1, dtype=h.dtype),
                    logits)
    return True


@kernel
def generate(members, weights, layers, edges, head, eps, tokens, h2, c, xw_buf, u_buf, z_buf, logits,
             steps, out, temperature, top_k, top_p, greedy, penalty, seen, allowed_free,
             allowed_line, stop_mask, finished, rng, p, heads, line_end, line_len, n_lines, comma,
             period, progress, sync):
    """Generate up to ``steps`` tokens per sequence into out (n, steps), as member 0 of a team of
    ``members`` threads (the others run :func:`assist`; alone, members == 1). The state is
    h2[0], c (n, S) on entry and on return; h2[1] is where each step writes h_t.

    Returns (steps done, -1); (step, i) when the logits of sequence i are not finite; (step, -2)
    when the team was aborted. Before returning it stops the team (``sync[STOP]``)."""
    done, bad, now = generate_steps(members, weights, layers, edges, head, eps, tokens, h2, c, xw_buf,
                                    u_buf, z_buf, logits, steps, out, temperature, top_k, top_p, greedy,
                                    penalty, seen, allowed_free, allowed_line, stop_mask, finished, rng,
                                    p, heads, line_end, line_len, n_lines, comma, period, progress, sync)
    if now == 1:
        h2[0] = h2[1]
    atomic_store(sync, 8 * members, 1)         # team.meet's abort flag: the helpers return
    return done, bad


@kernel
def generate_steps(members, weights, layers, edges, head, eps, tokens, h2, c, xw_buf, u_buf, z_buf,
                   logits, steps, out, temperature, top_k, top_p, greedy, penalty, seen, allowed_free,
                   allowed_line, stop_mask, finished, rng, p, heads, line_end, line_len, n_lines,
                   comma, period, progress, sync):
    """The loop of :func:`generate`; returns (done, bad, which of h2 holds the state)."""
    n = logits.shape[0]
    n_heads = heads.shape[0]
    top = layers.shape[0] - 1
    width, off_top = layers[top, 0], layers[top, 5]
    now, count = 0, 0
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
                    return step, i, now
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
        if members > 1:
            atomic_store(sync, 8 * (members + 1), step + 1)   # the tokens are chosen: helpers go on
        count = token_layers(0, members, weights, layers, edges, logits.shape[1], tokens, h2[now],
                             h2[1 - now], c, xw_buf, u_buf, sync, count, False)
        if count < 0:
            return step, -2, now
        now = 1 - now
        output_head(weights, head, eps, h2[now][:, off_top:off_top + width], z_buf, logits)
        if not alive:
            return step + 1, -1, now
    return steps, -1, now


@kernel
def assist(member, members, weights, layers, edges, vocab, tokens, h2, c, xw_buf, u_buf, sync):
    """Member ``member`` >= 1 of the team that runs :func:`generate` with member 0. Per token:
    its block's recurrent part of the first layer, as soon as h_{t-1} is complete (while member
    0 computes the logits and chooses the token), then, once member 0 has published the tokens,
    the rest of its blocks (``step.token_layers``). Returns when member 0 stops the team."""
    n = tokens.shape[0]
    H, off_wh, off_s = layers[0, 0], layers[0, 3], layers[0, 5]
    lo, hi = edges[0, member], edges[0, member + 1]
    xw = xw_buf[n * 4 * lo:n * 4 * hi].reshape((n, 4 * (hi - lo)))
    stop, start = 8 * members, 8 * (members + 1)
    count, step, now = 0, 0, 0
    while True:
        recurrent_block(h2[now][:, off_s:off_s + H], weights[off_wh:off_wh + 4 * H * H], lo, hi, xw)
        spins = 0
        while atomic_load(sync, start) <= step:
            if atomic_load(sync, stop) != 0:
                return
            spin_pause(spins)
            spins += 1
        count = token_layers(member, members, weights, layers, edges, vocab, tokens, h2[now], h2[1 - now],
                             c, xw_buf, u_buf, sync, count, True)
        if count < 0:
            return
        step += 1
        now = 1 - now
