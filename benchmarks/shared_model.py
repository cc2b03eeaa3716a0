"""The world model a suite's offline methods share, and what it measures about itself.

One model per (task, seed, budget, family, preset), learned from `budget` random real steps:
the dataset is named without the family, so every family learns from the same data. With
`SuiteSettings.model_seconds` each family trains for the same wall-clock instead of the same
number of steps. After training the model records its open-loop fidelity, its imagination
throughput against the real task's (measured side by side), its training cost and a
real | imagined video; `write_family_videos` puts every family's model in one video.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from benchmarks.imagination_timing import timed_loop
from benchmarks.results_schema import family_video_stem
from benchmarks.suite_spec import RunSpec, Suite, SuiteSettings
from video_envs.collect import minari_root
from world_models.atomic import write_json_atomic
from world_models.checkpoint import read_config

HOLDOUT_EPISODES = 10
"""Episodes of the shared data kept out of training; fidelity is measured on them."""
TIMED_STEPS_CAP = 10**9
"""Step limit of a model trained for `SuiteSettings.model_seconds` (the clock stops it)."""


@dataclass
class SharedModel:
    """A world model learned from random real steps, with what it measures about itself."""

    checkpoint: Path
    real_steps: int
    wall_time: float
    """Seconds to collect the data (when this call collected it: not on Ray, where the data
    is collected by a task of its own) and to train the model."""
    fidelity: dict[str, float] | None
    throughput: dict[str, float] | None
    videos: dict[str, str] | None
    training: dict[str, float] | None = None
    """``seconds`` (training wall-clock), ``steps`` (gradient steps), ``parameters``."""


def model_overrides(settings: SuiteSettings, family: str, task: str | None = None) -> str | None:
    """The suite's overrides for `family` on `task` as JSON, or None when it has none: the
    family's entry, updated by its ``"FAMILY@TASK"`` entry (task-specific settings win)."""
    general = settings.model_overrides.get(family)
    specific = settings.model_overrides.get(f"{family}@{task}") if task else None
    if general is None and specific is None:
        return None
    return json.dumps({**(general or {}), **(specific or {})})


def shared_folder(spec: RunSpec, work: Path) -> Path:
    """The run folder of the model `spec`'s offline methods share."""
    return work / f"model__{spec.task.split('/')[-1]}__{spec.budget}__{spec.model}__seed{spec.seed}"


def load_shared(spec: RunSpec, work: Path) -> SharedModel | None:
    """The finished shared model of `spec`, or None when it is not trained yet."""
    info_file = shared_folder(spec, work) / "shared.json"
    if not info_file.exists():
        return None
    info = json.loads(info_file.read_text())
    return SharedModel(**{**info, "checkpoint": Path(info["checkpoint"])})


def shared_dataset(spec: RunSpec) -> str:
    """The Minari id of the random data every family's shared model of `spec` learns from."""
    return f"vwm/{spec.task.split('/')[-1].lower()}/random-b{spec.budget}-s{spec.seed}-v0"


def ensure_dataset(spec: RunSpec, work: Path, progress: bool, device: str = "cpu") -> str:
    """Collect the `budget` random real steps of `spec`'s shared models (unless done already);
    returns the dataset id (under the Minari root WORK/minari)."""
    from video_envs.collect import CollectConfig, collect

    dataset = shared_dataset(spec)
    with minari_root(work / "minari"):
        from minari.storage import get_dataset_path

        if not (Path(get_dataset_path(dataset)) / "data").is_dir():
            collect(CollectConfig(task=spec.task, dataset=dataset, steps=spec.budget,
                                  seed=spec.seed, progress=progress, device=device))
    return dataset


def ensure_model(spec: RunSpec, settings: SuiteSettings, work: Path, results_dir: Path,
                 progress: bool, device: str = "cpu") -> SharedModel:
    """Collect `budget` random steps and train the shared model (resuming / reusing)."""
    from benchmarks.bench_imagination import num_parameters
    from world_models.train import TrainConfig, train_world_model

    done = load_shared(spec, work)
    if done is not None:
        return done
    labels = settings.label_episodes.get(spec.family, 0)
    folder = shared_folder(spec, work)
    start = time.perf_counter()
    dataset = ensure_dataset(spec, work, progress, device)
    timed = settings.model_seconds > 0
    with minari_root(work / "minari"):
        train_cfg = TrainConfig(
            dataset=dataset, out=str(folder), family=spec.family, preset=spec.preset,
            steps=TIMED_STEPS_CAP if timed else settings.model_steps, max_seconds=settings.model_seconds,
            device=device, batch_size=settings.model_batch, seq_len=settings.model_seq, seed=spec.seed,
            eval_every=0, checkpoint_every=max(100, settings.model_steps // 5), resume=True,
            overrides=model_overrides(settings, spec.family, spec.task) or "", progress=progress,
            holdout_episodes=HOLDOUT_EPISODES, ignore_actions=labels > 0, label_episodes=labels,
        )
        checkpoint = train_world_model(train_cfg)
        config = read_config(checkpoint)
        training = {"seconds": float(config.get("train_seconds", float("nan"))), "steps": int(config["step"]),
                    "parameters": num_parameters(checkpoint)}
        fidelity = config.get("eval")
        if labels:
            checkpoint, fidelity, fit = fit_labelled(checkpoint, dataset, labels, folder, spec.seed, device)
            training.update(label_episodes=labels,
                            label_probe_accuracy=fit.get("probe_accuracy", float("nan")))
    wall = time.perf_counter() - start
    throughput = measure_throughput(checkpoint, spec.task, settings.throughput_envs,
                                    settings.throughput_seconds, device, settings.pixel_throughput_envs)
    videos = write_dream_videos(checkpoint, spec, settings, results_dir, device)
    shared = SharedModel(checkpoint, spec.budget, wall, fidelity, throughput, videos, training)
    write_json_atomic(folder / "shared.json", {**asdict(shared), "checkpoint": str(checkpoint)})
    return shared


def fit_labelled(checkpoint: Path, dataset: str, episodes: int, folder: Path, seed: int,
                 device: str = "cpu") -> tuple[Path, dict[str, float], dict[str, Any]]:
    """Fit the real-action map of a model trained without actions (but for the `episodes`
    labelled episodes) on those same episodes of `dataset` (`vwm fit-actions`); returns
    (the composed checkpoint, its open-loop fidelity on the held-out episodes in real
    actions, the fit summary)."""
    from world_models.checkpoint import load_checkpoint
    from world_models.data import SequenceDataset
    from world_models.fit_actions import FitActionsConfig, fit_actions
    from world_models.train import TrainConfig, evaluate_fidelity

    fitted, summary = fit_actions(FitActionsConfig(  # the episodes training saw labelled
        checkpoint=str(checkpoint), dataset=dataset, episodes=episodes, probe_episodes=HOLDOUT_EPISODES,
        out=str(folder / "fitted"), device=device))
    model = load_checkpoint(fitted, device=device).model
    holdout = SequenceDataset.from_minari(dataset, HOLDOUT_EPISODES).holdout
    fidelity = evaluate_fidelity(model, holdout, model.spec.context_len, TrainConfig.eval_horizon, seed)
    return fitted, fidelity, summary


def measure_throughput(checkpoint: Path, task: str, num_envs: int, seconds: float = 2.0,
                       device: str = "cpu", pixel_envs: tuple[int, ...] = ()) -> dict[str, float]:
    """Imagined steps/s of the latent vector env (`num_envs` rows) and real steps/s of the
    task (one env), measured one after the other with fixed random actions.

    For each n in `pixel_envs`, also ``imagined_frames_per_s_n<n>``: frames/s of the pixel
    imagined vector env with n rows (decoding every frame).
    """
    import video_envs  # noqa: F401
    from video_envs.imagined import WorldModelVectorEnv

    def imagined(n: int, obs_mode: str) -> float:
        envs = WorldModelVectorEnv(num_envs=n, checkpoint=str(checkpoint), obs_mode=obs_mode, device=device)
        envs.reset(seed=0)
        actions = np.stack([envs.single_action_space.sample() for _ in range(n)])  # (n, ...)

        def step(i: int) -> int:
            envs.step(actions)
            return n

        try:
            return timed_loop(step, seconds)
        finally:
            envs.close()

    out = {"imagined_steps_per_s": imagined(num_envs, "latent")}
    for n in pixel_envs:
        out[f"imagined_frames_per_s_n{n}"] = imagined(n, "pixels")
    env = gym.make(task)
    env.reset(seed=0)
    env.action_space.seed(0)

    def real_step(i: int) -> int:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
        return 1

    out["real_steps_per_s"] = timed_loop(real_step, seconds)
    env.close()
    return out


def _write_streams(frames: np.ndarray, results_dir: Path, name: str) -> dict[str, str]:
    """`frames` (T, H, W, 3) as NAME.mp4 and NAME.gif under `results_dir`."""
    from video_envs.video import write_video

    write_video(results_dir / f"{name}.mp4", frames, fps=15, scale=3)
    write_video(results_dir / f"{name}.gif", frames, fps=15, scale=2)
    return {"mp4": f"{name}.mp4", "gif": f"{name}.gif"}


def write_dream_videos(checkpoint: Path, spec: RunSpec, settings: SuiteSettings,
                       results_dir: Path, device: str = "cpu", tag: str = "") -> dict[str, str]:
    """Real | imagined side by side from one start and the same actions, mp4 and gif.

    `tag` tells apart the videos of models other than the shared one (e.g. ``dreamer``).
    """
    from video_envs.dream import dream_rollout
    from video_envs.video import side_by_side

    rollout = dream_rollout(str(checkpoint), spec.task, settings.video_steps, seed=spec.seed, device=device)
    name = f"videos/{spec.task.split('/')[-1]}__{spec.budget}__{spec.model}__seed{spec.seed}"
    name += f"__{tag}" if tag else ""
    return _write_streams(side_by_side(rollout.real, rollout.imagined), results_dir, name)


def write_family_videos(suite: Suite, results_dir: Path, work: Path, device: str = "cpu") -> list[Path]:
    """For each (task, budget, preset, seed) with shared models: one real | family A | family B
    ... video (mp4, gif) and a PNG film strip, each column titled, from the same real start and
    the same actions. Families without a trained shared model are left out. Returns the mp4s."""
    from video_envs.dream import dream_comparison
    from video_envs.video import film_strip, side_by_side, titled, write_image

    written = []
    for task, budget, preset, seed in itertools.product(suite.tasks, suite.budgets, suite.presets,
                                                        suite.seeds):
        models: dict[str, Path] = {}
        for family in suite.families:
            shared = load_shared(RunSpec(suite.name, task, "shared", seed, budget, preset, family), work)
            if shared is not None:
                models[family] = shared.checkpoint
        if not models:
            continue
        out = dream_comparison([str(c) for c in models.values()], task, suite.settings.video_steps,
                               seed, device)
        streams, titles = [out.real, *out.imagined], ["real", *models]
        stem = family_video_stem(task, budget, preset, seed)
        _write_streams(side_by_side(*(titled(s, t) for s, t in zip(streams, titles))), results_dir, stem)
        write_image(results_dir / f"{stem}.png", film_strip(streams, 8, titles), scale=2)
        written.append(results_dir / f"{stem}.mp4")
    return written
