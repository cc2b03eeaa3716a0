"""The one protocol every world-model family implements (design section 2).

Environments, agents and benchmarks depend on `WorldModel`, `ModelSpec`, `State` and
`Transition` only, so a new family plugs in by implementing this protocol.

Time alignment (DreamerV3 convention) used by every tensor in vwm:
``actions[:, t]`` is the action that *led into* frame ``t`` (zero on an episode's first
frame), ``rewards[:, t]`` the reward received on arriving at frame ``t`` and
``terminated[:, t]`` whether frame ``t`` is terminal. ``step(state, a)`` therefore
applies ``a`` to the state's latest frame and returns the next state, its reward and
the probability that the episode continues after it.

Training (`world_models.trainer`): ``compute_loss(batch, step)`` gets the global step (for
schedules) and must respect the batch's masks (`world_models.data`). A family may also
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
    from world_models.data import SequenceBatch

State = dict[str, Tensor]
"""A batch of model states: every tensor has the batch dimension first."""


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
    """Number of real frames used to burn in the state before imagination starts."""
    feature_dim: int = 0
    """Length of `features(state)`."""
    hparams: dict[str, Any] = field(default_factory=dict)
    """Family-specific hyper-parameters (JSON-serialisable)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Inverse of `to_dict`."""
        data = dict(data)
        data["frame_shape"] = tuple(data["frame_shape"])
        for key in ("action_low", "action_high"):
            if data.get(key) is not None:
                data[key] = tuple(float(v) for v in data[key])
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
        """Burn in on a real context.

        frames: uint8 (B, T, H, W, C); actions: (B, T) int64 or (B, T, A) float32, aligned
        so that ``actions[:, t]`` led into ``frames[:, t]``. Returns the state after the
        last context frame.
        """
        ...

    def step(self, state: State, action: Tensor, generator: torch.Generator | None) -> Transition:
        """One imagined step: action (B,) int64 or (B, A) float32."""
        ...

    def features(self, state: State) -> Tensor:
        """(B, F) float32 compact latent an agent may observe instead of pixels."""
        ...

    def decode(self, state: State) -> Tensor:
        """(B, H, W, C) uint8 imagined frame."""
        ...

    def observe(self, state: State, frame: Tensor, action: Tensor) -> State:
        """Fold one real frame (B, H, W, C) uint8, reached by `action`, into the state."""
        ...

    def compute_loss(self, batch: SequenceBatch, step: int = 0) -> tuple[Tensor, dict[str, float]]:
        """Training objective on a batch (masks respected) at global training `step`; metrics
        is a flat dict of floats."""
        ...

    # nn.Module methods every family inherits
    def parameters(self, recurse: bool = True): ...  # noqa: D102
    def state_dict(self, *args, **kwargs): ...  # noqa: D102
    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False): ...  # noqa: D102
    def to(self, *args, **kwargs): ...  # noqa: D102
    def train(self, mode: bool = True): ...  # noqa: D102
    def eval(self): ...  # noqa: D102


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


_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as a signed 64-bit integer
_MUR1 = -49064778989728563  # 0xFF51AFD7ED558CCD
_MUR2 = -4265267296055464877  # 0xC4CEB9FE1A85EC53
_LOW31 = (1 << 31) - 1


def _fmix64(x: Tensor) -> Tensor:
    """MurmurHash3's 64-bit finaliser on int64 tensors (wrapping arithmetic, logical shifts)."""
    x = x ^ ((x >> 33) & _LOW31)
    x = x * _MUR1
    x = x ^ ((x >> 33) & _LOW31)
    x = x * _MUR2
    return x ^ ((x >> 33) & _LOW31)


class RowGenerator:
    """Counter-based random numbers per batch row, for reproducible batched imagination.

    Row i's draws depend only on its own key and on how many draws it has made, never on
    the other rows, so row i of a vector env reproduces a single env seeded with the same
    key exactly. Pass it wherever a `torch.Generator` is accepted by `uniform`/`normal`.
    """

    def __init__(self, num_rows: int, device: torch.device | str = "cpu") -> None:
        self.keys = torch.zeros(num_rows, dtype=torch.int64, device=device)  # (B,)
        self.counters = torch.zeros(num_rows, dtype=torch.int64, device=device)  # (B,)

    def seed_rows(self, mask: Tensor, keys: Tensor) -> None:
        """Give rows `mask` (B,) bool the int64 `keys` (n_true,) and restart their counters."""
        self.keys[mask] = keys.to(self.keys.device, torch.int64)
        self.counters[mask] = 0

    def rand(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> Tensor:
        """Uniforms in [0, 1) of `shape` (B, ...); advances every row's counter by one."""
        count = 1
        for size in shape[1:]:
            count *= size
        base = _fmix64(self.keys * _GOLDEN + self.counters)  # (B,)
        index = torch.arange(1, count + 1, device=self.keys.device, dtype=torch.int64)  # (n,)
        bits = _fmix64(base[:, None] + index[None, :] * _GOLDEN)  # (B, n)
        self.counters += 1
        mantissa = (bits >> 40) & ((1 << 24) - 1)  # 24 random bits
        return (mantissa.to(torch.float64) / float(1 << 24)).to(dtype).reshape(shape)


def uniform(
    generator: torch.Generator | RowGenerator | None,
    shape: tuple[int, ...],
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Uniforms in [0, 1) from a `torch.Generator` (or the global RNG) or a `RowGenerator`."""
    if isinstance(generator, RowGenerator):
        return generator.rand(shape, dtype).to(device)
    return torch.rand(shape, generator=generator, device=device, dtype=dtype)


def normal(
    generator: torch.Generator | RowGenerator | None,
    shape: tuple[int, ...],
    device: torch.device | str,
) -> Tensor:
    """Standard normals (Box-Muller over `uniform` draws)."""
    if not isinstance(generator, RowGenerator):
        return torch.randn(shape, generator=generator, device=device)
    u = uniform(generator, shape + (2,), device)  # (..., 2)
    radius = torch.sqrt(-2.0 * torch.log1p(-u[..., 0]))  # 1 - u in (0, 1]
    return radius * torch.cos(2.0 * torch.pi * u[..., 1])
