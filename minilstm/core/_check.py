"""Argument validation shared by the public kernel functions.

Every message names the function, the argument, what was received and what was expected, e.g.
``lstm_forward: h0 has shape (3, 5), expected (B, H) = (4, 5)``. Kernels themselves never
validate: they run only on arrays these helpers have accepted.
"""
from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _describe(dims) -> str:
    letters = ", ".join(letter for letter, _ in dims)
    sizes = ", ".join("?" if size is None else str(size) for _, size in dims)
    if len(dims) == 1:
        letters, sizes = letters + ",", sizes + ","
    return f"({letters}) = ({sizes})"


def float_array(where: str, name: str, value, dims, dtype=None) -> np.ndarray:
    """Return ``value`` as a C-contiguous float32/float64 array with the expected shape.

    ``dims`` is a sequence of ``(letter, size)`` pairs, ``size=None`` meaning "any"; ``dtype`` is
    the dtype the array must already have (no silent casts: a float64 weight next to float32
    activations is a bug worth hearing about).
    """
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{where}: {name} must be a numpy array, got {type(value).__name__}")
    if value.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{where}: {name} has dtype {value.dtype}, expected float32 or float64")
    if dtype is not None and value.dtype != dtype:
        raise ValueError(f"{where}: {name} has dtype {value.dtype}, expected {np.dtype(dtype)} "
                         "(all float arguments of one call share a dtype)")
    check_shape(where, name, value, dims)
    return np.ascontiguousarray(value)


def check_shape(where: str, name: str, value: np.ndarray, dims) -> None:
    """Raise ``ValueError`` unless ``value.shape`` matches ``dims`` (see :func:`float_array`)."""
    shape = value.shape
    ok = len(shape) == len(dims) and all(s is None or s == n for (_, s), n in zip(dims, shape))
    if not ok:
        raise ValueError(f"{where}: {name} has shape {tuple(shape)}, expected {_describe(dims)}")


def gradient_buffer(where: str, name: str, value, shape=None, dtype=None) -> np.ndarray:
    """A caller-owned buffer that a backward adds into: a writeable C-contiguous float array
    with the given shape and dtype (``None`` = any). Never copied: a copy would silently
    swallow the accumulated gradient, so a non-contiguous buffer is an error instead."""
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{where}: {name} must be a numpy array, got {type(value).__name__}")
    if value.dtype not in FLOAT_DTYPES or (dtype is not None and value.dtype != dtype):
        expected = np.dtype(dtype) if dtype is not None else "float32 or float64"
        raise ValueError(f"{where}: {name} has dtype {value.dtype}, expected {expected}")
    if shape is not None and value.shape != tuple(shape):
        raise ValueError(f"{where}: {name} has shape {value.shape}, expected {tuple(shape)}")
    if not value.flags.c_contiguous or not value.flags.writeable:
        raise ValueError(f"{where}: {name} must be a writeable C-contiguous array "
                         "(gradients are accumulated into it in place)")
    return value


def id_array(where: str, name: str, value, vocab_size: int, dims=None) -> np.ndarray:
    """Validate integer token ids: integer dtype and every id in ``[0, vocab_size)``.

    Out-of-range ids raise ``IndexError`` naming the first offending id, its position and the
    vocabulary size. Returns a C-contiguous int64 array (what the kernels index with).
    """
    if not isinstance(value, np.ndarray):
        value = np.asarray(value)
    if value.dtype.kind not in "iu":
        raise ValueError(f"{where}: {name} has dtype {value.dtype}, expected an integer dtype")
    if dims is not None:
        check_shape(where, name, value, dims)
    if value.size:
        bad = (value < 0) | (value >= vocab_size)
        if bad.any():
            position = tuple(int(i) for i in np.argwhere(bad)[0])
            raise IndexError(f"{where}: {name} contains id {int(value[position])} at {position}, "
                             f"outside the vocabulary of size {vocab_size} (valid ids 0..{vocab_size - 1})")
    return np.ascontiguousarray(value, dtype=np.int64)


def positive_int(where: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive integer, got {value!r}")
    return int(value)


def probability(where: str, name: str, value, *, allow_one: bool = False) -> float:
    """A float in [0, 1) (or [0, 1] with ``allow_one``); NaN is refused."""
    bound = "]" if allow_one else ")"
    is_number = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if not is_number or not (0 <= value and (value <= 1 if allow_one else value < 1)):
        raise ValueError(f"{where}: {name} must be in [0, 1{bound}, got {value!r}")
    return float(value)
