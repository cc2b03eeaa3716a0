"""`vwm train-reward`: fit the reward predictor overlay onto an existing checkpoint.

Any family's checkpoint (a generator learned from reward-free video included) becomes a
full environment: its EMA weights are loaded as the frozen generator of a
`world_models.overlay.RewardOverlayModel`, whose `RewardPredictor` is trained on a Minari
dataset's real transitions (a fraction of rows seeing the generator's own predicted next
frames) by the one training loop (`world_models.train.run_training`: progress bar,
TensorBoard, fidelity evaluation, atomic checkpoints, exact ``--resume``). The result is a
checkpoint of family ``overlay`` with the base's context bank, usable wherever a checkpoint
is (``gym.make("vwm/Imagined-v0", checkpoint=OUT)``, ``vwm train-agent``, ``vwm evaluate``);
its config.json records the base checkpoint, its task and its fidelity on the same windows.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from world_models.base import ModelSpec
from world_models.checkpoint import CheckpointError, load_checkpoint, read_config, resolve_checkpoint_dir
from world_models.device import resolve_device
from world_models.distributed import (
    current_context,
    init_distributed,
    is_rank_zero,
    rank_zero_first,
    shutdown_distributed,
)
from world_models.families import build_model, make_spec
from world_models.locks import run_folder_lock
from world_models.loop_config import LoopConfig, check_loop_config
from world_models.overlay import RewardOverlayModel
from world_models.sources import MixedDataset, load_sources
from world_models.train import (
    evaluate_fidelity,
    evaluation_data,
    open_run,
    parse_overrides,
    print_run_summary,
    run_training,
)

BASE_KEYS = ("base_checkpoint", "base_family", "base_task", "base_step", "base_eval")
"""config.json keys describing the base checkpoint (kept when a run resumes)."""


@dataclass
class TrainRewardConfig(LoopConfig):
    """Options of `vwm train-reward`."""

    checkpoint: str = field(kw_only=True)
    """Checkpoint (or run folder) of the generator, of any family; its EMA weights are used."""
    dataset: str = field(kw_only=True)
    """Minari dataset id whose real rewards and terminations the predictor learns; its frames
    and actions must match the checkpoint's."""
    out: str = "runs/reward"
    """Run folder: the composed checkpoint goes to OUT/checkpoint, TensorBoard logs to OUT/tb."""
    preset: str = "small"
    """Size preset of the reward predictor: tiny (tests), small (CPU default) or medium."""
    predictor: str = ""
    """JSON object of reward predictor options (the fields of RewardPredictorConfig in
    world_models/reward_predictor.py), e.g. '{"hidden": 64}'."""
    generated_fraction: float | None = None
    """Fraction of batch rows whose next frames are the generator's own one-step predictions
    (labelled with the real rewards); overrides --predictor's (default: the preset's, 0.25
    at small)."""


def check_reward_data(data: MixedDataset, spec: ModelSpec, dataset: str, checkpoint: Path) -> None:
    """ValueError unless `data` has a reward signal and the frames and actions of `spec`."""
    source = data.primary
    if not source.has_rewards or not (np.any(source.rewards) or np.any(source.terminated)):
        raise ValueError(f"dataset {dataset!r} has no rewards to learn from (every reward is 0 and "
                         f"no episode terminates)")
    if tuple(data.frame_shape) != tuple(spec.frame_shape):
        raise ValueError(f"dataset {dataset!r} has frames {tuple(data.frame_shape)} but checkpoint "
                         f"{checkpoint} models frames {tuple(spec.frame_shape)}")
    space = data.action_space
    if (space.kind, space.dim) != (spec.action_kind, spec.action_dim):
        raise ValueError(f"dataset {dataset!r} has {space.kind} actions of size {space.dim} but "
                         f"checkpoint {checkpoint} takes {spec.action_kind} actions of size "
                         f"{spec.action_dim}")


def _check_resumable(out: Path, previous: dict[str, Any], base: Path, dataset: str) -> None:
    """Refuse to resume a run fitted on another base checkpoint or dataset."""
    before = (previous.get("base_checkpoint"), previous.get("dataset"))
    if before != (str(base), dataset):
        raise CheckpointError(f"cannot resume {out}: it fitted checkpoint {before[0]} on dataset "
                              f"{before[1]!r}, not {base} on {dataset!r}")


def _predictor_overrides(cfg: TrainRewardConfig) -> dict[str, Any]:
    overrides = parse_overrides(cfg.predictor, "--predictor")
    if cfg.generated_fraction is not None:
        overrides["generated_fraction"] = cfg.generated_fraction
    return overrides


def train_reward(cfg: TrainRewardConfig) -> Path:
    """Fit (or resume fitting) a reward predictor overlay; returns the composed checkpoint.

    Holds the writer lock of ``cfg.out`` throughout (`world_models.locks`; under torchrun,
    rank 0 holds it)."""
    check_loop_config(cfg)
    with run_folder_lock(cfg.out) if is_rank_zero() else contextlib.nullcontext():
        return _train_reward(cfg)


def _train_reward(cfg: TrainRewardConfig) -> Path:
    out = Path(cfg.out)
    context, device = init_distributed(resolve_device(cfg.device))
    torch.manual_seed(cfg.seed)
    base_dir = resolve_checkpoint_dir(cfg.checkpoint).resolve()
    with rank_zero_first(context):
        data = load_sources(cfg.dataset, holdout_episodes=cfg.holdout_episodes)
    resumed = open_run(out, cfg.resume, device,
                       lambda run, previous: _check_resumable(run, previous, base_dir, cfg.dataset))
    if resumed is not None:
        model, contexts = resumed.model, resumed.contexts
        check_reward_data(data, model.spec, cfg.dataset, base_dir)
        described = {key: resumed.config.get(key) for key in BASE_KEYS}
        task = resumed.task
    else:
        base = load_checkpoint(base_dir, device=device, ema=True)
        check_reward_data(data, base.spec, cfg.dataset, base_dir)
        task = data.task_id or base.task
        if data.task_id and base.task and data.task_id != base.task:
            raise ValueError(f"dataset {cfg.dataset!r} records task {data.task_id!r} but checkpoint "
                             f"{base_dir} was trained on {base.task!r}")
        spec = base.spec
        overlay_spec = make_spec(
            "overlay", spec.frame_shape, spec.action_kind, spec.action_dim, spec.action_low,
            spec.action_high, preset=cfg.preset,
            overrides={"base": spec.to_dict(), "predictor": _predictor_overrides(cfg),
                       "train_generator": False},
        )
        model = build_model(overlay_spec).to(device)
        assert isinstance(model, RewardOverlayModel)
        model.generator.load_state_dict(base.model.state_dict())  # type: ignore[attr-defined]
        contexts = base.contexts
        eval_data, _ = evaluation_data(data)
        described = {"base_checkpoint": str(base_dir), "base_family": spec.family, "base_task": base.task,
                     "base_step": base.step,
                     "base_eval": evaluate_fidelity(base.model, eval_data, spec.context_len,
                                                    cfg.eval_horizon, cfg.seed)}
    run_config: dict[str, Any] = {
        "task": task,
        "dataset": cfg.dataset,
        **described,
        "sources": data.describe(),
        "train_config": asdict(cfg),
    }
    return run_training(model, contexts, data, cfg, run_config, resumed, "train-reward", context)


def train_reward_from_config(cfg: TrainRewardConfig) -> None:
    """`vwm train-reward` entry point: fit, then print the base's and the composed fidelity
    (rank 0 only under torchrun)."""
    try:
        checkpoint = train_reward(cfg)
        main = current_context().is_main
    finally:
        shutdown_distributed()
    if not main:
        return
    base = read_config(checkpoint).get("base_eval") or {}
    if base:
        summary = ", ".join(f"{k}={v:.3g}" for k, v in base.items() if math.isfinite(v))
        print(f"base model fidelity: {summary}")
    print_run_summary(checkpoint)
