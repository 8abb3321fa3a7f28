"""What a trainer prints before its first step: the resolved configurations, the data, the
parameter count, and the memory and time-per-step estimates of :mod:`minilstm.cost`."""
from __future__ import annotations

import textwrap

from .cost import memory_estimate, parameter_count, time_estimate
from .parallel import shard_count


def format_fields(title: str, values: dict, width: int = 100) -> str:
    """``title: a=1, b=2, ...`` wrapped at ``width`` with an indented continuation."""
    body = ", ".join(f"{key}={list(v) if isinstance(v, tuple) else v!r}" for key, v in values.items())
    return textwrap.fill(f"{title}: {body}", width=width, subsequent_indent="    ", break_on_hyphens=False)


def batch_shape(trainer) -> tuple:
    """(B, T) of a training batch; for poems T is the longest a batch can be."""
    cfg = trainer.config
    if cfg.batching == "poems":
        return cfg.batch_size, trainer.data.source.shape[1] - 1
    return cfg.batch_size, cfg.seq_len


def announce(trainer) -> None:
    say, cfg, model, run = trainer.say, trainer.config, trainer.model, trainer.run
    if trainer.resumed_from is not None:
        say(f"resuming {trainer.resumed_from}: step {run.step}, epoch {run.epoch} batch {run.batch_index} "
            f"of {len(trainer.data)}, {run.elapsed_s:.1f} s trained so far")
    else:
        say("new run" + (f" in {trainer.out_dir}" if trainer.out_dir is not None else " (nothing is saved: no out_dir)"))
    say(format_fields("model", model.config.to_dict()))
    say(format_fields("train", cfg.to_dict()))
    B, T = batch_shape(trainer)
    val = "no validation" if trainer.validation is None else (
        f"validation: {trainer.validation.tokens:,} tokens in {len(trainer.validation.batches)} batches")
    say(f"data: {cfg.batching} batching, {len(trainer.data)} batches of {B}x{T} per epoch "
        f"(training data {tuple(trainer.data.source.shape)}); {val}")
    count = parameter_count(model.config)
    say(f"parameters: {count:,} ({count * model.dtype.itemsize / 2**20:,.2f} MiB as {model.dtype})")
    say(f"schedule: {trainer.schedule.describe()}; budget: " + ", ".join(
        f"{name}={getattr(cfg, name)}" for name in ("max_epochs", "max_steps", "max_seconds") if getattr(cfg, name)))
    shards = shard_count(model, B)
    say(f"threads: {shards} shard{'s' if shards > 1 else ''} of the batch side by side" if shards > 1
        else "threads: the whole batch in one thread, BLAS's threads sharing each product")
    if cfg.estimate:
        say(f"memory estimate per step: {memory_estimate(model.config, B, T, cfg.optimizer, shards).describe()}")
        say(f"time estimate: {time_estimate(model.config, B, T, clock=trainer.clock).describe(B * T)}")
