"""Controllability and label-probe measurements of a world model with (latent) actions.

- Delta-t PSNR (Genie, Bruce et al. 2024, arXiv:2402.15391, section 3): on held-out windows
  of K real context frames and t real future frames, roll the model out twice from the same
  burn-in and the same noise, once with the "true" actions of the real future and once with
  random ones; delta_t = PSNR(real_t, with true actions) - PSNR(real_t, with random ones).
  For a latent-action model the true actions are the LAM codes inferred from the real frames
  and the random ones are drawn from the marginal of the codes it uses on held-out data
  (uniform over all codes, unused ones included, inflates the figure: DESIGN section 9); for
  a model conditioned on real actions both come from the real actions (the data's, and
  draws from their held-out marginal).
- Label probe (LAPO, Schmidt & Jiang 2024, arXiv:2312.10812): a real <-> latent
  `world_models.action_map.ActionMap` fitted on the (real action, code) pairs of a few
  training episodes (`world_models.fit_actions.count_pairs`: the action at index t led into
  frame t, and code t is the LAM's code of the transition t-1 -> t; `episode_pairs`), scored on held-out
  transitions, beside the chance level (the majority real action).

The statistics are pure functions (`delta_statistics`, `majority_fraction`,
`window_plan`); the rest runs models under ``torch.inference_mode``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from agents.stats import bootstrap_ci
from world_models.action_map import ActionMap
from world_models.base import ModelSpec, burn_in, select_rows
from world_models.data import SequenceDataset
from world_models.evaluation import psnr
from world_models.sampling import RowGenerator


# ----------------------------------------------------------------------------- pure statistics
def window_plan(lengths: Sequence[int], context: int, horizon: int, max_windows: int) -> np.ndarray:
    """Windows (W, 3) int64 rows (episode, start, future frames available, at most `horizon`)
    of every start with `context` frames and at least one future frame in its episode;
    at most `max_windows` of them, evenly spaced over the list (0: all)."""
    rows = [(e, s, min(horizon, length - context - s))
            for e, length in enumerate(lengths) for s in range(max(0, length - context))]
    plan = np.array(rows, dtype=np.int64).reshape(-1, 3)
    if 0 < max_windows < len(plan):
        plan = plan[np.linspace(0, len(plan) - 1, max_windows).round().astype(np.int64)]
    return plan


def delta_statistics(delta: np.ndarray, confidence: float = 0.95, resamples: int = 2000,
                     seed: int = 0) -> dict[str, float]:
    """Mean of per-window deltas (n,) with a percentile bootstrap interval over windows."""
    delta = np.asarray(delta, dtype=np.float64)
    if delta.size == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    low, high = bootstrap_ci(delta, statistic=np.mean, confidence=confidence, resamples=resamples, seed=seed)
    return {"mean": float(delta.mean()), "low": low, "high": high, "n": int(delta.size)}


def majority_fraction(labels: Tensor) -> float:
    """Share of the most frequent value among int `labels` (M,): the chance level of a probe."""
    if labels.numel() == 0:
        return float("nan")
    return float(torch.bincount(labels.long().reshape(-1)).max() / labels.numel())


def marginal(values: Tensor, size: int) -> np.ndarray:
    """Empirical distribution (size,) of int `values` in [0, size)."""
    counts = torch.bincount(values.long().reshape(-1), minlength=size).double().numpy()
    return counts / max(counts.sum(), 1.0)


# ----------------------------------------------------------------------------- data plumbing
def windows_batch(data: SequenceDataset, plan: np.ndarray, length: int) -> tuple[Tensor, Tensor]:
    """Frames uint8 (W, length, H, W, C) and actions (W, length) of the planned windows;
    frames past an episode's end repeat its last frame (their results are never used)."""
    offsets, lengths = data.offsets, data.episode_lengths
    steps = np.arange(length)[None]  # (1, L)
    index = offsets[plan[:, 0], None] + np.minimum(plan[:, 1, None] + steps, lengths[plan[:, 0], None] - 1)
    batch = data._rows(index)
    return batch.frames, batch.actions.long()


def true_actions(model: Any, frames: Tensor, actions: Tensor, context: int, latent: bool) -> Tensor:
    """The actions (W, H) that led into future frames context..context+H-1 of windows frames
    (W, context+H, ...): the model's inferred LAM codes (`latent`), else the data's actions."""
    if latent:
        return model.latent_actions(frames)[:, context:].cpu()  # code t: transition t-1 -> t
    return actions[:, context:]


# ----------------------------------------------------------------------------- measurements
def shrink_noise(noise: RowGenerator, rows: int) -> RowGenerator:
    """The first `rows` rows of `noise` (their keys and counters: the same future draws)."""
    out = RowGenerator(rows, noise.keys.device)
    out.keys, out.counters = noise.keys[:rows].clone(), noise.counters[:rows].clone()
    return out


@torch.inference_mode()
def rollout_psnr(model: Any, frames: Tensor, context_actions: Tensor, actions: Tensor, keys: Tensor,
                 futures: Tensor) -> Tensor:
    """PSNR (W, H) of each imagined frame against the real one (NaN past a window's future):
    burn in on the first K frames of windows frames (W, K+H, ...), then step with `actions`
    (W, H) in the model's action space; row i draws its noise from a `RowGenerator` keyed
    `keys[i]` and stops after `futures[i]` steps (`futures` (W,) non-increasing, so the
    rows still running are always a prefix)."""
    k, horizon = frames.shape[1] - actions.shape[1], actions.shape[1]
    device = next(model.parameters()).device
    state = burn_in(model, frames[:, :k].to(device), context_actions.to(device))
    noise = RowGenerator(frames.shape[0], device)
    noise.seed_rows(torch.ones(frames.shape[0], dtype=torch.bool), keys)
    out = torch.full((frames.shape[0], horizon), float("nan"))
    for j in range(horizon):
        rows = int((futures > j).sum())
        if rows == 0:
            break
        if rows < noise.num_rows:
            state = select_rows(state, torch.arange(rows, device=device))
            noise = shrink_noise(noise, rows)
        state = model.step(state, actions[:rows, j].to(device), noise).state
        out[:rows, j] = psnr(model.decode(state).cpu(), frames[:rows, k + j])
    return out


@torch.inference_mode()
def delta_t_psnr(model: Any, data: SequenceDataset, latent: bool, ts: Sequence[int], seed: int = 0,
                 max_windows: int = 128, chunk: int = 128, random_pool: Tensor | None = None,
                 ) -> dict[str, Any]:
    """Delta-t PSNR of `model` on the episodes of `data` (held-out) at horizons `ts`.

    `latent`: the model acts in latent codes (true: inferred from the frames; random: the
    marginal of the codes inferred on `data`); otherwise in the data's real discrete
    actions (random: their marginal on `data`). `random_pool` overrides the values whose
    marginal the random actions are drawn from. Both rollouts of a window share a noise key.
    Returns per t the statistics of the deltas (mean, 95% bootstrap interval, number of
    windows with t future frames) and the mean PSNR of each rollout, plus the marginal.
    """
    k, horizon = model.spec.context_len, max(ts)
    plan = window_plan(data.episode_lengths, k, horizon, max_windows)
    plan = plan[np.argsort(-plan[:, 2], kind="stable")]  # longest futures first
    n_actions = int(model.spec.action_dim)
    pool = random_pool if random_pool is not None else used_actions(model, data, latent)
    probs = marginal(pool, n_actions)
    rng = np.random.default_rng(seed)
    random = torch.from_numpy(rng.choice(n_actions, size=(len(plan), horizon), p=probs))  # (W, H)
    psnr_true, psnr_random = [], []
    for lo in range(0, len(plan), chunk):
        part = plan[lo:lo + chunk]
        frames, actions = windows_batch(data, part, k + horizon)
        context = actions[:, :k] if not latent else torch.zeros(len(part), k, dtype=torch.long)
        keys = torch.as_tensor(seed * 1_000_003 + np.arange(lo, lo + len(part)), dtype=torch.int64)
        chosen = true_actions(model, frames, actions, k, latent)
        futures = torch.from_numpy(part[:, 2])
        psnr_true.append(rollout_psnr(model, frames, context, chosen, keys, futures))
        psnr_random.append(rollout_psnr(model, frames, context, random[lo:lo + chunk], keys, futures))
    a = torch.cat(psnr_true).numpy() if psnr_true else np.zeros((0, horizon))
    b = torch.cat(psnr_random).numpy() if psnr_random else np.zeros((0, horizon))
    out: dict[str, Any] = {"windows": int(len(plan)), "marginal": probs.round(4).tolist(), "per_t": {}}
    for t in ts:
        rows = plan[:, 2] >= t  # windows with t real future frames
        stats = delta_statistics(a[rows, t - 1] - b[rows, t - 1], seed=seed)
        stats.update(psnr_true=float(a[rows, t - 1].mean()) if rows.any() else float("nan"),
                     psnr_random=float(b[rows, t - 1].mean()) if rows.any() else float("nan"))
        out["per_t"][str(t)] = stats
    return out


@torch.inference_mode()
def episode_codes(model: Any, data: SequenceDataset, episodes: range) -> list[Tensor]:
    """The model's inferred codes (T_e,) of each of `episodes` (code t: transition t-1 -> t),
    computed once so that every probe below reuses them."""
    return [model.latent_actions(data.episode(i).frames)[0].cpu() for i in episodes]


def episode_pairs(data: SequenceDataset, codes: list[Tensor], lag: int = 0,
                  labelled: bool = True) -> tuple[Tensor, Tensor]:
    """(real actions, codes) of the transitions of the first ``len(codes)`` episodes of
    `data`, pairing the action at index t + `lag` with code t. Lag 0 is
    `world_models.fit_actions.count_pairs`' alignment (the action that led into frame t);
    other lags diagnose off-by-one data. `labelled` False also keeps transitions without
    a real action (their action reads 0)."""
    actions, out = [], []
    for i, inferred in enumerate(codes):
        batch = data.episode(i).with_masks()
        known = (batch.valid & ~batch.is_first.bool())[0]  # (T,)
        if labelled:
            known &= batch.has_action[0]
        t = torch.nonzero(known)[:, 0]
        t = t[(t + lag >= 0) & (t + lag < known.numel())]
        t = t[known[t + lag]]
        actions.append(batch.actions[0][t + lag].long())
        out.append(inferred[t])
    if not codes:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    return torch.cat(actions), torch.cat(out)


def used_actions(model: Any, data: SequenceDataset, latent: bool) -> Tensor:
    """The actions (M,) of every transition of `data`: the model's inferred codes (`latent`)
    or the data's real actions."""
    episodes = range(data.num_episodes)
    if latent:
        return episode_pairs(data, episode_codes(model, data, episodes), labelled=False)[1]
    dummy = [torch.zeros(int(n), dtype=torch.long) for n in data.episode_lengths]
    return episode_pairs(data, dummy)[0]


def code_usage(codes: Tensor, n_latent: int) -> dict[str, Any]:
    """Distinct codes used, perplexity and the marginal of codes (M,)."""
    probs = marginal(codes, n_latent)
    nonzero = probs[probs > 0]
    return {"codes_used": int((probs > 0).sum()), "n_latent": int(n_latent),
            "perplexity": float(np.exp(-(nonzero * np.log(nonzero)).sum())) if nonzero.size else 0.0,
            "marginal": probs.round(4).tolist(), "transitions": int(codes.numel())}


def fitted_accuracy(real: ModelSpec, n_latent: int, fit: tuple[Tensor, Tensor],
                    test: tuple[Tensor, Tensor]) -> float:
    """Accuracy on `test` (actions, codes) of an `ActionMap` fitted on `fit` (actions, codes)."""
    action_map = ActionMap(real, n_latent)
    action_map.update(*fit)
    return action_map.accuracy(*test)


@torch.inference_mode()
def label_probe(model: Any, train: SequenceDataset, holdout: SequenceDataset, episodes: Sequence[int],
                lags: Sequence[int] = (-1, 0, 1), lag_episodes: int = 5) -> dict[str, Any]:
    """Accuracy on `holdout`'s transitions of an `ActionMap` fitted on the first N training
    episodes, for N in `episodes`, with the chance level (majority real action); actions
    with the same effect count as different here (`benchmarks.effect_probe` scores effects).
    ``lag_check``: the probe at `lag_episodes` with the actions shifted by each of `lags`
    (lag 0 should be the best when the data's action at index t led into frame t)."""
    real = ModelSpec(family=model.spec.family, frame_shape=tuple(model.spec.frame_shape),
                     action_kind="discrete", action_dim=train.action_dim, feature_dim=1)
    n_latent = int(model.cfg.n_latent)
    most = min(max([*episodes, lag_episodes]), train.num_episodes)
    train_codes = episode_codes(model, train, range(most))
    test_codes = episode_codes(model, holdout, range(holdout.num_episodes))
    test = episode_pairs(holdout, test_codes)
    out: dict[str, Any] = {"chance": majority_fraction(test[0]), "test_transitions": int(test[1].numel()),
                           "per_episodes": {}}
    for n in episodes:
        used = min(int(n), train.num_episodes)
        fit = episode_pairs(train, train_codes[:used])
        out["per_episodes"][str(n)] = {"episodes": used, "transitions": int(fit[1].numel()),
                                       "accuracy": fitted_accuracy(real, n_latent, fit, test)}
    used = min(lag_episodes, train.num_episodes)
    out["lag_check"] = {str(lag): fitted_accuracy(real, n_latent,
                                                  episode_pairs(train, train_codes[:used], lag),
                                                  episode_pairs(holdout, test_codes, lag)) for lag in lags}
    return out


@torch.inference_mode()
def tokenizer_psnr(model: Any, data: SequenceDataset, max_frames: int = 512) -> float:
    """Mean PSNR (dB) of the tokenizer's reconstruction of up to `max_frames` frames of `data`
    (evenly spaced)."""
    rows = np.linspace(0, data.num_frames - 1, min(max_frames, data.num_frames)).round().astype(np.int64)
    frames = torch.from_numpy(np.ascontiguousarray(data.frames[rows]))  # (M, H, W, C)
    device = next(model.parameters()).device
    values = [psnr(model.tokenizer.decode(model.tokenizer.encode(part.to(device))).cpu(), part)
              for part in frames.split(64)]
    return float(torch.cat(values).mean())
