"""The one training loop every world-model family uses: `vwm train-model`.

Reads (B, T) windows from a local Minari dataset, optimises `model.compute_loss` with
Adam and gradient clipping, logs to TensorBoard, evaluates open-loop fidelity on held-out
episodes, and writes atomic checkpoints that `--resume` continues bit-for-bit.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from world_models.base import WorldModel
from world_models.checkpoint import (
    CheckpointError,
    ContextBank,
    load_checkpoint,
    load_trainer_state,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_config,
    save_checkpoint,
)
from world_models.data import SequenceDataset
from world_models.evaluation import open_loop_metrics, open_loop_rollout
from world_models.families import build_model, make_spec


@dataclass
class TrainConfig:
    """Options of `vwm train-model`."""

    dataset: str
    """Minari dataset id to train on (e.g. vwm/cartpole/random-v0)."""
    out: str = "runs/model"
    """Run folder: the checkpoint goes to OUT/checkpoint, TensorBoard logs to OUT/tb."""
    family: str = "rssm"
    """Model family."""
    preset: str = "small"
    """Size preset of the family: tiny (tests), small (CPU default) or medium."""
    overrides: str = ""
    """JSON object of hyper-parameter overrides, e.g. '{"deter": 256}'."""
    steps: int = 2000
    """Total gradient steps."""
    batch_size: int = 16
    """Windows per batch."""
    seq_len: int = 16
    """Frames per window."""
    lr: float = 4e-4
    """Adam learning rate."""
    grad_clip: float = 100.0
    """Global gradient-norm clip."""
    seed: int = 0
    """Seed for initialisation and window sampling."""
    holdout_episodes: int = 5
    """Episodes kept out of training for evaluation."""
    num_contexts: int = 256
    """Real start contexts stored in the checkpoint for imagined env resets."""
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
    """Torch device: auto (cuda if available), cpu or cuda."""
    tensorboard: bool = True
    """Write TensorBoard logs."""
    progress: bool = True
    """Show a progress bar."""


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def parse_overrides(text: str | dict[str, Any] | None) -> dict[str, Any]:
    """Hyper-parameter overrides from a JSON object string (or a dict)."""
    if not text:
        return {}
    if isinstance(text, dict):
        return dict(text)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--overrides must be a JSON object, got {text!r}: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"--overrides must be a JSON object, got {text!r}")
    return value


class WorldModelTrainer:
    """Adam + clipping over `compute_loss`, with resumable optimiser and RNG state."""

    def __init__(self, model: WorldModel, lr: float, grad_clip: float, seed: int) -> None:
        self.model = model
        self.grad_clip = grad_clip
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-8)
        self.rng = np.random.default_rng(seed)
        self.step = 0

    def update(self, dataset: SequenceDataset, batch_size: int, seq_len: int) -> dict[str, float]:
        """One gradient step on a freshly sampled batch; raises on a non-finite loss."""
        device = next(self.model.parameters()).device
        batch = dataset.sample(batch_size, seq_len, self.rng).to(device)
        self.model.train()
        loss, metrics = self.model.compute_loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite world-model loss at step {self.step} ({metrics}); "
                "the last good checkpoint is kept"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.step += 1
        metrics = dict(metrics, loss=float(loss.detach()), grad_norm=float(norm))
        return metrics

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON needed to resume exactly: optimiser, torch and numpy RNGs."""
        tensors, groups = optimizer_to_tensors(self.optimizer.state_dict())
        tensors["torch_rng"] = torch.get_rng_state()
        info = {"param_groups": groups, "numpy_rng": self.rng.bit_generator.state, "step": self.step}
        return tensors, info

    def load_state(self, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        """Restore what `state_tensors` saved."""
        device = next(self.model.parameters()).device
        state = optimizer_from_tensors(tensors, info["param_groups"])
        state["state"] = {
            i: {k: (v if k == "step" else v.to(device)) for k, v in s.items()}
            for i, s in state["state"].items()
        }
        self.optimizer.load_state_dict(state)
        torch.set_rng_state(tensors["torch_rng"])
        self.rng.bit_generator.state = info["numpy_rng"]
        self.step = int(info["step"])


def save_run_checkpoint(
    out: Path, trainer: WorldModelTrainer, contexts: ContextBank, config: dict[str, Any]
) -> Path:
    """Write OUT/checkpoint with the model, contexts and the trainer's resume state."""
    tensors, info = trainer.state_tensors()
    config = dict(config, step=trainer.step, trainer=info)
    return save_checkpoint(out / "checkpoint", trainer.model, contexts, config, tensors)


def tensorboard_writer(out: Path, enabled: bool = True):
    """A TensorBoard `SummaryWriter` logging to OUT/tb (None when disabled)."""
    if not enabled:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tb"))


def _evaluate(
    model: WorldModel, holdout: SequenceDataset, context_len: int, horizon: int, seed: int
) -> dict[str, float]:
    """Open-loop fidelity on held-out data.

    PSNR against horizon and reward error come from random windows; termination metrics
    from the last few steps of every held-out episode, so real terminations are always seen.
    """
    batch = holdout.sample(32, context_len + horizon, np.random.default_rng(seed))
    horizons = tuple(h for h in (1, 5, 10, 15, 30) if h <= horizon)
    metrics = open_loop_metrics(model, batch, context_len, horizons)
    ends = holdout.end_windows(context_len + 3)
    if ends is not None:
        end_metrics = open_loop_metrics(model, ends, context_len, ())
        for key in ("termination_accuracy", "termination_recall", "false_termination_rate"):
            if key in end_metrics:
                metrics[key] = end_metrics[key]
    return metrics


def _comparison_image(
    model: WorldModel, holdout: SequenceDataset, context_len: int, horizon: int, seed: int
) -> np.ndarray:
    """uint8 (2H, W * steps, C) image: real frames above, open-loop predictions below."""
    batch = holdout.sample(1, context_len + horizon, np.random.default_rng(seed + 1))
    device = next(model.parameters()).device
    frames, _, _ = open_loop_rollout(model, batch.to(device), context_len,
                                     torch.Generator(device=device).manual_seed(seed))
    real = batch.frames[0, context_len:].numpy()  # (H', H, W, C)
    imagined = frames[0].cpu().numpy()  # (H', H, W, C)
    return np.concatenate([np.concatenate(list(real), 1), np.concatenate(list(imagined), 1)], 0)


def _dataset_task(dataset: SequenceDataset) -> str | None:
    return getattr(dataset, "task_id", None)


def train_world_model(cfg: TrainConfig) -> Path:
    """Train (or resume) a world model; returns the checkpoint folder."""
    out = Path(cfg.out)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    dataset = SequenceDataset.from_minari(cfg.dataset, holdout_episodes=cfg.holdout_episodes)
    train_data, holdout = dataset.train, dataset.holdout
    run_config = {
        "task": _dataset_task(dataset),
        "dataset": cfg.dataset,
        "train_config": asdict(cfg),
    }
    resume_state = None
    has_checkpoint = (out / "checkpoint").exists() or (out / "checkpoint.old").exists()
    if has_checkpoint and not cfg.resume:
        raise FileExistsError(
            f"{out} already holds a checkpoint; pass --resume to continue it or pick another --out"
        )
    if has_checkpoint:
        previous = read_config(out)
        if previous.get("dataset") != cfg.dataset or previous["spec"]["family"] != cfg.family:
            raise CheckpointError(
                f"cannot resume {out}: it was trained on {previous.get('dataset')!r} with "
                f"family {previous['spec']['family']!r}, not {cfg.dataset!r}/{cfg.family!r}"
            )
        loaded = load_checkpoint(out, device=device)
        model, contexts = loaded.model, loaded.contexts
        resume_state = (load_trainer_state(out), loaded.config["trainer"])
    else:
        spec = make_spec(
            cfg.family,
            frame_shape=dataset.frame_shape,
            action_kind=dataset.action_kind,
            action_dim=dataset.action_dim,
            action_low=dataset.action_low,
            action_high=dataset.action_high,
            preset=cfg.preset,
            overrides=parse_overrides(cfg.overrides),
        )
        model = build_model(spec).to(device)
        contexts = dataset.contexts(cfg.num_contexts, spec.context_len, np.random.default_rng(cfg.seed))
    trainer = WorldModelTrainer(model, cfg.lr, cfg.grad_clip, cfg.seed + 1)
    if resume_state is not None:
        tensors, info = resume_state
        if tensors is None:
            raise CheckpointError(f"cannot resume {out}: its checkpoint has no trainer state")
        trainer.load_state(tensors, info)
    context_len = model.spec.context_len
    writer = tensorboard_writer(out, cfg.tensorboard)
    bar = tqdm(total=cfg.steps, initial=trainer.step, desc="train-model", disable=not cfg.progress)
    try:
        while trainer.step < cfg.steps:
            metrics = trainer.update(train_data, cfg.batch_size, cfg.seq_len)
            bar.update(1)
            if trainer.step % cfg.log_every == 0 or trainer.step == cfg.steps:
                bar.set_postfix(loss=f"{metrics['loss']:.3g}")
                if writer is not None:
                    for key, value in metrics.items():
                        writer.add_scalar(f"train/{key}", value, trainer.step)
            last = trainer.step == cfg.steps
            if (cfg.eval_every and trainer.step % cfg.eval_every == 0) or last:
                evaluation = _evaluate(model, holdout, context_len, cfg.eval_horizon, cfg.seed)
                run_config["eval"] = evaluation
                if writer is not None:
                    for key, value in evaluation.items():
                        writer.add_scalar(f"eval/{key}", value, trainer.step)
                    writer.add_image("eval/real_vs_open_loop", _comparison_image(
                        model, holdout, context_len, cfg.eval_horizon, cfg.seed), trainer.step,
                        dataformats="HWC")
            if trainer.step % cfg.checkpoint_every == 0 or last:
                save_run_checkpoint(out, trainer, contexts, run_config)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    if "eval" in run_config:
        summary = ", ".join(f"{k}={v:.3g}" for k, v in run_config["eval"].items() if math.isfinite(v))
        print(f"held-out fidelity: {summary}")
    print(f"checkpoint: {out / 'checkpoint'}")
    return out / "checkpoint"


def train_from_config(cfg: TrainConfig) -> None:
    """`vwm train-model` entry point."""
    train_world_model(cfg)
