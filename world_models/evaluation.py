"""Model fidelity on held-out data: open-loop PSNR against horizon, reward and termination error."""

from __future__ import annotations

import torch
from torch import Tensor

from world_models.base import WorldModel, burn_in
from world_models.batch import SequenceBatch
from world_models.imagine import imagine


def psnr(prediction: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB per sample of uint8 images (B, ...) -> (B,)."""
    diff = prediction.float() - target.float()
    mse = diff.pow(2).flatten(1).mean(1).clamp_min(1e-3)  # (B,)
    return 10.0 * torch.log10(255.0**2 / mse)


@torch.inference_mode()
def open_loop_rollout(
    model: WorldModel, batch: SequenceBatch, context_len: int, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Burn in on the first `context_len` frames, then imagine the rest with the real actions.

    Returns imagined frames uint8 (B, H', H, W, C), rewards (B, H') and continue
    probabilities (B, H'), where H' = T - context_len.
    """
    state = burn_in(model, batch.frames[:, :context_len], batch.actions[:, :context_len])
    out = imagine(model, state, batch.actions[:, context_len:], noise=generator, decode=True)
    return out.frames.transpose(0, 1), out.rewards.T, out.continues.T  # type: ignore[union-attr]


def open_loop_metrics(
    model: WorldModel,
    batch: SequenceBatch,
    context_len: int,
    horizons: tuple[int, ...] = (1, 5, 15),
    seed: int = 0,
) -> dict[str, float]:
    """PSNR at each horizon, reward MAE, and termination accuracy, recall and precision
    (when the model predicts an end) on held-out windows.

    `batch` holds windows of length ``context_len + max(horizons)`` that start an episode
    at most at index 0. Steps after a real termination and padding (``valid`` False) are
    excluded from the metrics (the real episode has ended there).
    """
    device = next(model.parameters()).device
    batch = batch.with_masks().to(device)
    valid = batch.valid[:, context_len:]  # (B, H')
    generator = torch.Generator(device=device).manual_seed(seed)
    frames, rewards, conts = open_loop_rollout(model, batch, context_len, generator)
    real = batch.frames[:, context_len:]
    metrics: dict[str, float] = {}
    for h in horizons:
        if h <= frames.shape[1] and valid[:, h - 1].any():
            rows = valid[:, h - 1]  # (B,)
            metrics[f"psnr_h{h}"] = float(psnr(frames[rows, h - 1], real[rows, h - 1]).mean())
    terminated = batch.terminated[:, context_len:]
    # valid until (and including) the first real termination
    alive = ((terminated.cumsum(1) - terminated.long()) == 0) & valid  # (B, H')
    real_rewards = batch.rewards[:, context_len:]
    metrics["reward_mae"] = float((rewards - real_rewards).abs()[alive].mean())
    predicted_end = conts < 0.5
    metrics["termination_accuracy"] = float((predicted_end == terminated)[alive].float().mean())
    if terminated.any():
        metrics["termination_recall"] = float(predicted_end[terminated].float().mean())
    if (predicted_end & alive).any():
        metrics["termination_precision"] = float(terminated[predicted_end & alive].float().mean())
    living = alive & ~terminated
    if living.any():
        metrics["false_termination_rate"] = float(predicted_end[living].float().mean())
    return metrics
