"""Tiny corpora, models and configurations shared by the trainer tests (kept small so the whole
trainer test set runs in seconds, with or without the JIT)."""
import io

import numpy as np

from minilstm.data import CharVocab
from minilstm.model import LanguageModel, ModelConfig
from minilstm.train import TrainConfig, Trainer

class Terminal(io.StringIO):
    """An in-memory stream that says it is a terminal: the progress bar is drawn only on one."""
    def isatty(self):
        return True


WORDS = ["ab", "bad", "cab", "dace", "faced", "bead", "deaf", "ace", "fade"]


def corpus(n_words: int = 400, seed: int = 0) -> str:
    """Words over a 9-symbol alphabet with sentence ends: learnable, and not periodic."""
    rng = np.random.default_rng(seed)
    words = rng.choice(WORDS, size=n_words)
    ends = rng.random(n_words) < 0.15
    return "".join(w + (".\n" if end else " ") for w, end in zip(words, ends))


TEXT = corpus()
VOCAB = CharVocab.build(TEXT)
IDS = VOCAB.encode(TEXT)
TRAIN, VAL = IDS[:1800], IDS[1800:]


def tiny_model(**overrides) -> LanguageModel:
    settings = dict(vocab_size=len(VOCAB), embedding_dim=6, hidden_sizes=(12,), seed=0)
    settings.update(overrides)
    return LanguageModel(ModelConfig(**settings))


def tiny_config(**overrides) -> TrainConfig:
    """Quiet and fast: no bar, plot, estimate or sample unless a test asks for them."""
    settings = dict(max_epochs=2, batch_size=4, seq_len=8, eval_every=0, progress=False, plot=False,
                    estimate=False, sample_length=0, log_every=1)
    settings.update(overrides)
    return TrainConfig(**settings)


def make_trainer(out_dir=None, model=None, train=TRAIN, val=VAL, vocab=VOCAB, stream=None, **overrides):
    stream = stream if stream is not None else io.StringIO()
    return Trainer(model or tiny_model(), tiny_config(**overrides), train, val, vocab, out_dir, stream=stream)


def train_records(records):
    """(step, loss, lr, grad_norm) of every train record: what must match between two runs."""
    return [(r["step"], r["loss"], r["lr"], r["grad_norm"]) for r in records if r["kind"] == "train"]


def eval_records(records):
    return [(r["step"], r["val_loss"]) for r in records if r["kind"] == "eval"]


def poems(count: int = 24, length: int = 12, pad: int = 0, seed: int = 0) -> np.ndarray:
    """Front-padded rows of ids 1..V-1 with id ``pad`` as padding (the tang layout)."""
    rng = np.random.default_rng(seed)
    rows = np.full((count, length), pad, dtype=np.int32)
    for row in rows:
        n = int(rng.integers(4, length + 1))
        row[length - n:] = rng.integers(1, len(VOCAB), size=n)
    return rows
