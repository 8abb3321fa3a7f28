"""Checkpoint files: round trips, refusals at save time, every kind of damage at load time, and
atomicity (a failed save and a SIGKILL at random moments both leave a loadable checkpoint)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npformat

from minilstm.checkpoint import (CheckpointError, load_checkpoint, nonfinite_arrays, read_header,
                                 read_metadata, save_checkpoint)

REPO = Path(__file__).resolve().parents[1]


def sample_arrays():
    rng = np.random.default_rng(0)
    return {
        "embed": rng.standard_normal((7, 3)).astype(np.float32),
        "lstm.0/W": rng.standard_normal((3, 8)),
        "half": rng.standard_normal(5).astype(np.float16),
        "ids": rng.integers(-5, 5, size=(2, 3), dtype=np.int64),
        "bytes": np.arange(250, 256, dtype=np.uint8),
        "big": np.array([2**64 - 1, 0], dtype=np.uint64),
        "small": np.array([-128, 127], dtype=np.int8),
        "mask": np.array([True, False, True]),
        "phase": np.array([1 + 2j, -0.5j], dtype=np.complex128),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "step": np.array(12345, dtype=np.int64),
        "be": np.arange(4, dtype=">i4"),
    }


def sample_metadata():
    return {"step": 12, "train": {"lr": 3e-3, "betas": [0.9, 0.999], "clip": None, "amsgrad": False},
            "vocab": ["a", "é", "漢", "\n", "🙂", "\ud800"], "metrics": {"val_loss": 1.25},
            "seed": 2**40, "词表大小": 6, "ключ": {"ü": "ß"}}


def assert_same_arrays(got, want):
    assert sorted(got) == sorted(want)
    for name, a in want.items():
        assert got[name].dtype == a.dtype, name
        assert got[name].shape == a.shape, name
        np.testing.assert_array_equal(got[name], a, err_msg=name)  # exact: bytes are stored


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.ckpt"
    save_checkpoint(path, sample_arrays(), sample_metadata())
    return path


def members_of(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def write_members(path, members: dict[str, bytes]) -> None:
    """Rebuild the archive from ``members`` (valid zip CRCs, whatever the content)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def edit_header(path, change) -> None:
    members = members_of(path)
    header = json.loads(members["metadata.json"])
    change(header)
    members["metadata.json"] = json.dumps(header).encode()
    write_members(path, members)


def npy_bytes(a, allow_pickle=False) -> bytes:
    buffer = io.BytesIO()
    npformat.write_array(buffer, a, allow_pickle=allow_pickle)
    return buffer.getvalue()


def entry(header, name) -> dict:
    return next(e for e in header["arrays"] if e["name"] == name)


def resummed(header) -> None:
    """Recompute arrays_sha256 after editing the manifest, so a deeper check has to catch it."""
    lines = "".join(f"{e['name']}\0{e['dtype']}\0{e['shape']}\0{e['sha256']}\n"
                    for e in header["arrays"])
    header["arrays_sha256"] = hashlib.sha256(lines.encode()).hexdigest()


# --- round trips ------------------------------------------------------------------------------

def test_round_trip_keeps_every_array_and_the_metadata(saved):
    loaded = load_checkpoint(saved)
    assert_same_arrays(loaded.arrays, sample_arrays())
    assert loaded.metadata == sample_metadata()
    assert loaded.header["format"] == "minilstm-checkpoint" and loaded.header["format_version"] == 1
    versions = loaded.header["versions"]
    assert versions["numpy"] == np.__version__ and versions["minilstm"]
    assert set(versions) == {"minilstm", "numpy", "numba", "python"}
    manifest = {e["name"]: (e["dtype"], tuple(e["shape"])) for e in loaded.header["arrays"]}
    assert manifest == {name: (a.dtype.str, a.shape) for name, a in sample_arrays().items()}
    assert all(a.flags.c_contiguous for a in loaded.arrays.values())


def test_zero_d_and_empty_arrays_keep_their_shape(saved):
    arrays = load_checkpoint(saved).arrays
    assert arrays["step"].shape == () and arrays["step"][()] == 12345
    assert arrays["empty"].shape == (0, 4)


def test_the_file_is_a_valid_npz_for_numpy(saved):
    with np.load(saved, allow_pickle=False) as npz:
        for name, a in sample_arrays().items():
            np.testing.assert_array_equal(npz[name], a, err_msg=name)


def test_read_header_and_metadata_do_not_read_the_arrays(saved):
    members = members_of(saved)
    members["embed.npy"] = members["embed.npy"][:-4] + b"\0\0\0\0"  # would fail its checksum
    write_members(saved, members)
    assert read_metadata(saved) == sample_metadata()
    assert [e["name"] for e in read_header(saved)["arrays"]] == sorted(sample_arrays())
    with pytest.raises(CheckpointError, match="checksum mismatch in array 'embed'"):
        load_checkpoint(saved)


def test_non_contiguous_inputs_and_numpy_scalars_in_metadata(tmp_path):
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    arrays = {"strided": base[:, ::2], "fortran": np.asfortranarray(base)}
    metadata = {"loss": np.float32(0.5), "step": np.int64(7), "ok": np.bool_(True), "shape": (2, 3)}
    save_checkpoint(tmp_path / "c", arrays, metadata)
    loaded = load_checkpoint(tmp_path / "c")
    assert_same_arrays(loaded.arrays, {k: np.ascontiguousarray(v) for k, v in arrays.items()})
    # NumPy scalars become Python numbers and tuples become lists (what JSON holds)
    assert loaded.metadata == {"loss": 0.5, "step": 7, "ok": True, "shape": [2, 3]}
    assert type(loaded.metadata["step"]) is int


def test_numpy_scalars_are_stored_as_zero_d_arrays(tmp_path):
    save_checkpoint(tmp_path / "c", {"lr": np.float32(0.5), "step": np.int64(9)})
    arrays = load_checkpoint(tmp_path / "c").arrays
    assert arrays["lr"].shape == () and arrays["lr"].dtype == np.float32 and arrays["lr"] == 0.5
    assert arrays["step"].shape == () and arrays["step"] == 9


def test_compressed_checkpoints_round_trip(tmp_path):
    arrays = {"zeros": np.zeros((100, 100), np.float32)}
    save_checkpoint(tmp_path / "c", arrays, compress=True)
    assert (tmp_path / "c").stat().st_size < 40_000 / 10  # deflate squeezes 40 kB of zeros
    assert_same_arrays(load_checkpoint(tmp_path / "c").arrays, arrays)


def test_nonfinite_arrays_names_the_arrays_with_nan_or_inf():
    arrays = {"ok": np.ones(3), "nan": np.array([1.0, np.nan]), "inf": np.array([[-np.inf]], np.float32),
              "ints": np.arange(3), "cplx": np.array([complex(1, np.inf)])}
    assert nonfinite_arrays(arrays) == ["cplx", "inf", "nan"]
    assert nonfinite_arrays({"ok": np.zeros(2)}) == []


def test_arrays_with_nan_are_saved_as_they_are(tmp_path):
    arrays = {"w": np.array([np.nan, np.inf, 1.0])}
    save_checkpoint(tmp_path / "c", arrays)
    np.testing.assert_array_equal(load_checkpoint(tmp_path / "c").arrays["w"], arrays["w"])


# --- refusals at save time --------------------------------------------------------------------

@pytest.mark.parametrize("metadata, where", [
    ({"train": {"lr": object()}}, r"metadata\['train'\]\['lr'\] is a object"),
    ({"loss": float("nan")}, r"metadata\['loss'\] is nan"),
    ({"hist": [1.0, 2.0, float("inf")]}, r"metadata\['hist'\]\[2\] is inf"),
    ({"best": np.float64(-np.inf)}, r"metadata\['best'\] is -inf"),
    ({"cfg": {3: "x"}}, r"metadata\['cfg'\] has key 3 of type int"),
    ({"w": np.zeros(2)}, r"metadata\['w'\] is a ndarray.*store arrays in `arrays`"),
    ({"s": {1, 2}}, r"metadata\['s'\] is a set"),
])
def test_metadata_that_json_cannot_hold_is_refused_with_its_key_path(tmp_path, metadata, where):
    with pytest.raises(ValueError, match=where):
        save_checkpoint(tmp_path / "c", {"w": np.zeros(2)}, metadata)
    assert list(tmp_path.iterdir()) == []


def test_self_referencing_metadata_is_refused(tmp_path):
    loop = {"a": []}
    loop["a"].append(loop)
    with pytest.raises(ValueError, match=r"metadata\['a'\]\[0\] contains itself"):
        save_checkpoint(tmp_path / "c", {}, loop)


@pytest.mark.parametrize("arrays, message", [
    ({"o": np.array([1, None], dtype=object)}, r"arrays\['o'\] has dtype object, expected a numeric"),
    ({"s": np.array(["ab"])}, r"arrays\['s'\] has dtype <U2"),
    ({"t": np.array(["2020-01-01"], dtype="M8[D]")}, r"arrays\['t'\] has dtype datetime64"),
    ({"l": [1.0, 2.0]}, r"arrays\['l'\] must be a numpy array, got list"),
    ({"": np.zeros(1)}, "array name '' is not allowed"),
    ({"../x": np.zeros(1)}, r"array name '\.\./x' is not allowed"),
    ({"/abs": np.zeros(1)}, "array name '/abs' is not allowed"),
    ({"a//b": np.zeros(1)}, "array name 'a//b' is not allowed"),
    ({3: np.zeros(1)}, "array name 3 is not allowed"),
])
def test_bad_arrays_are_refused_naming_them(tmp_path, arrays, message):
    with pytest.raises(ValueError, match=message):
        save_checkpoint(tmp_path / "c", arrays, {})


def test_arrays_and_metadata_must_be_mappings(tmp_path):
    with pytest.raises(ValueError, match="arrays must be a mapping name -> ndarray, got list"):
        save_checkpoint(tmp_path / "c", [np.zeros(1)], {})
    with pytest.raises(ValueError, match="metadata must be a dict, got str"):
        save_checkpoint(tmp_path / "c", {}, "step=3")


# --- damage detected at load time -------------------------------------------------------------

def test_missing_file_raises_file_not_found_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        load_checkpoint(tmp_path / "nope.ckpt")


def test_a_file_that_is_not_a_zip_is_refused(tmp_path):
    (tmp_path / "c").write_text("hello")
    with pytest.raises(CheckpointError, match=r"c is damaged or not a checkpoint.*BadZipFile"):
        load_checkpoint(tmp_path / "c")


def test_a_plain_npz_without_metadata_is_refused(tmp_path):
    np.savez(tmp_path / "c.npz", w=np.zeros(3))
    with pytest.raises(CheckpointError, match="no metadata.json member; not a minilstm checkpoint"):
        load_checkpoint(tmp_path / "c.npz")


def test_truncated_files_raise_checkpoint_error(saved):
    data = saved.read_bytes()
    for cut in [0, 1, 4, 30, 100, len(data) // 3, len(data) // 2, len(data) - 100, len(data) - 22,
                len(data) - 1]:
        saved.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=str(saved)):
            load_checkpoint(saved)


def test_a_flipped_byte_in_array_data_is_detected(saved):
    with zipfile.ZipFile(saved) as archive:
        info = archive.getinfo("embed.npy")
    data = bytearray(saved.read_bytes())
    # the local header is 30 bytes + name + extra; the last data byte is inside the array
    name_len, extra_len = np.frombuffer(data[info.header_offset + 26:info.header_offset + 30], "<u2")
    data[info.header_offset + 30 + name_len + extra_len + info.compress_size - 1] ^= 0x40
    saved.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="Bad CRC-32 for file 'embed.npy'"):
        load_checkpoint(saved)


def test_changed_array_bytes_with_valid_zip_crcs_fail_the_checksum(saved):
    members = members_of(saved)
    changed = sample_arrays()["lstm.0/W"].copy()
    changed[1, 2] = np.nextafter(changed[1, 2], np.inf)  # the smallest possible change
    members["lstm.0/W.npy"] = npy_bytes(changed)
    write_members(saved, members)
    with pytest.raises(CheckpointError, match=r"checksum mismatch in array 'lstm.0/W'"):
        load_checkpoint(saved)


def test_deleted_and_added_members_are_detected(saved):
    members = members_of(saved)
    write_members(saved, {k: v for k, v in members.items() if k != "mask.npy"})
    with pytest.raises(CheckpointError, match=r"missing \['mask.npy'\], unexpected \[\]"):
        load_checkpoint(saved)
    write_members(saved, {**members, "extra.npy": npy_bytes(np.zeros(2))})
    with pytest.raises(CheckpointError, match=r"missing \[\], unexpected \['extra.npy'\]"):
        load_checkpoint(saved)
    write_members(saved, {k: v for k, v in members.items() if k != "metadata.json"})
    with pytest.raises(CheckpointError, match="no metadata.json member"):
        load_checkpoint(saved)


def test_duplicate_members_are_refused(saved):
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(saved, "a") as archive:
        archive.writestr("embed.npy", npy_bytes(np.zeros((7, 3), np.float32)))
    with pytest.raises(CheckpointError, match="duplicate members"):
        load_checkpoint(saved)


@pytest.mark.parametrize("change, message", [
    (lambda h: h.update(format_version=2), "format_version 2 is newer than this minilstm"),
    (lambda h: h.update(format_version="1"), "format_version is '1', expected a positive integer"),
    (lambda h: h.update(format_version=0), "format_version is 0"),
    (lambda h: h.pop("format_version"), "format_version is None"),
    (lambda h: h.update(format="other"), "format is 'other', expected 'minilstm-checkpoint'"),
    (lambda h: h.pop("metadata"), "lacks the 'arrays' list or the 'metadata' object"),
    (lambda h: entry(h, "big").update(shape=[7, 4]), "arrays_sha256 does not match the manifest"),
    (lambda h: (entry(h, "big").update(shape=[7, 4]), resummed(h)),
     r"big.npy holds dtype <u8 shape \[2\], but the manifest says dtype <u8 shape \[7, 4\]"),
    (lambda h: (entry(h, "big").update(dtype="<i8"), resummed(h)), "but the manifest says dtype <i8"),
    (lambda h: (entry(h, "big").update(dtype="|O"), resummed(h)), "malformed manifest entry"),
    (lambda h: (entry(h, "big").update(shape=[-1]), resummed(h)), "malformed manifest entry"),
    (lambda h: (entry(h, "big").update(name="../big"), resummed(h)), "malformed manifest entry"),
    (lambda h: (h["arrays"].append(entry(h, "big")), resummed(h)), "lists an array twice"),
])
def test_edited_metadata_json_is_detected(saved, change, message):
    edit_header(saved, change)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(saved)


def test_json_that_is_not_an_object_or_has_nan_is_refused(saved):
    members = members_of(saved)
    for text, message in [(b"[1, 2]", "format is None"), (b"{not json", "JSONDecodeError"),
                          (b"\xff\xfe", "UnicodeDecodeError"),
                          (b'{"format": NaN}', "metadata.json contains NaN")]:
        write_members(saved, {**members, "metadata.json": text})
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(saved)


class _Marker:
    """Unpickling this creates a directory: proof that a pickle payload ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.mark.parametrize("manifest_dtype", ["<f8", "|O"])
def test_a_smuggled_pickle_member_is_never_unpickled(saved, tmp_path, manifest_dtype):
    payload = npy_bytes(np.array([_Marker(tmp_path / "pwned")], dtype=object), allow_pickle=True)
    # the payload is live: loading it with pickles allowed does create the marker
    np.load(io.BytesIO(payload), allow_pickle=True)
    assert (tmp_path / "pwned").is_dir()
    (tmp_path / "pwned").rmdir()

    members = members_of(saved)
    members["lstm.0/W.npy"] = payload
    write_members(saved, members)
    if manifest_dtype != "<f8":
        edit_header(saved, lambda h: ([e.update(dtype=manifest_dtype, shape=[1]) for e in h["arrays"]
                                       if e["name"] == "lstm.0/W"], resummed(h)))
    message = "lstm.0/W.npy has dtype object" if manifest_dtype == "<f8" else "malformed manifest"
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(saved)
    assert not (tmp_path / "pwned").exists()


def test_any_single_flipped_byte_is_detected_or_harmless(tmp_path):
    path = tmp_path / "c"
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.array(3)}
    save_checkpoint(path, arrays, {"step": 3})
    data = path.read_bytes()
    rng = np.random.default_rng(5)
    outcomes = {"error": 0, "same": 0}
    for position in range(len(data)):
        damaged = bytearray(data)
        damaged[position] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(damaged))
        try:
            loaded = load_checkpoint(path)
        except CheckpointError:
            outcomes["error"] += 1
            continue
        # only bytes nothing reads (zip timestamps, attributes, ...) may be changed silently
        assert_same_arrays(loaded.arrays, arrays)
        assert loaded.metadata == {"step": 3}
        outcomes["same"] += 1
    assert outcomes["error"] > len(data) // 2, outcomes


def test_any_truncation_raises_checkpoint_error(tmp_path):
    path = tmp_path / "c"
    save_checkpoint(path, {"w": np.arange(6, dtype=np.float32)}, {"step": 3})
    data = path.read_bytes()
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError):
            load_checkpoint(path)


def test_forged_huge_shape_is_refused_without_allocating(saved):
    members = members_of(saved)
    header = npy_bytes(np.zeros(0, np.uint64)).replace(b"(0,)", b"(4611686018427387904,)", 1)
    members["big.npy"] = header
    write_members(saved, members)
    with pytest.raises(CheckpointError, match="big.npy holds dtype <u8 shape"):
        load_checkpoint(saved)
    edit_header(saved, lambda h: (entry(h, "big").update(shape=[2**62]), resummed(h)))
    with pytest.raises(CheckpointError, match=r"big.npy is \d+ bytes, but its header implies"):
        load_checkpoint(saved)


# --- expected_arrays --------------------------------------------------------------------------

def expectations(**changes):
    spec = {name: (a.shape, a.dtype) for name, a in sample_arrays().items()}
    spec.update(changes)
    return {name: value for name, value in spec.items() if value is not None}


def test_expected_arrays_that_match_load(saved):
    spec = expectations(embed=((None, 3), None), ids=((2, 3), "int64"))
    assert_same_arrays(load_checkpoint(saved, expected_arrays=spec).arrays, sample_arrays())


@pytest.mark.parametrize("spec, message", [
    (expectations(mask=None), r"missing \[\], unexpected \['mask'\]"),
    (expectations(hidden=((2,), None)), r"missing \['hidden'\], unexpected \[\]"),
    (expectations(embed=((7, 4), np.float32)), r"array 'embed' has shape \(7, 3\), expected \(7, 4\)"),
    (expectations(embed=((7,), np.float32)), r"array 'embed' has shape \(7, 3\), expected \(7,\)"),
    (expectations(embed=((7, 3), np.float64)), "array 'embed' has dtype float32, expected float64"),
])
def test_expected_arrays_contradictions_are_refused(saved, spec, message):
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(saved, expected_arrays=spec)


@pytest.mark.parametrize("spec, message", [
    ({"w": (3, "f4")}, r"expected_arrays\['w'\] is \(3, 'f4'\), expected \(shape, dtype\)"),
    ({"w": ((3,), "nonsense")}, r"expected_arrays\['w'\]"),
    ([("w", ((3,), "f4"))], "expected_arrays must be a mapping"),
])
def test_malformed_expected_arrays_raise_value_error(saved, spec, message):
    with pytest.raises(ValueError, match=message):
        load_checkpoint(saved, expected_arrays=spec)


# --- atomicity ----------------------------------------------------------------------------------

def test_a_save_failing_midway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c"
    save_checkpoint(path, sample_arrays(), {"version": "A"})
    real_write_array, calls = npformat.write_array, []

    def failing_write_array(fp, array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # after two arrays are already in the temporary file
            raise OSError("disk full")
        return real_write_array(fp, array, *args, **kwargs)

    monkeypatch.setattr(npformat, "write_array", failing_write_array)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {k: np.zeros_like(v) for k, v in sample_arrays().items()},
                        {"version": "B"})
    monkeypatch.undo()
    assert len(calls) == 3
    loaded = load_checkpoint(path)
    assert loaded.metadata == {"version": "A"}
    assert_same_arrays(loaded.arrays, sample_arrays())
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_a_failing_rename_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c"
    save_checkpoint(path, {"w": np.zeros(3)}, {"version": "A"})
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("rename failed")))
    with pytest.raises(OSError, match="rename failed"):
        save_checkpoint(path, {"w": np.ones(3)}, {"version": "B"})
    monkeypatch.undo()
    assert load_checkpoint(path).metadata == {"version": "A"}
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_overwriting_keeps_the_directory_clean(tmp_path):
    for step in range(3):
        save_checkpoint(tmp_path / "last.ckpt", {"w": np.full(4, step)}, {"step": step})
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert load_checkpoint(tmp_path / "last.ckpt").metadata == {"step": 2}


def test_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead, alive = int(finished.stdout), os.getppid()
    stale = tmp_path / f".c.{dead}.abcd_123.tmp"
    live = tmp_path / f".c.{alive}.abcd_123.tmp"
    other = tmp_path / f".c.1.{dead}.abcd_123.tmp"  # a temporary of "c.1", not of "c"
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    save_checkpoint(tmp_path / "c", {"w": np.zeros(1)}, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["c", live.name, other.name])


CHILD = """
import sys
import numpy as np
from minilstm.checkpoint import save_checkpoint
path, counter = sys.argv[1], int(sys.argv[2])
print("started", flush=True)
while True:
    counter += 1
    megabytes = 1 + counter % 5
    arrays = {"a": np.full(megabytes * 250_000, counter, np.float32),
              "b": np.full((counter % 7 + 1, 1000), counter, np.int64),
              "c": np.array(counter, np.int64)}
    save_checkpoint(path, arrays, {"counter": counter, "megabytes": megabytes})
"""


def assert_consistent(path) -> int:
    loaded = load_checkpoint(path)  # verifies structure and checksums
    counter = loaded.metadata["counter"]
    assert set(loaded.arrays) == {"a", "b", "c"}
    for name, a in loaded.arrays.items():
        assert (a == counter).all(), f"array {name!r} is not filled with counter {counter}"
    return counter


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX-only")
def test_sigkill_at_random_moments_leaves_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "live.ckpt"
    save_checkpoint(path, {"a": np.zeros(1, np.float32), "b": np.zeros((1, 1), np.int64),
                           "c": np.array(0)}, {"counter": 0})
    # numba is not needed for saving; keep it out of the children so they start quickly
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "MINILSTM_DISABLE_JIT": "1"}
    rng = random.Random(20240607)
    previous, advanced, leftovers = 0, 0, 0
    for kill in range(20):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(1000 * (kill + 1))],
                                 stdout=subprocess.PIPE, env=env)
        try:
            assert child.stdout.readline() == b"started\n"
            time.sleep(rng.uniform(0.0, 0.25))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        counter = assert_consistent(path)
        assert counter == previous or counter > 1000 * (kill + 1), (counter, previous, kill)
        advanced += counter != previous
        previous = counter
        leftovers += sum(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    assert advanced >= 10, f"only {advanced} of 20 children finished a save before the kill"
    # saving dominates the children's loop, so most kills interrupt a write and leave its
    # temporary file; none at all would mean the test never hit the moment it exists for
    assert leftovers >= 1, "no kill interrupted a save"
    # the next save removes what the killed writers left behind
    save_checkpoint(path, {"a": np.ones(1, np.float32), "b": np.ones((1, 1), np.int64),
                           "c": np.array(1)}, {"counter": 1})
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
