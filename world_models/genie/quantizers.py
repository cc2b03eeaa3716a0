"""Token quantizers of the Genie tokenizer: FSQ (default) or a learned VQ codebook.

Both come from `vector-quantize-pytorch` and share one interface (`Quantizer`), so the
tokenizer, the dynamics' vocabulary and the features do not care which is used:

- ``fsq``: Finite Scalar Quantization (Mentzer et al. 2023, arXiv:2309.15505): each token
  dimension is bounded and rounded to a few levels; the implicit codebook cannot collapse.
- ``vq``: a VQ-VAE codebook (van den Oord et al. 2017, arXiv:1711.00937) with EMA updates
  and a commitment loss, as Genie's tokenizer uses; dead codes (EMA count below 2) are
  re-seeded from the batch, the usual guard against codebook collapse. Masked rows never
  update the codebook, and a frozen tokenizer (no trainable parameter) leaves it alone.
"""

from __future__ import annotations

import math

from torch import Tensor, nn
from vector_quantize_pytorch import FSQ, VectorQuantize

QUANTIZERS: tuple[str, ...] = ("fsq", "vq")
"""Names of the quantizers `make_quantizer` builds."""


class Quantizer(nn.Module):
    """Vectors (M, N, dim) -> (codes (M, N, dim) straight-through, indices (M, N) int64, aux loss)."""

    dim: int
    """Width of a token's code vector."""
    vocab: int
    """Number of distinct tokens."""

    def quantize(self, z: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Quantize z (M, N, dim); `mask` (M,) marks rows that may update a learned codebook."""
        raise NotImplementedError

    def codes(self, indices: Tensor) -> Tensor:
        """Token indices (M, N) -> code vectors (M, N, dim)."""
        raise NotImplementedError


class FSQQuantizer(Quantizer):
    """FSQ with the given levels per dimension (vocab = their product); no auxiliary loss."""

    def __init__(self, levels: tuple[int, ...]) -> None:
        super().__init__()
        self.dim, self.vocab = len(levels), math.prod(levels)
        self.fsq = FSQ(levels=list(levels), preserve_symmetry=any(level == 2 for level in levels))

    def quantize(self, z: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """FSQ codes and indices of z (M, N, dim); the aux loss is 0."""
        codes, indices = self.fsq(z)
        return codes, indices.long(), z.new_zeros(())

    def codes(self, indices: Tensor) -> Tensor:
        """(M, N) -> (M, N, dim)."""
        return self.fsq.indices_to_codes(indices.long())


class VQQuantizer(Quantizer):
    """A learned codebook of `size` vectors of `dim` dims, EMA-updated, with dead-code reset."""

    def __init__(self, dim: int, size: int, commitment: float = 0.25) -> None:
        super().__init__()
        self.dim, self.vocab = dim, size
        self.vq = VectorQuantize(dim=dim, codebook_size=size, decay=0.99, commitment_weight=commitment,
                                 threshold_ema_dead_code=2)

    def quantize(self, z: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Nearest codes of z (M, N, dim), the commitment loss; the codebook learns (EMA) in
        train mode while this quantizer's owner is trainable, from rows where `mask`."""
        frozen = not any(p.requires_grad for p in self.parameters()) or not z.requires_grad
        row_mask = None if mask is None else mask[:, None].expand(z.shape[:2])  # (M, N)
        codes, indices, commit = self.vq(z, mask=row_mask, freeze_codebook=frozen)
        return codes, indices.long(), commit.sum()

    def codes(self, indices: Tensor) -> Tensor:
        """(M, N) -> (M, N, dim): the codebook vectors."""
        return self.vq.get_codes_from_indices(indices.long())


def make_quantizer(kind: str, levels: tuple[int, ...], vq_dim: int, vq_size: int) -> Quantizer:
    """The quantizer named `kind` (ValueError for an unknown name)."""
    if kind == "fsq":
        return FSQQuantizer(levels)
    if kind == "vq":
        return VQQuantizer(vq_dim, vq_size)
    raise ValueError(f"genie quantizer must be one of {QUANTIZERS}, got {kind!r}")
