"""The ``minilstm`` command: train, sample, bench and gradcheck.

    minilstm train --data input.txt --hidden-sizes 512 --max-seconds 600
    minilstm sample runs/shakespeare/best.ckpt --prompt "ROMEO:" --length 500 --temperature 0.8
    minilstm bench --hidden 512 --layers 2
    minilstm gradcheck

Flags for configuration come from the dataclasses (``ModelConfig``, ``TrainConfig``,
``SampleConfig``) through ``cli_args``, so the command line and the Python API are the same.
"""
from __future__ import annotations

import argparse
import sys

from . import __version__
from .cli_args import add_dataclass_arguments, dataclass_from_args


def _sample(args) -> int:
    from .model_io import load_model
    from .sample import SampleConfig, Sampler
    loaded = load_model(args.checkpoint)
    if loaded.vocab is None:
        raise ValueError(f"checkpoint {args.checkpoint} has no vocabulary stored; cannot decode text")
    cfg = dataclass_from_args(SampleConfig, args)
    sampler = Sampler(loaded.model, loaded.vocab)
    out = sys.stdout
    if cfg.n == 1:
        for piece in sampler.stream(cfg):
            out.write(piece)
            out.flush()
        out.write("\n")
    else:
        for k, text in enumerate(sampler.generate(cfg)):
            out.write(f"--- sample {k + 1} of {cfg.n}\n{text}\n")
    if cfg.seed == -1:
        print(f"(seed {sampler.last_seed})", file=sys.stderr)
    return 0


def _gradcheck(args) -> int:
    from .gradcheck import RTOL, model_gradcheck
    rows = model_gradcheck(seed=args.seed, input_mode=args.input_mode,
                           hidden_sizes=tuple(args.hidden_sizes), head_norm=args.head_norm,
                           head_hidden=args.head_hidden if args.head_norm != "none" or args.head_hidden else 0)
    print("Whole-model gradient check, float64, fourth-order central differences (h = 1e-4).")
    print(f"Pass: max |analytic - numeric| / max(|analytic|, |numeric|, 1e-3) <= {RTOL:g}\n")
    print(f"{'parameter':<18} {'shape':<12} {'max rel. error':>15} {'max abs. error':>15}  result")
    for row in rows:
        print(f"{row.name:<18} {str(row.shape):<12} {row.max_relative_error:>15.2e} "
              f"{row.max_absolute_error:>15.2e}  {'ok' if row.passed else 'FAILED'}")
    failed = [row.name for row in rows if not row.passed]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} parameters pass" +
          (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _bench(args) -> int:
    from .bench import run_bench
    print(run_bench(args.batch, args.steps, args.hidden, args.layers, args.vocab, args.repeats))
    return 0


def _train(args) -> int:
    from .train_cli import run_train
    return run_train(args)


def build_parser() -> argparse.ArgumentParser:
    from .sample import SampleConfig
    parser = argparse.ArgumentParser(prog="minilstm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"minilstm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model on a text file (or Shakespeare)")
    from .train_cli import add_train_arguments
    add_train_arguments(train)
    train.set_defaults(run=_train)

    sample = commands.add_parser("sample", help="generate text from a checkpoint")
    sample.add_argument("checkpoint", help="a checkpoint file written by training")
    add_dataclass_arguments(sample, SampleConfig)
    sample.set_defaults(run=_sample)

    bench = commands.add_parser("bench", help="time training steps and generation on this machine")
    bench.add_argument("--batch", type=int, default=50, help="B (default 50)")
    bench.add_argument("--steps", type=int, default=50, help="T (default 50)")
    bench.add_argument("--hidden", type=int, default=128, help="H (default 128)")
    bench.add_argument("--layers", type=int, default=2, help="L (default 2)")
    bench.add_argument("--vocab", type=int, default=65, help="V (default 65)")
    bench.add_argument("--repeats", type=int, default=5, help="timed repetitions (default 5)")
    bench.set_defaults(run=_bench)

    check = commands.add_parser("gradcheck", help="verify every gradient of a tiny float64 model")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--input-mode", choices=("embedding", "onehot"), default="embedding")
    check.add_argument("--hidden-sizes", type=int, nargs="+", default=[4, 3])
    check.add_argument("--head-hidden", type=int, default=5)
    check.add_argument("--head-norm", choices=("none", "layer", "batch"), default="layer")
    check.set_defaults(run=_gradcheck)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"minilstm {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
