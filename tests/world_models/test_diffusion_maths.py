"""Pure parts of the diffusion family: EDM maths, working spaces, context windows."""

from __future__ import annotations

import math

import pytest
import torch

from world_models.diffusion import edm
from world_models.diffusion.space import PixelSpace, fold, unfold, upscale_indices
from world_models.diffusion.windows import context_windows, pick_per_row


# ------------------------------------------------------------------------------ EDM
def test_preconditioning_matches_hand_computed_values():
    # sigma_data = 0.5: var = σ² + 0.25; c_skip = 0.25 / var, c_out = 0.5 σ / sqrt(var),
    # c_in = 1 / sqrt(var), c_noise = ln(σ) / 4.
    expected = {
        1.0: (0.2, 0.4472136, 0.8944272, 0.0),  # var 1.25
        0.5: (0.5, 0.3535534, 1.4142136, -0.1732868),  # var 0.5
        2.0: (0.0588235, 0.4850713, 0.4850713, 0.1732868),  # var 4.25
    }
    sigma = torch.tensor(list(expected), dtype=torch.float64)
    pre = edm.preconditioning(sigma)
    for i, values in enumerate(expected.values()):
        got = [float(c[i]) for c in pre]
        assert got == pytest.approx(values, abs=1e-6)


def test_effective_sigma_and_training_sigma():
    assert float(edm.effective_sigma(torch.tensor(0.4), 0.3)) == pytest.approx(0.5)
    normal = torch.tensor([0.0, 1.0, -10.0, 10.0])
    got = edm.training_sigma(normal, loc=-0.4, scale=1.2, low=2e-3, high=20.0)
    assert got.tolist() == pytest.approx([math.exp(-0.4), math.exp(0.8), 2e-3, 20.0], rel=1e-6)


def test_karras_schedule_matches_hand_computed_values():
    # σ_i = (5^(1/7) + i/2 (0.002^(1/7) - 5^(1/7)))^7: 5^(1/7) = 1.2584990, 0.002^(1/7) = 0.4115597,
    # midpoint 0.8350294^7 = 0.2830819.
    assert edm.karras_sigmas(3, 0.002, 5.0, 7.0) == pytest.approx([5.0, 0.2830819, 0.002, 0.0], rel=1e-6)
    assert edm.karras_sigmas(1, 0.002, 5.0, 7.0) == pytest.approx([5.0, 0.0])
    assert edm.karras_sigmas(2, 0.002, 5.0, 7.0) == pytest.approx([5.0, 0.002, 0.0])
    with pytest.raises(ValueError):
        edm.karras_sigmas(0)


@pytest.mark.parametrize("sampler", ["euler", "heun"])
@pytest.mark.parametrize("steps", [1, 3])
def test_sampler_with_an_exact_denoiser_lands_on_x0(sampler, steps):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 3, 4, 4, generator=gen) * 2 - 1
    calls = []

    def exact(x: torch.Tensor, sigma: float) -> torch.Tensor:
        calls.append(sigma)
        return x0

    start = torch.randn(2, 3, 4, 4, generator=gen)
    out = edm.sample(start, edm.karras_sigmas(steps), exact, sampler)
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=0)
    expected_calls = steps if sampler == "euler" else 2 * steps - 1
    assert len(calls) == edm.network_evaluations(steps, sampler) == expected_calls


def test_heun_step_is_exact_on_a_linear_path_and_euler_on_the_last_step():
    x0, x = torch.zeros(1, 1, 1, 1), torch.full((1, 1, 1, 1), 2.0)
    # with D = x0 the ODE solution is x0 + (x - x0) σ' / σ: 2 -> 1 from σ = 2 to 1
    assert float(edm.heun_step(x, 2.0, 1.0, lambda y, s: x0)) == pytest.approx(1.0)
    assert float(edm.heun_step(x, 2.0, 0.0, lambda y, s: x0)) == pytest.approx(0.0)


def test_network_target_makes_the_denoiser_exact():
    gen = torch.Generator().manual_seed(1)
    x0 = torch.rand(3, 2, 4, 4, generator=gen)
    sigma = torch.tensor([0.1, 1.0, 3.0])
    normal, offset = torch.randn(3, 2, 4, 4, generator=gen), torch.randn(3, 2, 1, 1, generator=gen)
    noisy = edm.add_noise(x0, sigma, normal, offset, 0.3)
    pre = edm.Preconditioning(*(c.view(-1, 1, 1, 1) for c in edm.preconditioning(sigma)))
    torch.testing.assert_close(edm.denoised(noisy, edm.network_target(x0, noisy, pre), pre), x0)


# ------------------------------------------------------------------------------ working spaces
def test_fold_round_trip_is_exact():
    x = torch.randn(2, 3, 8, 8)
    assert fold(x, 2).shape == (2, 12, 4, 4)
    assert torch.equal(unfold(fold(x, 2), 2), x)
    frames = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    space = PixelSpace((64, 64, 3), fold_factor=2)
    work = space.encode(frames)
    assert space.shape == (12, 32, 32) and work.shape == (2, 12, 32, 32)
    assert float(work.min()) >= -1.0 and float(work.max()) <= 1.0
    assert torch.equal(space.decode(work), frames)
    frames_back, work_back = space.project(work + 0.001)  # less than half a level off
    assert torch.equal(frames_back, frames) and torch.equal(work_back, work)


def test_native_grid_round_trip_is_exact_on_a_block_image():
    grid = torch.randint(0, 256, (2, 10, 10, 3), dtype=torch.uint8)
    cells = upscale_indices(10, 64)  # what video_envs/draw.py draws MinAtar with
    frames = grid[:, cells][:, :, cells]  # (2, 64, 64, 3) nearest upscale
    space = PixelSpace((64, 64, 3), grid=10)
    work = space.encode(frames)
    assert work.shape == (2, 3, 10, 10)
    assert torch.equal(space.decode(work), frames)
    assert torch.equal(space.project(work)[1], work)


# ------------------------------------------------------------------------------ windows
def test_context_windows_follow_the_padding_rule():
    # row 0: starts an episode at 0; row 1: begins mid-episode, a new episode starts at 3
    is_first = torch.tensor([[True, False, False, False, False], [False, False, False, True, False]])
    win = context_windows(is_first, 2)
    assert win.index[0].tolist() == [[0, 0], [0, 0], [0, 1], [1, 2], [2, 3]]
    assert win.real_action[0].tolist() == [[False, False], [False, False], [False, True], [True, True],
                                           [True, True]]
    assert win.complete[0].tolist() == [False, True, True, True, True]
    assert win.index[1].tolist() == [[0, 0], [0, 0], [0, 1], [1, 2], [3, 3]]
    assert win.real_action[1].tolist()[2:] == [[True, True], [True, True], [False, False]]
    assert win.complete[1].tolist() == [False, False, True, False, True]


def test_pick_per_row_keeps_at_most_count_masked_entries():
    mask = torch.tensor([[True, True, False, True], [False, False, False, True], [False] * 4])
    scores = torch.tensor([[0.1, 0.9, 0.99, 0.5], [0.3, 0.2, 0.1, 0.0], [0.5] * 4])
    assert pick_per_row(mask, 2, scores).tolist() == [[False, True, False, True], [False, False, False, True],
                                                      [False] * 4]
    assert torch.equal(pick_per_row(mask, 0, scores), mask)
