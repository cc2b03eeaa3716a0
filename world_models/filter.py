"""Track a model state on a *real* (vectorised) environment by filtering its frames.

Used wherever a policy trained in imagination acts on the real task: the latent-observation
wrapper, planners and the Dreamer actor all keep a `ModelFilter` per batch of real envs.

It follows the padding rule of `world_models.base`: an episode is burned in on its first
real frame (a one-frame context, `burn_in`) and every later frame is folded in with
`observe`. Burn-in being prefix-consistent, the features after frames f_0..f_t equal those
of an imagined env reset on the context f_0..f_t (t < context_len) and, beyond, those of
the imagined env stepped from that context with the same frames observed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from world_models.base import State, WorldModel, burn_in, reset_rows, state_batch_size


class ModelFilter:
    """Keeps `state` (B rows) in sync with B real envs: reset rows on episode start, else observe."""

    def __init__(self, model: WorldModel, device: torch.device | str | None = None) -> None:
        self.model = model
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.state: State | None = None

    def _to_tensor(self, frames: np.ndarray | Tensor) -> Tensor:
        return torch.as_tensor(np.asarray(frames), device=self.device)

    @torch.inference_mode()
    def update(
        self,
        frames: np.ndarray | Tensor,
        prev_actions: np.ndarray | Tensor | None,
        episode_start: np.ndarray | Tensor,
    ) -> State:
        """Fold the newest real frames (B, H, W, C) uint8 into the state.

        Rows where `episode_start` is true are burned in afresh on their frame (the first of
        their episode, as a one-frame context); the others
        observe their frame reached by `prev_actions` (B,) or (B, A). A change in the
        number of rows starts every row afresh.
        """
        frames = self._to_tensor(frames)
        start = torch.as_tensor(np.asarray(episode_start), dtype=torch.bool, device=self.device)
        batch = frames.shape[0]
        if self.state is None or start.all() or state_batch_size(self.state) != batch:
            self.state = burn_in(self.model, frames)
            return self.state
        spec = self.model.spec
        actions = torch.as_tensor(np.asarray(prev_actions), device=self.device).to(spec.action_dtype())
        actions = actions.reshape((batch,) + spec.action_shape())
        state = self.model.observe(self.state, frames, actions)
        if start.any():
            fresh = burn_in(self.model, frames[start])
            state = reset_rows(state, start, fresh)
        self.state = state
        return state

    def features(self) -> Tensor:
        """(B, F) features of the current state."""
        assert self.state is not None, "call update() first"
        return self.model.features(self.state)
