"""Model fidelity on held-out data: open-loop PSNR and SSIM against horizon, reward and
termination error.

SSIM: Wang, Bovik, Sheikh and Simoncelli 2004, "Image Quality Assessment: From Error
Visibility to Structural Similarity" (an 11x11 Gaussian window, sigma 1.5, K1 = 0.01,
K2 = 0.03, L = 255, statistics over the valid part of the image, as in the authors' code).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from world_models.base import WorldModel, burn_in
from world_models.batch import SequenceBatch
from world_models.imagine import imagine


def psnr(prediction: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB per sample of uint8 images (B, ...) -> (B,)."""
    diff = prediction.float() - target.float()
    mse = diff.pow(2).flatten(1).mean(1).clamp_min(1e-3)  # (B,)
    return 10.0 * torch.log10(255.0**2 / mse)


SSIM_WINDOW = 11
"""Side of the Gaussian SSIM window (shrunk to the largest odd size <= min(H, W) for smaller frames)."""
SSIM_SIGMA = 1.5
"""Standard deviation of the Gaussian SSIM window, in pixels."""
SSIM_C1 = (0.01 * 255) ** 2
"""SSIM luminance constant (K1 L)^2."""
SSIM_C2 = (0.03 * 255) ** 2
"""SSIM contrast-structure constant (K2 L)^2."""


def _gaussian_window(size: int, sigma: float, device: torch.device) -> Tensor:
    """(size,) normalised 1-D Gaussian, float64."""
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    w = torch.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


def ssim(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean structural similarity per sample of uint8 frames (B, H, W, C) -> (B,) float32.

    Local means, variances and covariance come from an 11x11 Gaussian window (sigma 1.5)
    over the valid part of each channel; the SSIM map is averaged over space, then over
    channels. 1 for identical frames; symmetric in its arguments.
    """
    if prediction.shape != target.shape or prediction.ndim != 4:
        raise ValueError(f"ssim needs two (B, H, W, C) batches of one shape, got "
                         f"{tuple(prediction.shape)} and {tuple(target.shape)}")
    b, h, w, c = prediction.shape
    size = min(SSIM_WINDOW, h - (1 - h % 2), w - (1 - w % 2))  # odd and fitting the frame
    x = prediction.permute(0, 3, 1, 2).reshape(b * c, 1, h, w).double()  # (B*C, 1, H, W)
    y = target.permute(0, 3, 1, 2).reshape(b * c, 1, h, w).double()
    stack = torch.cat([x, y, x * x, y * y, x * y], 1)  # (B*C, 5, H, W)
    g = _gaussian_window(size, SSIM_SIGMA, prediction.device)
    stack = F.conv2d(stack, g.view(1, 1, size, 1).expand(5, 1, size, 1), groups=5)  # (B*C, 5, H', W)
    stack = F.conv2d(stack, g.view(1, 1, 1, size).expand(5, 1, 1, size), groups=5)  # (B*C, 5, H', W')
    mu_x, mu_y, xx, yy, xy = stack.unbind(1)  # each (B*C, H', W')
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + SSIM_C1) / (mu_x**2 + mu_y**2 + SSIM_C1)
    structure = (2 * cov + SSIM_C2) / (var_x + var_y + SSIM_C2)
    per_channel = (luminance * structure).flatten(1).mean(1)  # (B*C,)
    return per_channel.view(b, c).mean(1).float()  # (B,)


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
    """PSNR and SSIM at each horizon (and ``psnr_copy_h*``: the PSNR of repeating the last
    context frame, the baseline a model must beat), reward MAE and termination metrics on
    held-out windows.

    `batch` holds windows of length ``context_len + max(horizons)`` that start an episode
    at most at index 0. Steps after a real termination and padding (``valid`` False) are
    excluded from the metrics (the real episode has ended there). A predicted end is a
    continue probability below 0.5; ``termination_recall`` (of real terminations, the
    fraction predicted) and ``termination_precision`` (of predicted ends, the fraction that
    are real terminations) are left out when the batch has none to count.
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
            metrics[f"ssim_h{h}"] = float(ssim(frames[rows, h - 1], real[rows, h - 1]).mean())
            last = batch.frames[rows, context_len - 1]  # the baseline: repeat the last real frame
            metrics[f"psnr_copy_h{h}"] = float(psnr(last, real[rows, h - 1]).mean())
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
        metrics["termination_precision"] = termination_precision(predicted_end, terminated, alive)
    living = alive & ~terminated
    if living.any():
        metrics["false_termination_rate"] = float(predicted_end[living].float().mean())
    return metrics


def termination_precision(predicted_end: Tensor, terminated: Tensor, alive: Tensor) -> float:
    """Of the predicted ends (bool (B, T)) among `alive` steps, the fraction that are real
    terminations; nan when no end is predicted there."""
    predicted = predicted_end & alive
    if not predicted.any():
        return float("nan")
    return float(terminated[predicted].float().mean())
