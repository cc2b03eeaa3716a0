"""The Dreamer-style online loop: `vwm train-agent --algo dreamer --online --task ID --real-steps N`.

Repeat until the real-step budget is spent: act on the real task with the current actor
(sampling, for exploration), add the finished episodes to the replay, update the world
model on replay windows, train the actor-critic in imagination, evaluate on the real task
now and then, and checkpoint everything. Hafner et al. 2023 (DreamerV3), Algorithm 1.

Run folder::

    replay/chunk_000001.npz   finished real episodes, one atomic file per iteration
    checkpoint/               world model + optimiser/RNG state (world_models.checkpoint)
    agent/                    the Dreamer agent with a copy of its world model
    online.json               progress: real steps, iteration, learning curve (the commit point)
    tb/                       TensorBoard logs

A killed run resumes from the last `online.json`: collected episodes are kept (episodes
still in progress when the run died are dropped), model and agent continue from their
last saved state.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from agents.dreamer import DreamerAgent, DreamerConfig, DreamerPolicy
from agents.dreamer_train import ReplayStarts, train_in_imagination
from agents.evaluate import RandomPolicy, evaluate_policy
from world_models.checkpoint import load_checkpoint, load_trainer_state
from world_models.data import SequenceDataset
from world_models.families import build_model, make_spec
from world_models.train import (
    WorldModelTrainer,
    parse_overrides,
    save_run_checkpoint,
    tensorboard_writer,
)


@dataclass
class OnlineConfig:
    """Options of the online Dreamer loop."""

    task: str = "vwm/CartPolePixels-v0"
    """Real task id."""
    out: str = "runs/online"
    """Run folder (resumed when it already holds a run)."""
    real_steps: int = 50_000
    """Budget of real environment steps."""
    preset: str = "small"
    """World-model size preset."""
    overrides: str = ""
    """JSON object of world-model hyper-parameter overrides."""
    num_envs: int = 8
    """Real envs stepped in parallel."""
    prefill: int = 2_500
    """Real steps collected with a random policy before learning starts."""
    steps_per_iteration: int = 1_000
    """Real steps collected per iteration."""
    model_updates: int = 60
    """World-model gradient steps per iteration."""
    agent_updates: int = 60
    """Actor-critic updates per iteration."""
    start_pool: int = 1024
    """Imagination starts: posterior states of this many random replay windows per iteration."""
    start_length: int = 4
    """Real frames per start window."""
    batch_size: int = 16
    """World-model batch size (windows)."""
    seq_len: int = 16
    """World-model window length."""
    lr: float = 4e-4
    """World-model learning rate."""
    eval_every: int = 5_000
    """Evaluate on the real task every N real steps (0: only at the end)."""
    eval_episodes: int = 10
    """Real episodes per evaluation."""
    seed: int = 0
    """Seed of everything."""
    device: str = "cpu"
    """Torch device."""
    progress: bool = True
    """Show a progress bar."""
    tensorboard: bool = True
    """Log model, agent and real-return scalars to OUT/tb."""


# ------------------------------------------------------------------ replay


class Replay:
    """Finished real episodes in growing flat arrays, served as a `SequenceDataset` view."""

    def __init__(self, frame_shape: tuple[int, ...], action_shape: tuple[int, ...],
                 action_dtype: np.dtype) -> None:
        self.frames = np.zeros((1024, *frame_shape), np.uint8)  # (capacity, H, W, C)
        self.actions = np.zeros((1024, *action_shape), action_dtype)
        self.rewards = np.zeros(1024, np.float32)
        self.terminated = np.zeros(1024, bool)
        self.offsets = [0]

    @property
    def size(self) -> int:
        """Frames stored."""
        return self.offsets[-1]

    def _grow(self, needed: int) -> None:
        capacity = self.frames.shape[0]
        if needed <= capacity:
            return
        new = max(needed, 2 * capacity)
        for name in ("frames", "actions", "rewards", "terminated"):
            old = getattr(self, name)
            grown = np.zeros((new, *old.shape[1:]), old.dtype)
            grown[: self.size] = old[: self.size]
            setattr(self, name, grown)

    def add(self, episode: dict[str, np.ndarray]) -> None:
        """Append one episode: frames (T, H, W, C), actions, rewards, terminated (T, ...)."""
        n = len(episode["frames"])
        self._grow(self.size + n)
        a, b = self.size, self.size + n
        self.frames[a:b] = episode["frames"]
        self.actions[a:b] = episode["actions"]
        self.rewards[a:b] = episode["rewards"]
        self.terminated[a:b] = episode["terminated"]
        self.offsets.append(b)

    def dataset(self, spec_kind: str, action_dim: int, low=None, high=None) -> SequenceDataset:
        """The episodes as a dataset of views (no copy)."""
        n = self.size
        return SequenceDataset(
            self.frames[:n], self.actions[:n], self.rewards[:n], self.terminated[:n],
            np.asarray(self.offsets), spec_kind, action_dim, low, high,  # type: ignore[arg-type]
        )


def save_chunk(folder: Path, index: int, episodes: list[dict[str, np.ndarray]]) -> None:
    """Write episodes to ``folder/chunk_<index>.npz`` atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {f"{i}_{k}": v for i, ep in enumerate(episodes) for k, v in ep.items()}
    tmp = folder / f".chunk_{index:06d}.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, folder / f"chunk_{index:06d}.npz")


def load_chunks(folder: Path, upto: int) -> list[dict[str, np.ndarray]]:
    """Episodes of chunks 1..upto (later chunks belong to an unfinished iteration)."""
    episodes = []
    for index in range(1, upto + 1):
        path = folder / f"chunk_{index:06d}.npz"
        if not path.exists():
            continue
        with np.load(path, allow_pickle=False) as data:
            count = len({k.split("_", 1)[0] for k in data.files})
            for i in range(count):
                episodes.append({k: data[f"{i}_{k}"] for k in
                                 ("frames", "actions", "rewards", "terminated")})
    return episodes


# ------------------------------------------------------------------ real collection


class RealCollector:
    """Persistent real vector env that returns finished episodes in model alignment."""

    def __init__(self, task: str, num_envs: int, seed: int) -> None:
        import video_envs  # noqa: F401

        self.envs = gym.vector.SyncVectorEnv(
            [lambda: gym.make(task) for _ in range(num_envs)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
        self.discrete = isinstance(self.envs.single_action_space, gym.spaces.Discrete)
        self.obs, _ = self.envs.reset(seed=seed)
        self.start = np.ones(num_envs, bool)
        self.buffers = [self._new_buffer(self.obs[i]) for i in range(num_envs)]
        self.returns: list[float] = []

    def _new_buffer(self, frame: np.ndarray) -> dict[str, list]:
        shape = self.envs.single_action_space.shape
        zero = 0 if self.discrete else np.zeros(shape, np.float32)
        return {"frames": [frame], "actions": [zero], "rewards": [0.0], "terminated": [False]}

    def collect(self, policy: Any, steps: int, deterministic: bool = False) -> list[dict]:
        """Step all envs until `steps` transitions were taken; return finished episodes."""
        finished = []
        n = self.envs.num_envs
        for _ in range(0, steps, n):
            action, _ = policy.predict(self.obs, episode_start=self.start,
                                       deterministic=deterministic)
            action = np.asarray(action)
            obs, reward, terminated, truncated, info = self.envs.step(action)
            done = terminated | truncated
            for i in range(n):
                buf = self.buffers[i]
                last = info["final_obs"][i] if done[i] else obs[i]
                buf["frames"].append(last)
                buf["actions"].append(action[i])
                buf["rewards"].append(float(reward[i]))
                buf["terminated"].append(bool(terminated[i]))
                if done[i]:
                    finished.append(self._finish(buf))
                    self.returns.append(float(np.sum(buf["rewards"])))
                    self.buffers[i] = self._new_buffer(obs[i])
            self.obs, self.start = obs, done
        return finished

    def _finish(self, buf: dict[str, list]) -> dict[str, np.ndarray]:
        actions = np.asarray(buf["actions"])
        actions = actions.astype(np.int64) if self.discrete else actions.astype(np.float32)
        return {
            "frames": np.stack(buf["frames"]).astype(np.uint8),
            "actions": actions,
            "rewards": np.asarray(buf["rewards"], np.float32),
            "terminated": np.asarray(buf["terminated"], bool),
        }


# ------------------------------------------------------------------ progress


def planned_updates(cfg: OnlineConfig) -> tuple[int, int]:
    """World-model and actor-critic updates the loop will make for `cfg`, in total.

    Mirrors the loop's schedule: the prefill iteration makes 5x the model updates, every
    iteration makes `agent_updates` actor-critic updates.
    """
    real = model = agent = 0
    while real < cfg.real_steps:
        prefilling = real < cfg.prefill
        real += min(cfg.prefill if prefilling else cfg.steps_per_iteration, cfg.real_steps - real)
        model += cfg.model_updates * (5 if prefilling else 1)
        agent += cfg.agent_updates
    return model, agent


class OnlineProgress:
    """One bar over the loop's gradient updates, the work that takes the time.

    The bar advances per world-model or actor-critic update (each costs ~0.1 s on a CPU,
    against ~0.3 ms per real step), so its rate and ETA stay honest through the long
    update phases; real steps, update counts, losses and returns are in the postfix.
    """

    def __init__(self, cfg: OnlineConfig, progress: dict[str, Any]) -> None:
        self.real_total = cfg.real_steps
        self.model_total, self.agent_total = planned_updates(cfg)
        self.progress = progress
        self.metrics: dict[str, float] = dict(progress.get("metrics", {}))
        done = progress.get("model_updates", 0) + progress.get("agent_updates", 0)
        self.bar = tqdm(total=self.model_total + self.agent_total, initial=done, desc="online",
                        unit="update", disable=not cfg.progress, dynamic_ncols=True)
        self.show()

    def _count(self, key: str, metrics: dict[str, float]) -> None:
        self.progress[key] = self.progress.get(key, 0) + 1
        self.metrics.update(metrics)
        self.bar.update(1)
        if self.progress[key] % 10 == 0:
            self.show(refresh=False)

    def model_update(self, metrics: dict[str, float]) -> None:
        """Count one world-model gradient step."""
        self._count("model_updates", metrics)

    def agent_update(self, index: int, metrics: dict[str, float]) -> None:
        """Count one actor-critic update (`train_in_imagination`'s `on_update`)."""
        self._count("agent_updates", metrics)

    def show(self, refresh: bool = True) -> None:
        """Refresh the postfix: real steps, update counts, losses, dreamed and real returns."""
        p, m = self.progress, self.metrics
        recent = p.get("episode_returns", [])[-10:]
        self.bar.set_postfix_str(
            f"real {p['real_steps']}/{self.real_total} "
            f"model {p.get('model_updates', 0)}/{self.model_total} "
            f"agent {p.get('agent_updates', 0)}/{self.agent_total} "
            f"loss {m.get('loss', float('nan')):.3g} "
            f"dream {m.get('imagined_return', float('nan')):.3g} "
            f"return {np.mean(recent) if recent else float('nan'):.1f} "
            f"eval {p['curve'][-1][1] if p['curve'] else '-'}",
            refresh=refresh)

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()


# ------------------------------------------------------------------ the loop


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def run_online(cfg: OnlineConfig, agent_cfg: DreamerConfig | None = None) -> dict[str, Any]:
    """Run (or resume) the online loop; returns its progress record."""
    import video_envs  # noqa: F401

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    env = gym.make(cfg.task)
    space = env.action_space
    discrete = isinstance(space, gym.spaces.Discrete)
    kind = "discrete" if discrete else "continuous"
    dim = int(space.n) if discrete else int(space.shape[0])
    low = None if discrete else tuple(float(v) for v in space.low)
    high = None if discrete else tuple(float(v) for v in space.high)
    frame_shape = tuple(env.observation_space.shape)
    env.close()

    progress_file = out / "online.json"
    progress = json.loads(progress_file.read_text()) if progress_file.exists() else None
    if progress is not None and progress["config"]["task"] != cfg.task:
        raise ValueError(f"{out} holds an online run on {progress['config']['task']!r}, "
                         f"not {cfg.task!r}; pick another --out")
    if progress is None:
        progress = {"config": asdict(cfg), "iteration": 0, "real_steps": 0,
                    "imagined_steps": 0, "curve": [], "wall_time": 0.0, "episode_returns": [],
                    "model_updates": 0, "agent_updates": 0}
    if (out / "agent").exists():
        loaded = load_checkpoint(out, device=device)
        model = loaded.model
        agent = DreamerAgent.load(out / "agent")
        trainer = WorldModelTrainer(model, cfg.lr, 100.0, cfg.seed + 1)
        trainer.load_state(load_trainer_state(out), loaded.config["trainer"])
    else:
        spec = make_spec("rssm", frame_shape, kind, dim, low, high, cfg.preset,
                         parse_overrides(cfg.overrides))
        model = build_model(spec).to(device)
        agent = DreamerAgent(spec, agent_cfg)
        trainer = WorldModelTrainer(model, cfg.lr, 100.0, cfg.seed + 1)
    agent.to(device)

    replay = Replay(frame_shape, () if discrete else (dim,), np.int64 if discrete else np.float32)
    for episode in load_chunks(out / "replay", progress["iteration"]):
        replay.add(episode)
    collector = RealCollector(cfg.task, cfg.num_envs, cfg.seed + 1000 * progress["iteration"])
    generator = torch.Generator(device=device).manual_seed(cfg.seed + progress["iteration"])
    rng = np.random.default_rng(cfg.seed + progress["iteration"])
    policy = DreamerPolicy(agent, model, seed=cfg.seed + progress["iteration"])
    random_policy = RandomPolicy(space, cfg.seed)
    writer = tensorboard_writer(out, cfg.tensorboard)
    bar = OnlineProgress(cfg, progress)
    started = time.perf_counter() - progress["wall_time"]
    next_eval = (progress["real_steps"] // cfg.eval_every + 1) * cfg.eval_every if cfg.eval_every else 0
    while progress["real_steps"] < cfg.real_steps:
        iteration = progress["iteration"] + 1
        prefilling = progress["real_steps"] < cfg.prefill
        steps = cfg.prefill if prefilling else cfg.steps_per_iteration
        steps = min(steps, cfg.real_steps - progress["real_steps"])
        model.eval()
        episodes = collector.collect(random_policy if prefilling else policy, steps)
        for episode in episodes:
            replay.add(episode)
        save_chunk(out / "replay", iteration, episodes)
        progress["real_steps"] += steps
        progress["episode_returns"] += [float(e["rewards"].sum()) for e in episodes]
        metrics: dict[str, float] = {}
        if len(replay.offsets) > 2:
            data = replay.dataset(kind, dim, low, high)
            updates = cfg.model_updates * (5 if prefilling else 1)
            for _ in range(updates):
                metrics = trainer.update(data, cfg.batch_size, cfg.seq_len)
                bar.model_update(metrics)
            starts = ReplayStarts(model, data, agent.cfg.batch_size, cfg.start_pool,
                                  cfg.start_length, rng)
            agent_metrics = train_in_imagination(agent, model, starts, cfg.agent_updates,
                                                 generator, progress=False,
                                                 on_update=bar.agent_update)
            progress["imagined_steps"] += int(agent_metrics.get("imagined_steps", 0))
            metrics.update(agent_metrics)
        if cfg.eval_every and progress["real_steps"] >= next_eval or \
                progress["real_steps"] >= cfg.real_steps:
            result = evaluate_policy(DreamerPolicy(agent, model), cfg.task, cfg.eval_episodes,
                                     seed=10_000 + cfg.seed)
            progress["curve"].append([progress["real_steps"], result.mean])
            next_eval += cfg.eval_every
        recent = progress["episode_returns"][-10:]
        bar.show()
        if writer is not None:
            for key, value in metrics.items():
                writer.add_scalar(f"online/{key}", value, progress["real_steps"])
            if recent:
                writer.add_scalar("real/episode_return", float(np.mean(recent)), progress["real_steps"])
            if progress["curve"] and progress["curve"][-1][0] == progress["real_steps"]:
                writer.add_scalar("real/eval_return", progress["curve"][-1][1], progress["real_steps"])
        progress["metrics"] = metrics
        progress["iteration"] = iteration
        progress["wall_time"] = time.perf_counter() - started
        _save(out, trainer, agent, replay, kind, dim, low, high, progress, cfg)
    bar.close()
    if writer is not None:
        writer.close()
    return progress


def _save(out: Path, trainer: WorldModelTrainer, agent: DreamerAgent, replay: Replay,
          kind: str, dim: int, low, high, progress: dict[str, Any], cfg: OnlineConfig) -> None:
    """Checkpoint model, agent, then the progress record (the commit point)."""
    data = replay.dataset(kind, dim, low, high)
    eligible = data.episode_lengths > trainer.model.spec.context_len
    if eligible.any():
        contexts = data.contexts(256, trainer.model.spec.context_len,
                                 np.random.default_rng(progress["iteration"]))
        config = {"task": cfg.task, "dataset": f"online:{out}", "online": True}
        save_run_checkpoint(out, trainer, contexts, config)
        agent.save(out / "agent", world_model=out / "checkpoint",
                   extra={"task": cfg.task, "real_steps": progress["real_steps"]})
    _write_json(out / "online.json", progress)
