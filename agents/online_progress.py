"""Progress of the online loop: one bar over the gradient updates, the work that takes the time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from agents.online import OnlineConfig


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
