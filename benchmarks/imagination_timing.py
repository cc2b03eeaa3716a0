"""Timing for `benchmarks.bench_imagination`: the timed loop and the configurations it runs.

A configuration is a `Measure` whose setup builds what is stepped: a single real env
(`single_env`), a vector env such as ``vwm/Imagined-v0`` (`vector_env`, `make_imagined`)
or the bare world model with no env around it (`model_only`). Every one is stepped with
random actions drawn beforehand (`action_pool`) and counts env steps, not calls. The
native-CartPole baseline resizes each rendered frame to `SIZE` with one of `RESIZERS`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

SIZE = 64
"""Side of the frames."""


# ----------------------------------------------------------------------------- frames


def nearest_resize(frame: np.ndarray, size: int = SIZE) -> np.ndarray:
    """(H, W, C) uint8 -> (size, size, C) by taking the pixel nearest each output centre."""
    h, w = frame.shape[:2]
    rows = ((np.arange(size) + 0.5) * h / size).astype(np.intp)
    cols = ((np.arange(size) + 0.5) * w / size).astype(np.intp)
    return frame.take(rows, axis=0).take(cols, axis=1)


def area_resize(frame: np.ndarray, size: int = SIZE) -> np.ndarray:
    """(H, W, C) uint8 -> (size, size, C) by averaging the block of pixels under each output pixel.

    Block edges are rounded to whole pixels (``np.add.reduceat``), which is exact when the
    sides are multiples of `size` and close to a true area filter otherwise.
    """
    h, w = frame.shape[:2]
    row_edges = (np.arange(size) * h) // size  # (size,) first row of each block
    col_edges = (np.arange(size) * w) // size
    rows = np.add.reduceat(frame.astype(np.uint32), row_edges, axis=0)  # (size, W, C)
    sums = np.add.reduceat(rows, col_edges, axis=1)  # (size, size, C)
    counts = np.diff(np.append(row_edges, h))[:, None] * np.diff(np.append(col_edges, w))[None, :]
    return (sums // counts[:, :, None]).astype(np.uint8)


RESIZERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "nearest": nearest_resize,
    "area": area_resize,
}


# ----------------------------------------------------------------------------- timing


def timed_loop(step: Callable[[int], int], seconds: float, warmup: int = 3) -> float:
    """Call ``step(i)`` (returning env steps done) for about `seconds`; env steps per second."""
    for i in range(warmup):
        step(i)
    done, calls = 0, 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        done += step(calls)
        calls += 1
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def action_pool(num_envs: int, seed: int, length: int = 4096) -> np.ndarray:
    """(length, num_envs) random CartPole actions, drawn once so no env pays for sampling."""
    return np.random.default_rng(seed).integers(0, 2, size=(length, num_envs), dtype=np.int64)


class Measure:
    """One configuration: ``setup(ends)`` builds it and returns ``(step(i) -> env steps, close)``;
    vector envs count episode ends and env steps into `ends` (to report the autoreset rate)."""

    def __init__(
        self,
        name: str,
        num_envs: int,
        setup: Callable[[list[int]], tuple[Callable[[int], int], Callable[[], None]]],
    ) -> None:
        self.name, self.num_envs, self.setup = name, num_envs, setup
        self.samples: list[float] = []
        self.ends = [0, 0]  # [episode ends, env steps] seen by vector envs (autoresets)

    def run(self, seconds: float) -> float:
        """Build, time, close; the steps/s is also appended to `samples`."""
        step, close = self.setup(self.ends)
        try:
            rate = timed_loop(step, seconds)
        finally:
            close()
        self.samples.append(rate)
        return rate

    @property
    def median(self) -> float:
        """Median steps/s over the rounds run so far."""
        return statistics.median(self.samples)


def single_env(env_id: str, frame_of: Callable[[gym.Env, Any], np.ndarray], seed: int, **kwargs: Any):
    """Setup of a single real env stepped with pooled random actions."""

    def setup(ends: list[int]) -> tuple[Callable[[int], int], Callable[[], None]]:
        env = gym.make(env_id, **kwargs)
        obs, _ = env.reset(seed=seed)
        frame_of(env, obs)
        actions = action_pool(1, seed)[:, 0]

        def step(i: int) -> int:
            obs, _, terminated, truncated, _ = env.step(int(actions[i % len(actions)]))
            frame_of(env, obs)
            if terminated or truncated:
                env.reset()
            return 1

        return step, env.close

    return setup


def vector_env(
    make: Callable[[], gym.vector.VectorEnv],
    num_envs: int,
    seed: int,
    wrap: Callable[[Callable[[int], int]], Callable[[int], int]] | None = None,
):
    """Setup of a vector env (autoresetting) stepped with pooled random actions.

    `wrap` optionally maps the step callable (e.g. to run it under `torch.inference_mode`).
    """

    def setup(ends: list[int]) -> tuple[Callable[[int], int], Callable[[], None]]:
        envs = make()
        envs.reset(seed=seed)
        actions = action_pool(num_envs, seed)

        def step(i: int) -> int:
            _, _, terminated, truncated, _ = envs.step(actions[i % len(actions)])
            ends[0] += int(np.count_nonzero(terminated | truncated))
            ends[1] += num_envs
            return num_envs

        return (wrap(step) if wrap else step), envs.close

    return setup


def under_inference_mode(step: Callable[[int], int]) -> Callable[[int], int]:
    """`step` run inside an explicit outer `torch.inference_mode` block."""

    def wrapped(i: int) -> int:
        with torch.inference_mode():
            return step(i)

    return wrapped


def model_only(checkpoint: Path, num_envs: int, decode: bool, seed: int, compiled: bool):
    """Setup of the bare model: `model.step` (+ `decode` / `features`) on a batch, no env."""

    def setup(ends: list[int]) -> tuple[Callable[[int], int], Callable[[], None]]:
        from world_models.checkpoint import load_checkpoint

        ckpt = load_checkpoint(checkpoint)
        model = ckpt.model
        step_fn = maybe_compile(model.step, compiled)
        generator = torch.Generator().manual_seed(seed)
        index = torch.arange(num_envs) % len(ckpt.contexts)
        with torch.inference_mode():
            state = model.init_state(ckpt.contexts.frames[index], ckpt.contexts.actions[index])
        actions = torch.from_numpy(action_pool(num_envs, seed, 256))
        box = {"state": state}

        @torch.inference_mode()
        def step(i: int) -> int:
            transition = step_fn(box["state"], actions[i % len(actions)], generator)
            box["state"] = transition.state
            out = model.decode(transition.state) if decode else model.features(transition.state)
            out.numpy()
            return num_envs

        return step, lambda: None

    return setup


def maybe_compile(fn: Callable, enabled: bool) -> Callable:
    """`torch.compile(fn)` when enabled (first calls compile: done in the warm-up)."""
    if not enabled:
        return fn
    return torch.compile(fn, dynamic=False)


def make_imagined(checkpoint: Path, num_envs: int, obs_mode: str, compiled: bool) -> Callable[[], Any]:
    """Constructor of the imagined vector env through `gym.make_vec`, as a user writes it."""

    def make() -> gym.vector.VectorEnv:
        envs = gym.make_vec(
            "vwm/Imagined-v0", num_envs=num_envs, obs_mode=obs_mode, checkpoint=str(checkpoint)
        )
        if compiled:
            core = envs.unwrapped.core
            core.model.step = maybe_compile(core.model.step, True)
        return envs

    return make
