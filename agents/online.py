"""The Dreamer-style online loop: `vwm train-agent --algo dreamer --online --task ID --real-steps N`.

Repeat until the real-step budget is spent: act on the real task with the current actor
(sampling, for exploration), add the finished episodes to the replay, update the world
model on replay windows, train the actor-critic in imagination, evaluate on the real task
now and then, and checkpoint everything. Hafner et al. 2023 (DreamerV3), Algorithm 1.
The defaults are the recipe the CartPole benchmark ran (`vwm bench cartpole`).

Run folder::

    replay/chunk_000001.npz   finished real episodes, one atomic file per iteration
    state/                    the whole loop, swapped in as one folder per iteration (the commit point):
      online.json             progress: real steps, iteration, learning curve, config
      loop.json, loop.safetensors   RNG states, the real episodes in progress, the actor's filter
      agent/                  the Dreamer agent with its optimiser moments
      agent/world_model/      the world model with its optimiser and RNG state (and its EMA
                              weights when the family keeps them: what the agent imagines,
                              acts and is evaluated with)
    tb/                       TensorBoard logs

A killed run resumes from the last ``state/`` exactly as if it had not stopped: chunks of an
unfinished iteration are ignored, and the real episodes in progress are replayed from their
reset seeds and recorded actions.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from agents.dreamer import DreamerAgent, DreamerConfig, DreamerPolicy
from agents.dreamer_train import ReplayStarts, train_in_imagination
from agents.evaluate import RandomPolicy, evaluate_policy
from agents.online_eval import termination_fidelity
from agents.online_progress import OnlineProgress
from agents.replay import Replay, load_chunks, save_chunk
from video_envs.recorder import EpisodeRecorder
from video_envs.wrappers import make_task
from world_models.atomic import atomic_folder, recover_folder, remove_temporaries, write_json_atomic
from world_models.checkpoint import (
    ContextBank,
    load_checkpoint,
    load_trainer_state,
    load_weights,
    save_checkpoint,
)
from world_models.device import resolve_device
from world_models.families import build_model, make_spec
from world_models.locks import run_folder_lock
from world_models.train import WorldModelTrainer, parse_overrides, tensorboard_writer

__all__ = ["OnlineConfig", "agent_dir", "load_chunks", "model_dir", "run_online"]

TERMINATION_KEYS = ("termination_recall", "termination_precision", "false_termination_rate")
"""Columns after the real steps of each ``progress["termination"]`` row (None: not measurable)."""

RECIPE_OVERRIDES: dict[str, dict[str, Any]] = {"rssm": {"image_size": 32}}
"""World-model overrides of the benchmarked recipe, per family (used when none are given)."""


@dataclass
class OnlineConfig:
    """Options of the online Dreamer loop (defaults: the benchmarked CartPole recipe)."""

    task: str = "vwm/CartPolePixels-v0"
    """Real task id."""
    out: str = "runs/online"
    """Run folder (resumed when it already holds a run)."""
    real_steps: int = 50_000
    """Budget of real environment steps."""
    family: str = "rssm"
    """World-model family."""
    preset: str = "small"
    """World-model size preset."""
    overrides: str | None = None
    """JSON object of world-model hyper-parameter overrides (default: the recipe's, rssm:
    {"image_size": 32}; '{}' for none)."""
    num_envs: int = 8
    """Real envs stepped in parallel."""
    action_repeat: int = 1
    """Real env steps per agent decision (`video_envs.wrappers.ActionRepeat`: rewards summed,
    stopping at an episode's end); budgets and `prefill`/`steps_per_iteration`/`eval_every`
    count env steps, as DreamerV3 counts them."""
    prefill: int = 2_500
    """Real steps collected with a random policy before learning starts."""
    steps_per_iteration: int = 500
    """Real steps collected per iteration."""
    model_updates: int = 60
    """World-model gradient steps per iteration (5x after the prefill)."""
    agent_updates: int = 60
    """Actor-critic updates per iteration."""
    start_pool: int = 1024
    """Imagination starts: posterior states of this many random replay windows per iteration."""
    start_length: int = 4
    """Real frames per start window (capped at the model's `context_len`; burned in by the
    padding rule of `world_models.base`)."""
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
    device: str = "auto"
    """Torch device: auto (cuda when available, else cpu), cpu, cuda or cuda:N."""
    progress: bool = True
    """Show a progress bar."""
    tensorboard: bool = True
    """Log model, agent and real-return scalars to OUT/tb."""


def model_overrides(cfg: OnlineConfig) -> dict[str, Any]:
    """The world-model overrides `cfg` asks for (the recipe's when it names none)."""
    if cfg.overrides is None:
        return dict(RECIPE_OVERRIDES.get(cfg.family, {}))
    return parse_overrides(cfg.overrides)


def state_dir(out: str | Path) -> Path:
    """The folder holding the whole loop state of run folder `out`."""
    return Path(out) / "state"


def agent_dir(out: str | Path) -> Path:
    """The latest Dreamer agent of an online run (with its world model inside)."""
    return state_dir(out) / "agent"


def model_dir(out: str | Path) -> Path:
    """The latest world-model checkpoint of an online run."""
    return agent_dir(out) / "world_model"


# ------------------------------------------------------------------ loop state


@dataclass
class _Loop:
    """Everything the loop carries from one iteration to the next."""

    progress: dict[str, Any]
    model: Any
    """The world model being trained (raw weights)."""
    trainer: WorldModelTrainer
    agent: DreamerAgent
    recorder: EpisodeRecorder
    policy: DreamerPolicy
    random_policy: RandomPolicy
    generator: torch.Generator
    rng: np.random.Generator

    @property
    def sampler(self) -> Any:
        """The weights the agent imagines, acts and is evaluated with: the trainer's EMA copy
        when the family keeps one (`WorldModelTrainer.sampling_model`), else the model."""
        return self.trainer.sampling_model


def _commit(out: Path, loop: _Loop, replay: Replay, spaces: dict[str, Any], task: str) -> None:
    """Write the whole loop state into a fresh folder and swap it in as ``state/``."""
    model, progress = loop.model, loop.progress
    context_len = model.spec.context_len
    data = replay.dataset(spaces["kind"], spaces["dim"], spaces["low"], spaces["high"])
    if (data.episode_lengths > context_len).any():
        contexts = data.contexts(256, context_len, np.random.default_rng(progress["iteration"]))
    else:  # nothing long enough yet: an empty bank
        spec = model.spec
        contexts = ContextBank(torch.zeros((0, context_len, *spec.frame_shape), dtype=torch.uint8),
                               torch.zeros((0, context_len, *spec.action_shape()), dtype=spec.action_dtype()))
    tensors, info = loop.trainer.state_tensors()
    config = {"task": task, "dataset": f"online:{out}", "online": True, "step": loop.trainer.step,
              "trainer": info, "action_repeat": progress["config"].get("action_repeat", 1)}
    rngs = {"torch_rng": torch.get_rng_state(), "imagination_rng": loop.generator.get_state()}
    if next(model.parameters()).is_cuda:
        rngs.update({f"cuda_rng.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    rngs.update({f"policy.{k}": v for k, v in loop.policy.tracking_state().items()})
    meta = {"numpy_rng": loop.rng.bit_generator.state,
            "random_policy_rng": loop.random_policy.action_space.np_random.bit_generator.state,
            "recorder": loop.recorder.live_state()}
    with atomic_folder(state_dir(out)) as tmp:
        loop.agent.save(tmp / "agent", extra={"task": task, "real_steps": progress["real_steps"],
                                              "action_repeat": progress["config"].get("action_repeat", 1)})
        save_checkpoint(tmp / "agent" / "world_model", model, contexts, config, tensors, loop.trainer.ema)
        save_file({k: v.detach().cpu().contiguous() for k, v in rngs.items()}, str(tmp / "loop.safetensors"))
        write_json_atomic(tmp / "loop.json", meta)
        write_json_atomic(tmp / "online.json", progress)


def _restore(folder: Path, loop: _Loop) -> None:
    """Put the RNGs, episodes in progress and the actor's filter of `folder` back into `loop`."""
    tensors = load_file(str(folder / "loop.safetensors"))
    meta = json.loads((folder / "loop.json").read_text())
    loop.rng.bit_generator.state = meta["numpy_rng"]
    loop.random_policy.action_space.np_random.bit_generator.state = meta["random_policy_rng"]
    loop.generator.set_state(tensors["imagination_rng"])
    loop.policy.load_tracking_state({k.removeprefix("policy."): v for k, v in tensors.items()
                                     if k.startswith("policy.")})
    loop.recorder.restore(meta["recorder"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda_rng.")]
    if cuda:
        torch.cuda.set_rng_state_all(cuda)
    torch.set_rng_state(tensors["torch_rng"])  # last: building the loop drew from it


def _spaces(task: str) -> tuple[gym.Space, tuple[int, ...], dict[str, Any]]:
    env = gym.make(task)
    space, frame_shape = env.action_space, tuple(env.observation_space.shape)
    env.close()
    discrete = isinstance(space, gym.spaces.Discrete)
    return space, frame_shape, {
        "discrete": discrete,
        "kind": "discrete" if discrete else "continuous",
        "dim": int(space.n) if discrete else int(space.shape[0]),
        "low": None if discrete else tuple(float(v) for v in space.low),
        "high": None if discrete else tuple(float(v) for v in space.high),
    }


def _build(cfg: OnlineConfig, agent_cfg: DreamerConfig | None, out: Path, device: torch.device
           ) -> tuple[_Loop, Replay, dict[str, Any]]:
    """A fresh loop, or the one saved in OUT/state."""
    space, frame_shape, spaces = _spaces(cfg.task)
    saved = recover_folder(state_dir(out))
    for folder in (out, out / "replay"):  # what a killed commit left (we hold the lock)
        remove_temporaries(folder)
    if saved is None and (out / "online.json").exists():
        raise ValueError(f"{out} holds an online run written by an older vwm; pick another --out")
    torch.manual_seed(cfg.seed)
    if saved is not None:
        progress = json.loads((saved / "online.json").read_text())
        for key, default in (("task", None), ("family", "rssm"), ("action_repeat", 1)):
            was = progress["config"].get(key, default)
            if was != getattr(cfg, key):
                raise ValueError(f"{out} holds an online run with {key} {was!r}, not "
                                 f"{getattr(cfg, key)!r}; pick another --out")
        loaded = load_checkpoint(model_dir(out), device=device, ema=False)  # the trained weights
        model = loaded.model
        agent = DreamerAgent.load(agent_dir(out), device)
        trainer = WorldModelTrainer(model, cfg.lr, 100.0, cfg.seed + 1)
        trainer.load_state(load_trainer_state(model_dir(out)), loaded.config["trainer"])
        if trainer.ema is not None:
            load_weights(model_dir(out), trainer.ema, ema=True)
    else:
        progress = {"config": asdict(cfg), "iteration": 0, "real_steps": 0,
                    "imagined_steps": 0, "curve": [], "wall_time": 0.0, "episode_returns": [],
                    "model_updates": 0, "agent_updates": 0, "termination": []}
        spec = make_spec(cfg.family, frame_shape, spaces["kind"], spaces["dim"], spaces["low"],
                         spaces["high"], cfg.preset, model_overrides(cfg))
        model = build_model(spec).to(device)
        agent = DreamerAgent(spec, agent_cfg).to(device)
        trainer = WorldModelTrainer(model, cfg.lr, 100.0, cfg.seed + 1)
    envs = gym.vector.SyncVectorEnv([lambda: make_task(cfg.task, cfg.action_repeat)
                                     for _ in range(cfg.num_envs)])
    episode_seed = int(np.random.SeedSequence([cfg.seed, 1]).generate_state(1)[0])
    loop = _Loop(progress, model, trainer, agent, EpisodeRecorder(envs, episode_seed),
                 DreamerPolicy(agent, trainer.sampling_model, seed=cfg.seed), RandomPolicy(space, cfg.seed),
                 torch.Generator(device=device).manual_seed(cfg.seed), np.random.default_rng(cfg.seed))
    replay = Replay(frame_shape, () if spaces["discrete"] else (spaces["dim"],),
                    np.int64 if spaces["discrete"] else np.float32)
    for episode in load_chunks(out / "replay", progress["iteration"]):
        replay.add(episode)
    if saved is not None:
        _restore(saved, loop)
    else:
        loop.recorder.reset()
    return loop, replay, spaces


# ------------------------------------------------------------------ the loop


def run_online(cfg: OnlineConfig, agent_cfg: DreamerConfig | None = None) -> dict[str, Any]:
    """Run (or resume) the online loop; returns its progress record.

    Holds the writer lock of ``cfg.out`` throughout (`world_models.locks`)."""
    with run_folder_lock(cfg.out):
        return _run_online(cfg, agent_cfg)


def _run_online(cfg: OnlineConfig, agent_cfg: DreamerConfig | None) -> dict[str, Any]:
    import video_envs  # noqa: F401

    if cfg.action_repeat < 1:
        raise ValueError(f"action_repeat must be >= 1, got {cfg.action_repeat}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    loop, replay, spaces = _build(cfg, agent_cfg, out, device)
    progress, model, agent, recorder = loop.progress, loop.model, loop.agent, loop.recorder
    sampler = loop.sampler  # imagination, acting and evaluation (EMA weights when kept)
    kind, dim, low, high = spaces["kind"], spaces["dim"], spaces["low"], spaces["high"]
    writer = tensorboard_writer(out, cfg.tensorboard)
    bar = OnlineProgress(cfg, progress)
    started = time.perf_counter() - progress["wall_time"]
    next_eval = (progress["real_steps"] // cfg.eval_every + 1) * cfg.eval_every if cfg.eval_every else 0
    try:
        while progress["real_steps"] < cfg.real_steps:
            iteration = progress["iteration"] + 1
            prefilling = progress["real_steps"] < cfg.prefill
            steps = cfg.prefill if prefilling else cfg.steps_per_iteration
            steps = min(steps, cfg.real_steps - progress["real_steps"])
            model.eval()
            acting = loop.random_policy if prefilling else loop.policy
            finished = []
            for _ in range(0, steps, recorder.num_envs * cfg.action_repeat):
                action, _ = acting.predict(recorder.obs, episode_start=recorder.episode_start,
                                           deterministic=False)
                finished += recorder.step(np.asarray(action))
            episodes = [e.model_aligned(spaces["discrete"]) for e in finished]
            for episode in episodes:
                replay.add(episode)
            save_chunk(out / "replay", iteration, episodes)
            progress["real_steps"] += steps  # agent steps x repeat: at most the env steps taken
            progress["episode_returns"] += [float(e["rewards"].sum()) for e in episodes]
            metrics: dict[str, float] = {}
            held_out: dict[str, float] = {}
            evaluating = bool(cfg.eval_every and progress["real_steps"] >= next_eval
                              or progress["real_steps"] >= cfg.real_steps)
            if evaluating:  # on this iteration's episodes, before the model trains on them
                ends = termination_fidelity(sampler, episodes, model.spec.context_len, agent.cfg.horizon,
                                            seed=cfg.seed)
                progress.setdefault("termination", []).append(
                    [progress["real_steps"]] + [ends.get(k) for k in TERMINATION_KEYS])
                held_out = {f"heldout_{k}": v for k, v in ends.items()}
            if len(replay.offsets) > 2:
                data = replay.dataset(kind, dim, low, high)
                updates = cfg.model_updates * (5 if prefilling else 1)
                for _ in range(updates):
                    metrics = loop.trainer.update(data, cfg.batch_size, cfg.seq_len)
                    bar.model_update(metrics)
                starts = ReplayStarts(sampler, data, agent.cfg.batch_size, cfg.start_pool,
                                      min(cfg.start_length, model.spec.context_len), loop.rng)
                agent_metrics = train_in_imagination(agent, sampler, starts, cfg.agent_updates,
                                                     loop.generator, progress=False,
                                                     on_update=bar.agent_update)
                progress["imagined_steps"] += int(agent_metrics.get("imagined_steps", 0))
                metrics.update(agent_metrics)
            metrics.update(held_out)
            if evaluating:
                result = evaluate_policy(DreamerPolicy(agent, sampler), cfg.task, cfg.eval_episodes,
                                         seed=10_000 + cfg.seed, action_repeat=cfg.action_repeat)
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
            _commit(out, loop, replay, spaces, cfg.task)
    finally:
        bar.close()
        recorder.envs.close()
        if writer is not None:
            writer.close()
    return progress
