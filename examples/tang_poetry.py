"""Train an LSTM on Tang poems (the tang.npz of the PyTorch poetry tutorials), then write poems.

    python examples/tang_poetry.py --data tang.npz                    # ~10 minutes on a laptop CPU
    python examples/tang_poetry.py --data tang.npz --acrostic 春夏秋冬 --max-seconds 3600
    python examples/tang_poetry.py --generate-only --checkpoint runs/tang/best.ckpt --starts 湖 月
    python examples/tang_poetry.py --convert-json chinese-poetry/全唐诗 --write tang.npz
    python examples/tang_poetry.py --smoke     # a tiny model on a generated poem set, in seconds

Training: a random --val-fraction of the poems (10 %) is held out; the rest are batched as whole
poems (``TrainConfig.batching="poems"``: one front-padded poem per row, padding ignored in the
loss); the trainer keeps best.ckpt (lowest validation loss), last.ckpt, metrics.jsonl and
loss.png in --out. Afterwards one poem per --starts entry is generated from best.ckpt, each
primed with ``<START>`` and its first characters and ended by the model's ``<EOP>`` (or
--length), and with --acrostic an acrostic poem whose k-th line starts with the k-th character
(free lines ending in 。, or with --poem-line 5 or 7 lines of that many characters).

The data: tang.npz holds ``data`` (int32, N x 125 rows: ``<START>`` poem ``<EOP>``, padded at
the front with ``</s>``) and the word2ix / ix2word dicts. It is read without unpickling
anything but those dicts (``minilstm.data.read_tang``). To make one from the public
chinese-poetry collection (https://github.com/chinese-poetry/chinese-poetry, folder 全唐诗: JSON
files ``poet.tang.<n>.json``, each a list of objects with a ``paragraphs`` list of lines) use
--convert-json DIR --write tang.npz. The model, training and sampling flags are the fields of
ModelConfig, TrainConfig and SampleConfig, with this example's own defaults.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minilstm.cli_args import add_dataclass_arguments, dataclass_from_args
from minilstm.data import (TANG_LENGTH, TangFormatError, convert_chinese_poetry, poems_from_texts, read_tang,
                           split_poems, write_tang)
from minilstm.data.tang import LONG_POEMS
from minilstm.model import LanguageModel, ModelConfig
from minilstm.model_io import load_model
from minilstm.sample import LINE_ENDS, SampleConfig, Sampler
from minilstm.train import Trainer
from minilstm.train_cli import MODEL_RENAME
from minilstm.train_config import TrainConfig

PROG = "tang_poetry.py"
DEFAULT_OUT = "runs/tang"
ACROSTIC_TRIES = 8           # acrostic candidates sampled together; the first that uses every head is shown
SAMPLE_RENAME = {"seed": "sample_seed"}      # TrainConfig.seed (poem order) keeps --seed
SAMPLE_SKIP = ("prompt", "stop", "n", "beam", "length_penalty", "unknown", "include_prompt", "chunk", "poem_lines")
TRAIN_SKIP = ("batching", "seq_len", "windows_per_epoch")          # always whole poems here
# Sized for a 2-core CPU and a 10-minute budget: the output layer over ~9,000 characters dominates
# a step (4-10 s for 64 poems), so the model is one 256-unit layer, a batch is 32 poems (more updates
# within the budget), and validation reads 5 batches (160 poems) every 100 steps and at the end.
MODEL_DEFAULTS = {"embedding_dim": 128, "hidden_sizes": (256,)}
TRAIN_DEFAULTS = {"max_seconds": 600.0, "batch_size": 32, "lr": 3e-3, "eval_every": 100, "eval_batches": 5,
                  "sample_length": 60}
SAMPLE_DEFAULTS = {"length": TANG_LENGTH - 1, "temperature": 0.8}
GET_DATA = (f"give a tang.npz (N x {TANG_LENGTH} poems with word2ix/ix2word, the layout of the PyTorch poetry "
            "tutorials), or make one from the chinese-poetry JSON files (https://github.com/chinese-poetry/"
            "chinese-poetry, folder 全唐诗) with --convert-json DIR --write tang.npz; or try --smoke, which needs no data")

# --smoke: a tiny model on a generated set of four-couplet poems of these characters (the default
# --starts and the acrostic 春夏秋冬 among them), trained for a few seconds; explicit flags still win.
SMOKE_CHARS = "春夏秋冬山水月花雨湖天江日夜"
SMOKE_DEFAULTS = {"embedding_dim": 16, "hidden_sizes": (64,), "max_seconds": 0.0, "max_epochs": 0, "max_steps": 50,
                  "batch_size": 16, "lr": 1e-2, "eval_every": 25, "eval_batches": 0, "sample_length": 0,
                  "estimate": False, "plot": False, "progress": False, "overwrite": True, "out": "",
                  "acrostic": "春夏秋冬"}


@dataclass
class PoemDataConfig:
    data: str = ""                  # tang.npz to train on (see --convert-json to make one)
    val_fraction: float = 0.1       # this fraction of the poems, drawn at random, is held out for validation
    split_seed: int = 0             # seed of that draw
    max_poems: int = 0              # use only the first this many poems of the file (0: all)
    out: str = DEFAULT_OUT          # output directory: best.ckpt, last.ckpt, metrics.jsonl, loss.png

    def __post_init__(self):
        for name, ok, expected in (("val_fraction", 0.0 < self.val_fraction < 1.0, "a number in (0, 1)"),
                                   ("max_poems", self.max_poems >= 0, "0 (all) or a positive count"),
                                   ("out", bool(self.out), "an output directory")):
            if not ok:
                raise ValueError(f"--{name.replace('_', '-')}: got {getattr(self, name)!r}, expected {expected}")


def build_parser(smoke: bool = False) -> argparse.ArgumentParser:
    """All flags; with ``smoke`` the tiny sizes of --smoke are the defaults."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--smoke", action="store_true",
                        help="train a tiny model for a few steps on a generated poem set (no data needed), then "
                             "generate; the poems and the run go to a new temporary directory unless --out is given")
    run = parser.add_argument_group("generation")
    run.add_argument("--starts", nargs="*", default=["湖", "山", "月", "春"],
                     help="first characters of the poems generated after training, one poem per entry "
                          "(default: 湖 山 月 春)")
    run.add_argument("--generate-only", action="store_true",
                     help="skip training: generate from --checkpoint")
    run.add_argument("--checkpoint", default="",
                     help="with --generate-only, the checkpoint poems are generated from (default: best.ckpt "
                          "in --out)")
    convert = parser.add_argument_group("conversion of chinese-poetry JSON to tang.npz")
    convert.add_argument("--convert-json", metavar="DIR",
                         help="a folder of poet.tang.<n>.json files (or one such file) to convert, then exit")
    convert.add_argument("--write", metavar="NPZ", help="where --convert-json writes the tang.npz")
    convert.add_argument("--max-length", type=int, default=TANG_LENGTH,
                         help=f"row length: a poem gets at most this minus 2 characters (default {TANG_LENGTH})")
    convert.add_argument("--long", choices=LONG_POEMS, default="drop",
                         help="longer poems: drop them, or truncate them after their last complete line "
                              "(default drop)")
    convert.add_argument("--keep-annotations", action="store_true",
                         help="keep the editorial notes in brackets, e.g. （一作...）")
    add_dataclass_arguments(parser, PoemDataConfig)
    add_dataclass_arguments(parser, ModelConfig, skip=("vocab_size",), defaults=MODEL_DEFAULTS, rename=MODEL_RENAME)
    add_dataclass_arguments(parser, TrainConfig, skip=TRAIN_SKIP, defaults=TRAIN_DEFAULTS)
    add_dataclass_arguments(parser, SampleConfig, skip=SAMPLE_SKIP, defaults=SAMPLE_DEFAULTS, rename=SAMPLE_RENAME)
    if smoke:
        parser.set_defaults(**SMOKE_DEFAULTS)
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(smoke="--smoke" in argv)
    args = parser.parse_args(argv)
    if (args.convert_json is None) != (args.write is None):
        parser.error("--convert-json DIR and --write NPZ go together (convert DIR into the file NPZ)")
    if args.max_length < 3:
        parser.error(f"--max-length: got {args.max_length}, expected an integer >= 3 (<START>, a character, <EOP>)")
    for start in args.starts:
        if not start:
            parser.error("--starts: got an empty entry, expected one or more first characters per poem")
    if args.convert_json is None and not args.smoke and not args.generate_only:
        if not args.data:
            parser.error(f"--data is required: {GET_DATA}")
        if not Path(args.data).is_file():
            parser.error(f"--data: {args.data!r} is not a file; {GET_DATA}")
    try:        # every configuration now, not after a training run
        dataclass_from_args(PoemDataConfig, args, out=args.out or DEFAULT_OUT)
        dataclass_from_args(ModelConfig, args, rename=MODEL_RENAME, vocab_size=2)
        dataclass_from_args(TrainConfig, args, batching="poems")
        dataclass_from_args(SampleConfig, args, rename=SAMPLE_RENAME)
    except ValueError as exc:
        parser.error(str(exc))
    return args


# ----------------------------------------------------------------------------- data

def convert(args) -> Path:
    """--convert-json DIR --write NPZ: chinese-poetry JSON -> tang.npz."""
    corpus = convert_chinese_poetry(args.convert_json, length=args.max_length, long=args.long,
                                    strip_annotations=not args.keep_annotations, log=print)
    path = write_tang(args.write, corpus)
    print(f"wrote {path}: {len(corpus)} poems of at most {corpus.length - 2} characters, "
          f"vocabulary {len(corpus.vocab)}")
    print(f"train on it with: python examples/{PROG} --data {path}")
    return path


def smoke_poems(count: int = 120, seed: int = 0) -> list:
    """``count`` poems of four couplets of five-character lines, characters drawn at random."""
    rng = np.random.default_rng(seed)
    line = lambda: "".join(rng.choice(list(SMOKE_CHARS), 5))    # noqa: E731
    return ["".join(f"{line()}，{line()}。" for _ in range(4)) for _ in range(count)]


def smoke_setup(args) -> None:
    """Write the generated poems as a tang.npz into --out (a new temporary directory by default)."""
    out = Path(args.out or tempfile.mkdtemp(prefix="minilstm-tang-"))
    args.out = str(out)
    args.data = str(write_tang(out / "smoke-tang.npz", poems_from_texts(smoke_poems(), length=60)))


def load_poems(cfg: PoemDataConfig):
    try:
        corpus = read_tang(cfg.data)
    except TangFormatError as exc:
        raise ValueError(f"--data: {exc}; expected the tang.npz layout (see --help)") from None
    poems = corpus.poems[:cfg.max_poems] if cfg.max_poems else corpus.poems
    splits = split_poems(poems, (1.0 - cfg.val_fraction, cfg.val_fraction, 0.0), seed=cfg.split_seed)
    print(f"data: {cfg.data}: {len(poems):,} of {len(corpus):,} poems (rows of {corpus.length}), vocabulary "
          f"{len(corpus.vocab):,}; {len(splits.train):,} train / {len(splits.val):,} validation")
    return corpus.vocab, splits


def train(args) -> Path:
    """Train on --data; returns the checkpoint to generate from (best.ckpt, or last.ckpt if no
    validation ran)."""
    data_cfg = dataclass_from_args(PoemDataConfig, args)
    vocab, splits = load_poems(data_cfg)
    model = LanguageModel(dataclass_from_args(ModelConfig, args, rename=MODEL_RENAME, vocab_size=len(vocab)))
    train_cfg = dataclass_from_args(TrainConfig, args, batching="poems")
    result = Trainer(model, train_cfg, splits.train, splits.val, vocab=vocab, out_dir=data_cfg.out).fit()
    best = Path(data_cfg.out) / "best.ckpt"
    if not best.is_file():
        print(f"no validation ran ({result.reason}), so there is no {best}; generating from {result.checkpoint}")
        return result.checkpoint
    print(f"best validation loss {result.best_val_loss:.3f} nats per character at step {result.best_step}: {best}")
    return best


# ----------------------------------------------------------------------------- generation

class PoemSampler(Sampler):
    """A Sampler whose prompts start with ``<START>``, as every poem did in training."""

    def encode_prompt(self, prompt: str, unknown: str = "error") -> np.ndarray:
        ids = super().encode_prompt(prompt, unknown)
        return np.concatenate([[self.vocab.special_id("start")], ids]) if prompt else ids


def check_characters(vocab, flag: str, text: str, source) -> None:
    missing = sorted({ch for ch in text if ch not in vocab})
    if missing:
        raise ValueError(f"{flag}: {''.join(missing)!r} in {text!r} are not among the {len(vocab):,} tokens of "
                         f"{source}; expected characters of the training poems (this corpus may be in "
                         "traditional characters)")


def sample_poems(sampler: PoemSampler, cfg: SampleConfig) -> list:
    """``(text, ended)`` for each of ``cfg.n`` samples; ``ended``: the model wrote ``<EOP>``."""
    end = sampler.vocab.special_id("end")
    ids = [[] for _ in range(cfg.n)]
    for chunk in sampler.token_chunks(cfg):
        for row, new in zip(ids, chunk):
            row.extend(int(t) for t in new if t >= 0)
    return [(cfg.prompt + sampler.vocab.decode(row, skip_specials=True), end in row) for row in ids]


def verse_lines(text: str, ends: str) -> list:
    """``text`` cut after every character of ``ends`` (an unterminated tail is a line too)."""
    lines, current = [], ""
    for ch in text:
        current += ch
        if ch in ends:
            lines.append(current)
            current = ""
    return lines + ([current] if current else [])


def write_poem(title: str, text: str, ends: str) -> None:
    print(title)
    for line in verse_lines(text, ends):
        print(f"  {line}")


def generate(args, checkpoint) -> dict:
    """Print one poem per --starts entry and, with --acrostic, an acrostic poem."""
    loaded = load_model(checkpoint)
    vocab = loaded.vocab
    if vocab is None or "end" not in vocab.specials or "start" not in vocab.specials:
        raise ValueError(f"--checkpoint: {checkpoint} has no poem vocabulary (<START>, <EOP>); "
                         "expected a checkpoint trained by this example")
    for start in args.starts:
        check_characters(vocab, "--starts", start, checkpoint)
    check_characters(vocab, "--acrostic", args.acrostic, checkpoint)
    sampler = PoemSampler(loaded.model, vocab)
    base = dataclass_from_args(SampleConfig, args, rename=SAMPLE_RENAME, stop=("end",))
    print(f"poems from {checkpoint} (temperature {base.temperature}, seed {base.seed}):")
    poems = []
    for k, start in enumerate(args.starts):
        # seed + k: poems from the same seed share their random draws (and, from a weak model, their text)
        cfg = SampleConfig(**{**vars(base), "acrostic": "", "poem_line": 0, "prompt": start, "seed": base.seed + k})
        text, ended = sample_poems(sampler, cfg)[0]
        poems.append(text)
        how = "ended at <EOP>" if ended else f"no <EOP> within {cfg.length} characters"
        write_poem(f"poem {k + 1}, starting {start} ({how}):", text, LINE_ENDS)
    acrostic = None
    if args.acrostic:
        acrostic = write_acrostic(sampler, base)
    return {"poems": poems, "acrostic": acrostic}


def write_acrostic(sampler: PoemSampler, base: SampleConfig) -> str:
    """The acrostic of --acrostic: free lines ending in 。！？, or with --poem-line lines of 5 or 7
    characters ending in ，/。; the first of ACROSTIC_TRIES samples that uses every head."""
    heads, ends = base.acrostic, "，。" if base.poem_line else LINE_ENDS
    cfg = SampleConfig(**{**vars(base), "prompt": "", "n": ACROSTIC_TRIES, "length": 40 * len(heads),
                          "poem_lines": len(heads)})
    candidates = [text for text, _ in sample_poems(sampler, cfg)]
    complete = [k for k, text in enumerate(candidates)
                if len(verse_lines(text, ends)) == len(heads) and text[-1:] in ends]
    if complete:
        chosen, how = complete[0], f"sample {complete[0] + 1} of {ACROSTIC_TRIES}"
    else:          # <EOP> or the length limit came first in every candidate: show the longest
        chosen = max(range(len(candidates)), key=lambda k: len(verse_lines(candidates[k], ends)))
        how = (f"incomplete: none of {ACROSTIC_TRIES} samples finished a line for every head within {cfg.length} "
               "characters before <EOP>; try another --sample-seed")
    write_poem(f"acrostic {heads} ({how}):", candidates[chosen], ends)
    return candidates[chosen]


def main(argv=None) -> dict:
    args = parse_args(argv)
    try:
        if args.convert_json is not None:
            return {"converted": convert(args)}
        if args.smoke and not args.data:
            smoke_setup(args)
        if args.generate_only:
            checkpoint = Path(args.checkpoint or Path(args.out) / "best.ckpt")
            if not checkpoint.is_file():
                raise FileNotFoundError(f"--checkpoint: {str(checkpoint)!r} is not a file; expected a checkpoint "
                                        "written by training (best.ckpt in --out)")
        else:
            checkpoint = train(args)
        return {"checkpoint": checkpoint, **generate(args, checkpoint)}
    except (ValueError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
