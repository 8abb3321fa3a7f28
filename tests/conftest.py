"""Shared fixtures. The real corpora live outside the repository (``../shared/data`` next to
the checkout, or wherever ``MINILSTM_SHARED_DATA`` points); tests that need them skip cleanly
when they are absent, and every other test builds the small files it needs."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    candidates = [os.environ.get("MINILSTM_SHARED_DATA"), REPO.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@pytest.fixture
def shared_file():
    """``shared_file("tinyshakespeare.txt")`` -> Path, or a skip naming what is missing."""
    def find(name: str) -> Path:
        directory = shared_data_dir()
        if directory is None or not (directory / name).is_file():
            pytest.skip(f"real corpus {name} not available (set MINILSTM_SHARED_DATA)")
        return directory / name
    return find


def import_torch_or_skip():
    """torch, or a skip when it is absent; with MINILSTM_REQUIRE_TORCH=1 (CI) absence fails."""
    if os.environ.get("MINILSTM_REQUIRE_TORCH") == "1":
        import torch  # noqa: F401  (an ImportError here fails the run, as intended)
        return torch
    return pytest.importorskip("torch")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@contextlib.contextmanager
def product_form(transposed: bool):
    """Forces one form of the LSTM's per-step recurrent product (chosen by H otherwise, see
    ``minilstm.core.lstm.product_transposed``) for the duration of the block."""
    from minilstm.core import lstm
    saved = lstm.PLAIN_PRODUCT_MAX_H
    lstm.PLAIN_PRODUCT_MAX_H = -1 if transposed else 10**9
    try:
        yield
    finally:
        lstm.PLAIN_PRODUCT_MAX_H = saved


@pytest.fixture(params=["as written", "transposed"])
def product_layout(request):
    """Runs a test under both forms of the per-step recurrent product, so that the small layers
    tests use exercise the transposed form too."""
    with product_form(request.param == "transposed"):
        yield request.param
