"""Fine-tuning: train on one text (tiny Shakespeare by default), go on training on another, and measure the change.

    python examples/finetune.py --data my_text.txt                        # Shakespeare 10 min, then my_text 3 min
    python examples/finetune.py --data my_text.txt --base-checkpoint runs/shakespeare/best.ckpt --vocab extend
    python examples/finetune.py --data lyrics.txt --base-max-seconds 120 --max-steps 500 --lr 3e-4
    python examples/finetune.py --smoke                                   # both phases tiny, in seconds

Phase 1 (skipped with --base-checkpoint) trains a model on --base-data with the ModelConfig flags
and the --base-* budget and rate. Phase 2 starts from that model's best checkpoint and trains on
--data with the TrainConfig flags (a lower default rate, 5e-4, so that the start is refined rather
than overwritten). --vocab decides what happens to symbols of the new text the base vocabulary
lacks: "same" refuses them (listing them), "extend" appends them and grows the model, copying every
old parameter (``minilstm.finetune``).

The comparison, printed and written to comparison.json: the validation loss on the new text's
validation split (its last --val-fraction) of the base model and of the fine-tuned model (the final
parameters of phase 2; no checkpoint is picked by that loss), and a sample of each from the same
--prompt and --sample-seed. With --vocab extend the base model is measured and sampled as extended,
the model phase 2 starts from: its logits for old symbols are the base model's, and the new
symbols' rows are freshly initialised.

Outputs in --out: base/ (phase 1: best.ckpt, last.ckpt, metrics.jsonl), finetune/ (phase 2, the
same files) and comparison.json. Without --base-data the tiny Shakespeare corpus is used (found in
the cache or fetched by ``minilstm.data.load_shakespeare``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from minilstm._io import atomic_write_text
from minilstm.cli_args import add_dataclass_arguments
from minilstm.data import load_shakespeare, read_text
from minilstm.finetune import VOCAB_MODES, FinetuneConfig
from minilstm.model import ModelConfig
from minilstm.model_io import load_model
from minilstm.sample import SampleConfig, Sampler
from minilstm.train_cli import MODEL_RENAME, DataConfig, prepare_run
from minilstm.train_config import TrainConfig
from minilstm.train_data import evaluate

DATA_DEFAULTS = {"out": "runs/finetune"}
MODEL_DEFAULTS = {"embedding_dim": 64, "hidden_sizes": (512,)}
TRAIN_DEFAULTS = {"max_epochs": 0, "max_seconds": 180.0, "lr": 5e-4, "batch_size": 32, "seq_len": 100,
                  "eval_every": 200, "sample_length": 0}
BASE_BUDGET = {"base_max_epochs": 0, "base_max_steps": 0, "base_max_seconds": 600.0, "base_lr": 2e-3}

SMOKE_BASE_TEXT = ("ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet "
                   "is the sun.\n\nJULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n\n") * 20
SMOKE_NEW_TEXT = ("order #1: two eggs @ one penny\norder #2: a loaf @ two pence\n"
                  "order #3: three pears @ one penny\n") * 15       # '#', '@' and digits are new symbols
SMOKE_DEFAULTS = {"embedding_dim": 16, "hidden_sizes": (48,), "base_max_seconds": 0.0, "base_max_steps": 60,
                  "base_lr": 1e-2, "max_seconds": 0.0, "max_steps": 48, "lr": 5e-3, "batch_size": 8, "seq_len": 32,
                  "eval_every": 40, "vocab": "extend", "length": 60, "progress": False, "estimate": False,
                  "plot": False, "overwrite": True, "out": ""}


def build_parser(smoke: bool = False) -> argparse.ArgumentParser:
    """All flags; with ``smoke`` the tiny sizes of --smoke are the defaults (explicit flags still win)."""
    parser = argparse.ArgumentParser(
        prog="finetune.py", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    base = parser.add_argument_group("phase 1, the base model")
    base.add_argument("--base-data", default="", help="UTF-8 text of phase 1 (default: tiny Shakespeare)")
    base.add_argument("--base-checkpoint", default="",
                      help="a model checkpoint to start phase 2 from; phase 1 is skipped")
    base.add_argument("--base-max-epochs", type=int, help="phase 1 budget: passes over --base-data (default 0: none)")
    base.add_argument("--base-max-steps", type=int, help="phase 1 budget: optimizer steps (default 0: none)")
    base.add_argument("--base-max-seconds", type=float, help="phase 1 budget: wall-clock seconds (default 600)")
    base.add_argument("--base-lr", type=float, help="phase 1 learning rate (default 2e-3)")
    parser.set_defaults(**BASE_BUDGET)
    compare = parser.add_argument_group("the comparison samples")
    compare.add_argument("--prompt", default="The ", help="text both samples start from (default 'The ')")
    compare.add_argument("--length", type=int, default=300, help="tokens per sample (default 300)")
    compare.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    compare.add_argument("--sample-seed", type=int, default=0, help="seed of both samples (default 0)")
    parser.add_argument("--smoke", action="store_true",
                        help="both phases tiny on two built-in texts, the second with symbols the first lacks "
                             "(output in a new temporary directory unless --out is given)")
    add_dataclass_arguments(parser, DataConfig, defaults=DATA_DEFAULTS)
    add_dataclass_arguments(parser, FinetuneConfig, skip=("init_from",))
    add_dataclass_arguments(parser, ModelConfig, skip=("vocab_size",), defaults=MODEL_DEFAULTS, rename=MODEL_RENAME)
    add_dataclass_arguments(parser, TrainConfig, defaults=TRAIN_DEFAULTS)
    if smoke:
        parser.set_defaults(**SMOKE_DEFAULTS)
    return parser


def problems(args):
    """(flag, what was expected) for every value the dataclasses do not check themselves."""
    if not (args.data or args.smoke):
        yield "data", "the new text's file (required unless --smoke)"
    if args.base_checkpoint and not Path(args.base_checkpoint).is_file():
        yield "base_checkpoint", "an existing checkpoint file"
    if args.vocab not in VOCAB_MODES:
        yield "vocab", f"one of {VOCAB_MODES}"
    for name in ("base_max_epochs", "base_max_steps", "base_max_seconds", "sample_seed"):
        if getattr(args, name) < 0:
            yield name, "a number >= 0"
    for name in ("base_lr", "length", "temperature"):
        if getattr(args, name) <= 0:
            yield name, "a number > 0"


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser(smoke="--smoke" in (sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv)
    for name, expected in problems(args):
        parser.error(f"--{name.replace('_', '-')}: got {getattr(args, name)!r}, expected {expected}")
    if args.smoke and not args.out:
        args.out = tempfile.mkdtemp(prefix="minilstm-finetune-")
    return args


def with_values(args, **values) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), **values})


def train_base(args, out: Path) -> Path:
    """Phase 1: a model trained on --base-data; returns its best (else last) checkpoint."""
    if args.smoke and not args.base_data:
        text, name = SMOKE_BASE_TEXT, "the built-in base text"
    else:
        text = read_text(args.base_data, encoding=args.encoding) if args.base_data else load_shakespeare()
        name = args.base_data or "tiny Shakespeare"
    print(f"=== phase 1: the base model on {name}")
    run = prepare_run(with_values(args, out=str(out), init_from=""), text=text, max_epochs=args.base_max_epochs,
                      max_steps=args.base_max_steps, max_seconds=args.base_max_seconds, lr=args.base_lr)
    run.trainer().fit()
    return out / "best.ckpt" if (out / "best.ckpt").is_file() else out / "last.ckpt"


def measure(model, vocab, validation, args) -> dict:
    """Validation loss on the new text and a sample from the comparison prompt and seed."""
    evaluation = evaluate(model, validation)
    sample = Sampler(model, vocab).generate(SampleConfig(
        prompt=args.prompt, length=args.length, temperature=args.temperature, seed=args.sample_seed,
        unknown="skip", include_prompt=True))[0]
    return {"val_loss": evaluation.loss, "val_tokens": evaluation.tokens, "sample": sample}


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    try:
        new_text = SMOKE_NEW_TEXT if args.smoke and not args.data else read_text(args.data, encoding=args.encoding)
        base = Path(args.base_checkpoint) if args.base_checkpoint else train_base(args, out / "base")
        print(f"\n=== phase 2: fine-tuning {base} on {args.data or 'the built-in new text'} (vocab {args.vocab!r})")
        run = prepare_run(with_values(args, out=str(out / "finetune"), init_from=str(base)), text=new_text)
        trainer = run.trainer()
        before = measure(run.model, run.vocab, trainer.validation, args)
        result = trainer.fit()
        after = measure(trainer.model, run.vocab, trainer.validation, args)
    except (ValueError, OSError) as exc:
        print(f"finetune.py: error: {exc}", file=sys.stderr)
        sys.exit(2)
    added = list(run.vocab.tokens[len(load_model(base).vocab):])
    comparison = {"base_checkpoint": str(base), "vocab": args.vocab, "added_symbols": added,
                  "finetune_steps": result.step, "base": before, "finetuned": after}
    atomic_write_text(out / "comparison.json", json.dumps(comparison, indent=1) + "\n")
    print(f"\n=== validation loss on the new text ({after['val_tokens']:,} tokens of its validation split)")
    print(f"base model        {before['val_loss']:.4f} nats/token")
    print(f"fine-tuned model  {after['val_loss']:.4f} nats/token  ({after['val_loss'] - before['val_loss']:+.4f} "
          f"after {result.step} steps)")
    for name, measured in (("base model", before), ("fine-tuned model", after)):
        print(f"\n--- sample of the {name} (prompt {args.prompt!r}, temperature {args.temperature:g}, "
              f"seed {args.sample_seed})\n{measured['sample']}")
    print(f"\nwrote {out / 'comparison.json'}")
    return comparison


if __name__ == "__main__":
    main()
