"""Atomic file writing: a reader sees the old file or the new one, never half of either.

The recipe: write to a temporary file in the same directory, flush and fsync it, rename it over
the destination (atomic on POSIX and on Windows for files on one volume), then fsync the
directory so the rename itself survives a power cut. If anything fails before the rename, the
temporary file is removed and the destination is untouched.

A process killed mid-write cannot remove its temporary file. Temporaries are therefore named
``.<destination name>.<writer pid>.<random>.tmp``: hidden, never matching the destination, and
carrying the writer's pid so :func:`remove_stale_temporaries` can delete those whose writer is
gone without touching one that another live process is still writing.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows cannot open directories; its rename is already durable enough
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", encoding: str | None = None):
    """``with atomic_write(path, "w") as f: ...`` replaces ``path`` only if the block succeeds."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                    dir=directory)
    tmp = Path(tmp_name)
    try:
        # mkstemp creates the file private (0600); give it the mode a plain open() would
        os.chmod(tmp, 0o666 & ~_current_umask())
        if mode == "w":
            handle = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline="")
        else:
            handle = os.fdopen(fd, "wb")
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_directory(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _current_umask() -> int:
    mask = os.umask(0)     # the only portable way to read it is to set it and put it back
    os.umask(mask)
    return mask


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> Path:
    with atomic_write(path, "w", encoding=encoding) as handle:
        handle.write(text)
    return Path(path)


def atomic_write_bytes(path, data: bytes) -> Path:
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def _process_alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists but belongs to someone else
        return True
    return True


def remove_stale_temporaries(path) -> list[Path]:
    """Delete temporaries that :func:`atomic_write` left next to ``path`` in processes that died.

    Only files named like this module's temporaries for ``path`` whose writer pid is no longer
    running on this machine are removed (conservatively none on Windows). Returns what was removed.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    # mkstemp's random part is 8 characters of [a-z0-9_]; matching it exactly keeps the
    # temporaries of "ckpt.1" from being mistaken for those of "ckpt" with pid 1.
    pattern = re.compile(re.escape(f".{path.name}.") + r"(\d+)\.[a-z0-9_]{8}\.tmp")
    removed = []
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match and int(match.group(1)) != os.getpid() and not _process_alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):  # another cleaner may have beaten us
                entry.unlink()
                removed.append(entry)
    return removed
