"""Optimizers that own their state buffers and call the fused updates in ``core.optim``.

Each optimizer works on a model's flat parameter buffer (``model.params``): its state (moments,
momentum) is a flat buffer of the same length, so one update is one pass over memory, and
``state_arrays()`` / ``load_state()`` move everything a resumed run needs in and out.
The learning rate is an argument of ``step`` because the trainer's schedule owns it.
"""
from __future__ import annotations

import numpy as np

from . import core
from .params import Parameters

OPTIMIZERS = ("adam", "rmsprop", "sgd")


class Optimizer:
    name = ""
    slots: tuple = ()          # names of the flat state buffers

    def __init__(self, params: Parameters, **hyper):
        self.params = params
        self.hyper = hyper
        self.steps = 0
        self.state = {slot: np.zeros_like(params.data) for slot in self.slots}

    def step(self, lr: float) -> None:
        self.steps += 1
        self._update(float(lr))

    def _update(self, lr: float) -> None:
        raise NotImplementedError

    def state_arrays(self) -> dict:
        return {f"optimizer.{slot}": buffer for slot, buffer in self.state.items()}

    def state_meta(self) -> dict:
        return {"name": self.name, "steps": self.steps, "hyper": dict(self.hyper)}

    def load_state(self, arrays: dict, meta: dict) -> None:
        if meta.get("name") != self.name:
            raise ValueError(f"{type(self).__name__}.load_state: saved optimizer is "
                             f"{meta.get('name')!r}, expected {self.name!r}")
        for slot in self.slots:
            saved = arrays[f"optimizer.{slot}"]
            if saved.shape != self.state[slot].shape or saved.dtype != self.state[slot].dtype:
                raise ValueError(f"{type(self).__name__}.load_state: optimizer.{slot} has "
                                 f"{saved.dtype}{saved.shape}, expected "
                                 f"{self.state[slot].dtype}{self.state[slot].shape}")
            self.state[slot][...] = saved
        self.steps = int(meta["steps"])


class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` is decoupled (AdamW)."""
    name, slots = "adam", ("m", "v")

    def __init__(self, params, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(params, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)

    def _update(self, lr):
        core.adam_update(self.params.data, self.params.grad, self.state["m"], self.state["v"],
                         self.steps, lr, **self.hyper)


class RMSprop(Optimizer):
    name, slots = "rmsprop", ("square_avg",)

    def __init__(self, params, alpha=0.99, eps=1e-8, weight_decay=0.0):
        super().__init__(params, alpha=alpha, eps=eps, weight_decay=weight_decay)

    def _update(self, lr):
        core.rmsprop_update(self.params.data, self.params.grad, self.state["square_avg"], lr,
                            **self.hyper)


class SGD(Optimizer):
    name, slots = "sgd", ("momentum_buffer",)

    def __init__(self, params, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)

    def _update(self, lr):
        core.sgd_update(self.params.data, self.params.grad, self.state["momentum_buffer"], lr,
                        **self.hyper)


def make_optimizer(name: str, params: Parameters, **hyper) -> Optimizer:
    """``make_optimizer("adam", model.params, beta2=0.99)``."""
    classes = {"adam": Adam, "rmsprop": RMSprop, "sgd": SGD}
    if name not in classes:
        raise ValueError(f"optimizer: got {name!r}, expected one of {OPTIMIZERS}")
    return classes[name](params, **hyper)
