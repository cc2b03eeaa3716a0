"""The diffusion family's training objective on (B, T) windows, batched over all targets.

EDM loss (Karras et al. 2022, arXiv:2206.00364) as DIAMOND trains it (Alonso et al. 2024,
arXiv:2405.12399): each target frame x0 is noised at a log-normal level σ with per-channel
offset noise, and the network output F is regressed onto ``(x0 - c_skip x) / c_out`` (the
λ(σ)-weighted denoising loss). Two robustness terms against the drift of long rollouts:

* context noise augmentation (DIAMOND's CS:GO model, GameNGen, Valevski et al. 2024,
  arXiv:2408.14837): for a fraction of targets the context frames get Gaussian noise at a
  level drawn like the training levels (clipped), and that level is fed to the network
  (at sampling time it is 0);
* an extra target per row whose newest context frame is the model's own one-step sample
  (no gradient through the sample), weighted by ``rollout_weight``: in the spirit of
  DIAMOND's autoregressive training over a window, at a fraction of its cost.

Contexts follow the padding rule (`world_models.diffusion.windows`); actions read as "no
action" where ``has_action`` is False. Training noise comes from torch's global RNG.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from world_models.batch import SequenceBatch
from world_models.diffusion import edm
from world_models.diffusion.windows import ContextWindows, context_windows, gather_rows, pick_per_row

if TYPE_CHECKING:
    from world_models.diffusion.model import DiffusionWorldModel


def target_inputs(model: DiffusionWorldModel, batch: SequenceBatch, work: Tensor, windows: ContextWindows,
                  rows: Tensor, steps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(context (N, K, c, h, w), action slots (N, K[, A + 1]), target x0 (N, c, h, w)) of the
    targets (rows (N,), steps (N,)); work: (B, T, c, h, w) working-space frames."""
    index = windows.index[rows, steps]  # (N, K)
    context = gather_rows(work, rows, index)  # (N, K, c, h, w)
    past_actions = gather_rows(batch.actions, rows, index)  # (N, K[, A])
    past_known = windows.real_action[rows, steps] & gather_rows(batch.has_action, rows, index)  # (N, K)
    actions = torch.cat([past_actions[:, 1:], batch.actions[rows, steps][:, None]], 1)  # (N, K[, A])
    known = torch.cat([past_known[:, 1:], batch.has_action[rows, steps][:, None]], 1)  # (N, K)
    return context, model.action_slots(actions, known), work[rows, steps]


def edm_losses(model: DiffusionWorldModel, x0: Tensor, context: Tensor, slots: Tensor) -> Tensor:
    """(N,) per-target EDM losses (mean over c, h, w) with offset noise and context noise."""
    cfg = model.cfg
    n, device = x0.shape[0], x0.device
    sigma = edm.training_sigma(torch.randn(n, device=device), cfg.sigma_loc, cfg.sigma_scale)  # (N,)
    noisy = edm.add_noise(x0, sigma, torch.randn_like(x0), torch.randn(n, x0.shape[1], 1, 1, device=device),
                          cfg.offset_noise)  # (N, c, h, w)
    level = edm.training_sigma(torch.randn(n, device=device), cfg.sigma_loc, cfg.sigma_scale,
                               high=cfg.context_noise_max)  # (N,)
    level = torch.where(torch.rand(n, device=device) < cfg.context_noise_prob, level, 0.0)
    context = context + level.view(-1, 1, 1, 1, 1) * torch.randn_like(context)  # (N, K, c, h, w)
    out, pre = model.network(noisy, sigma, context, slots, level)
    return (out - edm.network_target(x0, noisy, pre)).square().mean((1, 2, 3))


def _zero(model: DiffusionWorldModel) -> Tensor:
    """A zero loss connected to the denoiser's parameters (no target in the batch)."""
    return sum(p.sum() for p in model.denoiser.parameters()) * 0.0  # type: ignore[return-value]


def denoising_loss(model: DiffusionWorldModel, batch: SequenceBatch) -> tuple[Tensor, dict[str, float]]:
    """Denoising loss on the targets with a full context (at most ``targets_per_row`` per row)
    plus ``rollout_weight`` times the loss on one own-prediction target per row. `batch` has
    its masks (`SequenceBatch.with_masks`) and lies on the model's device."""
    cfg = model.cfg
    b, t = batch.is_first.shape
    windows = context_windows(batch.is_first, model.k)
    trainable = windows.complete & batch.valid  # (B, T)
    chosen = pick_per_row(trainable, cfg.targets_per_row, torch.rand(b, t, device=trainable.device))
    with torch.no_grad():
        work = model.space.encode(batch.frames.flatten(0, 1)).unflatten(0, (b, t)).float()  # (B, T, c, h, w)
    rows, steps = chosen.nonzero(as_tuple=True)  # (N,) each
    if rows.numel() == 0:
        loss = _zero(model)
        return loss, {"denoise_loss": 0.0, "rollout_loss": 0.0, "targets": 0.0}
    context, slots, x0 = target_inputs(model, batch, work, windows, rows, steps)
    main = edm_losses(model, x0, context, slots).mean()
    metrics = {"denoise_loss": float(main.detach()), "targets": float(rows.numel())}

    pairs = torch.zeros_like(trainable)
    pairs[:, :-1] = trainable[:, :-1] & trainable[:, 1:]  # (B, T) t and t + 1 both train
    pairs = pick_per_row(pairs, 1, torch.rand(b, t, device=pairs.device))
    p_rows, p_steps = pairs.nonzero(as_tuple=True)  # (M,) each
    if cfg.rollout_weight == 0 or p_rows.numel() == 0:
        return main, metrics | {"rollout_loss": 0.0}
    with torch.no_grad():
        ctx_now, slots_now, _ = target_inputs(model, batch, work, windows, p_rows, p_steps)
        start = torch.randn_like(ctx_now[:, 0])  # (M, c, h, w)
        guess = model.sample_next(ctx_now, slots_now, start, sigmas=[cfg.sigma_max, 0.0], sampler="euler")
        _, guess = model.space.project(guess)  # (M, c, h, w) as it would re-enter the context
    context, slots, x0 = target_inputs(model, batch, work, windows, p_rows, p_steps + 1)
    context = torch.cat([context[:, :-1], guess[:, None]], 1)  # newest frame: the model's own
    rollout = edm_losses(model, x0, context, slots).mean()
    return main + cfg.rollout_weight * rollout, metrics | {"rollout_loss": float(rollout.detach())}
