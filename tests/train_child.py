"""A tiny training run in its own process, for the signal and SIGKILL tests.

    python tests/train_child.py OUT_DIR [key=value ...]          one run (TrainConfig overrides,
                                                                  values as Python literals)
    python tests/train_child.py --zygote OUT_DIR [key=value ...]  a run per "GO" line on stdin

A run prints ``STEP n`` (flushed) after every step, so the parent knows training is under way,
and at the end ``RESULT {json}`` with the FitResult's status, reason and step. It resumes from
OUT_DIR/last.ckpt when that exists.

The zygote imports everything and runs one warm-up step (loading the compiled kernels), prints
``READY``, then for each ``GO`` line forks a fresh training process, prints ``PID <pid>``, waits
for it and prints ``EXIT <pid> <wait status>``; ``QUIT`` ends it. Forking a warmed-up process
makes a new training process start in milliseconds instead of the ~1.5 s of importing Numba and
loading kernels, which is what lets a test kill 20 of them quickly.

Not collected by pytest (no ``test_`` prefix).
"""
import ast
import json
import os
import sys

from minilstm.data import CharVocab
from minilstm.model import LanguageModel, ModelConfig
from minilstm.optimizers import make_optimizer
from minilstm.train import TrainConfig, Trainer, train_step

TEXT = "the quick brown fox jumps over the lazy dog. " * 30
VOCAB = CharVocab.build(TEXT)
IDS = VOCAB.encode(TEXT)
MODEL = dict(vocab_size=len(VOCAB), embedding_dim=8, hidden_sizes=(12,), seed=0)
SETTINGS = dict(max_epochs=0, max_steps=1_000_000, batch_size=4, seq_len=8, eval_every=2, save_every=1,
                progress=False, plot=False, estimate=False, sample_length=0, log_every=1, resume="auto")


def say(line: str) -> None:
    """One whole line in one write: a process killed mid-print never leaves half a line (print
    issues two writes, text then newline, when Python runs unbuffered)."""
    os.write(1, (line + "\n").encode())


def train(out_dir, overrides) -> int:
    def on_step(trainer, record):
        say(f"STEP {record['step']}")

    trainer = Trainer(LanguageModel(ModelConfig(**MODEL)), TrainConfig(**{**SETTINGS, **overrides}),
                      IDS[:1000], IDS[1000:], VOCAB, out_dir, stream=sys.stderr, on_step=on_step)
    result = trainer.fit()
    say("RESULT " + json.dumps({"status": result.status, "reason": result.reason, "step": result.step}))
    return 0


def zygote(out_dir, overrides) -> int:
    warm = LanguageModel(ModelConfig(**MODEL))
    batch = IDS[:33].reshape(1, 33)
    train_step(warm, make_optimizer("adam", warm.params), batch[:, :-1], batch[:, 1:], lr=1e-3, clip_norm=5.0)
    warm.eval().forward(batch[:, :-1], batch[:, 1:])
    say("READY")
    for line in sys.stdin:
        command = line.strip()
        if command == "QUIT":
            return 0
        if command != "GO":
            say(f"UNKNOWN {command}")
            continue
        sys.stderr.flush()                 # nothing buffered may be written twice after the fork
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = train(out_dir, overrides)
            finally:
                sys.stderr.flush()
                os._exit(code)             # never return into the zygote's loop
        say(f"PID {pid}")
        _, status = os.waitpid(pid, 0)
        say(f"EXIT {pid} {status}")
    return 0


def main(argv) -> int:
    is_zygote = argv[:1] == ["--zygote"]
    argv = argv[1:] if is_zygote else argv
    overrides = {k: ast.literal_eval(v) for k, v in (item.split("=", 1) for item in argv[1:])}
    return (zygote if is_zygote else train)(argv[0], overrides)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
