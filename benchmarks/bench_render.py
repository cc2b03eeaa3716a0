"""Pixel-observation throughput: vwm's numpy-drawn tasks vs the native render + resize path.

For each pair, both envs are made with ``gym.make`` (same wrappers), stepped with random
actions from a seeded action space and reset when an episode ends. The native side
renders with ``render_mode="rgb_array"`` (pygame for classic control, MinAtar's own
10x10 float image) and resizes to 64x64 by nearest-neighbour indexing, which is cheap
next to the render; the vwm side uses its observation as is.

Run: ``python -m benchmarks.bench_render [--steps N] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable

import gymnasium as gym
import numpy as np

import video_envs  # noqa: F401  (registers the vwm ids)
from benchmarks.benchio import report
from world_models.atomic import write_json_atomic

PAIRS: tuple[tuple[str, str], ...] = (
    ("CartPole-v1", "vwm/CartPolePixels-v0"),
    ("Acrobot-v1", "vwm/AcrobotPixels-v0"),
    ("Pendulum-v1", "vwm/PendulumPixels-v0"),
    ("MinAtar/Breakout-v0", "vwm/MinAtarBreakout-v0"),
)
"""(native id, vwm id) pairs compared."""

SIZE = 64
"""Side of the frames compared."""


def nearest_resize(frame: np.ndarray, size: int = SIZE) -> np.ndarray:
    """(H, W, 3) image -> (size, size, 3) uint8 by sampling the pixel nearest each centre."""
    h, w = frame.shape[:2]
    rows = ((np.arange(size) + 0.5) * h / size).astype(np.intp)
    cols = ((np.arange(size) + 0.5) * w / size).astype(np.intp)
    out = frame.take(rows, axis=0).take(cols, axis=1)
    if out.dtype != np.uint8:  # MinAtar's render is float in [0, 1]
        out = (out * 255).astype(np.uint8)
    return out


def steps_per_second(env_id: str, steps: int, frame_of: Callable, seed: int = 0) -> float:
    """Random-action steps per second of `env_id`, with `frame_of(env, obs)` each step."""
    render_mode = "rgb_array"
    env = gym.make(env_id, render_mode=render_mode)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    frame_of(env, obs)
    start = time.perf_counter()
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        frame_of(env, obs)
        if terminated or truncated:
            obs, _ = env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def native_frame(env: gym.Env, obs: object) -> np.ndarray:
    """The native path: render the full frame, then resize it to 64x64."""
    return nearest_resize(np.asarray(env.render()))


def vwm_frame(env: gym.Env, obs: np.ndarray) -> np.ndarray:
    """The vwm path: the observation already is the 64x64 frame."""
    return obs


def run(steps: int) -> dict[str, dict[str, float]]:
    """Measure every pair; returns {vwm id: {native, vwm, ratio}} in steps/s."""
    if "MinAtar/Breakout-v0" not in gym.registry:
        import minatar.gym

        minatar.gym.register_envs()
    results: dict[str, dict[str, float]] = {}
    for native_id, vwm_id in PAIRS:
        native = steps_per_second(native_id, steps, native_frame)
        ours = steps_per_second(vwm_id, steps, vwm_frame)
        results[vwm_id] = {
            "native_id": native_id,
            "native_steps_per_s": native,
            "vwm_steps_per_s": ours,
            "ratio": ours / native,
        }
        print(
            f"{native_id:>22} render+resize {native:9.0f} steps/s | "
            f"{vwm_id:<24} {ours:9.0f} steps/s | x{ours / native:.1f}",
            flush=True,
        )
    return results


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="steps timed per env")
    parser.add_argument("--json", type=str, default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.steps <= 0:
        parser.error("--steps must be positive")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    with warnings.catch_warnings():  # the native MinAtar env warns about its float render
        warnings.simplefilter("ignore")
        results = run(args.steps)
    if args.json:
        config = {"steps": args.steps, "size": SIZE}
        print(f"wrote {write_json_atomic(args.json, report('bench_render', config, results))}")
    return results


if __name__ == "__main__":
    main()
