"""The one protocol every world-model family implements (design section 2), and its contract.

Environments, agents and benchmarks depend on `WorldModel`, `ModelSpec`, `State`,
`Transition` and `Family` only, so a new family plugs in by implementing this protocol and
registering itself (`world_models.families.register_family`). The conformance suite
(``tests/world_models/test_conformance.py``) checks every registered family against the
contract below.

Time alignment (DreamerV3 convention) used by every tensor in vwm:
``actions[:, t]`` is the action that *led into* frame ``t`` (zero on an episode's first
frame), ``rewards[:, t]`` the reward received on arriving at frame ``t`` and
``terminated[:, t]`` whether frame ``t`` is terminal. ``step(state, a)`` therefore
applies ``a`` to the state's latest frame and returns the next state, its reward and
the probability that the episode continues after it.

The contract
------------
**Noise.** All randomness of `step` comes from its `noise` argument, a
`world_models.sampling.Noise` (uniform, normal, randint, categorical) or a
`torch.Generator` / None, which families turn into a Noise with `sampling.as_noise`. The
imagined envs pass a per-row `sampling.RowGenerator`, so a family that draws every random
number through `noise` (never `torch.rand*` directly) makes row i of a vector env
reproduce a single env seeded s + i. `init_state` and `observe` are deterministic.

**Burn-in and the padding rule.** `init_state(frames, actions)` takes a context of T real
frames, 1 <= T <= `spec.context_len`. *A context is always the beginning of an episode*:
``frames[:, 0]`` is its first (``is_first``) frame, so ``actions[:, 0]`` is ignored (read
as zero). A family that needs a fixed window of K = `context_len` frames left-pads a
shorter context by repeating ``frames[:, 0]`` with zero actions (`pad_context`). Hence
burn-in is prefix-consistent: for 1 <= t < T, ``init_state`` on the first t frames
followed by `observe` of frames t..T-1 (with their actions) gives the same features,
decoded frame and future as ``init_state`` on all T frames. Every burn-in site follows it
through `burn_in`: an imagined env reset burns in on a bank context, and the filter on a
real env (`world_models.filter.ModelFilter`) burns in on an episode's first frame and
then observes, so a latent policy sees the same features on the real env as in
imagination given the same frames and actions.

**State.** A `dict[str, Tensor]`, batch first, with a fixed shape per row that does not
change with time: windowed histories (a K-frame stack, a token history) are ring buffers
of K slots with a per-row write position (an int64 (B,) tensor in the state), never
growing tensors. So `select_rows`, `reset_rows`, `repeat_rows` and the imagined env's
start-state cache work on any family without knowing it.

**Features.** `features(state)` is float32 (B, `spec.feature_dim`) with
``feature_dim > 0`` known from the spec (checked by `ModelSpec`), so observation spaces
are declared up front without running the model.

**Training.** (`world_models.trainer`) ``compute_loss(batch, step)`` gets the global step (for
schedules) and must respect the batch's masks (`world_models.batch`). A family may also
define ``training_stages() -> Sequence[world_models.stages.Stage]`` (parameter groups,
learning rates, warm-up, step counts; what no stage group selects stays frozen; default:
one stage over every parameter) and an ``ema_decay`` attribute > 0, for which the trainer
keeps EMA weights that checkpoints store and imagination loads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

if TYPE_CHECKING:
    from world_models.batch import SequenceBatch
    from world_models.sampling import Noise

State = dict[str, Tensor]
"""A batch of model states: every tensor has the batch dimension first and a fixed shape per row."""

PRESET_NAMES: tuple[str, ...] = ("tiny", "small", "medium")
"""Presets every family provides: tiny (tests, seconds), small (CPU default), medium (GPU)."""


@dataclass(frozen=True)
class ModelSpec:
    """What a world model consumes and produces; stored in every checkpoint."""

    family: str
    """Model family name (``"rssm"``, ...), used to rebuild the model from a checkpoint."""
    frame_shape: tuple[int, int, int]
    """Frame shape (H, W, C) of uint8 observations."""
    action_kind: Literal["discrete", "continuous"]
    """Discrete actions are int64 indices; continuous actions are float32 vectors."""
    action_dim: int
    """Number of discrete actions, or the length of a continuous action vector."""
    action_low: tuple[float, ...] | None = None
    """Lower bounds of a continuous action (None for discrete)."""
    action_high: tuple[float, ...] | None = None
    """Upper bounds of a continuous action (None for discrete)."""
    context_len: int = 8
    """Most real frames `init_state` burns in on (contexts of 1 to context_len frames)."""
    feature_dim: int = 0
    """Length of `features(state)`; must be > 0 (the default 0 only forces callers to set it)."""
    hparams: dict[str, Any] = field(default_factory=dict)
    """Family-specific hyper-parameters (JSON-serialisable)."""

    def __post_init__(self) -> None:
        # normalise what families and JSON hand in (lists, numpy ints) to the declared types
        object.__setattr__(self, "frame_shape", tuple(int(v) for v in self.frame_shape))
        object.__setattr__(self, "action_dim", int(self.action_dim))
        for key in ("action_low", "action_high"):
            value = getattr(self, key)
            if value is not None:
                object.__setattr__(self, key, tuple(float(v) for v in value))
        if not self.family:
            raise ValueError("ModelSpec.family must be a non-empty family name")
        if len(self.frame_shape) != 3 or min(int(v) for v in self.frame_shape) < 1:
            raise ValueError(f"ModelSpec.frame_shape must be (H, W, C) > 0, got {self.frame_shape}")
        if self.action_kind not in ("discrete", "continuous"):
            raise ValueError(f"action_kind must be 'discrete' or 'continuous', got {self.action_kind!r}")
        if self.action_dim < 1:
            raise ValueError(f"ModelSpec.action_dim must be >= 1, got {self.action_dim}")
        if self.context_len < 1:
            raise ValueError(f"ModelSpec.context_len must be >= 1, got {self.context_len}")
        if self.feature_dim < 1:
            raise ValueError(
                f"ModelSpec.feature_dim must be > 0 (the length of features(state)), got "
                f"{self.feature_dim} for family {self.family!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Inverse of `to_dict`."""
        return cls(**data)

    def action_shape(self) -> tuple[int, ...]:
        """Shape of one action: () for discrete, (A,) for continuous."""
        return () if self.action_kind == "discrete" else (self.action_dim,)

    def action_dtype(self) -> torch.dtype:
        """torch dtype of actions fed to the model."""
        return torch.int64 if self.action_kind == "discrete" else torch.float32


class Transition(NamedTuple):
    """The result of one imagined step for a whole batch."""

    state: State
    """The next state."""
    reward: Tensor
    """(B,) float32 predicted reward on arriving at the next state."""
    cont_prob: Tensor
    """(B,) float32 predicted probability that the episode continues after the next state."""


@runtime_checkable
class WorldModel(Protocol):
    """A learned simulator that can be burned in on real frames and then imagine."""

    spec: ModelSpec

    def init_state(self, frames: Tensor, actions: Tensor) -> State:
        """Burn in on a real context that begins an episode (the padding rule above).

        frames: uint8 (B, T, H, W, C) with 1 <= T <= ``spec.context_len``; actions: (B, T)
        int64 or (B, T, A) float32, aligned so that ``actions[:, t]`` led into
        ``frames[:, t]`` (``actions[:, 0]`` is ignored). Deterministic. Returns the state
        after the last context frame.
        """
        ...

    def step(
        self, state: State, action: Tensor, noise: Noise | torch.Generator | None = None
    ) -> Transition:
        """One imagined step for the batch: action (B,) int64 or (B, A) float32.

        Every random number is drawn from ``as_noise(noise)`` (`world_models.sampling`),
        with the batch dimension first, so per-row noise gives per-row reproducibility.
        """
        ...

    def features(self, state: State) -> Tensor:
        """(B, spec.feature_dim) float32 compact latent an agent may observe instead of pixels."""
        ...

    def decode(self, state: State) -> Tensor:
        """(B, H, W, C) uint8 imagined frame."""
        ...

    def observe(self, state: State, frame: Tensor, action: Tensor) -> State:
        """Fold one real frame (B, H, W, C) uint8, reached by `action`, into the state.

        Deterministic; consistent with `init_state` (prefix consistency, see the module docs).
        """
        ...

    def compute_loss(self, batch: SequenceBatch, step: int = 0) -> tuple[Tensor, dict[str, float]]:
        """Training objective on a batch (masks respected) at global training `step`; metrics
        is a flat dict of floats."""
        ...

    # nn.Module methods every family inherits
    def parameters(self, recurse: bool = True): ...  # noqa: D102
    def buffers(self, recurse: bool = True): ...  # noqa: D102
    def state_dict(self, *args, **kwargs): ...  # noqa: D102
    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False): ...  # noqa: D102
    def to(self, *args, **kwargs): ...  # noqa: D102
    def train(self, mode: bool = True): ...  # noqa: D102
    def eval(self): ...  # noqa: D102


@runtime_checkable
class Family(Protocol):
    """A model family as registered in `world_models.families` (``register_family``)."""

    name: str
    """The family name stored in `ModelSpec.family` (``"rssm"``, ...)."""
    presets: tuple[str, ...]
    """Named size presets; at least `PRESET_NAMES` (tiny, small, medium)."""

    def default_hparams(self, preset: str) -> dict[str, Any]:
        """The hyper-parameters of `preset`; their keys are the valid `make_spec` overrides."""
        ...

    def make_spec(
        self,
        frame_shape: tuple[int, int, int],
        action_kind: Literal["discrete", "continuous"],
        action_dim: int,
        action_low: tuple[float, ...] | None = None,
        action_high: tuple[float, ...] | None = None,
        preset: str = "small",
        overrides: dict[str, Any] | None = None,
    ) -> ModelSpec:
        """A complete `ModelSpec` at `preset` with `overrides` applied."""
        ...

    def build(self, spec: ModelSpec) -> WorldModel:
        """A freshly initialised model (an `nn.Module`) for `spec`."""
        ...


# ------------------------------------------------------------------------- burn-in helpers
def check_context(spec: ModelSpec, frames: Tensor, actions: Tensor) -> None:
    """Raise ValueError unless frames are uint8 (B, T, H, W, C), 1 <= T <= context_len, and
    actions are (B, T) (discrete) or (B, T, A) (continuous)."""
    if frames.ndim != 5 or tuple(frames.shape[2:]) != tuple(spec.frame_shape):
        raise ValueError(
            f"context frames must be uint8 (B, T, {', '.join(map(str, spec.frame_shape))}), "
            f"got {tuple(frames.shape)}"
        )
    if frames.dtype != torch.uint8:
        raise ValueError(f"context frames must be uint8, got {frames.dtype}")
    length = frames.shape[1]
    if not 1 <= length <= spec.context_len:
        raise ValueError(
            f"a context has 1 to context_len = {spec.context_len} frames, got T = {length}"
        )
    expected = tuple(frames.shape[:2]) + spec.action_shape()
    if tuple(actions.shape) != expected:
        raise ValueError(f"context actions must have shape {expected}, got {tuple(actions.shape)}")


def zero_actions(spec: ModelSpec, batch: int, length: int, device: torch.device | str) -> Tensor:
    """Zero actions (B, T) or (B, T, A) in the spec's action dtype: an episode start's actions."""
    shape = (batch, length) + spec.action_shape()
    return torch.zeros(shape, dtype=spec.action_dtype(), device=device)


def pad_context(frames: Tensor, actions: Tensor, length: int) -> tuple[Tensor, Tensor]:
    """The padding rule for fixed windows: a context (B, T, ...) -> (B, length, ...).

    ``actions[:, 0]`` is zeroed (the first frame starts an episode) and, if T < length, the
    context is left-padded by repeating ``frames[:, 0]`` with zero actions.
    """
    actions = actions.clone()
    actions[:, 0] = 0
    missing = length - frames.shape[1]
    if missing < 0:
        raise ValueError(f"context of {frames.shape[1]} frames is longer than the window {length}")
    if missing == 0:
        return frames, actions
    pad_frames = frames[:, :1].expand(-1, missing, *frames.shape[2:])  # (B, P, H, W, C)
    pad_actions = torch.zeros_like(actions[:, :1]).expand(-1, missing, *actions.shape[2:])  # (B, P[, A])
    return torch.cat([pad_frames, frames], 1), torch.cat([pad_actions, actions], 1)


def burn_in(model: WorldModel, frames: Tensor, actions: Tensor | None = None) -> State:
    """`model.init_state` on a context (the one entry point of every burn-in site).

    frames uint8 (B, T, H, W, C) or one frame per row (B, H, W, C); actions default to
    zeros (an episode start). Checks the context against the padding rule's limits.
    """
    spec = model.spec
    if frames.ndim == 4:
        frames = frames[:, None]
    device = frames.device
    if actions is None:
        actions = zero_actions(spec, frames.shape[0], frames.shape[1], device)
    actions = actions.to(device=device, dtype=spec.action_dtype())
    check_context(spec, frames, actions)
    return model.init_state(frames, actions)


def state_batch_size(state: State) -> int:
    """Number of rows in a state."""
    return next(iter(state.values())).shape[0]


def select_rows(state: State, index: Tensor) -> State:
    """Rows `index` (bool mask or int64 indices) of every tensor in the state."""
    return {k: v[index] for k, v in state.items()}


def copy_state(state: State) -> State:
    """A deep copy of a state (tensors cloned)."""
    return {k: v.clone() for k, v in state.items()}


def reset_rows(state: State, mask: Tensor, fresh: State) -> State:
    """Replace the rows where `mask` (B,) bool is true by the rows of `fresh` (n_true, ...).

    Returns a new state; the input is left untouched.
    """
    out = {}
    for key, value in state.items():
        value = value.clone()
        value[mask] = fresh[key].to(value.dtype)
        out[key] = value
    return out


def repeat_rows(state: State, repeats: int) -> State:
    """Each row repeated `repeats` times consecutively: (B, ...) -> (B * repeats, ...)."""
    return {k: v.repeat_interleave(repeats, dim=0) for k, v in state.items()}
