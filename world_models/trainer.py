"""The staged optimiser behind `vwm train-model` and the online loop.

`WorldModelTrainer` runs a model's `world_models.stages.Stage`s: one Adam optimiser per
stage over the stage's parameter groups, linear learning-rate warm-up, gradient clipping,
frozen parameters left untouched, and optional EMA weights (a model declares
``ema_decay`` > 0; the trainer keeps an EMA copy, updated after every step, which
checkpoints store and imagination loads). `state_tensors`/`load_state` capture every
optimiser, the torch/CUDA random states and the step; the windows of each step and the
loss's own randomness are seeded from (seed, step, rank) (`world_models.distributed`), so a
resumed run continues bit for bit. Under torchrun the loss runs through a DDP wrapper that
averages the ranks' gradients.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from world_models.base import WorldModel
from world_models.batch import Generator, SequenceBatch
from world_models.checkpoint import optimizer_from_tensors, optimizer_to_tensors
from world_models.distributed import SINGLE, DistContext, any_rank, loss_seed, window_rng, wrap_ddp
from world_models.stages import model_stages, select_parameters, stage_at, warmup_factor


class BatchSource(Protocol):
    """Anything that samples (B, T) training windows (`SequenceDataset`, `MixedDataset`)."""

    def sample(self, batch_size: int, seq_len: int, generator: Generator) -> SequenceBatch: ...  # noqa: D102


class WorldModelTrainer:
    """Staged Adam + clipping over ``compute_loss(batch, step)``, with EMA and exact resume."""

    def __init__(
        self, model: WorldModel, lr: float, grad_clip: float, seed: int, warmup: int = 0,
        context: DistContext = SINGLE,
    ) -> None:
        """`lr`, `grad_clip` and `warmup` are the run's defaults; stages may override them.
        `seed` seeds every step's windows and loss noise; `context` is this process's rank in
        a data-parallel run (`world_models.distributed.init_distributed`)."""
        self.model = model
        self.context = context
        self.lr, self.grad_clip, self.warmup = float(lr), float(grad_clip), int(warmup)
        self.stages = model_stages(model)  # type: ignore[arg-type]
        self.optimizers: dict[int, torch.optim.Adam] = {}
        """Stage index -> its optimiser, created when the stage first runs."""
        self._base_lrs: dict[int, list[float]] = {}  # stage index -> lr of each group
        self.seed = int(seed)
        self._ddp: tuple[int, nn.Module] | None = None  # (stage index, its DDP wrapper)
        self.step = 0
        self.ema_decay = float(getattr(model, "ema_decay", 0.0) or 0.0)
        """EMA decay the model declares (0: no EMA)."""
        self.ema: nn.Module | None = None
        """EMA copy of the model (eval mode, no gradients), or None."""
        if self.ema_decay > 0:
            self.ema = copy.deepcopy(model).eval()  # type: ignore[arg-type]
            self.ema.requires_grad_(False)
        self._build(0)

    @property
    def sampling_model(self) -> WorldModel:
        """The weights imagination and evaluation use: the EMA copy when there is one."""
        return self.ema if self.ema is not None else self.model  # type: ignore[return-value]

    def _build(self, index: int) -> torch.optim.Adam:
        """Stage `index`'s optimiser (created on first use)."""
        if index not in self.optimizers:
            stage = self.stages[index]
            stage_lr = self.lr if stage.lr is None else stage.lr
            selected = select_parameters(self.model, stage)  # type: ignore[arg-type]
            self._base_lrs[index] = [stage_lr if g.lr is None else g.lr for g, _ in selected]
            groups = [
                {"params": [p for _, p in params], "lr": lr}
                for (_, params), lr in zip(selected, self._base_lrs[index], strict=True)
            ]
            self.optimizers[index] = torch.optim.Adam(groups, lr=stage_lr, eps=1e-8)
        return self.optimizers[index]

    def update(self, dataset: BatchSource, batch_size: int, seq_len: int) -> dict[str, float]:
        """One gradient step of the current stage on a fresh batch; raises on a non-finite loss.

        The model runs in train mode for the step and is returned to its previous mode.
        """
        index, within = stage_at(self.stages, self.step)
        stage = self.stages[index]
        optimizer = self._build(index)
        trained = [p for group in optimizer.param_groups for p in group["params"]]
        trained_ids = {id(p) for p in trained}
        frozen = [p for p in self.model.parameters() if id(p) not in trained_ids and p.requires_grad]
        factor = warmup_factor(within, self.warmup if stage.warmup is None else stage.warmup)
        for group, base_lr in zip(optimizer.param_groups, self._base_lrs[index], strict=True):
            group["lr"] = base_lr * factor
        device = next(self.model.parameters()).device
        rank = self.context.rank
        batch = dataset.sample(batch_size, seq_len, window_rng(self.seed, self.step, rank)).to(device)
        was_training = self.model.training
        self.model.train()
        for p in frozen:
            p.requires_grad_(False)
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(loss_seed(self.seed, self.step, rank))
                loss, metrics = self._loss_fn(index, device)(batch, self.step)
            if any_rank(not bool(torch.isfinite(loss)), self.context):
                raise FloatingPointError(
                    f"non-finite world-model loss at step {self.step} ({metrics}); "
                    "the last good checkpoint is kept"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip = self.grad_clip if stage.grad_clip is None else stage.grad_clip
            norm = torch.nn.utils.clip_grad_norm_(trained, clip)
            optimizer.step()
        finally:
            for p in frozen:
                p.requires_grad_(True)
            self.model.train(was_training)
        self._update_ema(trained_ids)
        self.step += 1
        return dict(metrics, loss=float(loss.detach()), grad_norm=float(norm),
                    lr=float(optimizer.param_groups[0]["lr"]), stage=float(index))

    def _loss_fn(self, index: int, device: torch.device) -> Any:
        """``compute_loss``, or under torchrun the DDP wrapper of stage `index` (built on the
        stage's first step, while its frozen parameters do not require gradients)."""
        if not self.context.enabled:
            return self.model.compute_loss
        if self._ddp is None or self._ddp[0] != index:
            self._ddp = (index, wrap_ddp(self.model, device))
        return self._ddp[1]

    @torch.no_grad()
    def _update_ema(self, trained_ids: set[int]) -> None:
        """ema <- d * ema + (1 - d) * weights for the parameters the stage trains, with d the
        warmed-up decay `ema_decay_at`; frozen parameters and buffers are copied (a frozen
        part, e.g. an autoencoder trained in an earlier stage, is used exactly as the later
        stages were trained on it)."""
        if self.ema is None:
            return
        decay = ema_decay_at(self.ema_decay, self.step)
        for averaged, current in zip(self.ema.parameters(), self.model.parameters(), strict=True):
            if id(current) in trained_ids:
                averaged.lerp_(current, 1.0 - decay)
            else:
                averaged.copy_(current)
        for averaged, current in zip(self.ema.buffers(), self.model.buffers(), strict=True):
            averaged.copy_(current)

    def state_tensors(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Tensors and JSON needed to resume exactly: every optimiser, the RNG states, the step
        and the sampling seed.

        The EMA weights are not in here: checkpoints store them in their own file.
        """
        tensors: dict[str, Tensor] = {"torch_rng": torch.get_rng_state()}
        groups: dict[str, list[dict]] = {}
        for index, optimizer in self.optimizers.items():
            state, groups[str(index)] = optimizer_to_tensors(optimizer.state_dict())
            tensors.update({f"stage{index}.{k}": v for k, v in state.items()})
        if torch.cuda.is_available():
            for i, state in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"cuda_rng.{i}"] = state
        info = {"optimizers": groups, "stages": [s.name for s in self.stages], "step": self.step,
                "seed": self.seed}
        return tensors, info

    def load_state(self, tensors: dict[str, Tensor], info: dict[str, Any]) -> None:
        """Restore what `state_tensors` saved (also the single-optimiser format of older runs;
        their numpy sampling state is not needed any more: windows are seeded per step)."""
        device = next(self.model.parameters()).device
        if "optimizers" in info:
            saved = {int(k): v for k, v in info["optimizers"].items()}
        else:  # format of checkpoints written before stages: one optimiser, keys "optim.*"
            saved = {0: info["param_groups"]}
            tensors = {f"stage0.{k}": v for k, v in tensors.items() if k.startswith("optim.")} | tensors
        for index, groups in saved.items():
            prefix = f"stage{index}."
            own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            state = optimizer_from_tensors(own, groups)
            state["state"] = {
                i: {k: (v if k == "step" else v.to(device)) for k, v in s.items()}
                for i, s in state["state"].items()
            }
            self._build(index).load_state_dict(state)
        torch.set_rng_state(tensors["torch_rng"])
        cuda = sorted(
            (int(k.split(".")[1]), v) for k, v in tensors.items() if k.startswith("cuda_rng.")
        )
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([v for _, v in cuda])
        self.step = int(info["step"])
        self.seed = int(info.get("seed", self.seed))


def ema_decay_at(decay: float, step: int) -> float:
    """EMA decay used after update `step` (0-based): ``min(decay, (1 + step) / (10 + step))``.

    The usual warm-up of an EMA (as in TensorFlow's ``ExponentialMovingAverage`` with
    ``num_updates``): early averages forget the random initialisation quickly, so a short
    CPU run's EMA weights are not mostly its initial weights (with a fixed 0.999, 500 steps
    leave 0.999^500 = 61% of the initialisation in them).
    """
    return min(float(decay), (1.0 + step) / (10.0 + step))

