"""Safe, atomic checkpoint files: named NumPy arrays plus JSON metadata, never a pickle.

File layout. A checkpoint is ONE zip archive (members stored uncompressed unless
``compress=True``), so that a single atomic rename replaces it::

    metadata.json      JSON object, ASCII-only (other characters as JSON escapes):
                         "format":         "minilstm-checkpoint"
                         "format_version": 1          (readers refuse newer versions)
                         "created":        ISO-8601 UTC time of the save
                         "versions":       {"minilstm", "numpy", "numba" (null if absent), "python"}
                         "arrays":         manifest, sorted by name: [{"name", "dtype" (e.g. "<f4"),
                                           "shape" (list), "sha256"}, ...]
                         "arrays_sha256":  SHA-256 over the manifest entries, in manifest order
                         "metadata":       the caller's JSON object (configs, vocabulary, step, ...)
    <name>.npy         one member per array, written by ``numpy.lib.format.write_array`` with
                       ``allow_pickle=False`` (C order)

An array's ``sha256`` covers ``name NUL dtype NUL shape NUL`` followed by the array's bytes in C
order, so a renamed, retyped, reshaped or corrupted array is detected; ``arrays_sha256`` covers
each entry's ``name NUL dtype NUL shape NUL sha256 LF``, so an edited manifest is detected too.

The archive is also a valid ``.npz``: ``np.load(path, allow_pickle=False)[name]`` returns an
array (``metadata.json`` shows up there as one more, non-array, file). A NumPy scalar given as
an array is stored as a 0-d array.

Loading checks everything before returning: the zip structure and CRCs, the format and version,
that the members are exactly ``metadata.json`` plus one ``.npy`` per manifest entry, each
``.npy`` header against the manifest *before* its data is read (object dtypes are refused, so
nothing is ever unpickled), the checksums, and optionally the caller's ``expected_arrays``.
Any failure is a :class:`CheckpointError` naming the file and the problem.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npformat

from ._io import atomic_write, remove_stale_temporaries
from ._version import __version__

FORMAT = "minilstm-checkpoint"
FORMAT_VERSION = 1
METADATA_MEMBER = "metadata.json"
# Numeric kinds only: bool, signed/unsigned int, float, complex. Object arrays would need pickle;
# strings, structs and datetimes are not model state and would complicate the checksum's meaning.
NUMERIC_KINDS = "biufc"
# Path-like names ("layers.0/W") become member names, so no "..", no absolute paths, no NULs.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*")
# What a broken or hostile archive can make zipfile, zlib, json or numpy raise while reading.
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError,
                NotImplementedError)


class CheckpointError(Exception):
    """A checkpoint file is unreadable, corrupted, of an unknown format, or not what was expected."""


@dataclasses.dataclass
class Checkpoint:
    arrays: dict[str, np.ndarray]  # name -> array, verified against the stored checksums
    metadata: dict[str, Any]       # the caller's metadata, as saved
    header: dict[str, Any]         # the whole metadata.json (format, versions, created, manifest)


def save_checkpoint(path, arrays: Mapping[str, np.ndarray], metadata: Mapping[str, Any] | None = None,
                    *, compress: bool = False) -> Path:
    """Write ``arrays`` and JSON ``metadata`` to ``path`` atomically; return the path.

    ``path`` is replaced only once the new file is complete and fsynced: a crash at any moment
    leaves the previous checkpoint (or none) in place. Temporaries left by killed writers are
    removed first. ``metadata`` must be JSON-representable (dicts with string keys, lists/tuples,
    str, int, finite float, bool, None; NumPy scalars are converted); anything else raises
    ``ValueError`` naming its key path. NaN/Inf *in arrays* are allowed (see
    :func:`nonfinite_arrays`); non-numeric dtypes are refused.
    """
    path = Path(path)
    arrays = _checked_arrays(arrays)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        raise ValueError(f"save_checkpoint: metadata must be a dict, got {type(metadata).__name__}")
    manifest = [{"name": name, "dtype": a.dtype.str, "shape": list(a.shape), "sha256": _digest(name, a)}
                for name, a in sorted(arrays.items())]
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"minilstm": __version__, "numpy": np.__version__,
                     "numba": _installed_version("numba"), "python": platform.python_version()},
        "arrays": manifest,
        "arrays_sha256": _manifest_digest(manifest),
        "metadata": _json_clean(metadata, "metadata", set()),
    }
    # ASCII escapes keep any str (even a lone surrogate) encodable, and the JSON valid everywhere
    text = json.dumps(header, ensure_ascii=True, allow_nan=False)
    remove_stale_temporaries(path)
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_write(path, "wb") as handle, zipfile.ZipFile(handle, "w", compression) as archive:
        archive.writestr(METADATA_MEMBER, text.encode("ascii"))
        for name, a in sorted(arrays.items()):
            # force_zip64: the member size is unknown when its header is written (as in np.savez)
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                npformat.write_array(member, a, allow_pickle=False)
    return path


def load_checkpoint(path, *, expected_arrays: Mapping[str, tuple] | None = None) -> Checkpoint:
    """Read and verify the checkpoint at ``path`` (see the module docstring for what is checked).

    ``expected_arrays`` maps each name the caller needs to ``(shape, dtype)``; a shape entry or
    the dtype may be ``None`` for "any". Missing or extra names, or a contradiction, raise
    :class:`CheckpointError` before any array data is read. A missing file raises
    ``FileNotFoundError``.
    """
    expected = _checked_expectations(expected_arrays)
    with _open(path) as archive:
        header = _read_header(path, archive)
        manifest = {entry["name"]: entry for entry in header["arrays"]}
        if expected is not None:
            _compare(path, manifest, expected)
        arrays = {}
        for name, entry in manifest.items():
            arrays[name] = a = _read_member(path, archive, name, entry)
            if _digest(name, a) != entry["sha256"]:
                raise CheckpointError(f"checkpoint {path}: checksum mismatch in array {name!r} "
                                      "(its bytes are corrupted)")
    return Checkpoint(arrays=arrays, metadata=header["metadata"], header=header)


def read_header(path) -> dict[str, Any]:
    """The verified ``metadata.json`` of ``path`` without reading any array (cheap, for listing)."""
    with _open(path) as archive:
        return _read_header(path, archive)


def read_metadata(path) -> dict[str, Any]:
    """The caller's metadata stored in ``path`` (``read_header(path)["metadata"]``)."""
    return read_header(path)["metadata"]


def nonfinite_arrays(arrays: Mapping[str, np.ndarray]) -> list[str]:
    """Names of the float/complex arrays in ``arrays`` that contain NaN or Inf, in sorted order."""
    return sorted(name for name, a in arrays.items()
                  if np.asarray(a).dtype.kind in "fc" and not np.isfinite(a).all())


# --- saving ---------------------------------------------------------------------------------

def _checked_arrays(arrays) -> dict[str, np.ndarray]:
    if not isinstance(arrays, Mapping):
        raise ValueError(f"save_checkpoint: arrays must be a mapping name -> ndarray, "
                         f"got {type(arrays).__name__}")
    checked = {}
    for name, a in arrays.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"save_checkpoint: array name {name!r} is not allowed; expected "
                             "letters, digits, '_', '.', '-' and '/' between non-empty parts")
        if isinstance(a, np.generic):  # a NumPy scalar is stored as a 0-d array
            a = np.asarray(a)
        if not isinstance(a, np.ndarray):
            raise ValueError(f"save_checkpoint: arrays[{name!r}] must be a numpy array, "
                             f"got {type(a).__name__}")
        if a.dtype.kind not in NUMERIC_KINDS:
            raise ValueError(f"save_checkpoint: arrays[{name!r}] has dtype {a.dtype}, expected a "
                             "numeric dtype (bool, integer, unsigned, float or complex)")
        checked[name] = _c_order(a)  # the bytes the checksum covers, written as they are
    return checked


def _json_clean(value, where: str, active: set):
    """A JSON-safe copy of ``value``, or ``ValueError`` naming the key path of what is not."""
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"save_checkpoint: {where} is {value}, which JSON cannot represent; "
                             "store None or a string instead")
        return value
    if isinstance(value, (Mapping, list, tuple)):
        if id(value) in active:
            raise ValueError(f"save_checkpoint: {where} contains itself")
        active.add(id(value))
        try:
            if isinstance(value, Mapping):
                for key in value:
                    if not isinstance(key, str):
                        raise ValueError(f"save_checkpoint: {where} has key {key!r} of type "
                                         f"{type(key).__name__}; JSON keys must be str")
                return {key: _json_clean(item, f"{where}[{key!r}]", active)
                        for key, item in value.items()}
            return [_json_clean(item, f"{where}[{i}]", active) for i, item in enumerate(value)]
        finally:
            active.discard(id(value))
    hint = " (store arrays in `arrays`)" if isinstance(value, np.ndarray) else ""
    raise ValueError(f"save_checkpoint: {where} is a {type(value).__name__}, which is not "
                     f"JSON-serialisable{hint}")


def _installed_version(distribution: str) -> str | None:
    try:  # read the installed metadata rather than importing (numba takes ~0.5 s to import)
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _digest(name: str, a: np.ndarray) -> str:
    h = hashlib.sha256(f"{name}\0{a.dtype.str}\0{list(a.shape)}\0".encode())
    h.update(_c_order(a).data)
    return h.hexdigest()


def _c_order(a: np.ndarray) -> np.ndarray:
    # not np.ascontiguousarray: NumPy 1.x turns 0-d arrays into 1-d ones there
    return a if a.flags.c_contiguous else a.copy(order="C")


def _manifest_digest(manifest) -> str:
    lines = "".join(f"{e['name']}\0{e['dtype']}\0{e['shape']}\0{e['sha256']}\n" for e in manifest)
    return hashlib.sha256(lines.encode()).hexdigest()


# --- loading --------------------------------------------------------------------------------

@contextlib.contextmanager
def _open(path):
    """``with _open(path) as archive``: the zip, with every read error turned into CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist or is not a file")
    try:
        with open(path, "rb") as file, zipfile.ZipFile(file) as archive:
            yield archive
    except _READ_ERRORS as exc:  # CheckpointError is none of these, so it passes through
        raise CheckpointError(f"checkpoint {path} is damaged or not a checkpoint "
                              f"(truncated or corrupted zip?): {type(exc).__name__}: {exc}") from exc


def _fail(path, problem: str):
    raise CheckpointError(f"checkpoint {path}: {problem}")


def _read_header(path, archive: zipfile.ZipFile) -> dict:
    names = archive.namelist()
    if len(set(names)) != len(names):
        _fail(path, "the archive has duplicate members, so which one is meant is ambiguous")
    size = os.fstat(archive.fp.fileno()).st_size
    outside = [info.filename for info in archive.infolist()
               if not 0 <= info.header_offset <= info.header_offset + info.compress_size <= size]
    if outside:  # a corrupted directory entry; seeking there would raise a raw OSError
        _fail(path, f"members {outside} point outside the {size}-byte file")
    # The writer only stores or deflates; refusing the rest up front keeps bz2/lzma decoders (and
    # their own exception types) and zipfile's password prompt out of reach of a damaged file.
    odd = [info.filename for info in archive.infolist() if info.flag_bits & 0x1
           or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)]
    if odd:
        _fail(path, f"members {odd} are encrypted or use a compression checkpoints never use")
    if METADATA_MEMBER not in names:
        _fail(path, f"no {METADATA_MEMBER} member; not a minilstm checkpoint")
    header = json.loads(archive.read(METADATA_MEMBER).decode("utf-8"),
                        parse_constant=lambda c: _fail(path, f"{METADATA_MEMBER} contains {c}"))
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        _fail(path, f"format is {header.get('format') if isinstance(header, dict) else None!r}, "
                    f"expected {FORMAT!r}")
    version = header.get("format_version")
    if type(version) is not int or version < 1:
        _fail(path, f"format_version is {version!r}, expected a positive integer")
    if version > FORMAT_VERSION:
        _fail(path, f"format_version {version} is newer than this minilstm {__version__} reads "
                    f"(up to {FORMAT_VERSION}); upgrade minilstm to load it")
    manifest = header.get("arrays")
    if not isinstance(manifest, list) or not isinstance(header.get("metadata"), dict):
        _fail(path, f"{METADATA_MEMBER} lacks the 'arrays' list or the 'metadata' object")
    for entry in manifest:
        ok = (isinstance(entry, dict) and isinstance(entry.get("name"), str)
              and _NAME.fullmatch(entry["name"]) and _numeric_dtype_string(entry.get("dtype"))
              and isinstance(entry.get("sha256"), str) and isinstance(entry.get("shape"), list)
              and all(type(n) is int and n >= 0 for n in entry["shape"]))
        if not ok:
            _fail(path, f"malformed manifest entry {entry!r}")
    listed = [entry["name"] for entry in manifest]
    if len(set(listed)) != len(listed):
        _fail(path, "the manifest lists an array twice")
    if _manifest_digest(manifest) != header.get("arrays_sha256"):
        _fail(path, "arrays_sha256 does not match the manifest (metadata.json was edited or corrupted)")
    members = {name + ".npy" for name in listed} | {METADATA_MEMBER}
    missing = sorted(members - set(names))
    extra = sorted(set(names) - members)
    if missing or extra:
        _fail(path, f"members do not match the manifest: missing {missing}, unexpected {extra}")
    return header


def _numeric_dtype_string(text) -> bool:
    """Whether ``text`` is the canonical ``dtype.str`` of a numeric dtype (what the writer stores)."""
    try:
        dtype = np.dtype(text) if isinstance(text, str) else None
    except (TypeError, ValueError):
        return False
    return dtype is not None and dtype.kind in NUMERIC_KINDS and dtype.str == text


def _read_member(path, archive: zipfile.ZipFile, name: str, entry: dict) -> np.ndarray:
    member = name + ".npy"
    with archive.open(member) as f:
        # Check the .npy header against the manifest before read_array allocates anything.
        version = npformat.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            _fail(path, f"{member} has .npy format version {version}, expected 1.0 or 2.0")
        read_npy_header = (npformat.read_array_header_1_0 if version == (1, 0)
                           else npformat.read_array_header_2_0)
        shape, _, dtype = read_npy_header(f)
        if dtype.hasobject or dtype.kind not in NUMERIC_KINDS:
            _fail(path, f"{member} has dtype {dtype}; only numeric arrays are accepted (no pickles)")
        if dtype.str != entry["dtype"] or list(shape) != entry["shape"]:
            _fail(path, f"{member} holds dtype {dtype.str} shape {list(shape)}, but the manifest "
                        f"says dtype {entry['dtype']} shape {entry['shape']}")
        # A size that disagrees with the header means truncation or padding; checking it here
        # also keeps a forged huge shape from allocating memory.
        size = f.tell() + math.prod(shape) * dtype.itemsize
        if archive.getinfo(member).file_size != size:
            _fail(path, f"{member} is {archive.getinfo(member).file_size} bytes, but its header "
                        f"implies {size}")
    with archive.open(member) as f:
        a = npformat.read_array(f, allow_pickle=False)
        f.read(1)  # reach the end of the member, which makes zipfile verify its CRC-32
    return a


def _checked_expectations(expected_arrays):
    if expected_arrays is None:
        return None
    if not isinstance(expected_arrays, Mapping):
        raise ValueError("load_checkpoint: expected_arrays must be a mapping name -> (shape, dtype), "
                         f"got {type(expected_arrays).__name__}")
    checked = {}
    for name, spec in expected_arrays.items():
        try:
            shape, dtype = spec
            shape = tuple(None if n is None else int(n) for n in shape)
            dtype = None if dtype is None else np.dtype(dtype)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"load_checkpoint: expected_arrays[{name!r}] is {spec!r}, expected "
                             "(shape, dtype) with shape a tuple of ints/None") from exc
        checked[name] = (shape, dtype)
    return checked


def _compare(path, manifest: dict, expected: dict) -> None:
    missing = sorted(set(expected) - set(manifest))
    extra = sorted(set(manifest) - set(expected))
    if missing or extra:
        _fail(path, f"arrays differ from those expected: missing {missing}, unexpected {extra}")
    for name, (shape, dtype) in expected.items():
        entry = manifest[name]
        got = tuple(entry["shape"])
        if len(got) != len(shape) or any(s is not None and s != n for s, n in zip(shape, got)):
            _fail(path, f"array {name!r} has shape {got}, expected {shape}")
        if dtype is not None and np.dtype(entry["dtype"]) != dtype:
            _fail(path, f"array {name!r} has dtype {np.dtype(entry['dtype'])}, expected {dtype}")
