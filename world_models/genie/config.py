"""Hyper-parameters of the Genie family and its named presets.

Genie (Bruce et al. 2024, "Genie: Generative Interactive Environments", arXiv:2402.15391):
a video tokenizer (FSQ, Mentzer et al. 2023, arXiv:2309.15505), a latent action model and a
MaskGIT dynamics transformer (Chang et al. 2022, arXiv:2202.04200). Sizes are picked for two
CPU cores (DESIGN section 10); the tokenizer and latent-action settings follow the probe in
DESIGN section 9 (FSQ [8, 6, 5], foreground-weighted MSE, 3 binary FSQ dimensions = 8 codes,
motion-weighted decoder loss, a batch-variance penalty against collapse, a small label term).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from world_models.genie.quantizers import QUANTIZERS

ACTION_MODES: tuple[str, ...] = ("auto", "latent", "real")
"""Values of `GenieConfig.action_mode` ("auto" is resolved by `make_spec`)."""
DYNAMICS_ACTIONS: tuple[str, ...] = ("latent", "real")
"""Values of `GenieConfig.dynamics_actions`."""


@dataclass(frozen=True)
class GenieConfig:
    """Genie world-model hyper-parameters; every field is JSON-serialisable."""

    context_len: int = 4
    """K: real frames burned in and frames of history the dynamics attends to."""
    patch: int = 8
    """Pixels per token side: a power of 2 dividing the frame sides (64x64 -> 8x8 tokens)."""
    tok_channels: int = 32
    """Channels of the tokenizer's conv encoder and decoder."""
    quantizer: str = "fsq"
    """Token quantizer: "fsq" (Finite Scalar Quantization) or "vq" (a learned EMA codebook
    with dead-code reset, as Genie's tokenizer)."""
    fsq_levels: tuple[int, ...] = (8, 6, 5)
    """FSQ levels per token dimension; the FSQ token vocabulary is their product."""
    vq_size: int = 256
    """Codebook entries of the "vq" quantizer (its token vocabulary)."""
    vq_dim: int = 8
    """Width of a "vq" code vector (low-dimensional codes use the codebook better)."""
    fg_weight: float = 10.0
    """Extra weight of foreground pixels (away from the batch's per-pixel median) in the
    tokenizer's MSE; 0 gives plain MSE."""
    lam_levels: tuple[int, ...] = (2, 2, 2)
    """FSQ levels of the latent action code; n_latent is their product (Genie uses 8)."""
    lam_channels: int = 32
    """Channels of the latent action model's encoder and decoder."""
    lam_motion_weight: float = 10.0
    """Extra weight of the pixels that change between o_t and o_t+1 in the LAM decoder loss."""
    lam_variance_weight: float = 0.1
    """Weight of the penalty on latent dimensions whose batch std falls below 0.5 (collapse)."""
    lam_history: bool = False
    """Give the LAM decoder o_t-1 besides o_t: what the past predicts (a ball in flight)
    then needs no code, leaving the code to what the action changes (DESIGN section 9)."""
    lam_label_weight: float = 0.1
    """Weight of the label term: a head predicts the real action from the code, where the
    data has actions (turns the codes into the actions, DESIGN section 9); 0: none."""
    dyn_dim: int = 128
    """Width of the dynamics transformer."""
    dyn_layers: int = 4
    """Spatio-temporal blocks of the dynamics transformer."""
    dyn_heads: int = 4
    """Attention heads."""
    maskgit_steps: int = 4
    """MaskGIT decoding steps per imagined frame."""
    temperature: float = 1.0
    """Sampling temperature of the token distribution (0: argmax)."""
    confidence_noise: float = 1.0
    """Scale of the Gumbel noise on the confidences that choose which tokens to unmask,
    annealed to 0 over the steps (MaskGIT's choice temperature; 0: greedy confidence)."""
    reward_hidden: int = 64
    """GRU size of the embedded reward/continue predictor (`world_models.reward_predictor`)."""
    reward_depth: int = 16
    """Channels of the reward predictor's first conv stage."""
    reward_image_size: int = 32
    """Side frames are pooled to before the reward predictor's convs (0: the frame size)."""
    tokenizer_frames: int = 64
    """Frames of each batch (drawn at random among the valid ones) the tokenizer loss sees;
    a window's frames are alike, so a few per window train as well for a fraction of the
    cost (0: all)."""
    lam_pairs: int = 64
    """Transitions of each batch (drawn at random) the latent action model's loss sees (0: all)."""
    tokenizer_steps: int = 1000
    """Steps of the first training stage (tokenizer)."""
    lam_steps: int = 1000
    """Steps of the second training stage (latent action model); dynamics and reward run after."""
    lr: float = 4e-4
    """Learning rate of every stage."""
    action_mode: str = "auto"
    """Native action space of the env: "latent" (Discrete(n_latent)), "real" (the data's
    actions, mapped to latent codes by the fitted action map) or "auto": latent for
    action-free data (the placeholder action space discrete:1), real otherwise."""
    dynamics_actions: str = "latent"
    """What the dynamics is conditioned on: "latent" (the LAM's codes, inferred from frame
    pairs: Genie) or "real" (the data's real discrete actions, no LAM stage: the oracle that
    latent-action controllability is compared with; needs action_mode "real")."""

    def replace(self, overrides: dict[str, Any]) -> GenieConfig:
        """A copy with `overrides` applied (unknown keys: ValueError); lists become tuples."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown genie hyper-parameters {unknown}; valid: {sorted(known)}")
        clean = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        return dataclasses.replace(self, **clean)

    @property
    def n_latent(self) -> int:
        """Number of latent actions."""
        return math.prod(self.lam_levels)

    @property
    def vocab(self) -> int:
        """Number of distinct tokens."""
        return math.prod(self.fsq_levels) if self.quantizer == "fsq" else self.vq_size

    @property
    def token_dim(self) -> int:
        """Width of a token's code vector (features hold one per token)."""
        return len(self.fsq_levels) if self.quantizer == "fsq" else self.vq_dim

    def validate(self, frame_shape: tuple[int, int, int]) -> None:
        """ValueError for a frame size the tokenizer cannot patch, or bad settings."""
        h, w, _ = frame_shape
        if self.patch < 1 or self.patch & (self.patch - 1) or h % self.patch or w % self.patch:
            raise ValueError(f"genie patch {self.patch} must be a power of 2 dividing the frame "
                             f"sides {h}x{w}")
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer must be one of {QUANTIZERS}, got {self.quantizer!r}")
        if self.action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {self.action_mode!r}")
        if self.dynamics_actions not in DYNAMICS_ACTIONS:
            raise ValueError(f"dynamics_actions must be one of {DYNAMICS_ACTIONS}, "
                             f"got {self.dynamics_actions!r}")
        if self.dynamics_actions == "real" and self.action_mode == "latent":
            raise ValueError("dynamics_actions='real' conditions the dynamics on real actions: "
                             "action_mode must be 'real' (or 'auto'), not 'latent'")
        if self.dyn_dim % self.dyn_heads:
            raise ValueError(f"dyn_dim {self.dyn_dim} must be divisible by dyn_heads {self.dyn_heads}")
        if self.maskgit_steps < 1 or self.context_len < 1:
            raise ValueError("maskgit_steps and context_len must be >= 1")


PRESETS: dict[str, GenieConfig] = {
    "tiny": GenieConfig(context_len=3, patch=4, tok_channels=16, fsq_levels=(5, 4, 4), lam_channels=16,
                        dyn_dim=32, dyn_layers=1, dyn_heads=2, maskgit_steps=2, reward_hidden=16,
                        reward_depth=8, reward_image_size=0, tokenizer_steps=100, lam_steps=100,
                        lr=1e-3),
    "small": GenieConfig(),
    "medium": GenieConfig(context_len=8, tok_channels=64, lam_channels=64, dyn_dim=256, dyn_layers=8,
                          dyn_heads=8, maskgit_steps=8, reward_hidden=128, reward_depth=32,
                          tokenizer_steps=5000, lam_steps=5000),
}
"""Named presets: tiny (tests), small (CPU default), medium (GPU)."""
