"""Termination fidelity on held-out episodes: windows that end at each episode's last frame."""

from __future__ import annotations

import numpy as np
import torch

from agents.online_eval import termination_fidelity
from tests.synthetic import SyntheticWorldModel


def _episode(model: SyntheticWorldModel, positions: list[float], action: int, ends: bool) -> dict:
    state = {"pos": torch.tensor(positions)[:, None], "t": torch.zeros(len(positions), 1)}
    frames = model.decode(state).numpy()  # (T, H, W, C)
    n = len(positions)
    terminated = np.zeros(n, bool)
    terminated[-1] = ends
    return {"frames": frames, "actions": np.array([0] + [action] * (n - 1), np.int64),
            "rewards": np.zeros(n, np.float32), "terminated": terminated}


def test_termination_fidelity_counts_real_and_predicted_ends():
    model = SyntheticWorldModel(speed=0.25, wall=0.9)  # ends when the column reaches the wall
    pushed = _episode(model, [0.0, 0.25, 0.5, 0.75, 0.9], action=2, ends=True)
    still = _episode(model, [0.0] * 6, action=1, ends=False)  # truncated, never ends
    metrics = termination_fidelity(model, [pushed, still], context_len=2, horizon=15)
    # pushed: burn-in on 2 frames, 3 scored steps; still: 2 + 4
    assert metrics["termination_steps"] == 7 and metrics["termination_count"] == 1
    assert metrics["termination_recall"] == 1.0 and metrics["termination_precision"] == 1.0
    assert metrics["false_termination_rate"] == 0.0
    # a horizon shorter than the episode scores only its last steps
    assert termination_fidelity(model, [pushed], 2, horizon=1)["termination_steps"] == 1
    # nothing to score: no metrics; nothing predicted: no precision
    assert termination_fidelity(model, [], 2, 15) == {}
    assert "termination_precision" not in termination_fidelity(model, [still], 2, 15)
