"""Shared test set-up: few threads, datasets in a temporary Minari root."""

from __future__ import annotations

import os

import pytest
import torch

import video_envs  # noqa: F401  (registers the vwm/ ids)

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _minari_root(tmp_path_factory, monkeypatch):
    """Every test writes datasets under its own temporary MINARI_DATASETS_PATH."""
    root = tmp_path_factory.mktemp("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    yield root


TINY_TASK = "vwm/CartPolePixels-v0"


def tiny_family_model(name: str, kind: str = "discrete", size: int = 16):
    """An untrained tiny model of family `name` (a registered one, or the test-only
    ``windowed``) on (size, size, 3) frames with 3 discrete or 1 continuous action, eval mode."""
    from tests.windowed_family import WindowedFamily
    from world_models.families import get_family

    family = WindowedFamily() if name == "windowed" else get_family(name)
    dim, low, high = (3, None, None) if kind == "discrete" else (1, (-1.0,), (1.0,))
    torch.manual_seed(0)
    spec = family.make_spec((size, size, 3), kind, dim, low, high, preset="tiny")
    return family.build(spec).eval()


def collect_tiny(root, task: str = TINY_TASK, steps: int = 600) -> str:
    """Collect a small random dataset of `task` under Minari root `root`; returns its id."""
    from video_envs.collect import CollectConfig, collect

    os.environ["MINARI_DATASETS_PATH"] = str(root)
    dataset = f"vwm/{task.split('/')[-1].lower()}/random-v0"
    collect(CollectConfig(task=task, dataset=dataset, steps=steps, num_envs=4, progress=False))
    return dataset


def train_tiny(dataset: str, out, steps: int = 30, **kw):
    """Train a tiny RSSM on `dataset` (in the current Minari root) into run folder `out`."""
    from world_models.train import TrainConfig, train_world_model

    cfg = TrainConfig(dataset=dataset, out=str(out), preset="tiny", steps=steps, batch_size=4,
                      seq_len=8, holdout_episodes=2, num_contexts=16, eval_every=0,
                      checkpoint_every=steps, tensorboard=False, progress=False, **kw)
    return train_world_model(cfg)


def _tiny_run(tmp_path_factory, task: str) -> str:
    root = tmp_path_factory.mktemp("tiny_minari")
    saved = os.environ.get("MINARI_DATASETS_PATH")
    try:
        path = train_tiny(collect_tiny(root, task), tmp_path_factory.mktemp("tiny_run"))
    finally:
        if saved is not None:
            os.environ["MINARI_DATASETS_PATH"] = saved
    return str(path)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    """A tiny RSSM checkpoint trained on a few hundred random CartPolePixels steps."""
    return _tiny_run(tmp_path_factory, TINY_TASK)


@pytest.fixture(scope="session")
def tiny_pendulum_checkpoint(tmp_path_factory) -> str:
    """A tiny RSSM checkpoint on PendulumPixels (continuous actions)."""
    return _tiny_run(tmp_path_factory, "vwm/PendulumPixels-v0")
