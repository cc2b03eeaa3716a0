"""`vwm collect`: record a real pixel task into a local Minari dataset (no jax needed).

Episodes are gathered from a Gymnasium vector env (sync, or `AsyncVectorEnv` worker
processes with ``--async``: the same episodes either way) and written with
`minari.create_dataset_from_buffers` (lossless unless ``--jpeg``) under the root that
``MINARI_DATASETS_PATH`` names. Choices:

- Episode boundaries: a finished sub-env is reset explicitly (``reset_mask``) with its own
  seed right after the step that ended it, so Gymnasium's NEXT_STEP autoreset step never
  happens and is never recorded. Episode k started by the dataset's collection runs has
  seed ``cfg.seed + k``, stored with the episode; appends continue the count.
- Exactly `steps` transitions are stored: when the budget runs out, every unfinished
  episode with at least one step is stored too, its last step marked truncated.
- Continuous actions are clipped to the action space before stepping and recording.
- Writes are all-or-nothing (`video_envs.dataset_writer`): a killed run leaves the dataset id
  absent or complete, a failed write (full disk, read-only root) raises
  `world_models.atomic.SaveError` and leaves the dataset as it was.
- One writer per dataset id: the run holds ``<root>/.vwm-locks/<id>.lock``
  (`world_models.locks`), so a second `vwm collect` of the same id is refused.

The ``--policy`` option becomes a batched policy in `video_envs.policies` (`make_policy`
stays importable from here).
"""

from __future__ import annotations

import difflib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from video_envs.dataset_writer import DatasetWriter, minari_root
from video_envs.policies import PolicyFn, as_actions, make_policy
from video_envs.recorder import Episode, EpisodeRecorder
from world_models.atomic import saving
from world_models.device import resolve_device
from world_models.locks import DATASET_TMP_PREFIX as TMP_PREFIX
from world_models.locks import dataset_lock, recover_dataset

FLUSH_STEPS = 5000
"""Finished episodes are written to disk whenever this many steps are buffered."""


@dataclass
class CollectConfig:
    """Options of `vwm collect`."""

    task: str
    """Gymnasium id of the real pixel task, e.g. vwm/CartPolePixels-v0."""
    dataset: str
    """Minari dataset id to write, e.g. vwm/cartpole/random-v0."""
    policy: str = "random"
    """'random' or the path of a Stable-Baselines3 model .zip (PPO, A2C, DQN, SAC, TD3)."""
    steps: int = 10_000
    """Number of transitions to record (summed over the parallel envs)."""
    num_envs: int = 8
    """Number of envs stepped together in one vector env."""
    asynchronous: bool = field(default=False, metadata={"flag": "async"})
    """Step the envs in worker processes (gymnasium's AsyncVectorEnv, worth it with
    --num-envs > 1 when rendering dominates) instead of in this one; the dataset written is
    the same either way."""
    seed: int = 0
    """Episode k of the dataset is reset with seed + k; the random policy is seeded too."""
    size: int | None = None
    """Frame side in pixels passed to the task as size= (None: the task's default)."""
    append: bool = False
    """Add episodes to an existing dataset (created if missing) instead of refusing."""
    jpeg: bool = False
    """Store frames JPEG-encoded (lossy, smaller; new datasets only, appends keep the
    dataset's encoding). The default is lossless."""
    video: str | None = None
    """Folder to write the first episodes to as mp4 (none by default)."""
    num_videos: int = 3
    """How many episodes --video writes."""
    device: str = "auto"
    """Torch device: auto (cuda when available, else cpu), cpu, cuda or cuda:N. Runs an SB3
    --policy."""
    trust_pickle: bool = False
    """Load an SB3 --policy zip with SB3's own loader, which unpickles (runs code from) the
    file: only for files you trust. By default only its weights are read."""
    progress: bool = True
    """Show a progress bar."""


class CollectSummary(NamedTuple):
    """What one collection run wrote."""

    dataset: str
    """The dataset id."""
    path: Path
    """The dataset folder."""
    episodes: int
    """Episodes added by this run."""
    steps: int
    """Transitions added by this run."""
    total_episodes: int
    """Episodes in the dataset after this run."""
    seconds: float
    """Wall time of the collection loop (env steps and policy)."""
    videos: tuple[Path, ...]
    """Videos written."""


# ---------------------------------------------------------------------------- checks


def _check_config(cfg: CollectConfig) -> None:
    """Raise ValueError for option values that cannot work, before anything runs."""
    from minari.dataset.minari_dataset import parse_dataset_id

    if not cfg.dataset:
        raise ValueError("missing dataset id: pass --dataset, e.g. vwm/cartpole/random-v0")
    try:
        parse_dataset_id(cfg.dataset)
    except ValueError as error:
        raise ValueError(
            f"bad dataset id {cfg.dataset!r}: ids look like vwm/<task>/<policy>-v0"
        ) from error
    if not isinstance(cfg.steps, int) or isinstance(cfg.steps, bool) or cfg.steps < 1:
        raise ValueError(f"steps must be a positive integer, got {cfg.steps!r}")
    if cfg.num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {cfg.num_envs}")
    if cfg.num_videos < 0:
        raise ValueError(f"num_videos must be >= 0, got {cfg.num_videos}")


def _make_envs(cfg: CollectConfig) -> gym.vector.VectorEnv:
    """The vector env of the task (sync, or async with ``--async``), or a ValueError naming a
    bad id or frame space."""
    from video_envs.registration import register_envs

    register_envs()  # idempotent; also covers an install where the package __init__ is skipped
    if cfg.task not in gym.registry:
        known = [k for k in gym.registry if k.startswith("vwm/")]
        close = difflib.get_close_matches(cfg.task, list(gym.registry), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown task id {cfg.task!r}.{hint} vwm ids: {', '.join(known)}")
    kwargs = {} if cfg.size is None else {"size": cfg.size}
    try:
        envs = gym.make_vec(cfg.task, num_envs=cfg.num_envs,
                            vectorization_mode="async" if cfg.asynchronous else "sync", **kwargs)
    except TypeError as error:
        if "size" not in str(error):
            raise
        raise ValueError(f"task {cfg.task!r} does not take a size= option; drop --size") from error
    space = envs.single_observation_space
    if not (isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3):
        envs.close()
        raise ValueError(
            f"task {cfg.task!r} does not observe uint8 (H, W, C) frames: {space}; "
            "use a pixel task such as vwm/CartPolePixels-v0"
        )
    return envs


def _check_append(dataset: Any, envs: gym.vector.VectorEnv, dataset_id: str) -> None:
    """ValueError when the env's frames or actions differ from those of `dataset`."""
    old_obs, new_obs = dataset.observation_space, envs.single_observation_space
    if old_obs.shape != new_obs.shape or old_obs.dtype != new_obs.dtype:
        raise ValueError(
            f"cannot append to {dataset_id!r}: it holds frames {old_obs.shape} {old_obs.dtype}, "
            f"the task gives {new_obs.shape} {new_obs.dtype} (check --size)"
        )
    if dataset.action_space != envs.single_action_space:
        raise ValueError(
            f"cannot append to {dataset_id!r}: its action space {dataset.action_space} differs "
            f"from the task's {envs.single_action_space}"
        )


# ---------------------------------------------------------------------------- collection


def collect(cfg: CollectConfig, policy: PolicyFn | None = None) -> CollectSummary:
    """Record `cfg.steps` transitions of `cfg.task` into Minari dataset `cfg.dataset`.

    `policy` overrides ``cfg.policy`` with any callable mapping uint8 observations
    (N, H, W, C) to actions (N,) or (N, A). Raises ValueError for bad options, an unknown
    task, a non-pixel task or a mismatch with the dataset appended to, and
    FileExistsError when the dataset exists and ``cfg.append`` is false.
    """
    from minari.storage import get_dataset_path

    _check_config(cfg)
    with saving(os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")):  # Minari creates it
        root = Path(get_dataset_path())  # honours MINARI_DATASETS_PATH
    with dataset_lock(root, cfg.dataset):
        return _collect(cfg, policy, root)


def _collect(cfg: CollectConfig, policy: PolicyFn | None, root: Path) -> CollectSummary:
    """`collect` once the dataset id is locked."""
    import minari

    device = str(resolve_device(cfg.device))
    recover_dataset(root, cfg.dataset)
    final = root / cfg.dataset
    existing = None
    if final.exists():
        if not cfg.append:
            raise FileExistsError(
                f"dataset {cfg.dataset!r} already exists at {final}; pass --append to add "
                "episodes to it or choose another id"
            )
        existing = minari.load_dataset(cfg.dataset)
    envs = _make_envs(cfg)
    writer = None
    try:
        if existing is not None:
            _check_append(existing, envs, cfg.dataset)
        started = 0
        if existing is not None:  # seeds continue where the previous runs stopped
            meta = existing.storage.metadata
            started = int(meta.get("vwm_episodes_started", existing.total_episodes))
        run_seed = int(np.random.SeedSequence([cfg.seed, started]).generate_state(1)[0])
        policy_fn = policy if policy is not None else make_policy(cfg.policy, envs, run_seed, device,
                                                                 cfg.trust_pickle)
        algorithm = getattr(policy_fn, "__name__", type(policy_fn).__name__)
        writer = DatasetWriter(cfg, envs, root, algorithm)
        added, videos, started, seconds = _record(cfg, envs, policy_fn, writer, started)
        total = writer.commit({"vwm_episodes_started": started, "vwm_task": cfg.task})
    finally:
        envs.close()
        if writer is not None:
            writer.cleanup()
    paths = _write_videos(videos, cfg.video) if cfg.video else ()
    return CollectSummary(cfg.dataset, final, added[0], added[1], total, seconds, paths)


def _record(
    cfg: CollectConfig,
    envs: gym.vector.VectorEnv,
    policy: PolicyFn,
    writer: DatasetWriter,
    started: int,
) -> tuple[tuple[int, int], list[np.ndarray], int, float]:
    """The collection loop; returns ((episodes, steps) added, video frames, episodes started,
    seconds)."""
    from tqdm.auto import tqdm

    n = cfg.num_envs
    recorder = EpisodeRecorder(envs, cfg.seed, started)
    recorder.reset()
    finished: list[Episode] = []
    videos: list[np.ndarray] = []
    buffered = episodes = recorded = 0
    bar = tqdm(total=cfg.steps, desc=f"collect {cfg.task}", unit="step", disable=not cfg.progress)
    t0 = time.perf_counter()
    while recorded < cfg.steps:
        actions = as_actions(policy(recorder.obs), envs.single_action_space, n)  # (n,) or (n, A)
        active = min(n, cfg.steps - recorded)  # the last step may record only some envs
        finished += recorder.step(actions, active, reset_finished=recorded + active < cfg.steps)
        recorded += active
        buffered += active
        bar.update(active)
        if buffered >= FLUSH_STEPS or recorded >= cfg.steps:
            if recorded >= cfg.steps:  # store the unfinished episodes, marked truncated
                finished += recorder.unfinished()
            videos += [np.stack(e.obs) for e in finished[: max(0, cfg.num_videos - len(videos))]]
            writer.write(finished)
            episodes += len(finished)
            finished, buffered = [], 0
    started = recorder.started
    seconds = time.perf_counter() - t0
    bar.close()
    return (episodes, recorded), videos, started, seconds


def _write_videos(videos: list[np.ndarray], folder: str) -> tuple[Path, ...]:
    """Write episodes (T, H, W, C) as folder/episode_000.mp4, ...; returns the paths."""
    from video_envs.video import write_video

    return tuple(
        write_video(Path(folder) / f"episode_{i:03d}.mp4", frames, fps=30, scale=2)
        for i, frames in enumerate(videos)
    )


def collect_from_config(cfg: CollectConfig) -> None:
    """`vwm collect`: run `collect` and print a one-line summary."""
    summary = collect(cfg)
    rate = summary.steps / max(summary.seconds, 1e-9)
    print(
        f"{summary.dataset}: +{summary.episodes} episodes, +{summary.steps} steps "
        f"({rate:.0f} steps/s), {summary.total_episodes} episodes in {summary.path}"
    )
    for path in summary.videos:
        print(f"video: {path}")


__all__ = ["TMP_PREFIX", "CollectConfig", "CollectSummary", "collect", "collect_from_config",
           "make_policy", "minari_root"]
