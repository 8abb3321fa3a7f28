"""The body of ``Trainer.fit``: steps, logging, validation, early stopping and checkpoints.

Kept apart from :mod:`minilstm.train` so that each piece stays readable; the functions take the
trainer as their first argument and work on its state (run position, carried state, progress
display, the step of the last save).

Order within one step (the order a resumed run must reproduce):

    budget / stop checks  ->  batch(epoch, index)  ->  lr = schedule(step, epoch, seconds)
    ->  train_step (carried state for streams)  ->  step += 1, index += 1  ->  log, on_step
    ->  epoch end: epoch += 1, index = 0, carried state dropped
    ->  validation (every eval_every steps, at epoch ends): best.ckpt, patience, plot, sample
    ->  last.ckpt (evaluations, epoch ends, every save_every steps); epoch-NNN.ckpt

A checkpoint therefore always describes the state *between* two steps, and everything the next
step reads (parameters, optimizer moments and count, epoch and index, carried state, the
dropout and data generators) is in it.
"""
from __future__ import annotations

import math

from .sample import sample_text
from .train import NonFiniteError, train_step
from .train_checkpoint import save_training_checkpoint
from .train_data import evaluate


class _Window:
    """Losses, tokens and step times since the last train record."""

    def __init__(self):
        self.loss_sum, self.tokens, self.seconds, self.steps = 0.0, 0, 0.0, 0

    def add(self, loss, tokens, seconds):
        self.loss_sum += loss * tokens
        self.tokens += tokens
        self.seconds += seconds
        self.steps += 1


def run_loop(trainer, signals) -> tuple:
    """Train until something ends the run; returns ``(status, reason)``."""
    cfg, run, data = trainer.config, trainer.run, trainer.data
    window, rate = _Window(), None
    steps_this_call, status, reason = 0, None, None
    while status is None:
        status, reason = _stop_reason(trainer, signals)
        if status is not None:
            break
        batch = data.batch(run.epoch, run.batch_index)
        lr = trainer.schedule(run.step, run.epoch, trainer.elapsed())
        started = trainer.clock()
        try:
            result = train_step(trainer.model, trainer.optimizer, batch.inputs, batch.targets,
                                trainer.carried if data.carries_state else None, lr=lr,
                                clip_norm=cfg.clip_norm or None, clip_value=cfg.clip_value or None)
        except NonFiniteError as exc:
            _fail(trainer, f"step {run.step + 1} (epoch {run.epoch + 1}, batch {run.batch_index + 1} of "
                           f"{len(data)}, lr {lr:.3g}): {exc}", exc)
        seconds = trainer.clock() - started
        run.step += 1
        run.batch_index += 1
        run.tokens += result.tokens
        steps_this_call += 1
        trainer.carried = result.state if data.carries_state else None
        window.add(result.loss, result.tokens, seconds)
        step_rate = result.tokens / seconds if seconds > 0 else math.inf
        rate = step_rate if rate is None or not math.isfinite(rate) else 0.9 * rate + 0.1 * step_rate
        record = {"kind": "train", "step": run.step, "epoch": round(trainer.epoch_position(), 6),
                  "loss": result.loss, "lr": lr, "grad_norm": result.grad_norm}
        if run.step % cfg.log_every == 0:
            _log_train(trainer, window, record)
            window = _Window()
        trainer._progress.update(run.step, result.loss, rate, _eta(trainer, steps_this_call))
        if trainer.on_step is not None:
            trainer.on_step(trainer, record)
        epoch_end = run.batch_index == len(data)
        if epoch_end:
            run.epoch += 1
            run.batch_index = 0
            trainer.carried = None          # every epoch starts from the zero state
        evaluated = False
        if trainer.validation is not None and ((cfg.eval_every and run.step % cfg.eval_every == 0)
                                               or (epoch_end and cfg.eval_at_epoch_end)):
            if window.steps:                 # the train record the evaluation follows
                _log_train(trainer, window, record)
                window = _Window()
            evaluated = True
            if validate(trainer):
                status, reason = "early_stopped", (f"no improvement of {cfg.min_delta} in {cfg.patience} "
                                                   "evaluations")
        if evaluated or epoch_end or (cfg.save_every and run.step % cfg.save_every == 0):
            save(trainer, "last")
        if epoch_end and cfg.save_epochs:
            save(trainer, f"epoch-{run.epoch:03d}")
    if window.steps:
        _log_train(trainer, window, record)
    last_eval_step = (run.last_eval or {}).get("step")
    if (cfg.eval_at_end and trainer.validation is not None and steps_this_call and status == "finished"
            and last_eval_step != run.step):
        validate(trainer)                  # score the final parameters too (a budget rarely ends on an eval step)
    if steps_this_call or trainer._saved_step != run.step:
        save(trainer, "last", status)      # also records how the run ended
    trainer.run.elapsed_s = trainer.elapsed()
    trainer.plot()
    return status, reason


def _stop_reason(trainer, signals) -> tuple:
    cfg, run = trainer.config, trainer.run
    if signals.received:
        return "interrupted", f"{signals.received} received"
    if trainer._stop_request:
        return "stopped", trainer._stop_request
    if cfg.max_steps and run.step >= cfg.max_steps:
        return "finished", f"max_steps={cfg.max_steps} reached"
    if cfg.max_epochs and run.epoch >= cfg.max_epochs:
        return "finished", f"max_epochs={cfg.max_epochs} reached"
    if cfg.max_seconds and trainer.elapsed() >= cfg.max_seconds:
        return "finished", f"max_seconds={cfg.max_seconds:g} reached"
    return None, None


def _eta(trainer, steps_this_call: int) -> float | None:
    """Seconds left: the nearer of the step/epoch budget (at this call's mean step time,
    evaluations included) and the time budget."""
    cfg, run = trainer.config, trainer.run
    estimates = []
    budget = trainer.step_budget()
    elapsed_here = trainer.clock() - trainer._started
    if budget is not None and steps_this_call:
        estimates.append((budget - run.step) * elapsed_here / steps_this_call)
    if cfg.max_seconds:
        estimates.append(cfg.max_seconds - trainer.elapsed())
    return min(estimates) if estimates else None


def _log_train(trainer, window: _Window, record: dict) -> None:
    # the token-weighted mean over the window (exactly the step's loss for a window of one step)
    loss = record["loss"] if window.steps == 1 else window.loss_sum / max(window.tokens, 1)
    trainer.log.append({**record, "loss": loss, "steps": window.steps,
                        "tokens_per_s": window.tokens / window.seconds if window.seconds > 0 else None,
                        "elapsed_s": trainer.elapsed(), "eval_s": trainer.run.eval_s})


def validate(trainer) -> bool:
    """One validation pass with its consequences; returns whether early stopping is due."""
    cfg, run = trainer.config, trainer.run
    _check_finite(trainer, "validation")
    result = evaluate(trainer.model, trainer.validation, clock=trainer.clock)
    if not math.isfinite(result.loss):
        _fail(trainer, f"step {run.step}: the validation loss is {result.loss} (the parameters are finite; "
                       "the model overflows on the validation data)", None)
    run.eval_s += result.seconds
    improved = run.best_val_loss is None or result.loss < run.best_val_loss
    if improved:
        run.best_val_loss, run.best_step = result.loss, run.step
    if run.patience_ref is None or result.loss < run.patience_ref - cfg.min_delta:
        run.patience_ref, run.evals_without_improvement = result.loss, 0
    else:
        run.evals_without_improvement += 1
    ppl = result.perplexity if math.isfinite(result.perplexity) else None
    run.last_eval = {"step": run.step, "val_loss": result.loss, "val_bpc": result.bpc, "val_ppl": ppl}
    trainer.log.append({"kind": "eval", "step": run.step, "epoch": round(trainer.epoch_position(), 6),
                        **run.last_eval, "val_tokens": result.tokens, "best": improved,
                        "eval_seconds": result.seconds, "eval_s": run.eval_s, "elapsed_s": trainer.elapsed()})
    trainer.say(f"step {run.step} (epoch {trainer.epoch_position():.2f}): val loss {result.loss:.4f} nats, "
                f"{result.bpc:.4f} bpc, perplexity {result.perplexity:.3f} ({result.tokens:,} tokens, "
                f"{result.seconds:.2f} s)" + ("  [best]" if improved else
                                              f"  (best {run.best_val_loss:.4f} at step {run.best_step})"))
    if improved:
        save(trainer, "best")
    trainer.plot()
    _print_sample(trainer)
    return bool(cfg.patience) and run.evals_without_improvement >= cfg.patience


def _print_sample(trainer) -> None:
    cfg = trainer.config
    if not cfg.sample_length or trainer.vocab is None:
        return
    # seeded by the step: repeatable, and independent of the generators training draws from
    text = sample_text(trainer.model, trainer.vocab, prompt=cfg.sample_prompt, length=cfg.sample_length,
                       temperature=cfg.sample_temperature, seed=trainer.run.step)
    rule = "-" * 20
    trainer.say(f"{rule} sample at step {trainer.run.step} (temperature {cfg.sample_temperature:g}) {rule}\n"
                f"{cfg.sample_prompt}{text}\n{rule * 3}")


def _check_finite(trainer, what: str) -> None:
    bad = trainer.checkpoint_problems()
    if bad:
        _fail(trainer, f"step {trainer.run.step}: {', '.join(bad)} contain NaN or Inf after the update (learning "
                       f"rate too high?); no {what} was done", None)


def save(trainer, name: str, status: str = "running"):
    """Write ``<out_dir>/<name>.ckpt`` (nothing without an out_dir); never a non-finite state."""
    if trainer.out_dir is None:
        return None
    _check_finite(trainer, f"{name}.ckpt write")
    run = trainer.run
    run.elapsed_s = trainer.elapsed()
    path = save_training_checkpoint(
        trainer.out_dir / f"{name}.ckpt", model=trainer.model, vocab=trainer.vocab, optimizer=trainer.optimizer,
        config=trainer.config.to_dict(), run=run, data=trainer.data.describe(),
        data_rng=trainer.data.rng_state(), carried_state=trainer.carried, status=status)
    if name == "last":
        trainer._saved_step = run.step
    return path


def _fail(trainer, message: str, cause) -> None:
    if trainer.out_dir is None:
        saved = "nothing is written without an out_dir"
    elif trainer._saved_step is None:
        saved = "no checkpoint was written by this run"
    else:
        saved = f"no checkpoint was written: last.ckpt (step {trainer._saved_step}) and best.ckpt are unchanged"
    message = f"training stopped at {message}; {saved}"
    trainer.log.append({"kind": "error", "step": trainer.run.step, "message": message})
    trainer.say(message)
    raise NonFiniteError(message) from cause
