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
``horizon`` times. A plan is scored (`plan_returns`) as

    sum_t discount^t * (prod_{k<t} c_k) * r_t  +  discount^H * (prod_{k<H} c_k) * V(s_H)

with ``r_t``, ``c_t`` the reward and continue probability predicted after step ``t`` and the
optional bootstrap ``V`` a callable on the model's features.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

import numpy as np
import torch
from torch import Tensor

from world_models.base import ModelSpec, State, WorldModel, repeat_rows, state_batch_size
from world_models.filter import ModelFilter
from world_models.imagine import imagine
from world_models.sampling import Noise, TorchNoise, as_noise

PlannerMethod = Literal["random", "cem", "mppi"]
ValueFn = Callable[[Tensor], Tensor]
"""Maps features (M, F) to bootstrap values (M,)."""


@dataclass
class PlannerConfig:
    """Hyper-parameters of an MPC planner (parse one from text with `parse_planner_spec`)."""

    method: PlannerMethod = "cem"
    """``"random"`` (random shooting), ``"cem"`` (cross-entropy method) or ``"mppi"``."""
    horizon: int = 12
    """Length H of each imagined action sequence."""
    num_candidates: int = 256
    """Action sequences N imagined per env and per iteration."""
    iterations: int = 4
    """Refinement iterations of CEM/MPPI (random shooting always uses one)."""
    elite_fraction: float = 0.1
    """CEM: fraction of the candidates kept as elites (ignored when `num_elites` is set)."""
    num_elites: int | None = None
    """CEM: number of elites; overrides `elite_fraction`."""
    temperature: float = 0.5
    """MPPI: softmax temperature, in units of predicted return (lower = greedier)."""
    discount: float = 0.99
    """Discount of predicted rewards inside the horizon."""
    init_std: float = 1.0
    """Continuous actions: initial (CEM) or fixed (MPPI) sampling std, as a fraction of the
    half-range of the action bounds (of 1 for unbounded actions)."""
    min_std: float = 0.05
    """CEM, continuous: lower bound of the refitted std (same units as `init_std`)."""
    momentum: float = 0.1
    """CEM/MPPI: weight of the previous distribution when refitting (0 = replace it)."""
    warm_start: bool = True
    """CEM/MPPI: start each real step from the previous plan shifted by one step."""
    warm_start_mix: float = 0.5
    """Discrete warm start: weight of the uniform distribution mixed into the shifted plan,
    so a confident previous plan keeps exploring."""
    seed: int = 0
    """Seed of the planner's `torch.Generator` (candidate sampling and model noise)."""

    def __post_init__(self) -> None:
        method = _METHOD_ALIASES.get(str(self.method).lower())
        if method is None:
            raise ValueError(
                f"unknown planner method {self.method!r}; choose one of "
                f"{sorted(set(_METHOD_ALIASES.values()))}"
            )
        self.method = method  # type: ignore[assignment]
        for name in ("horizon", "num_candidates", "iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.elite_fraction <= 1.0:
            raise ValueError(f"elite_fraction must be in (0, 1], got {self.elite_fraction}")
        if self.num_elites is not None and not 1 <= self.num_elites <= self.num_candidates:
            raise ValueError(
                f"num_elites must be in [1, num_candidates={self.num_candidates}], "
                f"got {self.num_elites}"
            )
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if not 0.0 <= self.warm_start_mix <= 1.0:
            raise ValueError(f"warm_start_mix must be in [0, 1], got {self.warm_start_mix}")

    @property
    def elites(self) -> int:
        """The number of CEM elites."""
        if self.num_elites is not None:
            return self.num_elites
        return max(1, min(self.num_candidates, round(self.elite_fraction * self.num_candidates)))

    @property
    def imagined_steps_per_action(self) -> int:
        """Imagined model steps per env and real action: N x H (x iterations for CEM/MPPI)."""
        rounds = 1 if self.method == "random" else self.iterations
        return self.num_candidates * self.horizon * rounds


_METHOD_ALIASES: dict[str, str] = {
    "random": "random", "rs": "random", "random_shooting": "random", "shooting": "random",
    "cem": "cem", "mppi": "mppi",
}
PLANNER_NAMES: frozenset[str] = frozenset(_METHOD_ALIASES) - {"random"}
"""Names that start a planner spec (``random`` alone is the random policy, not a planner)."""

_KEY_ALIASES: dict[str, str] = {
    "candidates": "num_candidates", "n": "num_candidates", "h": "horizon",
    "iters": "iterations", "elites": "num_elites", "temp": "temperature", "gamma": "discount",
}


# ----------------------------------------------------------------------------------- spec text


def parse_planner_spec(spec: str) -> PlannerConfig:
    """``"cem:horizon=12,candidates=256"`` -> `PlannerConfig`.

    The method comes before the colon (``random``/``rs``, ``cem``, ``mppi``); after it, comma
    separated ``key=value`` pairs name `PlannerConfig` fields or the aliases ``candidates``,
    ``n``, ``h``, ``iters``, ``elites``, ``temp``, ``gamma``. Unknown keys raise `ValueError`.
    """
    text = spec.strip()
    method, _, rest = text.partition(":")
    if not method:
        raise ValueError(f"planner spec {spec!r} names no method (e.g. 'cem:horizon=12')")
    hints = get_type_hints(PlannerConfig)
    names = [f.name for f in fields(PlannerConfig)]
    values: dict[str, Any] = {"method": method.strip()}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip().lower()
        if not eq:
            raise ValueError(f"planner spec {spec!r}: expected key=value, got {item!r}")
        key = _KEY_ALIASES.get(key, key)
        if key not in names or key == "method":
            valid = sorted(set(names[1:]) | set(_KEY_ALIASES))
            raise ValueError(
                f"planner spec {spec!r}: unknown key {item.partition('=')[0].strip()!r}; "
                f"valid keys: {', '.join(valid)}"
            )
        values[key] = _parse_value(key, raw.strip(), hints[key], spec)
    return PlannerConfig(**values)


def _parse_value(key: str, raw: str, hint: Any, spec: str) -> Any:
    types = get_args(hint) or (hint,)  # int | None -> (int, NoneType)
    if raw.lower() == "none" and type(None) in types:
        return None
    try:
        if bool in types:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if int in types:
            return int(raw)
        if float in types:
            return float(raw)
    except ValueError:
        raise ValueError(
            f"planner spec {spec!r}: bad value {raw!r} for {key} (expected {hint})"
        ) from None
    return raw


def format_planner_spec(cfg: PlannerConfig) -> str:
    """Inverse of `parse_planner_spec`: ``method:key=value,...`` with non-default fields only."""
    default = PlannerConfig(method=cfg.method)
    items = [
        f"{f.name}={getattr(cfg, f.name)}"
        for f in fields(PlannerConfig)
        if f.name != "method" and getattr(cfg, f.name) != getattr(default, f.name)
    ]
    return f"{cfg.method}:{','.join(items)}" if items else str(cfg.method)


# ------------------------------------------------------------------------------------ the maths


def plan_returns(
    rewards: Tensor, continues: Tensor, discount: float, bootstrap: Tensor | None = None
) -> Tensor:
    """Predicted return of each imagined plan.

    rewards, continues: (H, M), received after each of the H steps; bootstrap: (M,) value of
    the last state or None. Reward ``t`` counts with weight ``discount^t * prod_{k<t} c_k``
    (the reward on arriving at a terminal state still counts), the bootstrap with
    ``discount^H * prod_{k<H} c_k``. Returns (M,).
    """
    horizon = rewards.shape[0]
    alive = torch.cumprod(continues, dim=0)  # (H, M): prod_{k<=t} c_k
    alive_before = torch.cat([torch.ones_like(alive[:1]), alive[:-1]], dim=0)  # (H, M)
    powers = discount ** torch.arange(horizon, device=rewards.device, dtype=rewards.dtype)  # (H,)
    total = (powers[:, None] * alive_before * rewards).sum(dim=0)  # (M,)
    if bootstrap is not None:
        total = total + discount**horizon * alive[-1] * bootstrap
    return total


def elite_weights(returns: Tensor, num_elites: int) -> Tensor:
    """CEM weights (B, N): ``1 / num_elites`` on the top-``num_elites`` returns of each row."""
    top = returns.topk(num_elites, dim=-1).indices  # (B, k)
    weights = torch.zeros_like(returns)  # (B, N)
    return weights.scatter_(-1, top, 1.0 / num_elites)


def mppi_weights(returns: Tensor, temperature: float) -> Tensor:
    """MPPI weights (B, N): ``softmax(returns / temperature)`` over the candidates.

    Williams et al. 2017 weight samples by ``exp(-cost / lambda)``; here cost = -return.
    """
    return torch.softmax(returns / temperature, dim=-1)


def weighted_gaussian(actions: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Weighted mean and std of continuous plans: actions (B, N, H, A), weights (B, N) summing
    to one -> mean, std (B, H, A)."""
    w = weights[:, :, None, None]  # (B, N, 1, 1)
    mean = (w * actions).sum(dim=1)  # (B, H, A)
    var = (w * (actions - mean[:, None]) ** 2).sum(dim=1)  # (B, H, A)
    return mean, var.clamp_min(0).sqrt()


def weighted_categorical(actions: Tensor, weights: Tensor, num_actions: int) -> Tensor:
    """Weighted action frequencies of discrete plans: actions (B, N, H) int64, weights (B, N)
    summing to one -> probabilities (B, H, K)."""
    onehot = torch.nn.functional.one_hot(actions, num_actions).to(weights.dtype)  # (B, N, H, K)
    return (weights[:, :, None, None] * onehot).sum(dim=1)  # (B, H, K)


def sample_categorical(probs: Tensor, num: int, noise: Noise | torch.Generator | None) -> Tensor:
    """``num`` inverse-CDF samples per row (`Noise.categorical`): probs (B, H, K) -> int64 (B, num, H)."""
    expanded = probs[:, None].expand(-1, num, -1, -1)  # (B, N, H, K)
    return as_noise(noise).categorical(expanded)


# ---------------------------------------------------------------------------------- the planner


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
        return actions[torch.arange(batch, device=self.device), best, 0]

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
