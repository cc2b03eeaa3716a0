"""A label probe scored on effects: which real actions a frame pair can tell apart.

A latent action model sees (o_t, o_t+1) only, so actions that lead to the same next frame
look alike to it. In MinAtar Freeway the chicken moves at most once every 3 steps
(MinAtar's ``player_speed``), so most presses of up or down change nothing; Breakout's
paddle stops at the walls; a sticky action (10% of steps) repeats the previous one whatever
is pressed. Scored against the raw labels, even a perfect latent action model stays well
below 1 there (`benchmarks.control_metrics.label_probe`).

This module plays random episodes of the real task and, before each step, tries every
action on a deep copy of the env (its random state included, so sticky actions and spawns
replay), recording which actions give the same next frame as the one taken. The effect
probe counts an action decoded from a code as right when it gives that same frame; its
chance level is the best constant action's score.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from benchmarks.control_metrics import episode_codes, episode_pairs
from world_models.action_map import ActionMap
from world_models.base import ModelSpec
from world_models.data import SequenceDataset


@dataclass(frozen=True)
class EffectEpisode:
    """One real episode with the effect of every action at every step."""

    frames: np.ndarray
    """uint8 (T+1, H, W, C): the reset frame and the frame after each step."""
    actions: np.ndarray
    """int64 (T,): ``actions[t]`` led from frame t to frame t+1."""
    same: np.ndarray
    """bool (T, A): action a would also have led from frame t to frame t+1."""


def effect_episodes(task: str, transitions: int, seed: int,
                    env_kwargs: dict[str, Any] | None = None) -> list[EffectEpisode]:
    """Random-policy episodes of discrete `task` (made with `env_kwargs`, reset with seeds
    seed, seed+1, ...) until they hold at least `transitions` transitions (none for 0),
    each step's effects found by stepping a deep copy of the env with every action.
    ValueError when the taken action's own copy disagrees with the env (an env whose state
    a deep copy does not capture)."""
    import video_envs  # noqa: F401  (registers the tasks)

    env = gym.make(task, **(env_kwargs or {}))
    n = int(env.action_space.n)
    rng = np.random.default_rng(seed)
    out: list[EffectEpisode] = []
    total = 0
    try:
        while total < transitions:
            obs, _ = env.reset(seed=seed + len(out))
            frames, actions, same = [obs], [], []
            done = False
            while not done:
                action = int(rng.integers(n))
                outcomes = [copy.deepcopy(env.unwrapped).step(b)[0] for b in range(n)]  # n x (H, W, C)
                obs, _, terminated, truncated, _ = env.step(action)
                row = [np.array_equal(o, obs) for o in outcomes]
                if not row[action]:
                    raise ValueError(f"{task}: a deep copy of the env does not replay its step; "
                                     "the effect probe needs an env whose state copies")
                frames.append(obs)
                actions.append(action)
                same.append(row)
                done = terminated or truncated
            out.append(EffectEpisode(np.stack(frames), np.asarray(actions, dtype=np.int64),
                                     np.asarray(same, dtype=bool)))
            total += len(actions)
    finally:
        env.close()
    return out


def effect_scores(same: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Effect accuracy of `predicted` actions (M,) against effect table `same` (M, A) and its
    chance level (the best constant action), the same two on the transitions where the
    actions differ at all (identifiable), and their share."""
    nan = float("nan")
    if same.shape[0] == 0:
        return {"accuracy": nan, "chance": nan, "accuracy_identifiable": nan, "chance_identifiable": nan,
                "identifiable": nan}
    hits = same[np.arange(len(predicted)), predicted]  # (M,)
    identifiable = ~same.all(1)  # (M,)
    some = bool(identifiable.any())
    return {"accuracy": float(hits.mean()), "chance": float(same.mean(0).max()),
            "accuracy_identifiable": float(hits[identifiable].mean()) if some else nan,
            "chance_identifiable": float(same[identifiable].mean(0).max()) if some else nan,
            "identifiable": float(identifiable.mean())}


@torch.inference_mode()
def effect_probe(model: Any, train: SequenceDataset, test: list[EffectEpisode],
                 episodes: Sequence[int]) -> dict[str, Any]:
    """For N in `episodes`: an `ActionMap` fitted on the first N training episodes (as
    `benchmarks.control_metrics.label_probe`), scored on the effects of `test`'s transitions
    (`effect_scores`), with the raw-label accuracy on the same transitions beside it."""
    device = next(model.parameters()).device
    codes = [model.latent_actions(torch.from_numpy(e.frames)[None].to(device))[0, 1:].cpu() for e in test]
    # (M,) code of each transition frame t -> t+1
    test_codes = torch.cat(codes) if codes else torch.zeros(0, dtype=torch.long)
    same = np.concatenate([e.same for e in test]) if test else np.zeros((0, 1), dtype=bool)
    actions = np.concatenate([e.actions for e in test]) if test else np.zeros(0, dtype=np.int64)
    real = ModelSpec(family=model.spec.family, frame_shape=tuple(model.spec.frame_shape),
                     action_kind="discrete", action_dim=same.shape[1], feature_dim=1)
    most = min(max(episodes), train.num_episodes)
    train_codes = episode_codes(model, train, range(most))
    out: dict[str, Any] = {"test_transitions": int(len(actions)), "per_episodes": {}}
    for n in episodes:
        used = min(int(n), train.num_episodes)
        action_map = ActionMap(real, int(model.cfg.n_latent))
        action_map.update(*episode_pairs(train, train_codes[:used]))
        predicted = action_map.to_real(test_codes.to(action_map.counts.device)).cpu().numpy()
        row = effect_scores(same, predicted)
        raw = float((predicted == actions).mean()) if len(actions) else float("nan")
        row.update(episodes=used, raw_accuracy=raw)
        out["per_episodes"][str(n)] = row
    return out


def as_dataset(episodes: list[EffectEpisode], action_dim: int) -> SequenceDataset:
    """The episodes as a `SequenceDataset` (the action at index t led into frame t; rewards
    are not recorded), e.g. fresh held-out windows for `control_metrics.delta_t_psnr`."""
    frames = np.concatenate([e.frames for e in episodes])  # (F, H, W, C)
    actions = np.concatenate([np.concatenate([[0], e.actions]) for e in episodes]).astype(np.int64)  # (F,)
    lengths = [len(e.frames) for e in episodes]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = frames.shape[0]
    return SequenceDataset(frames, actions, np.zeros(n, np.float32), np.zeros(n, bool), offsets,
                           "discrete", action_dim, has_rewards=False)
