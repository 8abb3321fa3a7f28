"""The ``minilstm`` command: every subcommand's --help, a tiny train -> sample round trip,
gradcheck's table, and errors that name the argument and the value."""
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from minilstm.cli import build_parser, main
from minilstm.cli_args import add_dataclass_arguments, dataclass_from_args
from minilstm.model import ModelConfig
from minilstm.model_io import load_model
from minilstm.train_config import TrainConfig
from minilstm.train_cli import DataConfig

TEXT = "the quick brown fox jumps over the lazy dog.\nA stitch in time saves nine!\n" * 30


@pytest.mark.parametrize("command", ["train", "sample", "bench", "gradcheck"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: minilstm " + command in capsys.readouterr().out


def test_console_script_is_installed():
    done = subprocess.run([sys.executable, "-m", "minilstm.cli", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("minilstm ")


def test_every_config_field_is_a_flag_and_round_trips():
    """Flags are generated from the dataclasses: every field is present, and parsing the
    defaults gives back the default configuration."""
    parser = build_parser()
    args = parser.parse_args(["train"])
    assert dataclass_from_args(TrainConfig, args) == TrainConfig()
    assert dataclass_from_args(DataConfig, args) == DataConfig()
    model = dataclass_from_args(ModelConfig, args, rename={"seed": "init_seed"}, vocab_size=65)
    assert model == ModelConfig(vocab_size=65)
    args = parser.parse_args(["train", "--hidden-sizes", "32", "16", "--no-progress", "--lr", "0.01",
                              "--init-seed", "7", "--seed", "3"])
    model = dataclass_from_args(ModelConfig, args, rename={"seed": "init_seed"}, vocab_size=65)
    train = dataclass_from_args(TrainConfig, args)
    assert model.hidden_sizes == (32, 16) and model.seed == 7
    assert (train.progress, train.lr, train.seed) == (False, 0.01, 3)


def test_field_comments_become_help():
    import argparse
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, TrainConfig)
    text = parser.format_help()
    for field in dataclasses.fields(TrainConfig):
        assert "--" + field.name.replace("_", "-") in text
    assert "peak learning rate (default: 0.002)" in " ".join(text.split())


def test_train_then_sample(tmp_path, capsys):
    data = tmp_path / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run"
    code = main(["train", "--data", str(data), "--out", str(out), "--hidden-sizes", "24", "--embedding-dim", "8",
                 "--max-epochs", "0", "--max-steps", "30", "--batch-size", "4", "--seq-len", "16",
                 "--eval-every", "15", "--no-progress", "--no-estimate", "--sample-length", "0"])
    assert code == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    val = [r["val_loss"] for r in records if "val_loss" in r]
    assert len(val) >= 2 and val[-1] < np.log(len(set(TEXT)))     # learned something beyond uniform
    loaded = load_model(out / "best.ckpt")
    assert loaded.model.config.hidden_sizes == (24,) and len(loaded.vocab) == loaded.model.config.vocab_size
    capsys.readouterr()
    assert main(["sample", str(out / "best.ckpt"), "--prompt", "the ", "--length", "50", "--seed", "1"]) == 0
    first = capsys.readouterr().out
    assert main(["sample", str(out / "best.ckpt"), "--prompt", "the ", "--length", "50", "--seed", "1"]) == 0
    assert capsys.readouterr().out == first                       # seeded sampling repeats
    assert len(first.rstrip("\n")) == 50 and set(first.rstrip("\n")) <= set(TEXT)


def test_word_level_training(tmp_path):
    data = tmp_path / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "words"
    assert main(["train", "--data", str(data), "--out", str(out), "--level", "word", "--lowercase",
                 "--strip-punctuation", "--hidden-sizes", "12", "--embedding-dim", "6", "--max-epochs", "1",
                 "--batch-size", "2", "--seq-len", "8", "--no-progress", "--no-estimate",
                 "--sample-length", "0"]) == 0
    vocab = load_model(out / "best.ckpt").vocab
    assert "fox" in vocab.tokens and "A" not in vocab.tokens and "!" not in vocab.tokens


def test_errors_name_argument_and_value(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.txt" in capsys.readouterr().err
    assert main(["train", "--level", "bytes", "--data", str(tmp_path)]) == 2
    assert "DataConfig.level: got 'bytes'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--lr", "fast"])
    err = capsys.readouterr().err
    assert "argument --lr: invalid float value: 'fast'" in err
    assert main(["sample", str(tmp_path / "nope.ckpt")]) == 2
    assert "nope.ckpt" in capsys.readouterr().err


def test_gradcheck_command_prints_a_passing_table(capsys):
    assert main(["gradcheck", "--hidden-sizes", "3", "--head-hidden", "0", "--head-norm", "none"]) == 0
    out = capsys.readouterr().out
    for name in ("embed.weight", "lstm0.Wx", "lstm0.Wh", "lstm0.b", "out.W", "out.b"):
        assert name in out
    assert "6 of 6 parameters pass" in out and "FAILED" not in out


def test_bench_command_reports_both_backends(capsys):
    assert main(["bench", "--batch", "2", "--steps", "3", "--hidden", "8", "--layers", "1", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| numpy |" in out and "train tokens/s" in out
