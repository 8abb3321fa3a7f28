"""Read ``.npz`` files that hold pickled object arrays without running arbitrary pickle code.

``np.load(allow_pickle=True)`` hands object arrays to :mod:`pickle`, and a pickle can call any
importable function (``os.system`` via ``__reduce__``). Here the zip members and ``.npy``
headers are read directly: plain arrays go through ``numpy.lib.format.read_array`` with
``allow_pickle=False``, and an object array's payload goes to :class:`RestrictedUnpickler`,
which resolves only the globals a pickled NumPy array of dicts, strings and numbers needs
(:data:`ALLOWED_GLOBALS`) and refuses every other one, naming it, before anything runs.
"""
from __future__ import annotations

import codecs
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

try:   # NumPy >= 2 keeps the implementation in numpy._core, 1.x in numpy.core
    from numpy._core import multiarray as _multiarray
except ImportError:   # pragma: no cover - NumPy 1.x
    from numpy.core import multiarray as _multiarray

def _latin1_encode(text, encoding="latin1", errors="strict"):
    """``_codecs.encode`` as pickle protocols 0-2 use it (``bytes`` pickled as latin-1 text);
    any other codec is refused, so a pickle cannot reach the rest of the codec registry."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise pickle.UnpicklingError(f"_codecs.encode is allowed only as encode(str, 'latin1'), "
                                     f"got encode({type(text).__name__}, {encoding!r}, {errors!r})")
    return codecs.encode(text, "latin1")


# Both module spellings occur: files written by NumPy 1.x say numpy.core, 2.x numpy._core.
# The objects are taken from the NumPy in use; nothing is imported by the name in the file.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,   # ndarray.__reduce__
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,               # NumPy scalars (np.int64(3))
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,   # how pickle protocols 0-2 spell bytes
}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list; ``name`` is ``module.name``."""

    def __init__(self, name: str, where: str):
        self.name = name
        allowed = ", ".join(sorted(f"{m}.{n}" for m, n in ALLOWED_GLOBALS))
        super().__init__(f"{where}: refusing to unpickle the global {name}: only {allowed} are allowed "
                         "(the file may be corrupt or crafted to run code; it was not executed)")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` knows only :data:`ALLOWED_GLOBALS`."""

    def __init__(self, file, where: str = "pickle"):
        super().__init__(file)
        self._where = where

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[module, name]
        except KeyError:
            raise UnsafePickleError(f"{module}.{name}", self._where) from None


def restricted_loads(data: bytes, where: str = "pickle"):
    """``pickle.loads`` limited to :data:`ALLOWED_GLOBALS`."""
    return RestrictedUnpickler(io.BytesIO(data), where).load()


def _header(handle, where: str):
    version = npy_format.read_magic(handle)
    if version == (1, 0):
        return npy_format.read_array_header_1_0(handle)
    if version == (2, 0):
        return npy_format.read_array_header_2_0(handle)
    raise ValueError(f"{where}: .npy format version {version} is not supported (expected 1.0 or 2.0)")


def read_npz(path, object_members=()) -> dict[str, np.ndarray]:
    """All arrays of the ``.npz`` at ``path`` by member name (without ``.npy``).

    Members named in ``object_members`` may be object arrays, unpickled with
    :class:`RestrictedUnpickler`; an object array anywhere else is refused.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, expected an .npz file")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    arrays = {}
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError(f"{path} is not an .npz file (not a zip archive)") from None
    with archive:
        for member in archive.namelist():
            if not member.endswith(".npy"):
                raise ValueError(f"{path}: member {member!r} is not a .npy array")
            key, where = member[:-4], f"{path}:{member}"
            try:
                with archive.open(member) as handle:
                    shape, _, dtype = _header(handle, where)
                    if not dtype.hasobject:
                        handle.seek(0)   # read_array wants the magic string again
                        arrays[key] = npy_format.read_array(handle, allow_pickle=False)
                    elif key in object_members:
                        value = restricted_loads(handle.read(), where)
                        if not isinstance(value, np.ndarray) or value.shape != shape:
                            raise ValueError(f"{where}: the pickled payload is not the {shape} array its header announces")
                        arrays[key] = value
                    else:
                        raise ValueError(f"{where}: holds Python objects (dtype {dtype}), expected plain numbers")
            except (UnsafePickleError, ValueError):
                raise
            except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, OSError, TypeError, AttributeError) as exc:
                raise ValueError(f"{where}: cannot read the array: {type(exc).__name__}: {exc}") from None
    return arrays
