"""The one noise interface of vwm: every random draw of a world model, agent or planner.

A `Noise` draws uniforms, standard normals, integers and categorical indices. Two
implementations:

* `TorchNoise` adapts a `torch.Generator` (or ``None``: torch's global RNG).
* `RowGenerator` is counter-based and per batch row (the imagination core's noise): row i's
  draws depend only on its own key and on how many draws it has made, never on the other
  rows, so row i of a vector env reproduces a single env seeded with the same key.

`as_noise` turns a ``Noise | torch.Generator | None`` into a `Noise`; world models call it in
`step`, so callers may keep passing a plain `torch.Generator`. Samplers that turn draws into
samples (`inverse_cdf`) live here too, so there is one copy of each.

RowGenerator's hash is MurmurHash3's 64-bit finaliser over (key, counter, element) (a
counter-based generator in the spirit of Salmon et al. 2011, "Parallel random numbers: as
easy as 1, 2, 3"). Each 64-bit hash yields two 24-bit uniforms, and a Gaussian pair through
Box-Muller (cos and sin), so a draw of n numbers per row costs n / 2 hashes. Draws are made
in blocks of rows and columns written into a preallocated float32 output, so temporaries
stay bounded (about ``block`` elements) whatever the draw's size. The blocks run on one
intra-op thread, like ``torch.randn`` on CPU: torch's float kernels (log, sqrt, sin, cos)
fork the thread pool from 2,048 elements on, and a fork/join per cache-sized block costs
more than it saves, and orders of magnitude more when other processes share the cores.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from world_models.threads import torch_threads

_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as a signed 64-bit integer
_MUR1 = -49064778989728563  # 0xFF51AFD7ED558CCD
_MUR2 = -4265267296055464877  # 0xC4CEB9FE1A85EC53
_LOW31 = (1 << 31) - 1
_LOW24 = (1 << 24) - 1
_SCALE24 = 1.0 / float(1 << 24)


@runtime_checkable
class Noise(Protocol):
    """A source of random numbers; all randomness of `WorldModel.step` comes from one."""

    def uniform(
        self, shape: tuple[int, ...], device: torch.device | str, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """Uniforms in [0, 1) of `shape`."""
        ...

    def normal(self, shape: tuple[int, ...], device: torch.device | str) -> Tensor:
        """float32 standard normals of `shape`."""
        ...

    def randint(self, high: int, shape: tuple[int, ...], device: torch.device | str) -> Tensor:
        """int64 integers uniform in [0, high) of `shape`."""
        ...

    def categorical(self, probs: Tensor) -> Tensor:
        """(...) int64 class indices from probabilities (..., K), one uniform per variable."""
        ...


def inverse_cdf(probs: Tensor, u: Tensor) -> Tensor:
    """(...) int64 indices from probabilities (..., K) and uniforms u (...) in [0, 1).

    Class k is drawn when ``cdf[k-1] <= u * total < cdf[k]`` (``<=``: a class of zero
    probability is never drawn). Probabilities need not be normalised (u is scaled to the
    total mass, which also absorbs rounding). About twice as fast as `torch.multinomial` on
    many small categoricals (DESIGN section 9).
    """
    cdf = probs.cumsum(dim=-1)  # (..., K)
    scaled = u.to(cdf.dtype).unsqueeze(-1) * cdf[..., -1:]  # (..., 1)
    index = (cdf <= scaled).sum(dim=-1)  # (...): number of classes whose cdf is passed
    return index.clamp_max(probs.shape[-1] - 1)


class TorchNoise:
    """`Noise` from a `torch.Generator` (None: torch's global RNG)."""

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    def uniform(
        self, shape: tuple[int, ...], device: torch.device | str, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """Uniforms in [0, 1) (`torch.rand`)."""
        return torch.rand(shape, generator=self.generator, device=device, dtype=dtype)

    def normal(self, shape: tuple[int, ...], device: torch.device | str) -> Tensor:
        """Standard normals (`torch.randn`)."""
        return torch.randn(shape, generator=self.generator, device=device)

    def randint(self, high: int, shape: tuple[int, ...], device: torch.device | str) -> Tensor:
        """Integers in [0, high) (`torch.randint`)."""
        return torch.randint(high, shape, generator=self.generator, device=device)

    def categorical(self, probs: Tensor) -> Tensor:
        """Inverse-CDF class indices (..., K) -> (...)."""
        return inverse_cdf(probs, self.uniform(tuple(probs.shape[:-1]), probs.device, probs.dtype))


def _fmix64_(x: Tensor, tmp: Tensor) -> Tensor:
    """MurmurHash3's 64-bit finaliser, in place on int64 `x` (wrapping arithmetic, logical
    shifts done as arithmetic shift + mask); `tmp` is scratch of the same shape."""
    for mult in (_MUR1, _MUR2, None):
        torch.bitwise_right_shift(x, 33, out=tmp)
        tmp.bitwise_and_(_LOW31)
        x.bitwise_xor_(tmp)
        if mult is not None:
            x.mul_(mult)
    return x


class RowGenerator:
    """Counter-based random numbers per batch row, for reproducible batched imagination.

    Every draw has the batch dimension first: a shape (B, ...) with B = `num_rows`. Row i's
    numbers are a hash of (its key, its counter, the element index), so they never depend on
    the other rows; each draw advances every row's counter by one. `seed_rows` sets keys and
    restarts counters; `counters` may also be set directly (the imagination core starts
    episode k of a row at counter ``k << 32``).
    """

    def __init__(self, num_rows: int, device: torch.device | str = "cpu", block: int = 1 << 15) -> None:
        self.keys = torch.zeros(num_rows, dtype=torch.int64, device=device)  # (B,)
        self.counters = torch.zeros(num_rows, dtype=torch.int64, device=device)  # (B,)
        self.block = int(block)
        """Hashes computed at once: bounds the temporaries of a draw (int64 (block,) each)."""

    @property
    def num_rows(self) -> int:
        """Number of rows B."""
        return int(self.keys.shape[0])

    def seed_rows(self, mask: Tensor, keys: Tensor) -> None:
        """Give rows `mask` (B,) bool the int64 `keys` (n_true,) and restart their counters."""
        self.keys[mask] = keys.to(self.keys.device, torch.int64)
        self.counters[mask] = 0

    # ----------------------------------------------------------------- the hash stream
    def _per_row(self, shape: tuple[int, ...]) -> int:
        if len(shape) < 1 or shape[0] != self.num_rows:
            raise ValueError(
                f"a RowGenerator of {self.num_rows} rows draws shapes (B, ...) with B = "
                f"{self.num_rows}, got {tuple(shape)}"
            )
        return math.prod(shape[1:])

    def _pairs(self, n: int, out: Tensor, pair_fn) -> None:
        """Fill `out` (B, n) float32: hash j of a row gives elements 2j and 2j + 1 through
        ``pair_fn(a, b) -> (x, y)`` on its two 24-bit uniforms; advances the counters."""
        m = (n + 1) // 2  # hashes per row
        base = self.keys * _GOLDEN + self.counters  # (B,)
        _fmix64_(base, torch.empty_like(base))
        self.counters += 1
        if n == 0:
            return
        cols = min(m, self.block)
        step_rows = max(1, self.block // cols)
        index = torch.arange(1, m + 1, device=base.device, dtype=torch.int64) * _GOLDEN  # (m,)
        with torch_threads(1) if base.device.type == "cpu" else nullcontext():
            self._fill(base, index, out, n, cols, step_rows, pair_fn)

    @staticmethod
    def _fill(base: Tensor, index: Tensor, out: Tensor, n: int, cols: int, step_rows: int, pair_fn) -> None:
        """The blocks of `_pairs`: hashes (r, c) at a time, written into `out`."""
        rows, m = out.shape[0], index.shape[0]
        for r0 in range(0, rows, step_rows):
            r1 = min(rows, r0 + step_rows)
            for c0 in range(0, m, cols):
                c1 = min(m, c0 + cols)
                bits = base[r0:r1, None] + index[None, c0:c1]  # (r, c) int64
                tmp = torch.empty_like(bits)
                _fmix64_(bits, tmp)
                torch.bitwise_right_shift(bits, 40, out=tmp)
                a = tmp.bitwise_and_(_LOW24).to(torch.float32).mul_(_SCALE24)  # (r, c) top 24 bits
                b = bits.bitwise_right_shift_(16).bitwise_and_(_LOW24).to(torch.float32)
                b.mul_(_SCALE24)  # (r, c) next 24 bits
                x, y = pair_fn(a, b)
                out[r0:r1, 2 * c0 : 2 * c1 : 2] = x
                odd = out[r0:r1, 2 * c0 + 1 : 2 * c1 : 2]  # one column short at an odd end
                odd.copy_(y[:, : odd.shape[1]])

    def _draw(self, shape: tuple[int, ...], device: torch.device | str, pair_fn) -> Tensor:
        n = self._per_row(shape)
        out = torch.empty((self.num_rows, n), dtype=torch.float32, device=self.keys.device)  # (B, n)
        self._pairs(n, out, pair_fn)
        return out.reshape(shape).to(device)

    # ----------------------------------------------------------------- Noise
    def uniform(
        self, shape: tuple[int, ...], device: torch.device | str, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """Uniforms in [0, 1) with 24 random bits, of `shape` (B, ...)."""
        out = self._draw(tuple(shape), device, lambda a, b: (a, b))
        return out if dtype == torch.float32 else out.to(dtype)

    def normal(self, shape: tuple[int, ...], device: torch.device | str) -> Tensor:
        """float32 standard normals of `shape` (B, ...): Box-Muller, two per hash."""
        return self._draw(tuple(shape), device, _box_muller)

    def randint(self, high: int, shape: tuple[int, ...], device: torch.device | str) -> Tensor:
        """int64 integers in [0, high) of `shape` (B, ...); high <= 2**24."""
        if not 1 <= high <= 1 << 24:
            raise ValueError(f"RowGenerator.randint needs 1 <= high <= 2**24, got {high}")
        u = self.uniform(shape, device, torch.float64)
        return (u * high).floor_().to(torch.int64).clamp_max_(high - 1)

    def categorical(self, probs: Tensor) -> Tensor:
        """Inverse-CDF class indices (B, ..., K) -> (B, ...)."""
        return inverse_cdf(probs, self.uniform(tuple(probs.shape[:-1]), probs.device, probs.dtype))


def _box_muller(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Two independent standard normals from two uniforms in [0, 1), in place on a and b."""
    radius = a.neg_().log1p_().mul_(-2.0).sqrt_()  # sqrt(-2 log(1 - a)), 1 - a in (0, 1]
    theta = b.mul_(2.0 * math.pi)
    return radius * torch.cos(theta), radius.mul_(theta.sin_())


def as_noise(noise: Noise | torch.Generator | None) -> Noise:
    """A `Noise` from a Noise (returned as is), a `torch.Generator` or None (global RNG)."""
    if noise is None or isinstance(noise, torch.Generator):
        return TorchNoise(noise)
    if isinstance(noise, Noise):
        return noise
    raise TypeError(f"expected a Noise, a torch.Generator or None, got {type(noise).__name__}")
