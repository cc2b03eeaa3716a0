"""The batched imagination core shared by every imagined-env front end.

`ImaginationCore` holds a world model, its bank of start contexts, a device, a per-row
`world_models.sampling.RowGenerator` (the model's noise) and B rows of model state. Every
call works on all rows at once (one `model.step`, one `features`/`decode`), under
`torch.inference_mode`; numpy conversion happens once per call. The front ends
(`WorldModelEnv`, `WorldModelVectorEnv`, `WorldModelSB3VecEnv`) only add their API
conventions on top.

Seeding scheme
--------------
* Each row has an integer *key* and an episode counter. Seeding row i with seed s sets its
  key to s and its counter to 0. The start context of row i's k-th episode is
  ``splitmix64(key, k) % len(bank)``: a vectorised hash, so choosing contexts for any set
  of rows needs no per-row generator and no Python loop.
* A vector env reset with ``seed=s`` seeds row i with ``s + i`` (a list of seeds is used as
  is); a single env reset with ``seed=s`` seeds its one row with s. So row i of a vector
  env starts every episode (autoresets included) from the same context as a single env
  reset with ``seed=s + i`` and reset again after each of its episodes.
* The imagination noise (the model's sampling in `step`) comes from a `RowGenerator`:
  counter-based random numbers keyed by each row's seed key, so the noise of row i never
  depends on the other rows. Consequently row i of a vector env reset with ``seed=s``
  reproduces, step for step, a single env reset with ``seed=s + i`` given the same actions,
  and the same seed and actions always give the same trajectories.

Loading, the Gymnasium spaces and the validation of actions and contexts live in
`video_envs.imagination_io`; their public names are re-exported here, so
``from video_envs.imagination_core import X`` keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from video_envs.imagination_io import (
    DEFAULT_MAX_EPISODE_STEPS,
    ImaginationSource,
    action_space_from_spec,
    as_context_bank,
    check_real_spaces,
    latent_space,
    load_source,
    pixel_space,
    task_time_limit,
    validate_actions,
    validate_context,
)
from world_models.base import State, WorldModel, burn_in, repeat_rows, reset_rows
from world_models.checkpoint import ContextBank
from world_models.device import resolve_device
from world_models.sampling import RowGenerator

__all__ = [
    "DEFAULT_MAX_EPISODE_STEPS",
    "OBS_MODES",
    "CoreStep",
    "ImaginationCore",
    "ImaginationSource",
    "ObsMode",
    "action_space_from_spec",
    "as_context_bank",
    "build_core",
    "check_real_spaces",
    "context_indices",
    "latent_space",
    "load_source",
    "pixel_space",
    "seeds_for_rows",
    "splitmix64",
    "task_time_limit",
    "validate_actions",
    "validate_context",
]

ObsMode = Literal["pixels", "latent"]
OBS_MODES: tuple[str, ...] = ("pixels", "latent")

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


# ------------------------------------------------------------------ seeding helpers
def splitmix64(x: np.ndarray) -> np.ndarray:
    """Vectorised splitmix64 finaliser of uint64 values."""
    with np.errstate(over="ignore"):
        z = (x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def context_indices(keys: np.ndarray, counts: np.ndarray, bank_size: int) -> np.ndarray:
    """Context index of episode `counts` (B,) of rows with `keys` (B,): a hash, mod bank size."""
    with np.errstate(over="ignore"):
        mixed = splitmix64(keys.astype(np.uint64)) ^ (
            counts.astype(np.uint64) * np.uint64(0xD1B54A32D192ED03)
        )
    return (splitmix64(mixed) % np.uint64(bank_size)).astype(np.int64)


# ------------------------------------------------------------------ the core
class CoreStep(NamedTuple):
    """Result of one batched step (numpy, one entry per row)."""

    obs: np.ndarray
    """(B, H, W, C) uint8 or (B, F) float32."""
    reward: np.ndarray
    """(B,) float32."""
    terminated: np.ndarray
    """(B,) bool: continue probability below the threshold."""
    truncated: np.ndarray
    """(B,) bool: the time limit was reached."""
    cont_prob: np.ndarray
    """(B,) float32."""


class ImaginationCore:
    """B rows of imagined episodes stepped together (see the module docstring for seeding).

    Resets from the bank reuse burned-in start states (`cache_contexts`), so an autoreset
    costs a gather instead of running the encoder over a whole context.
    """

    def __init__(
        self,
        model: WorldModel,
        contexts: ContextBank,
        num_rows: int,
        obs_mode: ObsMode = "pixels",
        device: str | torch.device = "cpu",
        max_episode_steps: int = DEFAULT_MAX_EPISODE_STEPS,
        terminate_threshold: float = 0.5,
        cache_contexts: bool = True,
    ) -> None:
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
        if num_rows < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_rows}")
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        self.model = model
        self.spec = model.spec
        self.device = resolve_device(device)
        self.model.to(self.device)
        self.contexts = contexts
        self.num_rows = num_rows
        self.obs_mode: ObsMode = obs_mode
        self.max_episode_steps = int(max_episode_steps)
        self.terminate_threshold = float(terminate_threshold)
        self.generator = RowGenerator(num_rows, self.device)
        """Per-row imagination noise: row i depends only on its own seed key (see seeding)."""
        self.keys = np.zeros(num_rows, dtype=np.uint64)  # (B,) per-row seed keys
        self.counts = np.zeros(num_rows, dtype=np.int64)  # (B,) episodes started per row
        self.elapsed = np.zeros(num_rows, dtype=np.int64)  # (B,) steps in the current episode
        self.last_context = np.full(num_rows, -1, dtype=np.int64)  # (B,) bank index, -1 if explicit
        self.state: State | None = None
        self.cache_contexts = cache_contexts
        self._cache: State | None = None  # (N, ...) burned-in states of the bank contexts
        self._cached = np.zeros(len(contexts), dtype=bool)  # (N,) which rows of the cache are valid
        self._cache_version: tuple[int, ...] | None = None
        self.action_space = action_space_from_spec(self.spec)
        if obs_mode == "pixels":
            self.observation_space: spaces.Box = pixel_space(self.spec)
        else:
            self.observation_space = latent_space(self.spec.feature_dim)

    # ---------------------------------------------------------------- seeding
    def seed_rows(self, mask: np.ndarray, keys: np.ndarray) -> None:
        """Give rows `mask` (B,) bool the seed keys `keys` (n_true,) and restart their episode count."""
        self.keys[mask] = np.asarray([int(k) % 2**64 for k in keys], dtype=np.uint64)
        self.counts[mask] = 0
        signed = torch.from_numpy(self.keys[mask].view(np.int64).copy())
        self.generator.seed_rows(torch.from_numpy(np.asarray(mask, dtype=bool)), signed)

    # ---------------------------------------------------------------- reset / observe
    @torch.inference_mode()
    def reset_rows(
        self, mask: np.ndarray | None = None, context: tuple[Tensor, Tensor] | None = None
    ) -> None:
        """Burn in rows `mask` (B,) bool (all if None) on new start contexts, in one batch.

        Without `context`, each row draws its next context from the bank (see seeding);
        `context` is frames (R, T, H, W, C) uint8 and actions, R = 1 (broadcast) or n_true.
        """
        mask = np.ones(self.num_rows, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        n = int(mask.sum())
        if n == 0:
            return
        if context is None:
            idx = context_indices(self.keys[mask], self.counts[mask], len(self.contexts))  # (n,)
            self.last_context[mask] = idx
            fresh = self._bank_states(idx)
        else:
            frames, actions = context
            if frames.shape[0] not in (1, n):
                raise ValueError(f"context has {frames.shape[0]} rows, {n} rows are being reset")
            fresh = self._burn_in(frames, actions)
            if frames.shape[0] == 1 and n > 1:
                fresh = repeat_rows(fresh, n)
            self.last_context[mask] = -1
        self.counts[mask] += 1
        self.elapsed[mask] = 0
        # episode k of a row draws its noise from counter k << 32 on: independent of how
        # many steps earlier episodes (or discarded autoreset steps) took
        rows = torch.from_numpy(mask).to(self.device)
        self.generator.counters[rows] = torch.from_numpy(self.counts[mask] << 32).to(self.device)
        if self.state is None or n == self.num_rows:
            self.state = fresh
        else:
            self.state = reset_rows(self.state, torch.from_numpy(mask).to(self.device), fresh)

    def _burn_in(self, frames: Tensor, actions: Tensor) -> State:
        return burn_in(self.model, frames.to(self.device), actions.to(self.device))

    def _params_version(self) -> tuple[int, ...]:
        """In-place version counters of the parameters and buffers, and their identities
        (a version of -1 for inference tensors, which cannot change outside inference mode)."""
        tensors = [*self.model.parameters(), *self.model.buffers()]
        versions = []
        for tensor in tensors:
            try:
                versions.append(tensor._version)
            except RuntimeError:
                versions.append(-1)
        return (*versions, *(id(t) for t in tensors))

    def _bank_states(self, idx: np.ndarray) -> State:
        """Burned-in start states of bank contexts `idx` (n,), each computed once.

        `init_state` is deterministic (it takes no noise), so the state of a bank context is
        cached; the cache is dropped whenever the model's parameters or buffers change in
        place (an optimiser step, a running statistic) or are replaced, e.g. while a model
        is trained online.
        """
        if not self.cache_contexts:
            index = torch.from_numpy(idx)
            return self._burn_in(self.contexts.frames[index], self.contexts.actions[index])
        version = self._params_version()
        if self._cache is None or version != self._cache_version:
            self._cache, self._cache_version = None, version
            self._cached = np.zeros(len(self.contexts), dtype=bool)
        missing = np.unique(idx[~self._cached[idx]])
        if missing.size:
            index = torch.from_numpy(missing)
            fresh = self._burn_in(self.contexts.frames[index], self.contexts.actions[index])
            if self._cache is None:
                n_bank = len(self.contexts)
                self._cache = {
                    k: torch.zeros((n_bank, *v.shape[1:]), dtype=v.dtype, device=v.device)
                    for k, v in fresh.items()
                }
            rows = index.to(self.device)
            for key, value in fresh.items():
                self._cache[key][rows] = value
            self._cached[missing] = True
        assert self._cache is not None
        rows = torch.from_numpy(idx).to(self.device)
        return {k: v[rows] for k, v in self._cache.items()}

    @torch.inference_mode()
    def observation(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Observations of rows `mask` (all if None): (n, H, W, C) uint8 or (n, F) float32."""
        if self.state is None:
            raise RuntimeError("call reset() before stepping, observing or rendering the env")
        state = self.state
        if mask is not None:
            index = torch.from_numpy(np.asarray(mask, dtype=bool)).to(self.device)
            state = {k: v[index] for k, v in state.items()}
        return self._observe(state)

    def _observe(self, state: State) -> np.ndarray:
        if self.obs_mode == "pixels":
            return self.model.decode(state).cpu().numpy()
        return self.model.features(state).float().cpu().numpy()

    @torch.inference_mode()
    def frames(self) -> np.ndarray:
        """Decoded frames of all rows: (B, H, W, C) uint8."""
        if self.state is None:
            raise RuntimeError("call reset() before stepping, observing or rendering the env")
        return self.model.decode(self.state).cpu().numpy()

    # ---------------------------------------------------------------- step
    @torch.inference_mode()
    def step(self, actions: np.ndarray) -> CoreStep:
        """Step every row with validated actions (B,) int64 or (B, A) float32 (no autoreset)."""
        if self.state is None:
            raise RuntimeError("call reset() before stepping, observing or rendering the env")
        act = torch.from_numpy(actions).to(self.device)
        transition = self.model.step(self.state, act, self.generator)
        self.state = transition.state
        self.elapsed += 1
        obs = self._observe(self.state)
        reward = transition.reward.float().cpu().numpy()
        cont = transition.cont_prob.float().cpu().numpy()
        terminated = cont < self.terminate_threshold
        truncated = self.elapsed >= self.max_episode_steps
        return CoreStep(obs, reward, terminated, truncated, cont)


def build_core(
    num_rows: int,
    checkpoint: str | Path | None = None,
    model: WorldModel | None = None,
    contexts: ContextBank | tuple[Any, Any] | None = None,
    task: str | None = None,
    obs_mode: ObsMode = "pixels",
    device: str | torch.device = "cpu",
    max_episode_steps: int | None = None,
    terminate_threshold: float = 0.5,
    action_mode: str | None = None,
) -> tuple[ImaginationCore, str | None]:
    """Load the source and build a core; returns it with the resolved task id."""
    source = load_source(checkpoint, model, contexts, task, device, action_mode)
    limit = (max_episode_steps if max_episode_steps is not None
             else task_time_limit(source.task, source.action_repeat))
    core = ImaginationCore(
        source.model, source.contexts, num_rows, obs_mode, device, limit, terminate_threshold
    )
    return core, source.task


def seeds_for_rows(seed: int | Sequence[int | None] | None, num_rows: int) -> list[int | None]:
    """Per-row seeds: ``s + i`` for an int, a list as is (checked), Nones for None.

    Seeds are non-negative integers (Gymnasium's rule): anything else raises a TypeError or
    ValueError naming it.
    """
    if seed is None:
        return [None] * num_rows
    if _is_int(seed):
        seeds: list[Any] = [int(seed) + i for i in range(num_rows)]
    elif isinstance(seed, Sequence) and not isinstance(seed, (str, bytes)):
        seeds = list(seed)
        if len(seeds) != num_rows:
            raise ValueError(f"got {len(seeds)} seeds for {num_rows} envs")
    else:
        raise TypeError(f"seed must be an int, {num_rows} ints (or Nones) or None, got {seed!r:.80}")
    bad = [s for s in seeds if s is not None and not _is_int(s)]
    if bad:
        raise TypeError(f"seeds must be ints or None, got {bad[0]!r:.80}")
    negative = [s for s in seeds if s is not None and s < 0]
    if negative:
        raise ValueError(f"seeds must be >= 0, got {negative[0]}")
    return [None if s is None else int(s) for s in seeds]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
