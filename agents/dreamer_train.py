"""Training loop of the Dreamer actor-critic inside a world model: `vwm train-agent --algo dreamer`.

Start states come from real contexts: each of the B imagination rows is an imagined episode
that begins at a real start context from the checkpoint's bank (or at a posterior state of
a real window, in the online loop) and continues across updates, so imagination reaches
states deep into episodes; a row is reset when the model predicts termination or the
episode reaches its time limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from agents.dreamer import DreamerAgent, imagine
from world_models.base import State, WorldModel, burn_in, reset_rows, select_rows
from world_models.checkpoint import ContextBank
from world_models.data import SequenceDataset


@dataclass
class DreamerTrainConfig:
    """Budget and schedule of imagination training."""

    updates: int = 1000
    """Actor-critic updates."""
    max_episode_steps: int = 500
    """Imagined episodes are reset after this many steps (the real task's time limit)."""
    terminate_threshold: float = 0.5
    """An imagined episode ends when the continue probability drops below this."""
    seed: int = 0
    """Seed of the imagination generator and context sampling."""


class ImaginedStarts:
    """B persistent imagined episodes used as start states for successive updates."""

    def __init__(
        self,
        model: WorldModel,
        bank: ContextBank,
        batch: int,
        max_episode_steps: int,
        terminate_threshold: float,
        rng: np.random.Generator,
    ) -> None:
        self.rng = rng
        self.max_episode_steps = max_episode_steps
        self.threshold = terminate_threshold
        self.device = next(model.parameters()).device
        self.bank_size = len(bank)
        with torch.no_grad():  # every context is burned in once; resets pick rows from it
            frames, actions = bank.frames.to(self.device), bank.actions.to(self.device)
            self.bank_state = burn_in(model, frames, actions)
        self.state = self._fresh(batch)
        self.elapsed = torch.zeros(batch, dtype=torch.long, device=self.device)

    def _fresh(self, count: int) -> State:
        index = torch.as_tensor(self.rng.integers(0, self.bank_size, size=count), device=self.device)
        return select_rows(self.bank_state, index)

    @torch.no_grad()
    def advance(self, end_state: State, continues: torch.Tensor) -> None:
        """Continue from the rollout's end; reset rows that ended or ran out of time.

        continues: (H, B) continue probabilities along the rollout.
        """
        horizon = continues.shape[0]
        ended = (continues < self.threshold).any(0)  # (B,)
        self.elapsed += horizon
        done = ended | (self.elapsed >= self.max_episode_steps)
        state = {k: v.detach() for k, v in end_state.items()}
        if done.any():
            state = reset_rows(state, done, self._fresh(int(done.sum())))
            self.elapsed[done] = 0
        self.state = state


class ReplayStarts:
    """Start states filtered from real replay windows (DreamerV3 starts imagination there).

    A pool of `pool` posterior states, one per random window of `length` real frames (1 to
    `context_len`, burned in by the padding rule of `world_models.base`), is
    built once (so the encoder runs once per pool); each call draws `batch` rows from it.
    """

    def __init__(self, model: WorldModel, dataset: SequenceDataset, batch: int, pool: int,
                 length: int, rng: np.random.Generator) -> None:
        self.batch, self.rng = batch, rng
        device = next(model.parameters()).device
        windows = dataset.sample(pool, length, rng).to(device)
        with torch.no_grad():
            self.pool = burn_in(model, windows.frames, windows.actions)
        self.size = pool
        self.device = device

    def __call__(self) -> State:
        index = torch.as_tensor(self.rng.integers(0, self.size, size=self.batch), device=self.device)
        return select_rows(self.pool, index)


def train_in_imagination(
    agent: DreamerAgent,
    model: WorldModel,
    starts: ImaginedStarts | Callable[[], State],
    updates: int,
    generator: torch.Generator,
    progress: bool = True,
    on_update: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Run `updates` actor-critic updates; returns the last metrics (with imagined steps)."""
    model.eval()
    metrics: dict[str, float] = {}
    imagined = 0
    bar = tqdm(range(updates), desc="dreamer", disable=not progress, leave=False)
    for i in bar:
        start = starts.state if isinstance(starts, ImaginedStarts) else starts()
        rollout, end = imagine(model, agent.actor, start, agent.cfg.horizon, generator, grad=agent.backprop)
        if isinstance(starts, ImaginedStarts):
            starts.advance(end, rollout.continues)
        metrics = agent.update(rollout)
        imagined += rollout.rewards.numel()
        metrics["imagined_steps"] = float(imagined)
        if on_update is not None:
            on_update(i, metrics)
        if i % 10 == 0:
            bar.set_postfix(ret=f"{metrics['imagined_return']:.3g}")
    return metrics


def make_starts(
    model: WorldModel, bank: ContextBank, agent: DreamerAgent, cfg: DreamerTrainConfig
) -> ImaginedStarts:
    """Persistent imagined episodes from the bank, sized by the agent's batch."""
    return ImaginedStarts(
        model,
        bank,
        agent.cfg.batch_size,
        cfg.max_episode_steps,
        cfg.terminate_threshold,
        np.random.default_rng(cfg.seed),
    )
