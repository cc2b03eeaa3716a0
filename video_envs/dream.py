"""Real | imagined side-by-side rollouts (`vwm dream`), and real | model A | model B ...

From one real start (the real env reset with the seed, the model burned in on that first
frame as a one-frame context: the padding rule of `world_models.base`), the same seeded
random actions are played in the real env and, open loop, in the model. The rollout stops
when the real episode ends (terminated or truncated) or after `steps` steps, whichever
comes first; imagined terminations are ignored so the video shows what the model predicts
until the real episode ends. `dream_comparison` does the same for several models at once
(the real episode is played once), for the model families benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch

from video_envs.imagination_io import check_real_spaces
from video_envs.registration import make_real_env
from world_models.base import WorldModel, burn_in
from world_models.checkpoint import Checkpoint, load_checkpoint
from world_models.device import resolve_device
from world_models.imagine import imagine
from world_models.sampling import TorchNoise


@dataclass
class DreamConfig:
    """Options of `vwm dream`."""

    checkpoint: str
    """Checkpoint folder (or a run folder holding ``checkpoint/``)."""
    task: str | None = None
    """Real task id; default: the task the checkpoint was trained on."""
    steps: int = 200
    """Maximum number of steps (the video stops earlier if the real episode ends)."""
    out: str = "dream.mp4"
    """Output video (.mp4 or .gif)."""
    seed: int = 0
    """Seed of the real reset, the random actions and the model's sampling."""
    policy: Literal["random"] = "random"
    """Action source: uniformly random actions from the real action space."""
    fps: int = 15
    """Frames per second of the video."""
    scale: int = 4
    """Integer upscaling of the frames in the video."""
    device: str = "auto"
    """Torch device: auto (cuda when available, else cpu), cpu, cuda or cuda:N."""


class DreamRollout(NamedTuple):
    """Aligned real and imagined streams; index 0 is the start frame (reward 0)."""

    real: np.ndarray
    """uint8 (T, H, W, 3) real frames."""
    imagined: np.ndarray
    """uint8 (T, H, W, 3) imagined frames (index 0: the model's reconstruction of the start)."""
    real_rewards: np.ndarray
    """float32 (T,) reward on arriving at each real frame (0 for the start)."""
    imagined_rewards: np.ndarray
    """float32 (T,) predicted reward on arriving at each imagined frame (0 for the start)."""


def _load(
    source: str | Path | Checkpoint | WorldModel, task: str | None, device: str
) -> tuple[WorldModel, str]:
    if isinstance(source, (str, Path)):
        source = load_checkpoint(source, device=device, expect_task=task)
    if isinstance(source, Checkpoint):
        if task is not None and source.task is not None and task != source.task:
            raise ValueError(f"checkpoint {source.path} was trained on {source.task!r}, not on {task!r}")
        resolved = task or source.task
        if resolved is None:
            raise ValueError("the checkpoint records no task: pass task=")
        return source.model, resolved
    if task is None:
        raise ValueError("a model passed directly needs task=")
    return source, task


def _rgb(frames: np.ndarray) -> np.ndarray:
    return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames


class DreamComparison(NamedTuple):
    """One real stream and the streams of several models imagining the same actions from the
    same start; index 0 is the start frame (reward 0)."""

    real: np.ndarray
    """uint8 (T, H, W, 3) real frames."""
    imagined: list[np.ndarray]
    """Per model, uint8 (T, H, W, 3) imagined frames (index 0: its reconstruction of the start)."""
    real_rewards: np.ndarray
    """float32 (T,) reward on arriving at each real frame (0 for the start)."""
    imagined_rewards: list[np.ndarray]
    """Per model, float32 (T,) predicted reward on arriving at each imagined frame."""


@torch.inference_mode()
def _imagine_along(model: WorldModel, start: np.ndarray, actions: list[np.ndarray],
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T, H, W, C) and rewards (T,) of `model` burned in on `start` and fed `actions`."""
    device = next(model.parameters()).device
    noise = TorchNoise(torch.Generator(device=device).manual_seed(seed))
    state = burn_in(model, torch.as_tensor(start, device=device)[None])
    frames, rewards = [model.decode(state)[0].cpu().numpy()], [0.0]
    if actions:
        acts = torch.as_tensor(np.stack(actions), device=device).to(model.spec.action_dtype())[None]
        out = imagine(model, state, acts, noise=noise, decode=True)  # the same actions, open loop
        frames += list(out.frames[:, 0].cpu().numpy())  # type: ignore[index]
        rewards += out.rewards[:, 0].tolist()
    return _rgb(np.stack(frames)), np.asarray(rewards, dtype=np.float32)


def dream_comparison(
    sources: Sequence[str | Path | Checkpoint | WorldModel],
    task: str | None = None,
    steps: int = 200,
    seed: int = 0,
    device: str = "cpu",
) -> DreamComparison:
    """Play seeded random actions once in the real env and open loop in every model."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not sources:
        raise ValueError("dream_comparison needs at least one model")
    loaded = [_load(source, task, device) for source in sources]
    tasks = sorted({t for _, t in loaded})
    if len(tasks) > 1:
        raise ValueError(f"the models were trained on different tasks {tasks}: pass task=")
    env = make_real_env(tasks[0])
    for model, _ in loaded:
        check_real_spaces(model.spec, env.observation_space, env.action_space)
    env.action_space.seed(seed)
    frame, _ = env.reset(seed=seed)
    real, real_rewards, actions = [np.asarray(frame)], [0.0], []
    for _ in range(steps):
        action = env.action_space.sample()
        frame, reward, terminated, truncated, _ = env.step(action)
        actions.append(np.asarray(action))
        real.append(np.asarray(frame))
        real_rewards.append(float(reward))
        if terminated or truncated:
            break
    env.close()
    streams = [_imagine_along(model, real[0], actions, seed) for model, _ in loaded]
    return DreamComparison(_rgb(np.stack(real)), [f for f, _ in streams],
                           np.asarray(real_rewards, dtype=np.float32), [r for _, r in streams])


def dream_rollout(
    checkpoint_or_loaded: str | Path | Checkpoint | WorldModel,
    task: str | None = None,
    steps: int = 200,
    seed: int = 0,
    device: str = "cpu",
) -> DreamRollout:
    """Play the same seeded random actions in the real env and open loop in the model."""
    out = dream_comparison([checkpoint_or_loaded], task, steps, seed, device)
    return DreamRollout(out.real, out.imagined[0], out.real_rewards, out.imagined_rewards[0])


def dream_from_config(cfg: DreamConfig) -> Path:
    """Write the real | imagined video of `cfg` and return its path."""
    from video_envs.video import side_by_side, write_video

    if cfg.policy != "random":
        raise ValueError(f"unknown policy {cfg.policy!r}; available: 'random'")
    rollout = dream_rollout(cfg.checkpoint, cfg.task, cfg.steps, cfg.seed, str(resolve_device(cfg.device)))
    path = write_video(cfg.out, side_by_side(rollout.real, rollout.imagined), fps=cfg.fps, scale=cfg.scale)
    print(
        f"wrote {path}: {len(rollout.real)} frames (real | imagined), return real "
        f"{rollout.real_rewards.sum():.2f}, imagined {rollout.imagined_rewards.sum():.2f}"
    )
    return path
