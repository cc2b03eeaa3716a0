"""Termination fidelity of the online loop's world model on held-out real episodes.

At each evaluation the loop checks whether the model's continue head predicts the real
endings of the episodes it has just collected, before it trains on them (so they are held
out). Each episode gives one window that ends at its last frame: the model burns in on up
to ``context_len`` real frames and imagines the rest of the window with the real actions
(`world_models.evaluation.open_loop_rollout`); a predicted end is a continue probability
below 0.5, the rule imagined episodes end by.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from world_models.base import WorldModel
from world_models.batch import SequenceBatch
from world_models.evaluation import open_loop_rollout, termination_precision


def termination_fidelity(model: WorldModel, episodes: list[dict[str, np.ndarray]], context_len: int,
                         horizon: int, seed: int = 0) -> dict[str, float]:
    """Termination recall (of real ends, the fraction predicted), precision (of predicted
    ends, the fraction real) and false-termination rate on model-aligned `episodes`.

    Each episode is scored on its last ``min(horizon, T - context)`` steps after a burn-in on
    the ``context = min(context_len, T - 1)`` frames before them. Recall is left out when no
    episode terminated, precision when no end was predicted. Also returns the number of
    real ends (``termination_count``) and of scored steps (``termination_steps``).
    """
    groups: dict[tuple[int, int], list[dict[str, np.ndarray]]] = defaultdict(list)
    for episode in episodes:
        length = len(episode["frames"])
        if length >= 2:
            context = min(context_len, length - 1)
            groups[(context, min(horizon, length - context))].append(episode)
    if not groups:
        return {}
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    predicted, real = [], []
    for (context, steps), group in sorted(groups.items()):
        window = context + steps

        def stack(key: str, group: list[dict[str, np.ndarray]] = group, window: int = window) -> torch.Tensor:
            return torch.as_tensor(np.stack([e[key][-window:] for e in group]))  # (B, window, ...)

        terminated = stack("terminated")  # (B, window)
        batch = SequenceBatch(stack("frames"), stack("actions"), stack("rewards"), terminated,
                              torch.zeros_like(terminated)).to(device)
        _, _, continues = open_loop_rollout(model, batch, context, generator)  # (B, steps)
        predicted.append((continues < 0.5).flatten().cpu())
        real.append(terminated[:, context:].flatten())
    predicted_end, terminated = torch.cat(predicted), torch.cat(real)  # (N,) each
    metrics = {"termination_count": float(terminated.sum()), "termination_steps": float(len(terminated))}
    if terminated.any():
        metrics["termination_recall"] = float(predicted_end[terminated].float().mean())
    if predicted_end.any():
        metrics["termination_precision"] = termination_precision(
            predicted_end, terminated, torch.ones_like(terminated))
    if (~terminated).any():
        metrics["false_termination_rate"] = float(predicted_end[~terminated].float().mean())
    return metrics
