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
[--checkpoint PATH | --family rssm --preset small] [--compile] [--json PATH]``. This module
holds the options, the configurations compared, the report and the CLI; the timed loop and
the setup of each configuration are in `benchmarks.imagination_timing`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import video_envs  # noqa: F401  (registers the vwm ids)
from benchmarks.benchio import hardware
from benchmarks.imagination_timing import (
    RESIZERS,
    SIZE,
    Measure,
    make_imagined,
    model_only,
    single_env,
    under_inference_mode,
    vector_env,
)
from world_models.atomic import write_json_atomic
from world_models.checkpoint import ContextBank, package_versions, save_checkpoint
from world_models.families import build_model, make_spec

TASK = "vwm/CartPolePixels-v0"
"""The real pixel task the imagined model stands for."""
NATIVE = "CartPole-v1"
"""Gymnasium's own CartPole, rendered with pygame."""
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


def build_untrained_checkpoint(folder: Path, preset: str, seed: int = 0, family: str = "rssm",
                               overrides: dict[str, Any] | None = None) -> Path:
    """An untrained checkpoint of `family` at `preset` (with hyper-parameter `overrides`) for
    CartPolePixels (speed needs no training)."""
    torch.manual_seed(seed)
    spec = make_spec(family, (SIZE, SIZE, 3), "discrete", 2, preset=preset, overrides=overrides)
    model = build_model(spec)
    bank = real_contexts(8, spec.context_len, seed)
    return save_checkpoint(folder, model, bank, {"task": TASK, "note": "untrained, for benchmarks"})


def num_parameters(checkpoint: Path) -> int:
    """Parameter count of the model stored in `checkpoint`."""
    from world_models.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint).model
    return sum(p.numel() for p in model.parameters())


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
