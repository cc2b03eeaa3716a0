"""Evaluate any policy on the real task: `vwm evaluate --task ID --policy PATH --episodes N`.

A policy is anything with SB3's ``predict(obs, state, episode_start, deterministic)``
taking a batch of real frames (N, H, W, C) uint8. Episode i is reset with seed
``seed + i`` whatever the batching, so results reproduce exactly. Episodes run in
batches of parallel real envs (one Gymnasium vector env), so batched policies (Dreamer,
planners, SB3) act on all of them in one call.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from agents.stats import iqm
from video_envs.validation import validate_actions
from world_models.device import resolve_device
from world_models.filter import ModelFilter


class Policy(Protocol):
    """What evaluation needs from a policy (SB3's predict signature)."""

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]: ...


class RandomPolicy:
    """Uniformly random actions from the task's action space (seeded)."""

    def __init__(self, action_space: gym.Space, seed: int = 0) -> None:
        self.action_space = action_space
        self.action_space.seed(seed)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        """One random action per frame in the batch."""
        n = observation.shape[0] if observation.ndim == 4 else None
        if n is None:
            return self.action_space.sample(), None
        return np.stack([self.action_space.sample() for _ in range(n)]), None


class FrameStackPolicy:
    """An SB3 model that observes the last `k` real frames stacked on channels (SB3's VecFrameStack)."""

    def __init__(self, model: Any, k: int) -> None:
        self.model, self.k = model, k
        self.stack: np.ndarray | None = None

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        """Stack frames (N, H, W, C) into (N, H, W, k*C), then ask the SB3 model."""
        single = observation.ndim == 3
        frames = observation[None] if single else observation
        n = frames.shape[0]
        start = np.ones(n, bool) if episode_start is None else np.asarray(episode_start, bool)
        if self.stack is None or self.stack.shape[0] != n:
            self.stack = np.zeros(frames.shape[:3] + (frames.shape[3] * self.k,), np.uint8)
            start = np.ones(n, bool)
        c = frames.shape[3]
        self.stack[start] = 0
        self.stack = np.concatenate([self.stack[..., c:], frames], axis=-1)
        action, _ = self.model.predict(self.stack, deterministic=deterministic)
        return (action[0] if single else action), None


class LatentPolicy:
    """An SB3 model trained on latent features: real frames -> model filter -> features."""

    def __init__(self, model: Any, world_model: Any) -> None:
        self.model = model
        self.filter = ModelFilter(world_model)
        self._last: np.ndarray | None = None

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        """Filter frames (N, H, W, C) into features (N, F), then ask the SB3 model."""
        single = observation.ndim == 3
        frames = observation[None] if single else observation
        n = frames.shape[0]
        start = np.ones(n, bool) if episode_start is None or self._last is None else episode_start
        prev = self._last if self._last is not None and len(self._last) == n else np.zeros(n)
        self.filter.update(frames, prev, np.asarray(start, bool))
        features = self.filter.features().cpu().numpy()
        action, _ = self.model.predict(features, deterministic=deterministic)
        self._last = np.asarray(action)
        return (action[0] if single else action), None


class LatentActionPolicy:
    """A policy that acts in a world model's latent actions, on the real task (LAPO route).

    Its actions (codes in Discrete(n_latent)) go through the latent -> real decoder that
    `vwm fit-actions` fitted into the checkpoint (`world_models.action_map.ActionMap.to_real`).
    """

    def __init__(self, policy: Any, action_map: Any) -> None:
        if not action_map.fitted:
            raise ValueError("the checkpoint's action map is not fitted: run `vwm fit-actions` first")
        self.policy, self.action_map = policy, action_map
        self.filter = getattr(policy, "filter", None)

    def reset(self) -> None:
        """Reset the wrapped policy (if it keeps state)."""
        if hasattr(self.policy, "reset") and callable(self.policy.reset):
            self.policy.reset()

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        """The wrapped policy's latent actions, decoded to real actions."""
        action, state = self.policy.predict(observation, state=state, episode_start=episode_start,
                                            deterministic=deterministic)
        codes = torch.as_tensor(np.asarray(action)).reshape(-1)
        real = self.action_map.to_real(codes).cpu().numpy()
        return (real[0] if np.asarray(action).ndim == 0 else real), state


def latent_action_policy(policy: Any, checkpoint: str | Path, device: str = "cpu") -> LatentActionPolicy:
    """Wrap `policy` (acting in latent actions) with the decoder of a fitted checkpoint."""
    from world_models.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint, device=device).model
    action_map = getattr(model, "action_map", None)
    if action_map is None:
        raise ValueError(f"{checkpoint} holds a {model.spec.family!r} model, which has no latent actions")
    return LatentActionPolicy(policy, action_map)


@dataclass
class EvalResult:
    """Returns of N real episodes with their seeds."""

    task: str
    policy: str
    seeds: list[int]
    returns: list[float]
    lengths: list[int]
    mean: float = 0.0
    std: float = 0.0
    iqm: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        r = np.asarray(self.returns, dtype=np.float64)
        self.mean, self.std, self.iqm = float(r.mean()), float(r.std()), iqm(r)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)

    def table(self) -> str:
        """A small plain-text table."""
        lines = [
            f"task     {self.task}",
            f"policy   {self.policy}",
            f"episodes {len(self.returns)} (seeds {self.seeds[0]}..{self.seeds[-1]})",
            f"return   mean {self.mean:.2f} +- {self.std:.2f}   IQM {self.iqm:.2f}   "
            f"min {min(self.returns):.2f}   max {max(self.returns):.2f}",
            f"length   mean {np.mean(self.lengths):.1f}",
        ]
        return "\n".join(lines)


def reset_policy(policy: Any) -> None:
    """Reset a policy's per-episode state (its own and its frame filter's), where it has one."""
    for obj in (policy, getattr(policy, "filter", None)):
        if obj is not None and hasattr(obj, "reset") and callable(obj.reset):
            obj.reset()


def evaluate_policy(
    policy: Policy,
    task: str,
    episodes: int = 20,
    seed: int = 0,
    num_envs: int = 10,
    deterministic: bool = True,
    video: str | Path | None = None,
    video_episodes: int = 3,
    policy_name: str = "policy",
    progress: bool = False,
    env_kwargs: dict[str, Any] | None = None,
    action_repeat: int = 1,
) -> EvalResult:
    """Run `episodes` real episodes (seeds seed..seed+episodes-1) and collect their returns.

    `action_repeat` > 1 repeats each of the policy's actions (`video_envs.wrappers`), as the
    policy was trained; returns stay those of the task."""
    import video_envs  # noqa: F401  (registers the tasks)
    from video_envs.wrappers import make_task

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    seeds = [seed + i for i in range(episodes)]
    returns: list[float] = []
    lengths: list[int] = []
    recorded: list[list[np.ndarray]] = []
    bar = tqdm(total=episodes, desc="evaluate", disable=not progress, leave=False)
    for first in range(0, episodes, num_envs):
        chunk = seeds[first : first + num_envs]
        n = len(chunk)
        envs = gym.vector.SyncVectorEnv(
            [lambda: make_task(task, action_repeat, **(env_kwargs or {})) for _ in range(n)],
            autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
        )
        reset_policy(policy)
        obs, _ = envs.reset(seed=chunk)
        total = np.zeros(n)
        length = np.zeros(n, dtype=np.int64)
        done = np.zeros(n, dtype=bool)
        start = np.ones(n, dtype=bool)
        frames = [[obs[i]] for i in range(n)] if video and first == 0 else None
        while not done.all():
            action, _ = policy.predict(obs, episode_start=start, deterministic=deterministic)
            try:  # one check of the whole batch, naming the policy
                validate_actions(action, envs.single_action_space, n)
            except ValueError as error:
                raise ValueError(f"policy {policy_name} returned bad actions: {error}") from None
            obs, reward, terminated, truncated, _ = envs.step(np.asarray(action))
            alive = ~done
            total[alive] += reward[alive]
            length[alive] += 1
            if frames is not None:
                for i in np.flatnonzero(alive):
                    frames[i].append(obs[i])
            finished = alive & (terminated | truncated)
            done |= finished
            bar.update(int(finished.sum()))
            start = np.zeros(n, dtype=bool)
        envs.close()
        returns += total.tolist()
        lengths += length.tolist()
        if frames is not None:
            recorded = frames[:video_episodes]
    bar.close()
    result = EvalResult(task, policy_name, seeds, returns, lengths)
    if video and recorded:
        from video_envs.video import write_video

        stream = np.concatenate([np.stack(ep) for ep in recorded])  # (sum T, H, W, C)
        write_video(video, stream, fps=30, scale=2)
        result.extra["video"] = str(video)
    return result


# ---------------------------------------------------------------------------- loading


def load_policy(
    spec: str, task: str, checkpoint: str | None = None, seed: int = 0, device: str = "cpu",
    trust_pickle: bool = False,
) -> Policy:
    """A policy from `--policy`: ``random``, an SB3 zip, a Dreamer agent folder, an online
    run folder (its latest agent), or a planner spec like ``cem:horizon=12`` (needs
    `checkpoint`). SB3 zips are unpickled only with `trust_pickle`."""
    import video_envs  # noqa: F401

    if spec == "random":
        return RandomPolicy(gym.make(task).action_space, seed)
    path = Path(spec)
    if path.suffix == ".zip" or (path.is_file() and path.suffix == ""):
        from agents.sb3 import load_sb3_policy

        return load_sb3_policy(path, task, device, trust_pickle)
    if path.is_dir():
        from agents.dreamer import DreamerPolicy, is_dreamer_agent

        for candidate in (path, path / "agent", path / "state" / "agent"):  # agent, online runs
            if is_dreamer_agent(candidate):
                return DreamerPolicy.load(candidate, device)
        raise ValueError(f"{path} holds neither a Dreamer agent nor an online run's agent")
    from agents.planning import Planner
    from agents.planning_config import PLANNER_NAMES, parse_planner_spec

    method = spec.split(":", 1)[0].strip().lower()
    if method in PLANNER_NAMES or (method == "random" and ":" in spec):
        if checkpoint is None:
            raise ValueError(f"planner policy {spec!r} needs --checkpoint (the world model)")
        return Planner.from_checkpoint(checkpoint, parse_planner_spec(spec), device=device)
    if not path.exists() and ("/" in spec or spec.endswith(".zip")):
        raise FileNotFoundError(f"policy not found: {spec}")
    raise ValueError(
        f"unknown policy {spec!r}: use random, an SB3 .zip, a Dreamer agent folder, an online "
        "run folder, or a planner spec (rs|random_shooting|cem|mppi[:key=value,...])"
    )


@dataclass
class EvaluateConfig:
    """Options of `vwm evaluate`."""

    task: str
    """Real task id, e.g. vwm/CartPolePixels-v0."""
    policy: str = "random"
    """random, an SB3 .zip, a Dreamer agent folder, an online run folder, or a planner spec."""
    checkpoint: str | None = None
    """World-model checkpoint (needed by planner policies and --latent-actions)."""
    latent_actions: bool = False
    """The policy acts in the latent actions of --checkpoint (a genie model fitted by `vwm
    fit-actions`): its actions are decoded to real ones (the LAPO route)."""
    episodes: int = 20
    """Number of evaluation episodes."""
    seed: int = 0
    """Episode i is reset with seed SEED + i."""
    num_envs: int = 10
    """Real envs run in parallel."""
    deterministic: bool = True
    """Act with the policy's mode rather than sampling."""
    video: str | None = None
    """Write the first episodes to this mp4/gif."""
    json: bool = False
    """Print a machine-readable JSON result instead of the table."""
    device: str = "auto"
    """Torch device: auto (cuda when available, else cpu), cpu, cuda or cuda:N."""
    trust_pickle: bool = False
    """Load an SB3 --policy zip with SB3's own loader, which unpickles (runs code from) the
    file: only for files you trust. By default only its weights are read."""
    action_repeat: int = 0
    """Real steps each action is held for (0: as the policy was trained, e.g. a Dreamer agent
    of `vwm train-agent --online --action-repeat 2`; else 1)."""


def evaluate_from_config(cfg: EvaluateConfig) -> EvalResult:
    """`vwm evaluate` entry point."""
    import video_envs  # noqa: F401

    if cfg.task not in gym.registry:
        raise ValueError(f"unknown task {cfg.task!r}")
    cfg = replace(cfg, device=str(resolve_device(cfg.device)))
    torch.manual_seed(cfg.seed)
    policy = load_policy(cfg.policy, cfg.task, cfg.checkpoint, cfg.seed, cfg.device, cfg.trust_pickle)
    if cfg.latent_actions:
        if cfg.checkpoint is None:
            raise ValueError("--latent-actions needs --checkpoint (the fitted world model)")
        policy = latent_action_policy(policy, cfg.checkpoint, cfg.device)
    repeat = cfg.action_repeat or int(getattr(policy, "action_repeat", 1))
    result = evaluate_policy(
        policy, cfg.task, cfg.episodes, cfg.seed, cfg.num_envs, cfg.deterministic,
        video=cfg.video, policy_name=cfg.policy, progress=not cfg.json, action_repeat=repeat,
    )
    print(json.dumps(result.to_dict(), indent=2) if cfg.json else result.table())
    return result

