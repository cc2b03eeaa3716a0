"""Shared test set-up: few threads, datasets in a temporary Minari root."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _minari_root(tmp_path_factory, monkeypatch):
    """Every test writes datasets under its own temporary MINARI_DATASETS_PATH."""
    root = tmp_path_factory.mktemp("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    yield root
