"""Model-predictive control over a `WorldModel`: random shooting, CEM and MPPI.

Every real step the planner imagines many action sequences of length ``horizon`` from the
model state tracked on the real env (a `ModelFilter`), scores each by its predicted discounted
return, and executes the first action of the chosen plan, then re-plans (receding horizon).

- Random shooting: Nagabandi et al. 2018, "Neural Network Dynamics for Model-Based Deep
  Reinforcement Learning with Model-Free Fine-Tuning".
- Cross-entropy method: Rubinstein 1999, "The Cross-Entropy Method for Combinatorial and
  Continuous Optimization"; as an MPC optimiser, PETS (Chua et al. 2018).
- MPPI: Williams et al. 2017, "Information Theoretic MPC for Model-Based Reinforcement
  Learning".

All candidates of all envs are imagined in ONE batched rollout: the (B,) filter state is
repeated to (B * N,) rows (row ``b * N + n`` is candidate ``n`` of env ``b``) and stepped
``horizon`` times; each plan is scored by its predicted discounted return.

The module is split by concern:

- `agents.planning` (this module): the `Planner` agent (filtering, warm starts, the
  optimiser loop);
- `agents.planning_config`: `PlannerConfig` and its text spec (`parse_planner_spec`,
  `format_planner_spec`);
- `agents.planning_math`: the pure maths (`plan_returns`, CEM/MPPI weights and refits).

Their public names are re-exported here, so ``from agents.planning import X`` keeps working.
`plan_action` is the one-call form for users (the seed project's ``plan(obs, horizon)``):
real frames in, the first action and the plan out, for any family.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from agents.planning_config import (
    PLANNER_NAMES,
    PlannerConfig,
    PlannerMethod,
    ValueFn,
    format_planner_spec,
    parse_planner_spec,
)
from agents.planning_math import (
    elite_weights,
    mppi_weights,
    plan_returns,
    sample_categorical,
    weighted_categorical,
    weighted_gaussian,
)
from world_models.base import ModelSpec, State, WorldModel, repeat_rows, state_batch_size
from world_models.filter import ModelFilter
from world_models.imagine import burn_in_frames, imagine
from world_models.sampling import TorchNoise

__all__ = [
    "PLANNER_NAMES",
    "PlanResult",
    "Planner",
    "PlannerConfig",
    "PlannerMethod",
    "ValueFn",
    "elite_weights",
    "format_planner_spec",
    "mppi_weights",
    "parse_planner_spec",
    "plan_action",
    "plan_returns",
    "sample_categorical",
    "weighted_categorical",
    "weighted_gaussian",
]


class Planner:
    """MPC agent with an SB3-like `predict`: plans in a world model, acts on real frames.

    Keeps a `ModelFilter` over the real envs' frames and the last actions it took (fed to
    ``observe`` next call). Discrete actions: CEM refits a categorical per time step from elite
    frequencies; MPPI uses the softmax-weighted action frequencies (weighted action
    probabilities) as the next categorical. Continuous actions: CEM refits a diagonal Gaussian
    (std floored at `min_std`), MPPI moves the mean to the weighted average with a fixed std.
    With ``deterministic=True`` CEM/MPPI act with the mode of the final distribution's first
    step (the mean, or the most probable action) and random shooting with the first action of
    the best candidate; ``deterministic=False`` samples the first action from the final
    distribution (random shooting is unchanged).
    """

    def __init__(
        self,
        model: WorldModel,
        cfg: PlannerConfig | None = None,
        value_fn: ValueFn | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.model = model
        self.cfg = cfg or PlannerConfig()
        self.value_fn = value_fn
        self.filter = ModelFilter(model, device)
        self.device = self.filter.device
        spec: ModelSpec = model.spec
        self.spec = spec
        self.discrete = spec.action_kind == "discrete"
        if not self.discrete:
            self._low, self._high = self._bounds(spec)
            finite = torch.isfinite(self._low) & torch.isfinite(self._high)
            self._mid = torch.where(finite, (self._low + self._high) / 2, 0.0)  # (A,)
            self._half = torch.where(finite, (self._high - self._low) / 2, 1.0)  # (A,)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.cfg.seed)
        self.noise = TorchNoise(self.generator)
        """Candidate sampling and model noise, drawn from `generator`."""
        self._plan: Tensor | None = None  # warm start: (B, H, A) mean or (B, H, K) probs
        self.last_plan: Tensor | None = None
        """Action sequence (B, H) or (B, H, A) chosen by the last `plan` call: the best
        candidate (random shooting) or each step's mode of the final distribution (CEM/MPPI)."""
        self._last_actions: np.ndarray | None = None
        self._predicted_end: np.ndarray | None = None  # (B,) bool, for reset detection

    # -- public API ------------------------------------------------------------------------

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        cfg: PlannerConfig | None = None,
        device: str | torch.device = "cpu",
        value_fn: ValueFn | None = None,
    ) -> Planner:
        """A planner over the world model stored in a checkpoint folder."""
        from world_models.checkpoint import load_checkpoint

        checkpoint = load_checkpoint(path, device=device)
        return cls(checkpoint.model, cfg, value_fn=value_fn, device=device)

    @property
    def imagined_steps_per_action(self) -> int:
        """Imagined model steps per env and real action (see `PlannerConfig`)."""
        return self.cfg.imagined_steps_per_action

    def seed(self, seed: int) -> None:
        """Reseed the planner's generator."""
        self.generator.manual_seed(seed)

    def reset(self) -> None:
        """Forget the tracked state: the next `predict` starts new episodes in every env."""
        self.filter.state = None
        self._plan = None
        self._last_actions = None
        self._predicted_end = None

    def predict(
        self,
        observation: np.ndarray | Tensor,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """Actions for real frames (n_envs, H, W, C) or (H, W, C) uint8, SB3-style.

        ``episode_start`` (n_envs,) bool marks envs whose frame starts a new episode. When it
        is None, the first call (or one after `reset` or with a new number of envs) starts
        every env, and later calls start an env when the model predicted, on the previous
        call, that the chosen action ends its episode. Time-limit truncations cannot be seen
        that way: pass ``episode_start`` or call `reset` for them (this detection costs one
        extra imagined step per env and action, not counted in `imagined_steps_per_action`).
        ``state`` is ignored (no recurrent state is handed out) and None is returned for it.
        Returns int64 (n_envs,) or float32 (n_envs, A) actions, unbatched for a single frame.
        """
        frames = np.asarray(observation.cpu() if isinstance(observation, Tensor) else observation)
        single = frames.ndim == 3
        if single:
            frames = frames[None]
        if frames.ndim != 4 or tuple(frames.shape[1:]) != tuple(self.spec.frame_shape):
            raise ValueError(
                f"expected frames (n_envs, *{self.spec.frame_shape}) or {self.spec.frame_shape}, "
                f"got {frames.shape}"
            )
        batch = frames.shape[0]
        tracked = self.filter.state
        fresh = tracked is None or state_batch_size(tracked) != batch
        auto = episode_start is None
        if fresh:
            starts = np.ones(batch, dtype=bool)
            self._plan = None
        elif auto:
            assert self._predicted_end is not None
            starts = self._predicted_end.copy()
        else:
            starts = np.asarray(episode_start, dtype=bool).reshape(batch)
        model_state = self.filter.update(frames, self._last_actions, starts)
        actions = self.plan(model_state, deterministic=deterministic, episode_start=starts)
        if auto:
            self._predicted_end = self._predict_end(model_state, actions)
        else:
            self._predicted_end = np.zeros(batch, dtype=bool)
        out = actions.cpu().numpy()
        self._last_actions = out.copy()
        return (out[0] if single else out), None

    @torch.inference_mode()
    def plan(
        self,
        state: State,
        deterministic: bool = True,
        episode_start: np.ndarray | Tensor | None = None,
    ) -> Tensor:
        """First actions (B,) or (B, A) of the plans optimised from a model state of B rows.

        ``episode_start`` (B,) bool drops the warm-start plan of those rows.
        """
        batch = state_batch_size(state)
        if self.cfg.method == "random":
            return self._random_shooting(state, batch)
        return self._refine(state, self._initial_plan(batch, episode_start), deterministic)

    # -- optimisers ------------------------------------------------------------------------

    def _score(self, state: State, actions: Tensor) -> Tensor:
        """Predicted returns (B, N) of plans (B, N, H, ...) from a (B,)-row state."""
        batch, num = actions.shape[:2]
        start = repeat_rows(state, num)  # (B * N, ...)
        flat = actions.reshape((batch * num,) + actions.shape[2:])  # (B * N, H, ...)
        out = imagine(self.model, start, flat, noise=self.noise)  # rewards, continues (H, B * N)
        bootstrap = None
        if self.value_fn is not None:
            bootstrap = self.value_fn(self.model.features(out.state)).reshape(-1).float()  # (B * N,)
        returns = plan_returns(out.rewards, out.continues, self.cfg.discount, bootstrap)  # (B * N,)
        return returns.reshape(batch, num)

    def _random_shooting(self, state: State, batch: int) -> Tensor:
        cfg = self.cfg
        shape = (batch, cfg.num_candidates, cfg.horizon)
        if self.discrete:
            actions = self.noise.randint(self.spec.action_dim, shape, self.device)  # (B, N, H)
        else:
            u = self.noise.uniform(shape + (self.spec.action_dim,), self.device)  # (B, N, H, A)
            actions = self._mid + self._half * (2 * u - 1)
        returns = self._score(state, actions)  # (B, N)
        best = returns.argmax(dim=1)  # (B,)
        self.last_plan = actions[torch.arange(batch, device=self.device), best]  # (B, H[, A])
        return self.last_plan[:, 0]

    def _refine(self, state: State, plan: Tensor, deterministic: bool) -> Tensor:
        """CEM / MPPI iterations from ``plan``: (B, H, A) mean or (B, H, K) probabilities."""
        cfg = self.cfg
        std = torch.full_like(plan, cfg.init_std) * self._half if not self.discrete else None
        min_std = cfg.min_std * self._half if not self.discrete else None
        for _ in range(cfg.iterations):
            if self.discrete:
                actions = sample_categorical(plan, cfg.num_candidates, self.noise)  # (B,N,H)
            else:
                noise = self.noise.normal(
                    (plan.shape[0], cfg.num_candidates) + tuple(plan.shape[1:]), self.device
                )  # (B, N, H, A)
                actions = self._clip(plan[:, None] + std[:, None] * noise)
            returns = self._score(state, actions)  # (B, N)
            if cfg.method == "cem":
                weights = elite_weights(returns, cfg.elites)
            else:
                weights = mppi_weights(returns, cfg.temperature)
            if self.discrete:
                new = weighted_categorical(actions, weights, self.spec.action_dim)  # (B, H, K)
                plan = cfg.momentum * plan + (1 - cfg.momentum) * new
            else:
                mean, new_std = weighted_gaussian(actions, weights)  # (B, H, A)
                plan = cfg.momentum * plan + (1 - cfg.momentum) * mean
                if cfg.method == "cem":  # MPPI keeps its exploration noise fixed
                    std = (cfg.momentum * std + (1 - cfg.momentum) * new_std).maximum(min_std)
        self._plan = plan
        self.last_plan = plan.argmax(dim=-1) if self.discrete else plan.clone()  # (B, H[, A])
        first = plan[:, 0]  # (B, K) or (B, A)
        if self.discrete:
            if deterministic:
                return first.argmax(dim=-1)
            return sample_categorical(first[:, None], 1, self.noise)[:, 0, 0]
        if deterministic:
            return first
        noise = self.noise.normal(tuple(first.shape), self.device)
        return self._clip(first + std[:, 0] * noise)

    # -- plumbing --------------------------------------------------------------------------

    def _initial_plan(self, batch: int, episode_start: np.ndarray | Tensor | None) -> Tensor:
        """The distribution CEM/MPPI start from, warm-started from the previous plan."""
        cfg = self.cfg
        if self.discrete:
            k = self.spec.action_dim
            blank = torch.full((batch, cfg.horizon, k), 1.0 / k, device=self.device)
        else:
            blank = self._mid.expand(batch, cfg.horizon, -1).clone()  # (B, H, A)
        prev = self._plan
        if not cfg.warm_start or prev is None or prev.shape != blank.shape:
            return blank
        warm = torch.cat([prev[:, 1:], blank[:, -1:]], dim=1)  # shift by one step
        if self.discrete:
            warm = (1 - cfg.warm_start_mix) * warm + cfg.warm_start_mix * blank
        if episode_start is not None:
            start = torch.as_tensor(np.asarray(episode_start), dtype=torch.bool,
                                    device=self.device).reshape(batch)
            warm[start] = blank[start]
        return warm

    def _predict_end(self, state: State, actions: Tensor) -> np.ndarray:
        """Whether the model expects each env's episode to end after `actions` (B,) bool."""
        with torch.inference_mode():
            transition = self.model.step(state, actions, self.noise)
        return (transition.cont_prob < 0.5).cpu().numpy()

    def _clip(self, actions: Tensor) -> Tensor:
        return torch.maximum(torch.minimum(actions, self._high), self._low)

    def _bounds(self, spec: ModelSpec) -> tuple[Tensor, Tensor]:
        dim = spec.action_dim
        low = spec.action_low if spec.action_low is not None else (-math.inf,) * dim
        high = spec.action_high if spec.action_high is not None else (math.inf,) * dim
        return (torch.tensor(low, dtype=torch.float32, device=self.device),
                torch.tensor(high, dtype=torch.float32, device=self.device))


class PlanResult(NamedTuple):
    """What `plan_action` returns, in the type (numpy or torch) of the frames given."""

    action: Any
    """The action to take now: int64 () or float32 (A,), batched (B,) or (B, A)."""
    plan: Any
    """The planned action sequence (H,) or (H, A), batched (B, H) or (B, H, A) (see
    `Planner.last_plan`); its first step is `action` when deterministic."""


@torch.inference_mode()
def plan_action(
    model: WorldModel,
    obs: np.ndarray | Tensor,
    horizon: int = 12,
    method: PlannerMethod = "cem",
    context_actions: np.ndarray | Tensor | None = None,
    seed: int = 0,
    deterministic: bool = True,
    value_fn: ValueFn | None = None,
    **options: Any,
) -> PlanResult:
    """Plan from real frames with a `Planner` (random shooting, CEM or MPPI) over any model.

    `obs` and `context_actions` as in `world_models.imagine.burn_in_frames`: one frame
    (H, W, C), a context (T, H, W, C) or a batch (B, T, H, W, C). `options` are further
    `PlannerConfig` fields (``num_candidates``, ``iterations``, ``discount``, ...). The same
    `seed` gives the same plan.
    """
    cfg = PlannerConfig(method=method, horizon=horizon, seed=seed, **options)
    planner = Planner(model, cfg, value_fn=value_fn)
    state, batched = burn_in_frames(model, obs, context_actions)
    action = planner.plan(state, deterministic=deterministic)
    plan = planner.last_plan
    assert plan is not None
    if not batched:
        action, plan = action[0], plan[0]
    if not isinstance(obs, Tensor):
        action, plan = action.cpu().numpy(), plan.cpu().numpy()
    return PlanResult(action, plan)
