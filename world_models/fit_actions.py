"""`vwm fit-actions`: map a latent-action model's codes to a task's real actions (LAPO).

Reads N labelled episodes of a Minari dataset, lets the model infer the latent action of
every transition from its frames, and fits the real <-> latent maps of
`world_models.action_map.ActionMap` on the (real action, code) pairs (LAPO, Schmidt & Jiang
2024, arXiv:2312.10812). The result is written as a *composed checkpoint*: the same model
with the dataset's real action space, native action mode "real", the fitted maps, the
dataset's task id and the label probe (accuracy of the map on held-out episodes). It loads
with ``gym.make("vwm/Imagined-v0", checkpoint=OUT)`` in the real task's action space, or
with ``action_mode="latent"`` in Discrete(n_latent); ``vwm evaluate --latent-actions
--checkpoint OUT`` runs a policy trained on latent actions on the real task through the
latent -> real decoder.

Works for any family whose model implements `world_models.action_map.LatentActionModel`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from world_models.action_map import LatentActionModel
from world_models.base import ModelSpec
from world_models.checkpoint import ContextBank, load_checkpoint, save_checkpoint
from world_models.data import SequenceDataset
from world_models.device import resolve_device


@dataclass
class FitActionsConfig:
    """Options of `vwm fit-actions`."""

    checkpoint: str = ""
    """Checkpoint of a model with latent actions (e.g. genie trained on videos)."""
    dataset: str = ""
    """Minari dataset id with real actions (same frames as the model's)."""
    episodes: int = 5
    """Labelled episodes the maps are fitted on (the first N after the probe episodes)."""
    probe_episodes: int = 5
    """Episodes held out (the dataset's first) to measure the label probe on (0: none)."""
    out: str = "runs/fitted"
    """Folder the composed checkpoint is written to."""
    device: str = "auto"
    """Torch device: auto (cuda when available, else cpu), cpu, cuda or cuda:N."""


def count_pairs(model: LatentActionModel, data: SequenceDataset, episodes: range) -> tuple[Any, Any]:
    """(real actions (M,) or (M, A), codes (M,)) of the labelled transitions of `episodes`."""
    actions, codes = [], []
    for i in episodes:
        batch = data.episode(i).with_masks()
        known = (batch.has_action & batch.valid & ~batch.is_first.bool())[0]  # (T,)
        inferred = model.latent_actions(batch.frames)[0].cpu()  # (T,)
        actions.append(batch.actions[0][known])
        codes.append(inferred[known])
    return torch.cat(actions), torch.cat(codes)


@torch.no_grad()
def fit_actions(cfg: FitActionsConfig) -> tuple[Path, dict[str, Any]]:
    """Fit the maps and write the composed checkpoint; returns (its folder, the fit summary)."""
    if cfg.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {cfg.episodes}")
    loaded = load_checkpoint(cfg.checkpoint, device=resolve_device(cfg.device))
    model = loaded.model
    if not isinstance(model, LatentActionModel):
        raise ValueError(f"model family {loaded.spec.family!r} has no latent actions to fit")
    spec = loaded.spec
    data = SequenceDataset.from_minari(cfg.dataset, holdout_episodes=cfg.probe_episodes,
                                       expect_frame_shape=tuple(spec.frame_shape))
    if not data.has_actions:
        raise ValueError(f"dataset {cfg.dataset!r} has no actions to fit")
    if data.num_episodes < cfg.episodes:
        raise ValueError(f"dataset {cfg.dataset!r} has {data.num_episodes} training episodes, "
                         f"fewer than --episodes {cfg.episodes}")
    real = ModelSpec(family=spec.family, frame_shape=tuple(spec.frame_shape), action_kind=data.action_kind,
                     action_dim=data.action_dim, action_low=data.action_low, action_high=data.action_high,
                     feature_dim=1)
    fitted = model.with_real_actions(real).eval()
    actions, codes = count_pairs(fitted, data, range(cfg.episodes))
    fitted.action_map.update(actions, codes)
    summary: dict[str, Any] = {"episodes": cfg.episodes, "transitions": int(codes.numel()),
                               "fit_accuracy": fitted.action_map.accuracy(actions, codes),
                               "codes_used": int((fitted.action_map.counts.sum(0) > 0).sum())}
    if data.holdout is not None:
        probe_actions, probe_codes = count_pairs(fitted, data.holdout, range(data.holdout.num_episodes))
        summary["probe_accuracy"] = fitted.action_map.accuracy(probe_actions, probe_codes)
        summary["probe_transitions"] = int(probe_codes.numel())
    bank = loaded.contexts
    zeros = torch.zeros(tuple(bank.frames.shape[:2]) + real.action_shape(), dtype=real.action_dtype())
    config = {k: v for k, v in loaded.config.items() if k not in ("spec", "format_version", "versions",
                                                                  "trainer")}
    config.update(task=data.task_id or loaded.task, fitted_from=str(loaded.path), action_fit=summary,
                  fit_config=asdict(cfg))
    path = save_checkpoint(Path(cfg.out), fitted, ContextBank(bank.frames, zeros), config)
    return path, summary


def fit_actions_from_config(cfg: FitActionsConfig) -> None:
    """`vwm fit-actions` entry point: fit, then print the summary and the checkpoint path."""
    path, summary = fit_actions(cfg)
    print(json.dumps(summary, indent=2))
    print(f"checkpoint: {path}")
