"""Peak memory of `vwm train-model` on a large dataset: frames stay on disk, not in RSS.

Builds a synthetic Minari dataset of `--frames` 64x64 RGB frames (1,000,000 by default:
12.3 GB of frames) in a child process, chunk by chunk, then, in this process, loads it
(the first load copies the frames into the on-disk frame cache, `world_models.storage`)
and trains the `--preset` RSSM for `--steps` steps. Reports the peak resident set size
(``resource.getrusage(...).ru_maxrss``) of the training process, which design section 4
wants under 4 GB for 1M frames, and of the dataset-building child.

Run: ``python -m benchmarks.bench_memory [--frames N] [--steps S] [--workdir DIR] [--keep]
[--json PATH]``. Needs about 2.1x the frame bytes of free disk (dataset + cache).

Measured on 2 shared CPU cores (``nice -n 10 python -m benchmarks.bench_memory --threads 2``):
1,000,000 frames (12.3 GB), `small` RSSM, 200 steps of batch 16 x 16: peak RSS of the
training process 824 MB (308 MB for the building child); building 190 s, frame cache
225 s, training 374 s (0.54 steps/s).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DATASET = "vwm/synthetic/memory-v0"
"""Id of the synthetic dataset."""
SIZE = 64
"""Frame side."""


def _episode_frames(rng: np.random.Generator, n: int) -> np.ndarray:
    """uint8 (n, 64, 64, 3): a square moving over a fixed noisy background."""
    background = rng.integers(0, 128, (SIZE, SIZE, 3), dtype=np.uint8)
    frames = np.repeat(background[None], n, axis=0)  # (n, H, W, 3)
    x, y = rng.integers(0, SIZE - 8, 2)
    dx, dy = rng.choice([-1, 1], 2)
    for t in range(n):
        frames[t, y : y + 8, x : x + 8] = 255
        if not 0 <= x + dx <= SIZE - 8:
            dx = -dx
        if not 0 <= y + dy <= SIZE - 8:
            dy = -dy
        x, y = x + dx, y + dy
    return frames


def build_dataset(root: str, frames: int, episode_len: int, chunk: int, seed: int) -> None:
    """Write the synthetic dataset under Minari root `root`, `chunk` episodes at a time."""
    os.environ["MINARI_DATASETS_PATH"] = root
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    rng = np.random.default_rng(seed)
    lengths = [episode_len] * (frames // episode_len)
    if frames % episode_len >= 2:
        lengths.append(frames % episode_len)
    dataset = None
    for first in range(0, len(lengths), chunk):
        buffers = []
        for e in range(first, min(first + chunk, len(lengths))):
            n = lengths[e] - 1  # steps
            terminations = np.zeros(n, dtype=bool)
            terminations[-1] = True
            buffers.append(EpisodeBuffer(
                id=e, seed=e, observations=_episode_frames(rng, n + 1),
                actions=rng.integers(0, 3, n), rewards=rng.random(n),
                terminations=terminations, truncations=np.zeros(n, dtype=bool),
            ))
        if dataset is None:
            dataset = minari.create_dataset_from_buffers(
                DATASET, buffers, algorithm_name="synthetic",
                observation_space=gym.spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8),
                action_space=gym.spaces.Discrete(3), jpeg_encoding=False,
            )
        else:
            dataset.update_dataset_from_buffer(buffers)
        del buffers


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MB (Linux reports ru_maxrss in KB)."""
    return resource.getrusage(who).ru_maxrss / 1024


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build, cache and train; the measurements."""
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="vwm-bench-memory-"))
    root = workdir / "minari"
    root.mkdir(parents=True, exist_ok=True)
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    result: dict[str, Any] = {"frames": args.frames, "frame_bytes_gb": args.frames * SIZE * SIZE * 3 / 1e9}
    try:
        start = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(
            target=build_dataset, args=(str(root), args.frames, args.episode_len, args.chunk, args.seed)
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"building the dataset failed (exit code {child.exitcode})")
        result["build_s"] = time.perf_counter() - start
        result["build_peak_rss_mb"] = peak_rss_mb(resource.RUSAGE_CHILDREN)
        print(f"built {args.frames} frames in {result['build_s']:.0f} s "
              f"(child peak RSS {result['build_peak_rss_mb']:.0f} MB)", flush=True)

        from world_models.data import SequenceDataset
        from world_models.train import TrainConfig, train_world_model

        start = time.perf_counter()
        data = SequenceDataset.from_minari(DATASET)
        result["cache_s"] = time.perf_counter() - start
        result["episodes"] = data.num_episodes
        del data
        result["peak_rss_after_cache_mb"] = peak_rss_mb()
        print(f"frame cache written in {result['cache_s']:.0f} s "
              f"(peak RSS so far {result['peak_rss_after_cache_mb']:.0f} MB)", flush=True)
        start = time.perf_counter()
        train_world_model(TrainConfig(
            dataset=DATASET, out=str(workdir / "run"), preset=args.preset, steps=args.steps,
            batch_size=args.batch_size, seq_len=args.seq_len, holdout_episodes=2,
            eval_every=0, checkpoint_every=args.steps, tensorboard=False, progress=False,
            device="cpu",
        ))
        result["train_s"] = time.perf_counter() - start
        result["steps_per_s"] = args.steps / result["train_s"]
        result["peak_rss_mb"] = peak_rss_mb()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"trained {args.steps} steps in {result['train_s']:.0f} s; peak RSS of the training "
          f"process: {result['peak_rss_mb']:.0f} MB (frames on disk: {result['frame_bytes_gb']:.1f} GB)")
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000, help="frames in the dataset")
    parser.add_argument("--episode-len", type=int, default=1000, help="frames per episode")
    parser.add_argument("--chunk", type=int, default=20, help="episodes written per Minari call")
    parser.add_argument("--steps", type=int, default=200, help="training steps")
    parser.add_argument("--preset", default="small", help="RSSM preset")
    parser.add_argument("--batch-size", type=int, default=16, help="windows per batch")
    parser.add_argument("--seq-len", type=int, default=16, help="frames per window")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--workdir", default=None, help="where the dataset goes (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the dataset and run folder")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = run(args)
    if args.json:
        from benchmarks.benchio import report
        from world_models.atomic import write_json_atomic

        print(f"wrote {write_json_atomic(args.json, report('bench_memory', vars(args), result))}")
    return result


if __name__ == "__main__":
    main()
