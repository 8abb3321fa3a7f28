"""Text generation from a trained model."""
from __future__ import annotations

import numpy as np


def sample_text(model, vocab, prompt: str = "", length: int = 200, temperature: float = 1.0,
                seed: int | None = None) -> str:
    """Generate ``length`` tokens after ``prompt`` by ancestral sampling at ``temperature``."""
    rng = np.random.default_rng(seed)
    model.eval()
    if prompt:
        ids = vocab.encode(prompt, unknown="skip")
    else:
        ids = np.array([0], dtype=np.int64)
    state = None
    out = []
    logits, _, state = model.forward(np.asarray(ids, dtype=np.int64).reshape(1, -1), state=state)
    for _ in range(length):
        z = logits[0, -1].astype(np.float64) / temperature
        p = np.exp(z - z.max())
        p /= p.sum()
        token = int(rng.choice(len(p), p=p))
        out.append(token)
        logits, _, state = model.forward(np.array([[token]]), state=state)
    return vocab.decode(out)
