"""Quality at equal training time: validation loss of minilstm's default Shakespeare model against
the same LSTM trained in PyTorch (and, optionally, nanoGPT's CPU character model).

Protocol: tiny Shakespeare, the first 90 % trains and the last 10 % validates (by position); the
same machine, 2 threads, the same budget of *training* seconds for every run (evaluation time is
excluded from the budget and reported apart), run back to back in one invocation:

1. minilstm: ``examples/shakespeare.py`` with its defaults in a subprocess (``--max-seconds`` the
   budget, stdout kept as ``minilstm_stdout.txt``); its ``metrics.jsonl`` gives validation loss
   against training seconds (``elapsed_s - eval_s``: checkpoints, plots and samples count as
   training time), and its ``best.ckpt`` is evaluated here with minilstm's own ``evaluate``.
2. PyTorch: nn.Embedding + nn.LSTM + nn.Linear with the configuration read from minilstm's
   checkpoint (sizes, batching, Adam, schedule, clipping, and by default minilstm's initial
   weights), the same batches (minilstm's batchers over the same split), trained for as many
   training seconds as minilstm used, validated as often (the clock paused meanwhile), the best
   state kept.
3. nanoGPT (only with ``--nanogpt PATH``, a local copy of karpathy/nanoGPT): its ``train.py`` with
   the CPU setting of its README on the same text; its val loss at minilstm's training seconds.

Both LSTMs are scored on the whole validation split twice: read as 64 continuous streams with the
state carried (the primary figure), and as non-overlapping 100-character windows from the zero
state. Losses are nats per character.

    python benchmarks/quality.py [--seconds 600] [--data input.txt] [--nanogpt ~/nanoGPT] [--out DIR]
    python benchmarks/quality.py --example-args "--dropout 0.2"   # another configuration
    python benchmarks/quality.py --smoke          # tiny models, a few seconds each (a test)
"""
from __future__ import annotations

import common  # noqa: F401  (first: sets the thread count before numpy loads)

import argparse
import contextlib
import copy
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from minilstm.core import IGNORE_INDEX, reorder_gates
from minilstm.data import load_shakespeare, read_text, split_ids
from minilstm.model import LanguageModel
from minilstm.model_io import load_model
from minilstm.train_checkpoint import load_training_checkpoint
from minilstm.train_data import evaluate, training_batches, validation_set

VAL_FRACTION = 0.1
EVAL_STREAMS, EVAL_SEQ = 64, 100           # the reported figures: 64 streams; 100-character windows
PLOT_SPAN = 0.6                            # nats shown above the lowest validation loss in the plot
DEFAULT_DATA = common.REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
SMOKE_FLAGS = ["--hidden-sizes", "64", "--batch-size", "8", "--seq-len", "32", "--eval-every", "20",
               "--sample-chars", "40"]
NANOGPT_FLAGS = ["--device=cpu", "--compile=False", "--eval_iters=20", "--log_interval=1", "--block_size=64",
                 "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128", "--max_iters=2000",
                 "--lr_decay_iters=2000", "--dropout=0.0",
                 "--dtype=float32"]      # CPU runs without autocast anyway; this keeps the CUDA GradScaler off


def thread_env() -> dict:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(common.THREADS)
    return env


def split(vocab, text: str):
    """Train and validation ids exactly as ``prepare_run`` splits them."""
    splits = split_ids(vocab.encode(text), (1.0 - VAL_FRACTION, VAL_FRACTION, 0.0))
    return splits.train, splits.val


def report_sets(val_ids) -> dict:
    """The two validation readings every LSTM is scored on at the end."""
    return {"streamed": validation_set("stream", val_ids, EVAL_STREAMS, EVAL_SEQ),
            "windowed": validation_set("windows", val_ids, EVAL_STREAMS, EVAL_SEQ)}


# ---------------------------------------------------------------------------------- minilstm
def run_minilstm(data: Path, out: Path, seconds: float, extra: list) -> dict:
    run_dir = out / "minilstm_run"
    cmd = [sys.executable, str(common.REPO / "examples" / "shakespeare.py"), "--data", str(data),
           "--out", str(run_dir), "--max-seconds", f"{seconds:g}", "--no-progress", "--overwrite", *extra]
    with open(out / "minilstm_stdout.txt", "w") as log:
        status = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=thread_env()).returncode
    if status != 0:
        raise SystemExit(f"quality.py: {' '.join(cmd)} exited with {status}; see {out / 'minilstm_stdout.txt'}")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    curve = [(r["elapsed_s"] - r["eval_s"], r["val_loss"]) for r in records if r.get("kind") == "eval"]
    last = load_training_checkpoint(run_dir / "last.ckpt")
    best = load_model(run_dir / "best.ckpt")
    train_s = last.run.elapsed_s - last.run.eval_s
    return {"run_dir": run_dir, "best": best, "config": last.config, "curve": curve, "train_s": train_s,
            "eval_s": last.run.eval_s, "steps": last.run.step, "chars_per_s": last.run.tokens / train_s,
            "parameters": best.model.num_parameters}


# ---------------------------------------------------------------------------------- PyTorch
def unsupported(model_cfg, cfg: dict) -> list:
    """Settings of the minilstm run that the PyTorch mirror does not reproduce."""
    problems = []
    if model_cfg.input_mode != "embedding" or model_cfg.head_hidden or model_cfg.tie_weights:
        problems.append("only embedding -> LSTM -> linear models are mirrored")
    if len(set(model_cfg.hidden_sizes)) != 1 or model_cfg.dtype != "float32":
        problems.append("nn.LSTM needs equal float32 layers")
    if cfg["optimizer"] != "adam" or cfg["clip_value"]:
        problems.append("only Adam with norm clipping is mirrored")
    if cfg["schedule"] not in ("constant", "cosine") or cfg["batching"] not in ("stream", "windows"):
        problems.append("only constant/cosine schedules and stream/windows batching are mirrored")
    return problems


def learning_rate(cfg: dict, step: int, seconds: float = 0.0) -> float:
    """The rate of the step taken after ``step`` steps and ``seconds`` of training
    (minilstm.schedule's constant and cosine, the cosine over steps or over seconds)."""
    rate = cfg["lr"]
    if cfg["schedule"] == "cosine":
        warm, lo = cfg["warmup_steps"], cfg["min_lr"]
        if cfg.get("lr_decay_seconds"):
            progress = min(1.0, max(0.0, seconds / cfg["lr_decay_seconds"]))
        else:
            progress = min(1.0, max(0.0, (step - warm) / (cfg["lr_decay_steps"] - warm)))
        rate = lo + 0.5 * (1.0 + math.cos(math.pi * progress)) * (rate - lo)
    if step < cfg["warmup_steps"]:
        rate *= (step + 1) / cfg["warmup_steps"]
    return rate


def torch_lm(torch, model_cfg, init_from=None):
    """``common.build_torch_char_lm`` of this configuration, holding ``init_from``'s weights if given."""
    H = model_cfg.hidden_sizes
    net = common.build_torch_char_lm(torch, model_cfg.vocab_size, model_cfg.embedding_dim, H[0], len(H),
                                     seed=model_cfg.seed, dropout=model_cfg.dropout,
                                     embedding_dropout=model_cfg.embedding_dropout)
    if init_from is not None:
        copy_to_torch(torch, init_from, net)
    return net


def copy_to_torch(torch, model, net) -> None:
    """minilstm weights into the PyTorch model: gates [i, f, o, g] -> [i, f, g, o], matrices
    transposed, minilstm's one bias in ``bias_ih`` and zeros in ``bias_hh``."""
    P = model.params
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    with torch.no_grad():
        net.embed.weight.copy_(t(P["embed.weight"]))
        for layer in range(model.config.num_layers):
            getattr(net.lstm, f"weight_ih_l{layer}").copy_(t(reorder_gates(P[f"lstm{layer}.Wx"]).T))
            getattr(net.lstm, f"weight_hh_l{layer}").copy_(t(reorder_gates(P[f"lstm{layer}.Wh"]).T))
            getattr(net.lstm, f"bias_ih_l{layer}").copy_(t(reorder_gates(P[f"lstm{layer}.b"])))
            getattr(net.lstm, f"bias_hh_l{layer}").zero_()
        net.out.weight.copy_(t(P["out.W"].T))
        net.out.bias.copy_(t(P["out.b"]))


def time_major(torch, array):
    return torch.from_numpy(np.ascontiguousarray(np.asarray(array).T, dtype=np.int64))


def torch_evaluate(torch, net, validation) -> float:
    """``minilstm.train_data.evaluate`` for the PyTorch model: the same batches in the same order,
    the state carried for streams, the token-weighted mean cross-entropy."""
    was_training = net.training
    net.eval()
    total, count, state = 0.0, 0, None
    try:
        with torch.inference_mode():
            for batch in validation.batches:
                logits, final = net(time_major(torch, batch.inputs), state)
                targets = time_major(torch, batch.targets).reshape(-1)
                total += float(torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), targets, ignore_index=IGNORE_INDEX, reduction="sum"))
                count += int((targets != IGNORE_INDEX).sum())
                state = final if validation.carries_state else None
    finally:
        net.train(was_training)
    return total / count


def run_torch(torch, model_cfg, cfg: dict, train_ids, val_ids, seconds: float, init: str) -> dict:
    """Train the mirror for ``seconds`` of training time; validate like minilstm's trainer does."""
    net = torch_lm(torch, model_cfg, LanguageModel(model_cfg) if init == "minilstm" else None).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]),
                                  eps=cfg["eps"], weight_decay=cfg["weight_decay"])   # decoupled, as minilstm
    data = training_batches(cfg["batching"], train_ids, cfg["batch_size"], cfg["seq_len"], seed=cfg["seed"],
                            windows_per_epoch=cfg["windows_per_epoch"])
    validation = validation_set(cfg.get("eval_batching") or cfg["batching"], val_ids, cfg["eval_batch_size"], cfg["seq_len"],
                                max_batches=cfg["eval_batches"])
    if cfg["schedule"] == "cosine":
        # the decay over PyTorch's own training seconds, ending with its budget as minilstm's
        # ends with minilstm's: the same schedule shape, whatever step count each reaches
        cfg = dict(cfg, lr_decay_steps=0, lr_decay_seconds=seconds)
    step = epoch = index = tokens = 0
    train_s = eval_s = 0.0
    state, curve, best, best_state, last_eval = None, [], math.inf, None, None

    def validate():
        nonlocal eval_s, best, best_state, last_eval
        started = time.perf_counter()
        loss = torch_evaluate(torch, net, validation)
        if loss < best:
            best, best_state = loss, copy.deepcopy(net.state_dict())
        eval_s += time.perf_counter() - started
        curve.append((train_s, loss))
        last_eval = step

    while train_s < seconds:
        started = time.perf_counter()
        batch = data.batch(epoch, index)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step, train_s)
        logits, final = net(time_major(torch, batch.inputs), state)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 time_major(torch, batch.targets).reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg["clip_norm"]:                  # scales by clip / (norm + 1e-6); minilstm by clip / norm
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg["clip_norm"])
        optimizer.step()
        state = tuple(s.detach() for s in final) if data.carries_state else None
        step, index, tokens = step + 1, index + 1, tokens + batch.inputs.size
        epoch_end = index == len(data)
        if epoch_end:
            epoch, index, state = epoch + 1, 0, None      # every epoch starts from the zero state
        train_s += time.perf_counter() - started
        if (cfg["eval_every"] and step % cfg["eval_every"] == 0) or (epoch_end and cfg["eval_at_epoch_end"]):
            validate()
    if last_eval != step:
        validate()                            # the final parameters too, as minilstm's eval_at_end
    net.load_state_dict(best_state)
    return {"net": net, "curve": curve, "train_s": train_s, "eval_s": eval_s, "steps": step,
            "chars_per_s": tokens / train_s, "parameters": sum(p.numel() for p in net.parameters())}


# ---------------------------------------------------------------------------------- nanoGPT
STEP_LINE = re.compile(r"^step (\d+): train loss ([\d.]+), val loss ([\d.]+)")
ITER_LINE = re.compile(r"^iter (\d+): loss ([\d.]+), time ([\d.]+)ms")
PARAMS_LINE = re.compile(r"number of parameters: ([\d.]+)M")


def parse_nanogpt(lines) -> dict:
    """Curve of val loss against training seconds from nanoGPT's log.

    An iteration that follows a "step N" line also timed that evaluation (and any checkpoint):
    its training time is taken as the median of the other iterations and the rest counts as
    evaluation. An evaluation's point sits at the training time of the iterations before it.
    """
    evals, iters, params = {}, [], None
    for line in lines:
        if m := STEP_LINE.match(line):
            evals[int(m[1])] = float(m[3])
        elif m := ITER_LINE.match(line):
            iters.append((int(m[1]), float(m[3]) / 1000))
        elif m := PARAMS_LINE.search(line):
            params = float(m[1]) * 1e6
    plain = [dt for n, dt in iters if n not in evals] or [0.0]
    typical = float(np.median(plain))
    clock, eval_s, at = 0.0, 0.0, {}
    for n, dt in iters:
        at[n] = clock
        train = min(dt, typical) if n in evals else dt
        clock, eval_s = clock + train, eval_s + dt - train
    curve = [(at.get(n, clock), loss) for n, loss in sorted(evals.items())]
    return {"curve": curve, "train_s": clock, "eval_s": eval_s, "steps": len(iters), "parameters": params}


def last_point(curve, seconds: float):
    """The last (training seconds, validation loss) point within ``seconds`` (None: none was)."""
    before = [(s, loss) for s, loss in curve if s <= seconds]
    return before[-1] if before else None


def loss_at(curve, seconds: float):
    """The last validation loss reached within ``seconds`` of training (None: none was)."""
    point = last_point(curve, seconds)
    return None if point is None else point[1]


@contextlib.contextmanager
def nanogpt_copy(source: Path, text: str, out: Path):
    """A temporary copy of nanoGPT with ``text`` prepared as its shakespeare_char corpus (its own
    prepare.py). Made before anything trains, so that a copy that cannot run stops the script at
    once instead of after twenty minutes of LSTM training; the output goes to ``nanogpt_stdout.txt``."""
    with tempfile.TemporaryDirectory(prefix="quality-nanogpt-") as tmp:
        root = Path(tmp) / "nanoGPT"
        shutil.copytree(source, root, ignore=shutil.ignore_patterns(".git", "out*", "*.bin", "*.pt"))
        corpus = root / "data" / "shakespeare_char"
        corpus.mkdir(parents=True, exist_ok=True)
        (corpus / "input.txt").write_text(text, encoding="utf-8")
        with open(out / "nanogpt_stdout.txt", "w") as log:
            done = subprocess.run([sys.executable, "prepare.py"], cwd=corpus, env=thread_env(), stdout=log,
                                  stderr=subprocess.STDOUT)
        if done.returncode != 0:
            raise SystemExit(f"quality.py: nanoGPT's data/shakespeare_char/prepare.py failed in the copy of "
                             f"{source} (exit {done.returncode}); its output is in {out / 'nanogpt_stdout.txt'}")
        yield root


def run_nanogpt(root: Path, seconds: float, out: Path) -> dict:
    """nanoGPT's train.py in a prepared copy (:func:`nanogpt_copy`), stopped once it passes
    ``seconds`` of training time; its log is appended to ``nanogpt_stdout.txt``."""
    env = thread_env()
    lines = []
    with open(out / "nanogpt_stdout.txt", "a") as log:
        cmd = [sys.executable, "train.py", "config/train_shakespeare_char.py", *NANOGPT_FLAGS,
               f"--out_dir={root / 'out'}"]
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            for line in proc.stdout:
                log.write(line)
                lines.append(line)
                if ITER_LINE.match(line) and parse_nanogpt(lines)["train_s"] > seconds:
                    break
        finally:
            proc.terminate()
            proc.wait()
    result = parse_nanogpt(lines)
    result["chars_per_s"] = result["steps"] * 12 * 64 / result["train_s"] if result["train_s"] else None
    result["last_eval"] = last_point(result["curve"], seconds)     # (seconds, loss) or None
    result["val_at_budget"] = None if result["last_eval"] is None else result["last_eval"][1]
    return result


# ---------------------------------------------------------------------------------- report
def at_nanogpts_last_evaluation(nano: dict, ours: dict):
    """minilstm's validation loss at the training time of nanoGPT's last evaluation (nanoGPT's CPU
    setting stops after 2,000 iterations, usually well inside minilstm's budget); None when either
    had not validated by then."""
    return None if nano["last_eval"] is None else loss_at(ours["curve"], nano["last_eval"][0])


def nanogpt_comparison(nano: dict) -> str:
    """The sentence of the report that compares the two at nanoGPT's last evaluation."""
    if nano["last_eval"] is None:
        return " nanoGPT logged no evaluation within the budget."
    seconds, theirs = nano["last_eval"]
    mine = nano["minilstm_at_same_time"]
    if mine is None:
        return f" minilstm had not validated yet at {seconds:.1f} s of training, nanoGPT's last evaluation."
    return (f" At {seconds:.1f} s of training (nanoGPT's last evaluation, {theirs:.4f}) minilstm's validation "
            f"loss was {mine:.4f} (its last evaluation by then, 64 streams).")


def fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def describe(model_cfg, cfg: dict) -> str:
    return (f"E={model_cfg.embedding_dim}, H={'x'.join(map(str, model_cfg.hidden_sizes))}, "
            f"B={cfg['batch_size']}, T={cfg['seq_len']}, {cfg['batching']}, Adam {cfg['lr']:g} {cfg['schedule']}"
            + (f", weight decay {cfg['weight_decay']:g}" if cfg.get("weight_decay") else "")
            + (f", dropout {model_cfg.dropout:g}" if model_cfg.dropout else "")
            + (f", embedding dropout {model_cfg.embedding_dropout:g}" if model_cfg.embedding_dropout else ""))


def plot(runs: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    lowest = math.inf
    for name, run in runs.items():
        if run.get("curve"):
            seconds, losses = zip(*run["curve"])
            ax.plot(seconds, losses, marker=".", label=name)
            lowest = min(lowest, *losses)
    ax.set_xlabel("training seconds (evaluation excluded)")
    ax.set_ylabel("validation loss (nats/char)")
    if math.isfinite(lowest) and ax.get_ylim()[1] > lowest + PLOT_SPAN:
        # the first evaluations (about 4.2 nats from an untrained model) would squash the end of
        # the curves, where the runs differ, into a few pixels
        ax.set_ylim(lowest - 0.05 * PLOT_SPAN, lowest + PLOT_SPAN)
        ax.set_ylabel(f"validation loss (nats/char; axis cut at {lowest + PLOT_SPAN:.2f})")
    ax.set_title("Validation loss at equal training time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help=f"corpus (default {DEFAULT_DATA} if present, else load_shakespeare())")
    parser.add_argument("--seconds", type=float, help="training seconds of each run (default 600; --smoke: 6)")
    parser.add_argument("--out", default=str(common.REPO / "benchmarks" / "results" / "quality"),
                        help="results directory (default benchmarks/results/quality)")
    parser.add_argument("--nanogpt", help="a local copy of karpathy/nanoGPT to compare with (never downloaded)")
    parser.add_argument("--torch-init", choices=("minilstm", "pytorch"), default="minilstm",
                        help="PyTorch starts from minilstm's initial weights (default) or its own initialisation")
    parser.add_argument("--example-args", default="",
                        help="more flags for examples/shakespeare.py, quoted (e.g. \"--dropout 0.2\"): "
                             "compare another configuration; the PyTorch run mirrors it")
    parser.add_argument("--smoke", action="store_true", help="tiny models for a few seconds each (a test)")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 6.0 if args.smoke else 600.0
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch = common.load_torch()
    if torch is None:
        raise SystemExit("quality.py: PyTorch is not installed (pip install torch)")
    data = Path(args.data) if args.data else DEFAULT_DATA
    if not args.data and not data.is_file():
        data = out / "corpus.txt"
        data.write_text(load_shakespeare(), encoding="utf-8")
    text = read_text(data)
    with contextlib.ExitStack() as cleanup:
        nano_root = None
        if args.nanogpt:
            print(f"nanoGPT: preparing a copy of {args.nanogpt} ...", file=sys.stderr, flush=True)
            nano_root = cleanup.enter_context(nanogpt_copy(Path(args.nanogpt), text, out))
        return compare(args, out, torch, data, text, nano_root)


def compare(args, out: Path, torch, data: Path, text: str, nano_root: Path | None) -> int:
    """The three runs and the report (``nano_root``: a prepared nanoGPT copy, or None)."""
    print(f"minilstm: examples/shakespeare.py for {args.seconds:g} s of training ...", file=sys.stderr, flush=True)
    ours = run_minilstm(data, out, args.seconds,
                        (SMOKE_FLAGS if args.smoke else []) + shlex.split(args.example_args))
    model_cfg, cfg = ours["best"].model.config, ours["config"]
    problems = unsupported(model_cfg, cfg)
    if problems:
        raise SystemExit(f"quality.py: the PyTorch mirror cannot reproduce this run: {'; '.join(problems)}")
    train_ids, val_ids = split(ours["best"].vocab, text)
    sets = report_sets(val_ids)
    for name, validation in sets.items():
        ours[name] = evaluate(ours["best"].model, validation).loss

    print(f"PyTorch: the same LSTM for {ours['train_s']:.1f} s of training ...", file=sys.stderr, flush=True)
    time.sleep(common.SETTLE_SECONDS)
    theirs = run_torch(torch, model_cfg, cfg, train_ids, val_ids, ours["train_s"], args.torch_init)
    for name, validation in sets.items():
        theirs[name] = torch_evaluate(torch, theirs["net"], validation)

    runs = {"minilstm": ours, "PyTorch": theirs}
    nano = None
    if nano_root is not None:
        print(f"nanoGPT: {args.nanogpt} for {ours['train_s']:.1f} s of training ...", file=sys.stderr, flush=True)
        nano = runs["nanoGPT"] = run_nanogpt(nano_root, ours["train_s"], out)
        nano["minilstm_at_same_time"] = at_nanogpts_last_evaluation(nano, ours)

    config = describe(model_cfg, cfg)
    rows = [[name, label, f"{run['parameters']:,}", f"{run['train_s']:.1f}", f"{run['eval_s']:.1f}",
             f"{run['steps']:,}", f"{run['chars_per_s']:,.0f}", f"{run['streamed']:.4f}", f"{run['windowed']:.4f}"]
            for name, label, run in (("minilstm", config, ours),
                                     ("PyTorch", f"{config}, {args.torch_init} init", theirs))]
    if nano is not None:
        rows.append(["nanoGPT", "4 layers, 4 heads, 128 wide, block 64, batch 12", fmt(nano["parameters"], ",.0f"),
                     f"{min(nano['train_s'], ours['train_s']):.1f}", f"{nano['eval_s']:.1f}", f"{nano['steps']:,}",
                     fmt(nano["chars_per_s"], ",.0f"), "n/a", fmt(nano["val_at_budget"], ".4f") + " *"])
    table = common.markdown_table(["run", "config", "parameters", "training s", "eval s", "steps", "chars/s",
                                   "val loss, 64 streams", "val loss, 100-char windows"], rows)
    notes = [f"{len(text):,} characters of {data.name}; the last {VAL_FRACTION:.0%} validates "
             f"({len(val_ids):,} characters), scored whole: as {EVAL_STREAMS} continuous streams with the state "
             f"carried, and as {EVAL_SEQ}-character windows from the zero state. Nats per character; best "
             "checkpoint of each run by its validation during training. minilstm's training seconds include "
             "what its trainer does at each evaluation besides validating (checkpoints, loss.png, a printed sample)."]
    notes.append("nanoGPT: not run (pass --nanogpt PATH to a local copy of karpathy/nanoGPT)." if nano is None else
                 "* nanoGPT's own estimate: its val loss over 20 random batches of 12 x 64-character windows, the "
                 "last evaluation within minilstm's training seconds." + nanogpt_comparison(nano))
    report = (f"# Validation loss at equal training time\n\n{common.machine_summary()}\n\n"
              f"Budget: {args.seconds:g} s of training for minilstm; the others get the training seconds it used.\n\n"
              f"{table}\n\n" + "\n\n".join(notes) + "\n")
    print(report)
    (out / "quality.md").write_text(report)
    plot(runs, out / "quality.png")
    summary = {"machine": common.machine_summary(), "budget_s": args.seconds, "data": str(data),
               "characters": len(text), "validation_characters": len(val_ids), "torch_init": args.torch_init,
               "train_config": cfg, "model_config": model_cfg.to_dict(), "nanogpt_run": nano is not None,
               "runs": {name: {k: v for k, v in run.items() if k not in ("best", "net", "config", "run_dir")}
                        for name, run in runs.items()}}
    (out / "quality.json").write_text(json.dumps(summary, indent=1))
    print(f"wrote {out / 'quality.md'}, {out / 'quality.png'}, {out / 'quality.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
