"""Word-level Shakespeare: the classic tutorial preprocessing, fixed-length windows, and two ways to generate.

    python examples/word_level.py                          # tiny Shakespeare, 10 minutes, then samples
    python examples/word_level.py --data my.txt --min-count 5 --max-seconds 120 --out runs/words
    python examples/word_level.py --prompt "to be or not" --words 80 --window 12
    python examples/word_level.py --smoke                  # a tiny model on a built-in text, in seconds

Preprocessing (the ``WordVocab`` options): case folded (--lowercase), punctuation dropped
(--strip-punctuation), every line break kept as the token "\\n" so verse keeps its lines, and
words seen fewer than --min-count times, or beyond the --max-vocab most frequent, mapped to <unk>.

Batching: "windows", random fixed-length windows of --seq-len words, each starting from the zero
state. That is the training that matches the sliding-window generator below: the model learns
to predict a word from at most seq_len preceding words and a fresh state, which is exactly what
the generator gives it. ("stream" batching, --batching stream, carries the state across batches
instead and suits the stateful sampler; the validation loss then measures long-context use.)

Generation, printed and written to samples.txt, from the same prompt:
  stateful        ``minilstm.sample.Sampler``: the prompt primes the LSTM state, and every word
                  after it is conditioned on the whole history through that state;
  sliding window  each word is drawn from ``model.forward`` run from the zero state over the last
                  --window words only (the window slides forward as words are generated), so
                  nothing older than --window words can influence the next one.
Both never emit <pad> or <unk>. Outputs in --out: best.ckpt (lowest validation loss, used for the
samples), last.ckpt (resume with --resume auto), metrics.jsonl, loss.png (with matplotlib) and
samples.txt. Without --data the tiny Shakespeare corpus is used (found in the cache or fetched by
``minilstm.data.load_shakespeare``).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from minilstm._io import atomic_write_text
from minilstm.cli_args import dataclass_from_args
from minilstm.data import WordVocab
from minilstm.model_io import load_model
from minilstm.sample import NEVER_GENERATED, SampleConfig, Sampler
from minilstm.train_cli import DataConfig, add_train_arguments, load_text, prepare_run

DATA_DEFAULTS = {"level": "word", "lowercase": True, "strip_punctuation": True, "max_vocab": 10000,
                 "out": "runs/word_level"}
MODEL_DEFAULTS = {"embedding_dim": 128, "hidden_sizes": (256,), "dropout": 0.2}
TRAIN_DEFAULTS = {"batching": "windows", "batch_size": 32, "seq_len": 30, "max_epochs": 0, "max_seconds": 600.0,
                  "lr": 2e-3, "eval_every": 200, "sample_length": 40}
PROMPT = "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n"

SMOKE_TEXT = "A zephyr, once only, sighs.\n" + ("ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet "
              "is the sun.\n\nJULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n\n") * 30
SMOKE_DEFAULTS = {"embedding_dim": 8, "hidden_sizes": (16,), "dropout": 0.0, "max_seconds": 0.0, "max_steps": 60,
                  "batch_size": 8, "seq_len": 8, "eval_every": 30, "sample_length": 10, "progress": False,
                  "estimate": False, "plot": False, "overwrite": True, "min_count": 2, "words": 24, "out": ""}


def build_parser(smoke: bool = False) -> argparse.ArgumentParser:
    """All flags; with ``smoke`` the tiny sizes of --smoke are the defaults (explicit flags still win)."""
    parser = argparse.ArgumentParser(
        prog="word_level.py", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--min-count", type=int, default=3,
                        help="words seen fewer times than this become <unk> (default 3; 1 keeps all)")
    parser.add_argument("--prompt", default=PROMPT, help=f"text both generators start from (default {PROMPT!r})")
    parser.add_argument("--words", type=int, default=100, help="words to generate per sample (default 100)")
    parser.add_argument("--window", type=int, default=0,
                        help="words of context of the sliding-window generator (default 0: --seq-len, "
                             "the length the model was trained on)")
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    parser.add_argument("--sample-seed", type=int, default=0, help="seed of both generators (default 0)")
    parser.add_argument("--smoke", action="store_true",
                        help="train a tiny model for a few steps on a built-in text (output in a new temporary "
                             "directory unless --out is given)")
    add_train_arguments(parser, data_defaults=DATA_DEFAULTS, model_defaults=MODEL_DEFAULTS,
                        train_defaults=TRAIN_DEFAULTS)
    if smoke:
        parser.set_defaults(**SMOKE_DEFAULTS)
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    smoke = argparse.ArgumentParser(add_help=False)
    smoke.add_argument("--smoke", action="store_true")
    parser = build_parser(smoke.parse_known_args(argv)[0].smoke)
    args = parser.parse_args(argv)
    checks = [("level", args.level == "word", "'word' (this example is word level; use minilstm train for "
                                              "characters)"),
              ("batching", args.batching in ("windows", "stream"), "'windows' or 'stream'"),
              ("min_count", args.min_count >= 1, "an integer >= 1"),
              ("words", args.words >= 1, "an integer >= 1"),
              ("window", args.window >= 0, "an integer >= 1, or 0 for --seq-len"),
              ("temperature", args.temperature > 0 and np.isfinite(args.temperature), "a finite number > 0"),
              ("sample_seed", args.sample_seed >= 0, "an integer >= 0")]
    for name, ok, expected in checks:
        if not ok:
            parser.error(f"--{name.replace('_', '-')}: got {getattr(args, name)!r}, expected {expected}")
    if args.smoke and not args.out:
        args.out = tempfile.mkdtemp(prefix="minilstm-word-level-")
    args.window = args.window or args.seq_len
    return args


def vocabulary_cap(text: str, args) -> int:
    """--max-vocab with --min-count folded in. WordVocab orders words by decreasing count, so the
    words seen at least min_count times are exactly its first ones: keeping that many (plus the
    specials) applies the min-count rule, and the smaller of the two caps applies both."""
    if args.min_count == 1:
        return args.max_vocab
    counts = WordVocab.count_tokens(text, lowercase=args.lowercase, strip_punctuation=args.strip_punctuation,
                                    keep_newlines=True)
    frequent = sum(count >= args.min_count for count in counts.values())
    if frequent == 0:
        raise ValueError(f"--min-count: got {args.min_count}, but no word of the text occurs that often")
    cap = len(WordVocab.DEFAULT_SPECIALS) + frequent
    return min(cap, args.max_vocab) if args.max_vocab else cap


def banned_ids(vocab) -> np.ndarray:
    """Ids neither generator emits (the specials the Sampler never generates: <pad>, <unk>, ...)."""
    return np.array([vocab.specials[name] for name in NEVER_GENERATED if name in vocab.specials], dtype=np.int64)


def window_probabilities(model, context, window: int, temperature: float, banned) -> np.ndarray:
    """P(next word | the last ``window`` ids of ``context``), from the zero state, in float64;
    ``banned`` ids get probability 0."""
    ids = np.asarray(context, dtype=np.int64)[-window:][None, :]
    was_training = model.training
    model.eval()
    try:
        logits, _, _ = model.forward(ids)
    finally:
        model.training = was_training
    z = logits[0, -1].astype(np.float64) / temperature
    z[banned] = -np.inf
    p = np.exp(z - z.max())
    return p / p.sum()


def sliding_window_generate(model, context, count: int, window: int, temperature: float, rng,
                            banned=()) -> list:
    """``count`` ids, each drawn from :func:`window_probabilities` of the last ``window`` ids
    (prompt and generated ones), with ``rng`` a NumPy generator."""
    context, generated = list(context), []
    for _ in range(count):
        p = window_probabilities(model, context, window, temperature, banned)
        token = int(rng.choice(len(p), p=p))
        context.append(token)
        generated.append(token)
    return generated


def generate_both(model, vocab, args) -> dict:
    """{"stateful": text, "sliding window": text} from ``args.prompt`` with ``args.sample_seed``."""
    sampler = Sampler(model, vocab)
    stateful = sampler.generate(SampleConfig(prompt=args.prompt, length=args.words, temperature=args.temperature,
                                             seed=args.sample_seed, unknown="map"))[0]
    prompt_ids = sampler.encode_prompt(args.prompt, unknown="map")
    ids = sliding_window_generate(model, prompt_ids, args.words, args.window, args.temperature,
                                  np.random.default_rng(args.sample_seed), banned_ids(vocab))
    return {"stateful": stateful.strip(" "), "sliding window": vocab.decode(ids, skip_specials=True)}


def main(argv=None) -> dict:
    args = parse_args(argv)
    try:
        text = SMOKE_TEXT if args.smoke and not args.data else load_text(dataclass_from_args(DataConfig, args))
        args.max_vocab = vocabulary_cap(text, args)
        run = prepare_run(args, text=text)
        unk = np.count_nonzero(run.train_ids == run.vocab.specials["unk"]) / len(run.train_ids)
        print(f"vocabulary: {len(run.vocab):,} tokens (min count {args.min_count}, cap {args.max_vocab or 'none'}); "
              f"{unk:.1%} of the training words are <unk>")
        result = run.trainer().fit()
    except (ValueError, OSError) as exc:
        print(f"word_level.py: error: {exc}", file=sys.stderr)
        sys.exit(2)
    out = Path(args.out)
    best = out / "best.ckpt"
    model = load_model(best).model if best.is_file() else run.model
    samples = generate_both(model, run.vocab, args)
    report = "".join(f"--- {name}: {args.words} words after the prompt {args.prompt!r}, temperature "
                     f"{args.temperature:g}, seed {args.sample_seed}"
                     f"{f', context the last {args.window} words' if name == 'sliding window' else ''}\n{text}\n\n"
                     for name, text in samples.items())
    atomic_write_text(out / "samples.txt", report)
    if result.best_val_loss is not None:
        print(f"\nbest validation loss {result.best_val_loss:.4f} nats/word (perplexity "
              f"{np.exp(result.best_val_loss):.1f}) at step {result.best_step}")
    print(f"\nsamples from {best if best.is_file() else 'the final model (no validation ran)'}\n")
    print(report, end="")
    for name in ("best.ckpt", "last.ckpt", "metrics.jsonl", "loss.png", "samples.txt"):
        if (out / name).exists():
            print(f"wrote {out / name}")
    return {"out": out, "fit": result, "vocab": run.vocab, "samples": samples}


if __name__ == "__main__":
    main()
