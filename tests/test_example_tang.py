"""examples/tang_poetry.py: --help, the --smoke run in a subprocess (checkpoints, the best one by
validation loss, poems ended by <EOP>, the acrostic), --generate-only reproducing a poem from
best.ckpt, the chinese-poetry JSON converter, argument errors, and a short run on the real tang.npz."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from minilstm.data import read_tang
from minilstm.model_io import load_model
from example_helpers import load_example, run_smoke

SCRIPT = REPO / "examples" / "tang_poetry.py"
HEADS = "春夏秋冬"          # the --smoke acrostic


@pytest.fixture(scope="module")
def example():
    """The script as a module (registered in sys.modules while the tests use it)."""
    module = load_example(SCRIPT)
    yield module
    del sys.modules[module.__name__]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One --smoke run in a subprocess, shared by the tests that read its output."""
    return run_smoke(SCRIPT, tmp_path_factory.mktemp("tang_smoke"))


def printed_poems(stdout: str) -> dict:
    """{title line: [verse lines]} of everything printed after ``poems from ...``."""
    poems, title = {}, None
    for line in stdout.split("poems from ", 1)[1].splitlines()[1:]:
        if line.startswith("  "):
            poems[title].append(line.strip())
        else:
            title = line
            poems[title] = []
    return poems


def test_help_documents_the_flags():
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    for flag in ("--data", "--smoke", "--val-fraction", "--out", "--starts", "--acrostic", "--poem-line",
                 "--generate-only", "--checkpoint", "--convert-json", "--write", "--long", "--max-seconds",
                 "--hidden-sizes", "--embedding-dim", "--batch-size", "--temperature", "--sample-seed"):
        assert flag in result.stdout, flag
    text = " ".join(result.stdout.split())
    # the example's own defaults, shown by the flags generated from the config dataclasses
    for shown in ("wall-clock time, summed over resumed runs (default: 600.0)",
                  "bottom to top (L = its length) (default: [256])",
                  "(unused for one-hot input) (default: 128)",
                  "held out for validation (default: 0.1)"):
        assert shown in text, shown
    assert "--batching" not in text and "--seq-len" not in text       # always whole poems here


def test_smoke_trains_keeps_the_best_checkpoint_and_writes_poems(smoke):
    out, stdout = smoke
    for name in ("smoke-tang.npz", "best.ckpt", "last.ckpt", "metrics.jsonl"):
        assert (out / name).stat().st_size > 0, name
    assert f"data: {out / 'smoke-tang.npz'}: 120 of 120 poems" in stdout
    assert "108 train / 12 validation" in stdout       # 10 % of the poems held out
    # best.ckpt is the lowest validation loss of the run, and the one the poems come from
    evals = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "eval"]
    best = min(evals, key=lambda r: r["val_loss"])
    assert len(evals) >= 2 and evals[-1]["step"] == 50
    assert f"best validation loss {best['val_loss']:.3f} nats per character at step {best['step']}:" in stdout
    assert f"poems from {out / 'best.ckpt'}" in stdout
    vocab = load_model(out / "best.ckpt").vocab
    assert vocab.tokens[vocab.special_id("end")] == "<EOP>"

    poems = printed_poems(stdout)
    titles = [t for t in poems if t.startswith("poem ")]
    assert [t.split(" (")[0] for t in titles] == [f"poem {k + 1}, starting {c}" for k, c in enumerate("湖山月春")]
    for title in titles:
        start = title.split("starting ")[1][0]
        assert poems[title][0].startswith(start), title
        assert set("".join(poems[title])) <= set(HEADS + "山水月花雨湖天江日夜，。"), title
    # the model learned to close a poem: generation stopped at <EOP> (not at the length limit)
    assert any("(ended at <EOP>)" in t for t in titles)
    [acrostic] = [t for t in poems if t.startswith("acrostic ")]
    assert acrostic.startswith(f"acrostic {HEADS} (sample ")
    lines = poems[acrostic]
    assert len(lines) == len(HEADS)
    for head, line in zip(HEADS, lines):
        assert line.startswith(head) and line.endswith("。"), (head, line)


def test_generate_only_reproduces_a_poem_from_the_checkpoint(smoke, example, capsys):
    out, stdout = smoke
    first = next("".join(v) for t, v in printed_poems(stdout).items() if t.startswith("poem 1,"))
    checkpoint = str(out / "best.ckpt")
    result = example.main(["--generate-only", "--checkpoint", checkpoint, "--starts", "湖"])
    assert result["poems"] == [first]          # same checkpoint and seed: the same poem, in another process
    assert result["acrostic"] is None          # no --acrostic outside --smoke
    capsys.readouterr()
    again = example.main(["--generate-only", "--checkpoint", checkpoint, "--starts", "湖", "--sample-seed", "5",
                          "--acrostic", "秋冬", "--poem-line", "7"])
    assert again["poems"][0] != first and again["poems"][0].startswith("湖")
    # --poem-line 7: two lines of seven characters and a mark, each opened by its head
    shaped = next(v for t, v in printed_poems(capsys.readouterr().out).items() if t.startswith("acrostic 秋冬"))
    assert [(line[0], len(line), line[-1]) for line in shaped] == [("秋", 8, "，"), ("冬", 8, "。")]


def write_json(path, poems):
    path.write_text(json.dumps([{"author": "x", "paragraphs": p} for p in poems], ensure_ascii=False),
                    encoding="utf-8")


def test_convert_chinese_poetry_json_to_tang_npz(example, tmp_path, capsys):
    source = tmp_path / "json"
    source.mkdir()
    write_json(source / "poet.tang.1000.json", [["白日依山盡，黃河入海流。", "欲窮千里目，更上一層樓。"]])
    write_json(source / "poet.tang.0.json", [["床前明月光，疑是地上霜。（一作看月光）", "舉頭望明月，低頭思故鄉。"],
                                             ["一二三四五六七，" * 4]])        # 32 characters: too long for rows of 30
    target = tmp_path / "tang.npz"
    result = example.main(["--convert-json", str(source), "--write", str(target), "--max-length", "30"])
    assert result["converted"] == target
    corpus = read_tang(target)                   # validates the layout, the dicts and every row
    assert corpus.poems.shape == (2, 30)
    # numeric file order (0 before 1000), the editorial note removed, the long poem dropped
    assert [corpus.text(i) for i in range(2)] == ["床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。",
                                                   "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。"]
    assert "2 poems, 1 dropped" in capsys.readouterr().out
    # the tutorials' own reader: np.load with pickles, int32 rows ending in <EOP>
    with np.load(target, allow_pickle=True) as raw:
        ix2word = raw["ix2word"].item()
        assert raw["data"].dtype == np.int32
        assert [ix2word[int(row[-1])] for row in raw["data"]] == ["<EOP>", "<EOP>"]
        assert ix2word[int(raw["data"][0, 0])] == "</s>"        # front padding
    example.main(["--convert-json", str(source), "--write", str(target), "--max-length", "30", "--long", "truncate"])
    kept = read_tang(target)
    assert len(kept) == 3 and kept.text(1) == "一二三四五六七，" * 3     # cut after the last whole line that fits


@pytest.mark.parametrize("argv, message", [
    ([], "--data is required: give a tang.npz"),
    (["--data", "missing.npz"], "--data: 'missing.npz' is not a file"),
    (["--convert-json", "json"], "--convert-json DIR and --write NPZ go together"),
    (["--smoke", "--val-fraction", "1.5"], "--val-fraction: got 1.5, expected a number in (0, 1)"),
    (["--smoke", "--max-poems", "-1"], "--max-poems: got -1, expected 0 (all) or a positive count"),
    (["--smoke", "--max-length", "2"], "--max-length: got 2, expected an integer >= 3"),
    (["--smoke", "--starts", "春", ""], "--starts: got an empty entry"),
    (["--smoke", "--poem-line", "6"], "SampleConfig.poem_line: got 6, expected 0 (free text), 5 or 7"),
    (["--smoke", "--batch-size", "0"], "TrainConfig.batch_size: got 0, expected an integer >= 1")])
def test_bad_arguments_name_the_flag_the_value_and_what_was_expected(example, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        example.parse_args(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_bad_files_are_errors_naming_the_argument(example, tmp_path, capsys):
    not_tang = tmp_path / "not_tang.npz"
    np.savez(not_tang, data=np.zeros((2, 5), dtype=np.int32))
    later = [(["--data", str(not_tang)], f"--data: {not_tang}: word2ix: missing (the file has ['data'])"),
             (["--generate-only", "--checkpoint", str(tmp_path / "none.ckpt")],
              f"--checkpoint: {str(tmp_path / 'none.ckpt')!r} is not a file")]
    for argv, message in later:
        with pytest.raises(SystemExit) as exit_info:
            example.main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err, argv


def test_characters_outside_the_vocabulary_are_refused(smoke, example, capsys):
    out, _ = smoke
    for flag in ("--starts", "--acrostic"):
        with pytest.raises(SystemExit) as exit_info:
            example.main(["--generate-only", "--checkpoint", str(out / "best.ckpt"), flag, "春龍"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"{flag}: '龍' in '春龍' are not among the 19 tokens" in err


def test_real_corpus_short_run(shared_file, example, tmp_path, capsys):
    path = shared_file("tang.npz")
    corpus = read_tang(path)
    result = example.main(["--data", str(path), "--out", str(tmp_path), "--embedding-dim", "8", "--hidden-sizes", "16",
                           "--batch-size", "8", "--max-steps", "12", "--max-seconds", "0", "--lr", "0.05",
                           "--eval-every", "6", "--eval-batches", "2", "--sample-length", "0", "--no-plot",
                           "--no-progress", "--no-estimate", "--starts", "湖", "--acrostic", "春夏",
                           "--poem-line", "5", "--length", "40"])
    stdout = capsys.readouterr().out
    n, train = len(corpus), round(len(corpus) * 0.9)
    assert f"data: {path}: {n:,} of {n:,} poems (rows of 125), vocabulary {len(corpus.vocab):,}; " \
           f"{train:,} train / {n - train:,} validation" in stdout
    assert result["checkpoint"] == tmp_path / "best.ckpt"
    loaded = load_model(result["checkpoint"])
    assert loaded.vocab == corpus.vocab and loaded.model.config.vocab_size == len(corpus.vocab)
    evals = [r["val_loss"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
             if r["kind"] == "eval"]
    # 12 steps at a high rate learn the commonest characters (，and 。 alone are 14 % of the text):
    # the loss falls from the uniform ln V = 9.1 nats to about 7.5; the bound asks for 1 nat less
    assert min(evals) < math.log(len(corpus.vocab)) - 1.0
    assert result["poems"][0].startswith("湖")
    lines = next(v for t, v in printed_poems(stdout).items() if t.startswith("acrostic 春夏"))
    assert [(line[0], len(line)) for line in lines] == [("春", 6), ("夏", 6)]
