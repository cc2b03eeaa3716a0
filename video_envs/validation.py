"""Checks of what callers hand vwm's environments, done once at the env boundary with numpy.

Every vwm env (real pixel tasks and imagined envs, single and vector) refuses bad input with
an error that names the problem and the space, before anything reaches the dynamics, a
torch model or a third-party game:

- `validate_actions`: the dtype, shape and range of one action or of a batch (NaN/inf
  included), in one vectorised pass over the whole batch (no Python loop over rows);
  `check_action` is its single-action form for the real tasks.
- `check_options`: ``reset(options=...)`` must be a dict (or None) with known keys, so a
  misspelt option is not silently ignored.
- `EpisodeGuard`: ``step`` outside an episode (before the first ``reset``, or after one
  ended with ``terminated`` or the env's own ``truncated``) raises ``ResetNeeded`` instead of
  stepping a finished game.

Errors are ``ValueError`` (wrong value, shape or dtype), ``TypeError`` (``options`` of the
wrong type) or Gymnasium's ``ResetNeeded``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded


def _as_array(actions: Any, where: str, space: spaces.Space) -> np.ndarray:
    try:
        return np.asarray(actions)
    except (ValueError, TypeError) as error:  # ragged nested lists and the like
        raise ValueError(f"{where} cannot be read as an array for {space}: {error}") from None


def validate_actions(actions: Any, space: spaces.Space, batch: int | None) -> np.ndarray:
    """Check actions against the single-env `space`; `batch` rows, or one action if None.

    Returns an int64 (B,) array of zero-based indices for `Discrete` (the space's ``start``
    subtracted) or a float32 (B, *shape) array for `Box` (B = 1 for a single action).
    Raises a `ValueError` naming the expected space on a wrong dtype, shape or range, and on
    NaN or infinite continuous actions.
    """
    where = "action" if batch is None else f"actions for {batch} envs"
    arr = _as_array(actions, where, space)
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
    if not isinstance(space, spaces.Box):
        raise TypeError(f"vwm envs take Discrete or Box actions, not {space}")
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{where} must be numbers in {space}, got dtype {arr.dtype}")
    if arr.shape != lead + space.shape:
        raise ValueError(f"{where} must have shape {lead + space.shape} in {space}, got shape {arr.shape}")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf: caught below
        arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{where} must be finite (no NaN or inf) in {space}: {actions!r:.80}")
    if (arr < space.low).any() or (arr > space.high).any():
        raise ValueError(f"{where} out of range for {space}: {actions!r:.80}")
    return arr.reshape((-1,) + space.shape)


def check_action(action: Any, space: spaces.Space) -> Any:
    """One checked action in the form Gymnasium envs take: an ``int`` for `Discrete`, a float32
    array of the space's shape for `Box`; `validate_actions`' errors otherwise."""
    checked = validate_actions(action, space, None)
    if isinstance(space, spaces.Discrete):
        return int(checked[0]) + int(space.start)
    return checked[0]


def check_options(options: Any, known: Collection[str], env_name: str) -> dict[str, Any]:
    """``reset(options=)`` as a dict: None gives {}, a non-mapping a TypeError, and a key not in
    `known` a ValueError listing the keys `env_name` understands."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"{env_name}.reset: options must be a dict or None, got {type(options).__name__}")
    unknown = sorted(str(k) for k in options if k not in known)
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise ValueError(f"{env_name}.reset: unknown option(s) {unknown}; known options: {allowed}")
    return dict(options)


class EpisodeGuard:
    """Whether an env holds a live episode: `check` raises ``ResetNeeded`` when it does not.

    Call `started` from ``reset``, `check` at the top of ``step`` and `stepped` with the step's
    flags; an episode that ended must be reset before it is stepped again.
    """

    def __init__(self, env_name: str) -> None:
        self.env_name = env_name
        self.live = False
        self.ended = False

    def started(self) -> None:
        """A new episode began (``reset``)."""
        self.live, self.ended = True, False

    def check(self) -> None:
        """Raise ``ResetNeeded`` unless an episode is live."""
        if self.live:
            return
        if self.ended:
            raise ResetNeeded(
                f"{self.env_name}: the episode has ended (terminated or truncated); "
                "call reset() before step()"
            )
        raise ResetNeeded(f"{self.env_name}: call reset() before step()")

    def stepped(self, terminated: bool, truncated: bool) -> None:
        """Record the outcome of a step."""
        if terminated or truncated:
            self.live, self.ended = False, True


__all__ = ["EpisodeGuard", "check_action", "check_options", "validate_actions"]
