"""Options of the one training loop (`world_models.train.run_training`), shared by
`vwm train-model` and `vwm train-reward`, and their range checks."""

from __future__ import annotations

import math
from dataclasses import dataclass

from world_models.option_checks import check_ranges


@dataclass
class LoopConfig:
    """Options of the one training loop, shared by `vwm train-model` and `vwm train-reward`."""

    out: str = "runs/model"
    """Run folder: the checkpoint goes to OUT/checkpoint, TensorBoard logs to OUT/tb."""
    steps: int = 2000
    """Total gradient steps."""
    max_seconds: float = 0.0
    """Also stop once training has run this many seconds, counted over resumed runs too
    (0: no limit); the final evaluation and checkpoint are written as at `steps`. Gives
    model families the same training wall-clock."""
    batch_size: int = 16
    """Windows per batch, per rank under torchrun (the global batch is then batch_size x
    ranks; each rank samples its own windows)."""
    seq_len: int = 16
    """Frames per window."""
    lr: float = 4e-4
    """Adam learning rate (stages a family declares may set their own)."""
    warmup: int = 0
    """Linear learning-rate warm-up steps at the start of each stage (unless it sets its own)."""
    grad_clip: float = 100.0
    """Global gradient-norm clip."""
    seed: int = 0
    """Seed for initialisation and window sampling."""
    holdout_episodes: int = 5
    """Episodes of the dataset (or of the videos, without one) kept out of training for
    evaluation; 0 evaluates on training windows, reported as such."""
    eval_every: int = 500
    """Evaluate open-loop fidelity every N steps (0: only at the end)."""
    eval_horizon: int = 15
    """Longest open-loop horizon evaluated."""
    checkpoint_every: int = 500
    """Write a checkpoint every N steps (and always at the end)."""
    log_every: int = 25
    """Write TensorBoard scalars every N steps."""
    resume: bool = False
    """Continue the run in OUT from its last checkpoint."""
    device: str = "auto"
    """Torch device: auto (cuda when available, else cpu), cpu, cuda or cuda:N."""
    tensorboard: bool = True
    """Write TensorBoard logs."""
    progress: bool = True
    """Show a progress bar."""


LOOP_MINIMUMS = {"steps": 1, "max_seconds": 0, "batch_size": 1, "seq_len": 1, "warmup": 0, "seed": 0,
                 "holdout_episodes": 0, "eval_every": 0, "eval_horizon": 1, "checkpoint_every": 1,
                 "log_every": 1}
"""Smallest value of each numeric `LoopConfig` option (`check_loop_config`)."""


def check_loop_config(cfg: LoopConfig) -> None:
    """ValueError naming an option of the training loop whose value cannot work."""
    check_ranges(cfg, LOOP_MINIMUMS, positive=("lr", "grad_clip"))
    if cfg.max_seconds == math.inf:
        raise ValueError("--max-seconds must be finite (0: no limit)")
