"""benchmarks/quality.py: the PyTorch evaluator and schedule mirror minilstm's, the nanoGPT log
parser, and a --smoke run end to end (a few seconds of training per contender)."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, import_torch_or_skip
from minilstm.model import LanguageModel, ModelConfig
from minilstm.schedule import Schedule
from minilstm.train_data import evaluate, validation_set

torch = import_torch_or_skip()
sys.path.insert(0, str(REPO / "benchmarks"))
import quality  # noqa: E402

# float32 losses: rounding is 6e-8 relative per operation; both sides sum 20,000 token losses in a
# different order after up to 312 recurrent steps, which stays below 1e-6. 1e-5 leaves room for
# that and is far tighter than a layout mistake (the zero-state reading of the same streams
# differs by about 2e-3 relative, more than 100 times the tolerance, checked below).
RTOL = 1e-5


def random_model(V=11, seed=0):
    model = LanguageModel(ModelConfig(vocab_size=V, embedding_dim=6, hidden_sizes=(9, 9)))
    rng = np.random.default_rng(seed)
    model.params.data[:] = rng.normal(0.0, 0.5, model.params.data.shape)     # biases included
    return model


def test_torch_evaluator_matches_minilstm_for_the_same_weights():
    model = random_model()
    net = quality.torch_lm(torch, model.config, model)
    ids = np.random.default_rng(1).integers(0, 11, size=20_000).astype(np.int32)
    sets = quality.report_sets(ids)
    assert len(sets["streamed"].batches) > 1 and sets["streamed"].carries_state     # state runs across batches
    for name, validation in sets.items():
        ours, theirs = evaluate(model, validation).loss, quality.torch_evaluate(torch, net, validation)
        assert math.isclose(ours, theirs, rel_tol=RTOL), f"{name}: minilstm {ours!r}, PyTorch {theirs!r}"
    # the check can fail: the same streams read without the carried state give another number
    sets["streamed"].carries_state = False
    dropped = quality.torch_evaluate(torch, net, sets["streamed"])
    carried = evaluate(model, validation_set("stream", ids, 64, 100)).loss
    assert not math.isclose(dropped, carried, rel_tol=100 * RTOL), (dropped, carried)


def test_torch_mirror_places_dropout_as_minilstm_does():
    """Dropout on the embeddings and after every LSTM layer, the top one included; off when
    evaluating, where the two models agree as without dropout."""
    cfg = ModelConfig(vocab_size=11, embedding_dim=6, hidden_sizes=(9, 9), dropout=0.3,
                      embedding_dropout=0.1)
    model = LanguageModel(cfg)
    net = quality.torch_lm(torch, cfg, model)
    assert [m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)] == [0.1, 0.3]
    assert net.lstm.dropout == 0.3                         # between the two LSTM layers
    ids = np.random.default_rng(2).integers(0, 11, size=5_000).astype(np.int32)
    validation = quality.report_sets(ids)["windowed"]
    ours, theirs = evaluate(model, validation).loss, quality.torch_evaluate(torch, net, validation)
    assert math.isclose(ours, theirs, rel_tol=RTOL), (ours, theirs)
    inputs = quality.time_major(torch, validation.batches[0].inputs)
    net.train()
    with torch.no_grad():
        assert not torch.equal(net(inputs)[0], net(inputs)[0])   # random masks while training


@pytest.mark.parametrize("kind", ["constant", "cosine"])
def test_learning_rate_follows_minilstm_schedule(kind):
    cfg = {"lr": 2e-3, "schedule": kind, "warmup_steps": 5, "lr_decay_steps": 40, "min_lr": 4e-5}
    schedule = Schedule(kind, 2e-3, 5, decay_steps=40, min_lr=4e-5)
    for step in range(50):
        assert math.isclose(quality.learning_rate(cfg, step), schedule(step), rel_tol=1e-12), step


def test_learning_rate_follows_minilstm_cosine_over_seconds():
    cfg = {"lr": 2e-3, "schedule": "cosine", "warmup_steps": 5, "lr_decay_steps": 0, "lr_decay_seconds": 60.0,
           "min_lr": 4e-5}
    schedule = Schedule("cosine", 2e-3, 5, decay_seconds=60.0, min_lr=4e-5)
    for step, seconds in [(0, 0.0), (3, 1.0), (5, 1.5), (40, 20.0), (41, 30.0), (500, 59.0), (900, 75.0)]:
        assert math.isclose(quality.learning_rate(cfg, step, seconds), schedule(step, 0, seconds),
                             rel_tol=1e-12), (step, seconds)


def test_nanogpt_log_parser():
    log = ["number of parameters: 0.80M", "step 0: train loss 4.2000, val loss 4.1000",
           "iter 0: loss 4.2, time 900.00ms, mfu -100.00%", "iter 1: loss 4.0, time 100.00ms, mfu 1.00%",
           "iter 2: loss 3.9, time 100.00ms, mfu 1.00%", "step 3: train loss 3.0000, val loss 3.5000",
           "iter 3: loss 3.5, time 500.00ms, mfu 1.00%", "iter 4: loss 3.4, time 100.00ms, mfu 1.00%"]
    parsed = quality.parse_nanogpt(log)
    assert parsed["parameters"] == pytest.approx(0.8e6)
    assert parsed["curve"] == [(0.0, 4.1), (pytest.approx(0.3), 3.5)]       # eval iterations cost 0.1 s each
    assert parsed["train_s"] == pytest.approx(0.5) and parsed["eval_s"] == pytest.approx(1.2)
    assert quality.loss_at(parsed["curve"], 0.25) == 4.1 and quality.loss_at(parsed["curve"], 1.0) == 3.5
    assert quality.loss_at(parsed["curve"], -1.0) is None


def test_nanogpt_comparison_reads_minilstm_at_nanogpts_last_evaluation():
    ours = {"curve": [(10.0, 2.0), (20.0, 1.8), (30.0, 1.6)]}
    nano = {"last_eval": (25.0, 1.9)}
    nano["minilstm_at_same_time"] = quality.at_nanogpts_last_evaluation(nano, ours)
    note = quality.nanogpt_comparison(nano)
    assert nano["minilstm_at_same_time"] == 1.8 and "At 25.0 s" in note and "1.8000" in note
    early = {"last_eval": (5.0, 3.0)}
    early["minilstm_at_same_time"] = quality.at_nanogpts_last_evaluation(early, ours)
    assert early["minilstm_at_same_time"] is None and "had not validated yet" in quality.nanogpt_comparison(early)
    none = {"last_eval": None}
    assert quality.at_nanogpts_last_evaluation(none, ours) is None
    assert "no evaluation" in quality.nanogpt_comparison({**none, "minilstm_at_same_time": None})


def test_nanogpt_run_stops_at_the_budget(tmp_path):
    """The subprocess plumbing, on a stand-in for nanoGPT that prints its log format."""
    fake = tmp_path / "nanoGPT"
    (fake / "config").mkdir(parents=True)
    (fake / "data" / "shakespeare_char").mkdir(parents=True)
    (fake / "config" / "train_shakespeare_char.py").write_text("")
    (fake / "data" / "shakespeare_char" / "prepare.py").write_text(
        "import pathlib\nassert pathlib.Path('input.txt').read_text() == 'some text'\n")
    (fake / "train.py").write_text(
        "import sys\nassert '--device=cpu' in sys.argv\nprint('number of parameters: 0.80M')\n"
        "for n in range(1000):\n"
        "    if n % 4 == 0: print(f'step {n}: train loss 3.0, val loss {4 - n / 100:.4f}')\n"
        "    print(f'iter {n}: loss 3.0, time 100.00ms, mfu 1.00%', flush=True)\n")
    with quality.nanogpt_copy(fake, "some text", tmp_path) as root:
        result = quality.run_nanogpt(root, 1.0, tmp_path)
    assert result["val_at_budget"] == pytest.approx(3.92)       # step 8, after 0.8 s of training
    assert result["last_eval"] == (pytest.approx(0.8), pytest.approx(3.92))
    assert 1.0 < result["train_s"] < 2.0 and result["chars_per_s"] > 0
    assert "iter 10:" in (tmp_path / "nanogpt_stdout.txt").read_text()


def test_a_nanogpt_copy_that_cannot_prepare_stops_before_any_training(tmp_path):
    fake = tmp_path / "nanoGPT"
    (fake / "data" / "shakespeare_char").mkdir(parents=True)
    (fake / "data" / "shakespeare_char" / "prepare.py").write_text("import a_module_that_is_not_installed\n")
    out = tmp_path / "results"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "quality.py"), "--smoke", "--data",
                           str(REPO / "README.md"), "--out", str(out), "--nanogpt", str(fake)],
                          capture_output=True, text=True, timeout=180, cwd=REPO)
    assert done.returncode != 0
    assert "nanoGPT's data/shakespeare_char/prepare.py failed" in done.stderr
    assert "minilstm:" not in done.stderr and not (out / "minilstm_stdout.txt").exists()   # nothing trained
    assert "a_module_that_is_not_installed" in (out / "nanogpt_stdout.txt").read_text()


def test_smoke_run_writes_table_plot_and_json(tmp_path):
    rng = np.random.default_rng(0)
    words = ["the", "king", "shall", "not", "love", "thee", "my", "lord", "what", "light", "is", "sun"]
    lines = [" ".join(rng.choice(words, size=rng.integers(3, 9))).capitalize() + "." for _ in range(1500)]
    lines[::20] = ["ROMEO:"] * len(lines[::20])          # the example's sample prompts need these symbols
    data = tmp_path / "corpus.txt"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "results"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "quality.py"), "--smoke", "--seconds", "4",
                           "--data", str(data), "--out", str(out)],
                          capture_output=True, text=True, timeout=180, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "| minilstm |" in done.stdout and "| PyTorch |" in done.stdout and "nanoGPT: not run" in done.stdout
    for name in ("quality.md", "quality.png", "quality.json", "minilstm_stdout.txt"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "quality.json").read_text())
    assert set(summary["runs"]) == {"minilstm", "PyTorch"} and not summary["nanogpt_run"]
    for name, run in summary["runs"].items():
        for key in ("streamed", "windowed", "train_s", "chars_per_s"):
            assert math.isfinite(run[key]) and run[key] > 0, (name, key, run[key])
        assert run["curve"] and all(math.isfinite(loss) for _, loss in run["curve"]), name
    ours, theirs = summary["runs"]["minilstm"], summary["runs"]["PyTorch"]
    assert theirs["train_s"] >= ours["train_s"]          # the same training time, to the last step


def test_config_label_names_the_regularisation():
    cfg = {"batch_size": 32, "seq_len": 100, "batching": "windows", "lr": 3e-3, "schedule": "cosine",
           "weight_decay": 0.1}
    sizes = {"vocab_size": 65, "embedding_dim": 64, "hidden_sizes": (512,)}
    plain = quality.describe(ModelConfig(**sizes), {**cfg, "weight_decay": 0})
    label = quality.describe(ModelConfig(**sizes, dropout=0.1), cfg)
    assert plain == "E=64, H=512, B=32, T=100, windows, Adam 0.003 cosine"
    assert label == plain + ", weight decay 0.1, dropout 0.1"
