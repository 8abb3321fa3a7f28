"""``minilstm train``: a text file (or tiny Shakespeare) to a trained model, from the command line.

    minilstm train --data input.txt --hidden-sizes 512 --max-seconds 600 --out runs/mine
    minilstm train --level word --lowercase --strip-punctuation --max-epochs 5
    minilstm train --data my_text.txt --init-from runs/shakespeare/best.ckpt --vocab extend --lr 5e-4

The flags are the fields of :class:`DataConfig` (here), :class:`~.finetune.FinetuneConfig`,
:class:`~.model.ModelConfig` and :class:`~.train_config.TrainConfig`. The vocabulary size is not
a flag: it follows from the text. Examples build on :func:`prepare_run` with their own defaults.
"""
from __future__ import annotations

from dataclasses import dataclass

from .cli_args import add_dataclass_arguments, dataclass_from_args
from .data import CharVocab, WordVocab, load_shakespeare, read_text, split_ids
from .finetune import FinetuneConfig, prepare_finetune
from .model import LanguageModel, ModelConfig
from .train import FitResult, Trainer
from .train_config import TrainConfig

LEVELS = ("char", "word")
MODEL_RENAME = {"seed": "init_seed"}      # TrainConfig.seed (data order) keeps --seed


@dataclass
class DataConfig:
    data: str = ""                  # UTF-8 text file to train on ("": tiny Shakespeare, found in the cache or fetched)
    encoding: str = "utf-8"         # text encoding of --data
    level: str = "char"             # "char": one token per character; "word": words, punctuation and line breaks
    lowercase: bool = False         # word level: fold case first
    strip_punctuation: bool = False  # word level: drop punctuation marks
    max_vocab: int = 0              # word level: keep the most frequent words only (0: all); others become <unk>
    val_fraction: float = 0.1       # the last this fraction of the text, by position, is the validation split
    out: str = "runs/minilstm"      # output directory: checkpoints, metrics.jsonl, loss.png, vocab

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"DataConfig.level: got {self.level!r}, expected one of {LEVELS}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"DataConfig.val_fraction: got {self.val_fraction!r}, expected a number in (0, 1)")
        if self.max_vocab < 0:
            raise ValueError(f"DataConfig.max_vocab: got {self.max_vocab!r}, expected 0 (all) or a positive count")
        if not self.out:
            raise ValueError("DataConfig.out: got '', expected an output directory")


@dataclass
class PreparedRun:
    model: LanguageModel
    vocab: object
    train_ids: object
    val_ids: object
    train_config: TrainConfig
    data_config: DataConfig

    def trainer(self, **kwargs) -> Trainer:
        return Trainer(self.model, self.train_config, self.train_ids, self.val_ids, vocab=self.vocab,
                       out_dir=self.data_config.out, **kwargs)


def add_train_arguments(parser, *, data_defaults=None, model_defaults=None, train_defaults=None) -> None:
    """All ``train`` flags; ``*_defaults`` override the dataclass defaults (an example's choices)."""
    add_dataclass_arguments(parser, DataConfig, defaults=data_defaults)
    add_dataclass_arguments(parser, FinetuneConfig)
    add_dataclass_arguments(parser, ModelConfig, skip=("vocab_size",), defaults=model_defaults,
                            rename=MODEL_RENAME)
    add_dataclass_arguments(parser, TrainConfig, defaults=train_defaults)


def load_text(cfg: DataConfig) -> str:
    return read_text(cfg.data, encoding=cfg.encoding) if cfg.data else load_shakespeare()


def build_vocab(cfg: DataConfig, text: str):
    if cfg.level == "char":
        return CharVocab.build(text)
    return WordVocab.build(text, max_size=cfg.max_vocab or None, lowercase=cfg.lowercase,
                           strip_punctuation=cfg.strip_punctuation, keep_newlines=True)


def prepare_run(args, text: str | None = None, **train_overrides) -> PreparedRun:
    """Data, vocabulary, model and configuration from parsed ``train`` arguments."""
    data_cfg = dataclass_from_args(DataConfig, args)
    tune_cfg = dataclass_from_args(FinetuneConfig, args)
    train_cfg = dataclass_from_args(TrainConfig, args, **train_overrides)
    text = load_text(data_cfg) if text is None else text
    if tune_cfg.init_from:
        tune = prepare_finetune(tune_cfg.init_from, text, vocab=tune_cfg.vocab)
        if tune.added:
            print(f"vocabulary extended by {len(tune.added)} symbol(s): {''.join(map(str, tune.added[:40]))!r}")
        model, vocab, ids = tune.model, tune.vocab, tune.ids
        print(f"initialised from {tune.source}")
    else:
        vocab = build_vocab(data_cfg, text)
        # a capped word vocabulary maps the words it dropped to <unk>; otherwise nothing is unknown
        ids = vocab.encode(text, unknown="map" if data_cfg.level == "word" and data_cfg.max_vocab else "error")
        model = LanguageModel(dataclass_from_args(ModelConfig, args, rename=MODEL_RENAME, vocab_size=len(vocab)))
    splits = split_ids(ids, (1.0 - data_cfg.val_fraction, data_cfg.val_fraction, 0.0))
    if len(splits.val) < 2:
        raise ValueError(f"DataConfig.val_fraction: {data_cfg.val_fraction} of {len(ids)} tokens leaves "
                         f"{len(splits.val)} for validation; at least 2 are needed")
    print(f"data: {len(ids):,} tokens ({data_cfg.level} level, vocabulary {len(vocab)}), "
          f"{len(splits.train):,} train / {len(splits.val):,} validation")
    return PreparedRun(model, vocab, splits.train, splits.val, train_cfg, data_cfg)


def run_train(args) -> int:
    """``minilstm train``: exit status 0 when the run ended by a budget or early stopping, 130
    when a signal interrupted it (last.ckpt is saved either way; ``--resume auto`` continues)."""
    result: FitResult = prepare_run(args).trainer().fit()
    return 130 if result.status == "interrupted" else 0
