"""examples/word_level.py: --help, the --smoke run in a subprocess (files, printed sections,
generated words in the vocabulary), the sliding window's context limit, argument errors, and a
short run on the real tiny Shakespeare corpus."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from example_helpers import load_example, run_smoke
from minilstm.model_io import load_model

SCRIPT = REPO / "examples" / "word_level.py"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One --smoke run in a subprocess, shared by the tests that read its output."""
    return run_smoke(SCRIPT, tmp_path_factory.mktemp("word_level_smoke"))


def section(stdout: str, name: str) -> str:
    """The generated text printed under the ``--- name:`` header."""
    body = stdout.split(f"--- {name}:", 1)[1].split("\n", 1)[1]
    return body.split("\n\n--- ", 1)[0].split("\nwrote ", 1)[0]


def test_help_documents_the_flags():
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    for flag in ("--smoke", "--prompt", "--words", "--window", "--min-count", "--max-vocab", "--lowercase",
                 "--strip-punctuation", "--batching", "--seq-len", "--max-seconds", "--out", "--data"):
        assert flag in result.stdout, flag
    assert "sliding window" in result.stdout


def test_smoke_run_writes_the_run_and_prints_both_generators(smoke):
    out, stdout = smoke
    for name in ("best.ckpt", "last.ckpt", "metrics.jsonl", "samples.txt"):
        assert (out / name).stat().st_size > 0, name
        assert f"wrote {out / name}" in stdout
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "train" for r in records) and any(r["kind"] == "eval" for r in records)
    assert "--- stateful:" in stdout and "--- sliding window:" in stdout and "the last 8 words" in stdout
    assert (out / "samples.txt").read_text() in stdout
    # min count 2: the words of the one line seen once are <unk>, and the vocabulary is only words
    vocab = load_model(out / "best.ckpt").vocab
    assert vocab.options == {"lowercase": True, "strip_punctuation": True, "keep_newlines": True}
    assert "zephyr" not in vocab.tokens and "romeo" in vocab.tokens and "\n" in vocab.tokens
    assert "of the training words are <unk>" in stdout and " 0.0% of the training" not in stdout


def test_smoke_generated_words_are_in_the_vocabulary(smoke):
    out, stdout = smoke
    vocab = load_model(out / "best.ckpt").vocab
    words = set(vocab.tokens) - {vocab.token_of(i) for i in vocab.specials.values()}
    for name in ("stateful", "sliding window"):
        generated = section(stdout, name).split()
        assert len(generated) >= 5, (name, generated)      # 24 tokens, some of them line breaks
        assert set(generated) <= words, (name, set(generated) - words)


def test_sliding_window_sees_only_the_last_n_words(smoke):
    example = load_example(SCRIPT)
    out, _ = smoke
    loaded = load_model(out / "best.ckpt")
    model, vocab = loaded.model, loaded.vocab
    banned = example.banned_ids(vocab)
    ids = lambda text: list(vocab.encode(text))                               # noqa: E731
    window = 4
    tail = ids("wherefore art thou romeo")                                     # exactly the window
    a, b = ids("but soft what light") + tail, ids("it is the east and juliet") + tail
    pa = example.window_probabilities(model, a, window, 0.8, banned)
    pb = example.window_probabilities(model, b, window, 0.8, banned)
    # the same window from the zero state is the same computation: exact equality, no tolerance
    np.testing.assert_array_equal(pa, pb)
    assert pa[banned].sum() == 0 and math.isclose(pa.sum(), 1.0, rel_tol=1e-12)
    # the control: one word wider, the contexts differ inside the window and so do the distributions
    assert not np.array_equal(example.window_probabilities(model, a, window + 1, 0.8, banned),
                              example.window_probabilities(model, b, window + 1, 0.8, banned))
    # the whole generator: only the last `window` words matter, at every step, with a fixed seed
    gen = lambda context: example.sliding_window_generate(model, context, 30, window, 0.8,  # noqa: E731
                                                          np.random.default_rng(7), banned)
    sample_a, sample_b = gen(a), gen(b)
    assert sample_a == sample_b
    assert all(0 <= t < len(vocab) and t not in banned for t in sample_a)
    assert gen(a[:-1]) != sample_a      # a different window changes the sample (the test can fail)


def test_bad_arguments_name_the_flag_the_value_and_what_was_expected(tmp_path, capsys):
    example = load_example(SCRIPT)
    cases = [(["--words", "0"], "--words: got 0, expected an integer >= 1"),
             (["--window", "-2"], "--window: got -2"),
             (["--level", "char"], "--level: got 'char', expected 'word'"),
             (["--batching", "poems"], "--batching: got 'poems', expected 'windows' or 'stream'"),
             (["--min-count", "0"], "--min-count: got 0")]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            example.parse_args(["--smoke", "--out", str(tmp_path), *argv])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err, argv
    # errors found later, by a config dataclass or by the data, also exit with status 2
    for argv, message in ((["--lr", "-1"], "TrainConfig.lr: got -1.0"),
                          (["--min-count", "1000"], "--min-count: got 1000, but no word")):
        with pytest.raises(SystemExit) as exit_info:
            example.main(["--smoke", "--out", str(tmp_path / "run"), *argv])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err, argv


def test_real_corpus_short_run(shared_file, tmp_path, capsys):
    corpus = shared_file("tinyshakespeare.txt")
    example = load_example(SCRIPT)
    result = example.main(["--data", str(corpus), "--out", str(tmp_path), "--hidden-sizes", "32",
                           "--embedding-dim", "16", "--max-vocab", "2000", "--max-steps", "40", "--max-seconds", "0",
                           "--seq-len", "16", "--batch-size", "16", "--eval-every", "20", "--eval-batches", "20",
                           "--no-progress", "--no-estimate", "--no-plot", "--sample-length", "0", "--words", "20"])
    stdout = capsys.readouterr().out
    vocab = result["vocab"]
    # the cap binds (tiny Shakespeare has ~5,000 words seen 3 times or more) and rare words map to <unk>
    assert len(vocab) == 2000 and "thou" in vocab.tokens and "\n" in vocab.tokens
    assert not any(t != t.lower() or any(ch in t for ch in ",.;:!?") for t in vocab.tokens
                   if t not in ("<pad>", "<unk>"))
    assert "% of the training words are <unk>" in stdout and " 0.0% of the training" not in stdout
    # 40 Adam steps learn at least the word frequencies: the loss must fall well below the uniform
    # ln V = 7.6 nats (it reaches about 6.1; the unigram entropy of this text is about 6)
    assert result["fit"].best_val_loss < math.log(len(vocab)) - 1.0
    for text in result["samples"].values():
        assert set(text.split()) <= set(vocab.tokens) - {"<pad>", "<unk>"}
