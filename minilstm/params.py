"""One flat parameter buffer with named views, its gradient twin, and initialisers.

Every trainable array of a model is a view into one contiguous vector ``data`` (and its
gradient a view into ``grad``, laid out identically). The optimizer updates all parameters in a
single pass, gradient clipping computes one norm, and a checkpoint stores one array. Views are
C-contiguous, so kernels receive them without copies.

    layout = ParamLayout({"lstm0.Wx": (65, 2048), "lstm0.Wh": (512, 2048), ...})
    params = Parameters(layout, np.float32)
    params["lstm0.Wh"]        # (512, 2048) view into params.data
    params.grads["lstm0.Wh"]  # the matching view into params.grad
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ParamLayout:
    """Names, shapes and offsets of the parameters inside the flat buffer (in order)."""
    shapes: dict

    def __post_init__(self):
        offsets, total = {}, 0
        for name, shape in self.shapes.items():
            shape = tuple(int(n) for n in shape)
            if any(n < 0 for n in shape):
                raise ValueError(f"ParamLayout: {name} has a negative dimension in {shape}")
            offsets[name] = (total, total + math.prod(shape), shape)
            total += math.prod(shape)
        object.__setattr__(self, "_offsets", offsets)
        object.__setattr__(self, "size", total)

    def views(self, flat: np.ndarray) -> dict:
        """Named views of ``flat`` (no copies)."""
        if flat.shape != (self.size,):
            raise ValueError(f"ParamLayout.views: buffer has shape {flat.shape}, expected ({self.size},)")
        return {name: flat[start:stop].reshape(shape)
                for name, (start, stop, shape) in self._offsets.items()}

    def slice_of(self, name: str) -> slice:
        start, stop, _ = self._offsets[name]
        return slice(start, stop)

    def describe(self) -> list:
        """[(name, shape, count)] for printing."""
        return [(name, shape, stop - start) for name, (start, stop, shape) in self._offsets.items()]


class Parameters:
    """The flat buffers ``data`` and ``grad`` with a name -> view mapping for each."""

    def __init__(self, layout: ParamLayout, dtype=np.float32):
        self.layout = layout
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"Parameters: dtype must be float32 or float64, got {self.dtype}")
        self.data = np.zeros(layout.size, dtype=self.dtype)
        self.grad = np.zeros(layout.size, dtype=self.dtype)
        self.values = layout.views(self.data)
        self.grads = layout.views(self.grad)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def names(self):
        return list(self.values)

    @property
    def count(self) -> int:
        return self.layout.size

    def zero_grad(self) -> None:
        self.grad.fill(0)

    def sharing_values(self) -> "Parameters":
        """A Parameters over the *same* ``data`` (and views) with a gradient buffer of its own:
        what a data-parallel shard computes into (``minilstm.parallel``)."""
        other = object.__new__(Parameters)
        other.layout, other.dtype, other.data, other.values = self.layout, self.dtype, self.data, self.values
        other.grad = np.zeros_like(self.grad)
        other.grads = self.layout.views(other.grad)
        return other

    def load_flat(self, flat: np.ndarray) -> None:
        """Copy a saved flat vector in (shape and dtype must match: no silent casts)."""
        if flat.shape != self.data.shape:
            raise ValueError(f"Parameters.load_flat: got shape {flat.shape}, expected {self.data.shape}")
        if flat.dtype != self.dtype:
            raise ValueError(f"Parameters.load_flat: got dtype {flat.dtype}, expected {self.dtype}")
        self.data[...] = flat


# ----------------------------------------------------------------------------- initialisers

def uniform(rng: np.random.Generator, shape, bound: float, dtype) -> np.ndarray:
    """U(-bound, bound), PyTorch's default for LSTM and linear weights (bound = 1/sqrt(fan))."""
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def normal(rng: np.random.Generator, shape, std: float, dtype) -> np.ndarray:
    """N(0, std^2), PyTorch's default for embeddings with std = 1."""
    return (rng.standard_normal(size=shape) * std).astype(dtype)
