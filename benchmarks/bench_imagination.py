"""Imagination throughput: ``vwm/Imagined-v0`` vector envs against real pixel CartPole.

Issue targets (each measured side by side in one run, ratios of steps/s):

- ``gym.make_vec("vwm/Imagined-v0", num_envs=1024, obs_mode="latent")`` with the ``small``
  preset steps >= 100x faster than the pixel CartPole a user would otherwise run: gymnasium's
  ``CartPole-v1`` with ``render_mode="rgb_array"``, each frame resized to 64x64, one env;
- ``obs_mode="pixels"`` with 64 envs >= 10x faster than the same baseline.

Both imagined envs are also reported against ``vwm/CartPolePixels-v0`` (one env, frames drawn
with numpy) and a Gymnasium ``SyncVectorEnv`` of 8 of them. A vector env step counts
``num_envs`` steps. Every env gets uniformly random actions drawn beforehand from one seeded
numpy generator, and real envs are reset when an episode ends (imagined ones autoreset).

The world model's speed does not depend on its weights, so by default an untrained
checkpoint of the chosen preset is built on the fly with a context bank of a few real
CartPolePixels frames. The measurements run in interleaved rounds (all configurations once
per round) and the median over rounds is reported, which evens out other load on a shared
machine. A breakdown of the imagined step (bare ``model.step``, ``decode``) and the env
step with/without an explicit outer ``torch.inference_mode`` shows what dominates the cost.

Run: ``python -m benchmarks.bench_imagination [--seconds S] [--rounds R] [--threads T]
[--checkpoint PATH | --family rssm --preset small] [--compile] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import video_envs  # noqa: F401  (registers the vwm ids)
from benchmarks.benchio import hardware
from world_models.atomic import write_json_atomic
from world_models.checkpoint import ContextBank, package_versions, save_checkpoint
from world_models.families import build_model, make_spec

TASK = "vwm/CartPolePixels-v0"
"""The real pixel task the imagined model stands for."""
NATIVE = "CartPole-v1"
"""Gymnasium's own CartPole, rendered with pygame."""
SIZE = 64
"""Side of the frames."""
LATENT_TARGET = 100.0
"""Issue target: latent 1024-env imagination vs native CartPole render + resize."""
PIXELS_TARGET = 10.0
"""Issue target: pixel 64-env imagination vs native CartPole render + resize."""


@dataclass
class BenchConfig:
    """Options of the benchmark (see ``--help``)."""

    checkpoint: str | None = None
    family: str = "rssm"
    preset: str = "small"
    seconds: float = 2.0
    rounds: int = 3
    threads: int | None = None
    latent_envs: int = 1024
    pixel_envs: int = 64
    sync_envs: int = 8
    resize: str = "nearest"
    compile: bool = False
    breakdown: bool = True
    seed: int = 0
    json: str | None = None


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


# ----------------------------------------------------------------------------- checkpoint


def real_contexts(num: int, length: int, seed: int = 0) -> ContextBank:
    """`num` contexts of `length` real CartPolePixels frames under random actions."""
    env = gym.make(TASK)
    rng = np.random.default_rng(seed)
    frames = np.zeros((num, length, *env.observation_space.shape), dtype=np.uint8)
    actions = np.zeros((num, length), dtype=np.int64)
    for i in range(num):
        obs, _ = env.reset(seed=seed + i)
        frames[i, 0] = obs
        for t in range(1, length):
            action = int(rng.integers(2))
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:  # a short episode: repeat its last frame
                frames[i, t:] = obs
                actions[i, t:] = action
                break
            frames[i, t], actions[i, t] = obs, action
    env.close()
    return ContextBank(frames=torch.from_numpy(frames), actions=torch.from_numpy(actions))


def build_untrained_checkpoint(folder: Path, preset: str, seed: int = 0, family: str = "rssm") -> Path:
    """An untrained checkpoint of `family` at `preset` for CartPolePixels (speed needs no training)."""
    torch.manual_seed(seed)
    spec = make_spec(family, (SIZE, SIZE, 3), "discrete", 2, preset=preset)
    model = build_model(spec)
    bank = real_contexts(8, spec.context_len, seed)
    return save_checkpoint(folder, model, bank, {"task": TASK, "note": "untrained, for benchmarks"})


def num_parameters(checkpoint: Path) -> int:
    """Parameter count of the model stored in `checkpoint`."""
    from world_models.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint).model
    return sum(p.numel() for p in model.parameters())


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


# ----------------------------------------------------------------------------- the benchmark


def build_measures(cfg: BenchConfig, checkpoint: Path) -> list[Measure]:
    """Every configuration timed, baselines first."""
    resize = RESIZERS[cfg.resize]
    seed = cfg.seed
    measures = [
        Measure(
            f"{NATIVE} rgb_array + {cfg.resize} resize",
            1,
            single_env(
                NATIVE, lambda env, obs: resize(np.asarray(env.render())), seed, render_mode="rgb_array"
            ),
        ),
        Measure(f"{TASK}", 1, single_env(TASK, lambda env, obs: obs, seed)),
        Measure(
            f"SyncVectorEnv {cfg.sync_envs} x {TASK}",
            cfg.sync_envs,
            vector_env(
                lambda: gym.vector.SyncVectorEnv([lambda: gym.make(TASK)] * cfg.sync_envs),
                cfg.sync_envs,
                seed,
            ),
        ),
        Measure(
            f"Imagined-v0 latent x{cfg.latent_envs}",
            cfg.latent_envs,
            vector_env(
                make_imagined(checkpoint, cfg.latent_envs, "latent", cfg.compile), cfg.latent_envs, seed
            ),
        ),
        Measure(
            f"Imagined-v0 pixels x{cfg.pixel_envs}",
            cfg.pixel_envs,
            vector_env(
                make_imagined(checkpoint, cfg.pixel_envs, "pixels", cfg.compile), cfg.pixel_envs, seed
            ),
        ),
    ]
    if cfg.breakdown:
        measures += [
            Measure(
                f"Imagined-v0 latent x{cfg.latent_envs}, outer inference_mode",
                cfg.latent_envs,
                vector_env(
                    make_imagined(checkpoint, cfg.latent_envs, "latent", cfg.compile),
                    cfg.latent_envs,
                    seed,
                    wrap=under_inference_mode,
                ),
            ),
            Measure(
                f"Imagined-v0 pixels x{cfg.pixel_envs}, outer inference_mode",
                cfg.pixel_envs,
                vector_env(
                    make_imagined(checkpoint, cfg.pixel_envs, "pixels", cfg.compile),
                    cfg.pixel_envs,
                    seed,
                    wrap=under_inference_mode,
                ),
            ),
            Measure(
                f"bare model.step+features x{cfg.latent_envs}",
                cfg.latent_envs,
                model_only(checkpoint, cfg.latent_envs, False, seed, cfg.compile),
            ),
            Measure(
                f"bare model.step+decode x{cfg.pixel_envs}",
                cfg.pixel_envs,
                model_only(checkpoint, cfg.pixel_envs, True, seed, cfg.compile),
            ),
        ]
    return measures


@contextlib.contextmanager
def resolved_checkpoint(cfg: BenchConfig) -> Iterator[tuple[Path, bool]]:
    """The checkpoint to use (given, or an untrained one in a temporary folder)."""
    if cfg.checkpoint:
        yield Path(cfg.checkpoint), False
        return
    with tempfile.TemporaryDirectory(prefix="vwm-bench-imagination-") as tmp:
        print(f"building an untrained {cfg.family} {cfg.preset!r} checkpoint "
              "(speed does not depend on training)")
        yield build_untrained_checkpoint(Path(tmp) / "checkpoint", cfg.preset, cfg.seed, cfg.family), True


def run(cfg: BenchConfig) -> dict[str, Any]:
    """Run every configuration for `cfg.rounds` interleaved rounds; returns the report dict."""
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} intra-op threads, {os.cpu_count()} CPUs")
    with resolved_checkpoint(cfg) as (checkpoint, untrained):
        params = num_parameters(checkpoint)
        source = f"untrained {cfg.preset}" if untrained else str(checkpoint)
        print(f"model: {params / 1e6:.2f}M parameters ({source})")
        measures = build_measures(cfg, checkpoint)
        for r in range(cfg.rounds):
            for m in measures:
                rate = m.run(cfg.seconds)
                print(f"  round {r + 1}/{cfg.rounds}  {m.name:<58} {rate:12,.0f} steps/s", flush=True)
    base, pixels_one, sync = measures[0].median, measures[1].median, measures[2].median
    rows = []
    for m in measures:
        rows.append(
            {
                "name": m.name,
                "num_envs": m.num_envs,
                "steps_per_s": m.median,
                "samples": m.samples,
                "vs_native": m.median / base,
                "vs_cartpole_pixels": m.median / pixels_one,
                "vs_sync_vector": m.median / sync,
                "episode_end_rate": m.ends[0] / m.ends[1] if m.ends[1] else None,
            }
        )
    latent, pixels = measures[3].median, measures[4].median
    targets = {
        "latent_vs_native": {
            "ratio": latent / base,
            "target": LATENT_TARGET,
            "pass": latent / base >= LATENT_TARGET,
        },
        "pixels_vs_native": {
            "ratio": pixels / base,
            "target": PIXELS_TARGET,
            "pass": pixels / base >= PIXELS_TARGET,
        },
    }
    print_table(rows, targets, threads)
    return {
        "benchmark": "bench_imagination",
        "config": asdict(cfg),
        "model": {
            "checkpoint": None if untrained else str(checkpoint),
            "untrained_preset": cfg.preset if untrained else None,
            "untrained_family": cfg.family if untrained else None,
            "parameters": params,
        },
        "machine": hardware(),
        "torch_threads": threads,
        "versions": package_versions(),
        "results": rows,
        "targets": targets,
    }


def print_table(rows: list[dict[str, Any]], targets: dict[str, dict[str, Any]], threads: int) -> None:
    """The readable summary: median steps/s and ratios against the three baselines."""
    print()
    print(
        f"{'configuration':<60} {'envs':>5} {'steps/s':>12} {'x native':>9} {'x CPPix':>8} "
        f"{'x sync':>7} {'ends/step':>9}"
    )
    print("-" * 116)
    for row in rows:
        rate = row["episode_end_rate"]
        print(
            f"{row['name']:<60} {row['num_envs']:>5} {row['steps_per_s']:>12,.0f} "
            f"{row['vs_native']:>9.1f} {row['vs_cartpole_pixels']:>8.1f} {row['vs_sync_vector']:>7.1f} "
            f"{'' if rate is None else f'{rate:.3f}':>9}"
        )
    print(
        "x native: vs CartPole-v1 render+resize; x CPPix: vs one CartPolePixels-v0; "
        "x sync: vs the SyncVectorEnv; ends/step: episode ends per env step (autoresets)"
    )
    print()
    for name, t in targets.items():
        verdict = "PASS" if t["pass"] else "FAIL"
        print(f"target {name:<18} x{t['ratio']:8.1f}  (need >= x{t['target']:.0f})  {verdict}")
    print(f"torch threads: {threads}")


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    """Command-line options -> `BenchConfig`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", default=None, help="world-model checkpoint (default: untrained, built here)"
    )
    parser.add_argument("--family", default="rssm", help="model family of the untrained model")
    parser.add_argument(
        "--preset", default="small", help="preset of the untrained model (tiny/small/medium)"
    )
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="seconds timed per configuration and round"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--latent-envs", type=int, default=1024, help="envs of the latent imagined env")
    parser.add_argument("--pixel-envs", type=int, default=64, help="envs of the pixel imagined env")
    parser.add_argument("--sync-envs", type=int, default=8, help="envs of the SyncVectorEnv baseline")
    parser.add_argument(
        "--resize", choices=sorted(RESIZERS), default="nearest", help="resize of the native frame"
    )
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile model.step (cold compile ~20 s)"
    )
    parser.add_argument(
        "--no-breakdown",
        dest="breakdown",
        action="store_false",
        help="skip the inference_mode / bare-model breakdown rows",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of envs, actions and the untrained model")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1:
        parser.error("--seconds must be positive and --rounds >= 1")
    return BenchConfig(**vars(args))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point."""
    cfg = parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pygame / gymnasium deprecation chatter
        report = run(cfg)
    if cfg.json:
        print(f"wrote {write_json_atomic(cfg.json, report)}")
    return report


if __name__ == "__main__":
    main()
