"""The one training loop every world-model family uses: `vwm train-model`.

Reads (B, T) windows from a local Minari dataset and/or action-free videos
(`world_models.sources`), runs the model's training stages (`world_models.trainer`), logs
to TensorBoard, evaluates open-loop fidelity on held-out episodes (in eval mode, with the
EMA weights when the model keeps them), and writes atomic checkpoints that `--resume`
continues bit-for-bit. That loop is `run_training`; `vwm train-reward`
(`world_models.train_reward`) runs it too, with its own model and data set-up. Started by
``torchrun --nproc_per_node N``, the loop trains data-parallel with DDP
(`world_models.distributed`): each rank samples its own batch, rank 0 writes.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from world_models import distributed
from world_models.base import WorldModel
from world_models.checkpoint import (
    EMA_FILE,
    Checkpoint,
    CheckpointError,
    ContextBank,
    load_checkpoint,
    load_trainer_state,
    load_weights,
    read_config,
    resolve_checkpoint_dir,
    save_checkpoint,
)
from world_models.data import SequenceDataset
from world_models.device import resolve_device
from world_models.distributed import SINGLE, DistContext
from world_models.evaluation import open_loop_metrics, open_loop_rollout
from world_models.families import build_model, make_spec
from world_models.locks import run_folder_lock
from world_models.loop_config import LoopConfig, check_loop_config
from world_models.option_checks import check_ranges
from world_models.sources import MixedDataset, load_sources
from world_models.trainer import WorldModelTrainer

__all__ = ["LoopConfig", "TrainConfig", "WorldModelTrainer", "check_loop_config", "open_run",
           "run_training", "train_from_config", "train_world_model"]


@dataclass
class TrainConfig(LoopConfig):
    """Options of `vwm train-model`."""

    dataset: str = ""
    """Minari dataset id to train on (e.g. vwm/cartpole/random-v0); optional with --videos."""
    videos: tuple[str, ...] = field(default=(), metadata={"repeatable": True})
    """Action-free videos (mp4/gif files or folders of them, comma lists allowed; repeatable),
    trained on alongside the dataset: batch rows are drawn from each source in proportion to
    its frames."""
    ignore_actions: bool = False
    """Train on the dataset without its actions (its action space still sizes the model)."""
    label_episodes: int = 0
    """With --ignore-actions: keep the real actions of the first N training episodes of
    --dataset, which then make up a quarter of every batch (a few labelled episodes beside
    action-free data: genie's latent action model learns its codes to be the actions)."""
    action_space: str = ""
    """Model action space when the data has none: discrete:N or continuous:A[:LOW:HIGH]
    (default with videos only: discrete:1, a single "no action")."""
    video_size: int = 64
    """Square side videos are resized to when no dataset fixes the frame shape (0: as is)."""
    family: str = "rssm"
    """Model family."""
    preset: str = "small"
    """Size preset of the family: tiny (tests), small (CPU default) or medium."""
    overrides: str = ""
    """JSON object of hyper-parameter overrides, e.g. '{"deter": 256}'."""
    num_contexts: int = 256
    """Real start contexts stored in the checkpoint for imagined env resets."""


def parse_overrides(text: str | dict[str, Any] | None, option: str = "--overrides") -> dict[str, Any]:
    """Hyper-parameter overrides from a JSON object string (or a dict); errors name `option`."""
    if not text:
        return {}
    if isinstance(text, dict):
        return dict(text)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{option} must be a JSON object, got {text!r}: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{option} must be a JSON object, got {text!r}")
    return value


def save_run_checkpoint(
    out: Path, trainer: WorldModelTrainer, contexts: ContextBank, config: dict[str, Any]
) -> Path:
    """Write OUT/checkpoint with the model, contexts and the trainer's resume state."""
    tensors, info = trainer.state_tensors()
    config = dict(config, step=trainer.step, trainer=info, ema=trainer.ema is not None)
    return save_checkpoint(out / "checkpoint", trainer.model, contexts, config, tensors, trainer.ema)


def tensorboard_writer(out: Path, enabled: bool = True):
    """A TensorBoard `SummaryWriter` logging to OUT/tb (None when disabled)."""
    if not enabled:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tb"))


@contextmanager
def evaluating(model: WorldModel) -> Iterator[WorldModel]:
    """Put `model` in eval mode for the block, then back in the mode it was in."""
    was_training = model.training  # type: ignore[attr-defined]
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def evaluate_fidelity(
    model: WorldModel, data: SequenceDataset, context_len: int, horizon: int, seed: int
) -> dict[str, float]:
    """Open-loop fidelity of `model` on `data` (held-out episodes, or training ones when none
    are), in eval mode.

    PSNR and SSIM against horizon, reward error and termination precision come from random
    windows; the other termination metrics from the last few steps of every episode, so real
    terminations are always seen (those windows over-represent ends, hence not precision).
    Reward and termination metrics are left out for data without rewards (videos).
    """
    batch = data.sample(32, context_len + horizon, np.random.default_rng(seed))
    horizons = tuple(h for h in (1, 5, 10, 15, 30) if h <= horizon)
    with evaluating(model):
        metrics = open_loop_metrics(model, batch, context_len, horizons)
        ends = data.end_windows(context_len + 3)
        if ends is not None:
            end_metrics = open_loop_metrics(model, ends, context_len, ())
            for key in ("termination_accuracy", "termination_recall", "false_termination_rate"):
                if key in end_metrics:
                    metrics[key] = end_metrics[key]
    if not data.has_rewards:
        metrics = {k: v for k, v in metrics.items() if k.startswith(("psnr", "ssim"))}
    return metrics


def _comparison_image(
    model: WorldModel, data: SequenceDataset, context_len: int, horizon: int, seed: int
) -> np.ndarray:
    """uint8 (2H, W * steps, C) image: real frames above, open-loop predictions below."""
    batch = data.sample(1, context_len + horizon, np.random.default_rng(seed + 1))
    device = next(model.parameters()).device
    with evaluating(model):
        frames, _, _ = open_loop_rollout(model, batch.to(device), context_len,
                                         torch.Generator(device=device).manual_seed(seed))
    real = batch.frames[0, context_len:].numpy()  # (H', H, W, C)
    imagined = frames[0].cpu().numpy()  # (H', H, W, C)
    return np.concatenate([np.concatenate(list(real), 1), np.concatenate(list(imagined), 1)], 0)


def _load_data(cfg: TrainConfig) -> MixedDataset:
    return load_sources(cfg.dataset, cfg.videos, cfg.ignore_actions, cfg.action_space,
                        cfg.holdout_episodes, cfg.video_size, cfg.label_episodes)


def _check_resumable(out: Path, previous: dict[str, Any], cfg: TrainConfig) -> None:
    """Refuse to resume a run (config.json `previous`) trained on other data or family."""
    before = (previous.get("dataset") or "", list(previous.get("videos") or []),
              previous["spec"]["family"])
    now = (cfg.dataset, list(cfg.videos), cfg.family)
    if before != now:
        raise CheckpointError(
            f"cannot resume {out}: it was trained on dataset {before[0]!r}, videos {before[1]} "
            f"with family {before[2]!r}, not {now[0]!r}, {now[1]}, {now[2]!r}"
        )


def evaluation_data(data: MixedDataset) -> tuple[SequenceDataset, str]:
    """The episodes fidelity is measured on and their split's name: the held-out episodes,
    else (with a warning) the training ones."""
    if data.holdout is not None:
        return data.holdout, "held-out"
    warnings.warn("no held-out episodes (--holdout-episodes 0): fidelity is measured on training "
                  "windows", stacklevel=3)
    return data.primary, "training"


def open_run(
    out: Path, resume: bool, device: torch.device,
    check: Callable[[Path, dict[str, Any]], None] | None = None,
) -> Checkpoint | None:
    """The checkpoint in run folder `out` to continue (raw weights, not EMA), or None for a
    fresh run; FileExistsError when `out` holds one and `resume` is off. `check(out,
    config)` may refuse (raising) to resume a run made with other options."""
    has_checkpoint = (out / "checkpoint").exists() or (out / "checkpoint.old").exists()
    if not has_checkpoint:
        return None
    if not resume:
        raise FileExistsError(
            f"{out} already holds a checkpoint; pass --resume to continue it or pick another --out"
        )
    if check is not None:
        check(out, read_config(out))
    return load_checkpoint(out, device=device, ema=False)


def run_training(
    model: WorldModel,
    contexts: ContextBank,
    data: MixedDataset,
    cfg: LoopConfig,
    run_config: dict[str, Any],
    resumed: Checkpoint | None = None,
    desc: str = "train-model",
    context: DistContext = SINGLE,
) -> Path:
    """The one training loop: trainer updates with a progress bar, TensorBoard scalars and
    images, open-loop evaluation, and atomic checkpoints of `model`, `contexts` and
    `run_config` (plus the eval and step) in ``cfg.out``; `resumed` (from `open_run`)
    continues its trainer state exactly. Returns the checkpoint folder.

    Under torchrun (`context` from `world_models.distributed.init_distributed`) every rank
    runs this loop on its own windows with gradients averaged by DDP; rank 0 alone shows the
    progress bar, evaluates and writes logs and checkpoints (config.json records the number
    of ranks; resuming with another number changes the global batch from there on).
    """
    out = Path(cfg.out)
    main = context.is_main
    trained_seconds = float(resumed.config.get("train_seconds", 0.0)) if resumed is not None else 0.0
    trainer = WorldModelTrainer(model, cfg.lr, cfg.grad_clip, cfg.seed + 1, cfg.warmup, context)
    if resumed is not None:
        tensors = load_trainer_state(out)
        if tensors is None:
            raise CheckpointError(f"cannot resume {out}: its checkpoint has no trainer state")
        trainer.load_state(tensors, resumed.config["trainer"])
        if trainer.ema is not None and (resolve_checkpoint_dir(out) / EMA_FILE).is_file():
            load_weights(out, trainer.ema, ema=True)
    context_len = model.spec.context_len
    eval_data, split = evaluation_data(data)
    run_config = dict(run_config, eval_split=split, world_size=context.world_size)
    writer = tensorboard_writer(out, cfg.tensorboard and main)
    tag = "eval" if split == "held-out" else "eval_train"
    bar = tqdm(total=None if cfg.max_seconds > 0 else cfg.steps, initial=trainer.step, desc=desc,
               disable=not (cfg.progress and main))
    started = time.perf_counter()

    def finished() -> bool:
        """Whether the run is done (rank 0's clock decides for every rank)."""
        run_config["train_seconds"] = trained_seconds + time.perf_counter() - started
        timed_out = 0 < cfg.max_seconds <= run_config["train_seconds"]
        if cfg.max_seconds > 0:
            timed_out = distributed.rank_zero_decides(timed_out, context)
        return trainer.step >= cfg.steps or timed_out

    last = finished()  # a resumed run may be finished
    try:
        while not last:
            metrics = trainer.update(data, cfg.batch_size, cfg.seq_len)
            bar.update(1)
            last = finished()
            if not main:
                continue
            if trainer.step % cfg.log_every == 0 or last:
                bar.set_postfix(loss=f"{metrics['loss']:.3g}")
                if writer is not None:
                    for key, value in metrics.items():
                        writer.add_scalar(f"train/{key}", value, trainer.step)
            if (cfg.eval_every and trainer.step % cfg.eval_every == 0) or last:
                sampler = trainer.sampling_model
                evaluation = evaluate_fidelity(sampler, eval_data, context_len, cfg.eval_horizon, cfg.seed)
                run_config["eval"] = evaluation
                if writer is not None:
                    for key, value in evaluation.items():
                        writer.add_scalar(f"{tag}/{key}", value, trainer.step)
                    writer.add_image(f"{tag}/real_vs_open_loop", _comparison_image(
                        sampler, eval_data, context_len, cfg.eval_horizon, cfg.seed), trainer.step,
                        dataformats="HWC")
            if trainer.step % cfg.checkpoint_every == 0 or last:
                save_run_checkpoint(out, trainer, contexts, run_config)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    distributed.barrier(context)  # the other ranks leave once rank 0 has written the last checkpoint
    return out / "checkpoint"


def train_world_model(cfg: TrainConfig) -> Path:
    """Train (or resume) a world model; returns the checkpoint folder. Under torchrun this
    process is one rank of a data-parallel run (`world_models.distributed`).

    Holds the writer lock of ``cfg.out`` (`world_models.locks`) throughout: a second process
    training into the same folder is refused (under torchrun, rank 0 holds it).
    """
    check_loop_config(cfg)
    check_ranges(cfg, {"num_contexts": 1, "video_size": 0})
    with run_folder_lock(cfg.out) if distributed.is_rank_zero() else contextlib.nullcontext():
        return _train_world_model(cfg)


def _train_world_model(cfg: TrainConfig) -> Path:
    out = Path(cfg.out)
    context, device = distributed.init_distributed(resolve_device(cfg.device))
    torch.manual_seed(cfg.seed)
    with distributed.rank_zero_first(context):  # rank 0 builds the dataset's frame cache, the others read it
        data = _load_data(cfg)
    run_config: dict[str, Any] = {
        "task": data.task_id,
        "dataset": cfg.dataset,
        "videos": list(cfg.videos),
        "sources": data.describe(),
        "train_config": asdict(cfg),
    }
    resumed = open_run(out, cfg.resume, device, lambda run, previous: _check_resumable(run, previous, cfg))
    if resumed is not None:
        model, contexts = resumed.model, resumed.contexts
    else:
        space = data.action_space
        spec = make_spec(
            cfg.family,
            frame_shape=data.frame_shape,
            action_kind=space.kind,
            action_dim=space.dim,
            action_low=space.low,
            action_high=space.high,
            preset=cfg.preset,
            overrides=parse_overrides(cfg.overrides),
        )
        model = build_model(spec).to(device)
        contexts = data.contexts(cfg.num_contexts, spec.context_len, np.random.default_rng(cfg.seed))
    return run_training(model, contexts, data, cfg, run_config, resumed, "train-model", context)


def print_run_summary(checkpoint: Path) -> None:
    """Print a finished run's fidelity (from its config.json) and its checkpoint path."""
    config = read_config(checkpoint)
    if "eval" in config:
        summary = ", ".join(f"{k}={v:.3g}" for k, v in config["eval"].items() if math.isfinite(v))
        print(f"{config.get('eval_split', 'held-out')} fidelity: {summary}")
    print(f"checkpoint: {checkpoint}")


def train_from_config(cfg: TrainConfig) -> None:
    """`vwm train-model` entry point: train, then print the fidelity and the checkpoint path
    (rank 0 only under torchrun)."""
    try:
        checkpoint = train_world_model(cfg)
        main = distributed.current_context().is_main
    finally:
        distributed.shutdown_distributed()
    if main:
        print_run_summary(checkpoint)
