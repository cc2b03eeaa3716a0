"""Fidelity metrics: SSIM against hand-checkable cases, termination precision on a built case."""

from __future__ import annotations

import math

import numpy as np
import torch

from world_models.evaluation import SSIM_C1, SSIM_C2, psnr, ssim, termination_precision


def _frames(seed: int, batch: int = 2, size: int = 16, channels: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, size, size, channels), generator=gen, dtype=torch.uint8)


def _reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of two (H, W) images from the definition: a loop over every valid 11x11 window."""
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            a, b = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mu_a, mu_b = (w * a).sum(), (w * b).sum()
            var_a, var_b = (w * (a - mu_a) ** 2).sum(), (w * (b - mu_b) ** 2).sum()
            cov = (w * (a - mu_a) * (b - mu_b)).sum()
            values.append((2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)
                          / ((mu_a**2 + mu_b**2 + SSIM_C1) * (var_a + var_b + SSIM_C2)))
    return float(np.mean(values))


def test_ssim_of_identical_frames_is_one():
    x = _frames(0)
    torch.testing.assert_close(ssim(x, x), torch.ones(2))


def test_ssim_of_constant_frames_is_the_luminance_term():
    x = torch.full((1, 16, 16, 3), 100, dtype=torch.uint8)
    y = torch.full((1, 16, 16, 3), 150, dtype=torch.uint8)
    expected = (2 * 100 * 150 + SSIM_C1) / (100**2 + 150**2 + SSIM_C1)  # variances are 0
    assert math.isclose(float(ssim(x, y)), expected, rel_tol=1e-6)


def test_ssim_matches_the_definition_per_channel_averaged():
    x, y = _frames(1, batch=1, size=14), _frames(2, batch=1, size=14)
    y = ((x.int() + y.int()) // 2).to(torch.uint8)  # correlated with x
    channels = [_reference_ssim(x[0, ..., c].double().numpy(), y[0, ..., c].double().numpy())
                for c in range(3)]
    assert math.isclose(float(ssim(x, y)), float(np.mean(channels)), rel_tol=1e-5)


def test_ssim_is_symmetric_and_lower_for_noisier_frames():
    x = _frames(3, batch=1, size=32).float()
    x = torch.nn.functional.avg_pool2d(x.permute(0, 3, 1, 2), 5, 1, 2).permute(0, 2, 3, 1)  # smooth
    gen = torch.Generator().manual_seed(4)
    noise = torch.randn(x.shape, generator=gen)
    clean = x.round().to(torch.uint8)
    slightly = (x + 5 * noise).clamp(0, 255).round().to(torch.uint8)
    very = (x + 40 * noise).clamp(0, 255).round().to(torch.uint8)
    torch.testing.assert_close(ssim(clean, very), ssim(very, clean))
    assert 1.0 > float(ssim(clean, slightly)) > float(ssim(clean, very)) > 0.0
    assert float(psnr(clean, slightly)) > float(psnr(clean, very))


def test_ssim_on_frames_smaller_than_the_window():
    x = _frames(5, size=8)
    torch.testing.assert_close(ssim(x, x), torch.ones(2))
    assert ssim(x, _frames(6, size=8)).shape == (2,)


def test_termination_precision_on_a_built_case():
    # two rows of five steps; row 0 really ends at t = 3 (t = 4 is after its end)
    terminated = torch.tensor([[0, 0, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    alive = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    # predicted ends: row 0 at t = 1 (false), t = 3 (true), t = 4 (not alive: ignored);
    # row 1 at t = 2 (false)
    predicted = torch.tensor([[0, 1, 0, 1, 1], [0, 0, 1, 0, 0]], dtype=torch.bool)
    assert math.isclose(termination_precision(predicted, terminated, alive), 1 / 3, rel_tol=1e-6)
    assert math.isnan(termination_precision(torch.zeros_like(predicted), terminated, alive))
