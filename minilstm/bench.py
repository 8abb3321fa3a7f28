"""``minilstm bench``: how fast this machine trains and samples a given model size.

A quick, self-contained check (no PyTorch needed): the median time of the library's own
training step (``train.train_step``: forward, backward, gradient norm, Adam) and forward pass
on random data, and characters per second of the sampler at batch 1, on every available
backend. The side-by-side comparison with PyTorch lives in ``benchmarks/`` in the repository.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from . import core
from ._malloc import malloc_status
from .data import CharVocab
from .model import LanguageModel, ModelConfig
from .optimizers import make_optimizer
from .sample import SampleConfig, Sampler
from .train import train_step


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_bench(B: int = 50, T: int = 50, H: int = 128, L: int = 2, V: int = 65, repeats: int = 5) -> str:
    vocab = CharVocab.build("".join(chr(0x4E00 + k) for k in range(V)))   # V distinct symbols
    model = LanguageModel(ModelConfig(vocab_size=V, embedding_dim=H, hidden_sizes=(H,) * L))
    optimizer = make_optimizer("adam", model.params)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, V, size=(B, T + 1))
    inputs, targets = ids[:, :-1], ids[:, 1:]
    sampler = Sampler(model, vocab)
    sample_cfg = SampleConfig(prompt=vocab.decode(ids[0, :20]), length=500, seed=0, chunk=500)
    rows = []
    backends = (["numba"] if core.numba_available() else []) + ["numpy"]
    for backend in backends:
        with core.use_backend(backend):
            start = time.perf_counter()
            train_step(model, optimizer, inputs, targets, lr=1e-3)
            sampler.generate(SampleConfig(length=3))
            first = time.perf_counter() - start
            step = _median_seconds(lambda: train_step(model, optimizer, inputs, targets, lr=1e-3), repeats)
            forward = _median_seconds(lambda: model.eval().forward(inputs), repeats)
            model.train()
            sample = _median_seconds(lambda: sampler.generate(sample_cfg), max(1, repeats // 2))
        rows.append(f"| {backend} | {first:.2f} | {step:.4f} | {B * T / step:,.0f} | {forward:.4f} | "
                    f"{500 / sample:,.0f} |")
    header = (f"B={B} T={T} H={H} L={L} V={V}, {model.num_parameters:,} parameters, "
              f"{core.backend_info()['backend']} backend active; malloc: {malloc_status()}\n\n"
              "| backend | first step + first sample incl. compile (s) | train step (s) | "
              "train tokens/s | forward (s) | sampled chars/s |\n|---|---|---|---|---|---|")
    return "\n".join([header] + rows)
