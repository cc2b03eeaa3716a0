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
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from world_models.base import ModelSpec, State, WorldModel, burn_in, repeat_rows, reset_rows
from world_models.checkpoint import CheckpointError, ContextBank, load_checkpoint
from world_models.sampling import RowGenerator

ObsMode = Literal["pixels", "latent"]
OBS_MODES: tuple[str, ...] = ("pixels", "latent")
DEFAULT_MAX_EPISODE_STEPS = 1000
"""Time limit used when neither the caller nor the checkpoint's task gives one."""

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


# ------------------------------------------------------------------ loading / spaces
class ImaginationSource(NamedTuple):
    """A model with its start contexts and the real task it was trained on."""

    model: WorldModel
    contexts: ContextBank
    task: str | None


def as_context_bank(contexts: ContextBank | tuple[Any, Any]) -> ContextBank:
    """A `ContextBank` from a bank or a ``(frames (N,T,H,W,C), actions (N,T[,A]))`` pair."""
    if isinstance(contexts, ContextBank):
        return contexts
    frames, actions = contexts
    return ContextBank(
        frames=torch.as_tensor(np.asarray(frames)), actions=torch.as_tensor(np.asarray(actions))
    )


def load_source(
    checkpoint: str | Path | None = None,
    model: WorldModel | None = None,
    contexts: ContextBank | tuple[Any, Any] | None = None,
    task: str | None = None,
    device: str | torch.device = "cpu",
) -> ImaginationSource:
    """Resolve the constructor arguments shared by all front ends into a source.

    Either `checkpoint` (a folder) or `model` (+ `contexts`) must be given. A `task` that
    differs from the checkpoint's raises `CheckpointError`.
    """
    if (checkpoint is None) == (model is None):
        raise ValueError("pass exactly one of checkpoint=PATH or model=WorldModel")
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint, device=device, expect_task=task)
        bank = ckpt.contexts if contexts is None else as_context_bank(contexts)
        model, ckpt_task = ckpt.model, ckpt.task
    else:
        if contexts is None:
            raise ValueError("model= needs contexts= (a ContextBank or a (frames, actions) pair)")
        bank, ckpt_task = as_context_bank(contexts), task
    assert model is not None
    if len(bank) == 0:
        raise CheckpointError("the context bank is empty: an imagined env needs start contexts")
    frame_shape = tuple(bank.frames.shape[2:])
    if frame_shape != tuple(model.spec.frame_shape):
        raise CheckpointError(
            f"context frames have shape {frame_shape}, the model expects {model.spec.frame_shape}"
        )
    return ImaginationSource(model, bank, ckpt_task if ckpt_task is not None else task)


def task_time_limit(task: str | None) -> int:
    """``max_episode_steps`` of the real task `task` (registered by `video_envs`), else 1000."""
    if task is None:
        return DEFAULT_MAX_EPISODE_STEPS
    import video_envs  # noqa: F401  (registers the real tasks)

    try:
        limit = gym.spec(task).max_episode_steps
    except gym.error.Error:
        return DEFAULT_MAX_EPISODE_STEPS
    return int(limit) if limit is not None else DEFAULT_MAX_EPISODE_STEPS


def action_space_from_spec(spec: ModelSpec) -> spaces.Space:
    """The single-env action space of a model: Discrete(n) or Box(low, high, (A,))."""
    if spec.action_kind == "discrete":
        return spaces.Discrete(spec.action_dim)
    low = np.asarray(spec.action_low if spec.action_low is not None else [-1.0] * spec.action_dim)
    high = np.asarray(spec.action_high if spec.action_high is not None else [1.0] * spec.action_dim)
    return spaces.Box(low.astype(np.float32), high.astype(np.float32), (spec.action_dim,), np.float32)


def pixel_space(spec: ModelSpec) -> spaces.Box:
    """uint8 frames, the same Box as the real task."""
    return spaces.Box(0, 255, tuple(spec.frame_shape), np.uint8)


def latent_space(feature_dim: int) -> spaces.Box:
    """float32 features of length `feature_dim`."""
    return spaces.Box(-np.inf, np.inf, (feature_dim,), np.float32)


def check_real_spaces(spec: ModelSpec, observation_space: spaces.Space, action_space: spaces.Space) -> None:
    """Raise `CheckpointError` when a real env's spaces do not match the model's spec."""
    expected_obs = pixel_space(spec)
    if (
        not isinstance(observation_space, spaces.Box)
        or observation_space.shape != expected_obs.shape
        or observation_space.dtype != np.uint8
    ):
        raise CheckpointError(
            f"the real env observes {observation_space}, the model expects uint8 frames {spec.frame_shape}"
        )
    expected_act = action_space_from_spec(spec)
    same = (
        isinstance(action_space, spaces.Discrete)
        and isinstance(expected_act, spaces.Discrete)
        and int(action_space.n) == int(expected_act.n)
    ) or (
        isinstance(action_space, spaces.Box)
        and isinstance(expected_act, spaces.Box)
        and action_space.shape == expected_act.shape
    )
    if not same:
        raise CheckpointError(f"the real env acts in {action_space}, the model expects {expected_act}")


# ------------------------------------------------------------------ validation
def validate_actions(actions: Any, space: spaces.Space, batch: int | None) -> np.ndarray:
    """Check actions against the single-env `space`; `batch` rows, or one action if None.

    Returns an int64 (B,) / float32 (B, A) array (B = 1 for a single action). Raises a
    `ValueError` naming the expected space on a wrong shape, dtype or range.
    """
    where = "action" if batch is None else f"actions for {batch} envs"
    arr = np.asarray(actions)
    lead = () if batch is None else (batch,)
    if isinstance(space, spaces.Discrete):
        if arr.dtype.kind not in "iu":
            raise ValueError(f"{where} must be integers in {space}, got dtype {arr.dtype} ({actions!r:.80})")
        if arr.shape != lead:
            raise ValueError(f"{where} must have shape {lead} in {space}, got shape {arr.shape}")
        low, high = int(space.start), int(space.start + space.n)
        if arr.size and (arr.min() < low or arr.max() >= high):
            raise ValueError(f"{where} out of range for {space}: {actions!r:.80}")
        return (arr.astype(np.int64) - low).reshape(-1)
    assert isinstance(space, spaces.Box)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{where} must be numbers in {space}, got dtype {arr.dtype}")
    if arr.shape != lead + space.shape:
        raise ValueError(f"{where} must have shape {lead + space.shape} in {space}, got shape {arr.shape}")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)) or np.any(arr < space.low) or np.any(arr > space.high):
        raise ValueError(f"{where} out of range for {space}: {actions!r:.80}")
    return arr.reshape((-1,) + space.shape)


def validate_context(context: Any, spec: ModelSpec, rows: int | None) -> tuple[Tensor, Tensor]:
    """An explicit start context ``{"frames": ..., "actions": ...}`` as batched tensors.

    Single env (`rows` None): frames uint8 (T, H, W, C) with 1 <= T <= context_len, actions
    (T,) or (T, A), optional (zeros); the context begins an episode (`world_models.base`).
    Vector env: the same with a leading `rows` dimension per row, or unbatched (broadcast).
    Returns frames (R, T, H, W, C) uint8 and actions (R, T[, A]) with R = rows or 1.
    """
    if not isinstance(context, dict) or "frames" not in context:
        raise ValueError('options["context"] must be a dict {"frames": uint8 (T, H, W, C), "actions": ...}')
    frames = np.asarray(context["frames"])
    single = (-1, *spec.frame_shape)
    if frames.dtype != np.uint8:
        raise ValueError(f"context frames must be uint8, got {frames.dtype}")
    if frames.ndim == 4 and frames.shape[1:] == tuple(spec.frame_shape):
        frames = frames[None]
        broadcast = True
    elif (
        rows is not None
        and frames.ndim == 5
        and frames.shape[0] == rows
        and frames.shape[2:] == tuple(spec.frame_shape)
    ):
        broadcast = False
    else:
        expected = "(T, H, W, C)" + ("" if rows is None else f" or ({rows}, T, H, W, C)")
        raise ValueError(
            f"context frames must have shape {expected} with (H, W, C) = {spec.frame_shape}, "
            f"got {frames.shape} (single frame shape {single[1:]})"
        )
    n, t = frames.shape[:2]
    if not 1 <= t <= spec.context_len:
        raise ValueError(f"a context needs 1 to context_len = {spec.context_len} frames, got {t}")
    act_shape = spec.action_shape()
    actions = context.get("actions")
    if actions is None:
        actions = np.zeros((n, t) + act_shape)
    else:
        actions = np.asarray(actions)
        if broadcast:
            actions = actions[None]
        if actions.shape != (n, t) + act_shape:
            expected = ((t,) if broadcast else (n, t)) + act_shape
            got = actions.shape[1:] if broadcast else actions.shape
            raise ValueError(f"context actions must have shape {expected} to match the frames, got {got}")
        if spec.action_kind == "discrete" and actions.dtype.kind not in "iu":
            raise ValueError(f"context actions must be integers for a discrete model, got {actions.dtype}")
    frames_t = torch.from_numpy(np.ascontiguousarray(frames))
    actions_t = torch.from_numpy(np.ascontiguousarray(actions)).to(spec.action_dtype())
    return frames_t, actions_t


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
        self.device = torch.device(device)
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
) -> tuple[ImaginationCore, str | None]:
    """Load the source and build a core; returns it with the resolved task id."""
    source = load_source(checkpoint, model, contexts, task, device)
    limit = max_episode_steps if max_episode_steps is not None else task_time_limit(source.task)
    core = ImaginationCore(
        source.model, source.contexts, num_rows, obs_mode, device, limit, terminate_threshold
    )
    return core, source.task


def seeds_for_rows(seed: int | Sequence[int | None] | None, num_rows: int) -> list[int | None]:
    """Per-row seeds: ``s + i`` for an int, a list as is (checked), Nones for None."""
    if seed is None:
        return [None] * num_rows
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + i for i in range(num_rows)]
    seeds = list(seed)
    if len(seeds) != num_rows:
        raise ValueError(f"got {len(seeds)} seeds for {num_rows} envs")
    return [None if s is None else int(s) for s in seeds]
