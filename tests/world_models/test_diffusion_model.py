"""The diffusion world model: it learns, imagines reproducibly, and its latent variant trains in stages.

The `WorldModel` contract itself (padding rule, ring-buffer state, per-row noise, masks,
exact resume) is checked for ``diffusion`` by tests/world_models/test_conformance.py.
"""

from __future__ import annotations

import json

import pytest
import torch

from world_models import families
from world_models.base import ModelSpec, burn_in
from world_models.batch import SequenceBatch
from world_models.diffusion import DiffusionWorldModel
from world_models.trainer import WorldModelTrainer

SIZE = 16
MOVES = torch.tensor([[0, 0], [-2, 0], [2, 0], [0, -2], [0, 2]])  # action 0 stays, 1-4 move


def make(kind: str = "discrete", seed: int = 0, **overrides) -> DiffusionWorldModel:
    dim, low, high = (len(MOVES), None, None) if kind == "discrete" else (1, (-1.0,), (1.0,))
    spec = families.make_spec("diffusion", (SIZE, SIZE, 3), kind, dim, low, high, preset="tiny",
                              overrides=overrides)
    torch.manual_seed(seed)
    return families.build_model(spec)  # type: ignore[return-value]


def square_batch(batch: int, length: int, gen: torch.Generator) -> SequenceBatch:
    """A 4x4 white square on black that the action moves by 2 pixels (clamped to the frame)."""
    pos = torch.randint(0, SIZE - 4, (batch, 2), generator=gen)
    actions = torch.randint(0, len(MOVES), (batch, length), generator=gen)
    actions[:, 0] = 0
    frames = torch.zeros(batch, length, SIZE, SIZE, 3, dtype=torch.uint8)
    for t in range(length):
        pos = (pos + MOVES[actions[:, t]]).clamp(0, SIZE - 4)
        for b in range(batch):
            y, x = pos[b].tolist()
            frames[b, t, y : y + 4, x : x + 4] = 255
    is_first = torch.zeros(batch, length, dtype=torch.bool)
    is_first[:, 0] = True
    terminated = torch.zeros(batch, length, dtype=torch.bool)
    return SequenceBatch(frames, actions, torch.zeros(batch, length), terminated, is_first)


class FixedSource:
    """A `BatchSource` that draws square batches from the trainer's generator."""

    def sample(self, batch_size: int, seq_len: int, generator) -> SequenceBatch:
        seed = int(generator.integers(0, 2**31))
        return square_batch(batch_size, seq_len, torch.Generator().manual_seed(seed))


def test_denoiser_loss_falls_on_a_moving_square():
    model = make(rollout_weight=0.0)
    optimizer = torch.optim.Adam(model.denoiser.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for step in range(40):
        loss, metrics = model.compute_loss(square_batch(8, 7, gen), step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(metrics["denoise_loss"])
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    assert last < 0.6 * first, (first, last)


def test_loss_has_an_own_prediction_term_and_reward_predictor_terms():
    model = make().train()
    batch = square_batch(3, 7, torch.Generator().manual_seed(1))
    loss, metrics = model.compute_loss(batch, 0)
    assert torch.isfinite(loss)
    assert metrics["targets"] == 3 * 6  # every frame after the first has a padded context
    assert metrics["rollout_loss"] > 0 and {"reward_loss", "cont_loss", "denoise_loss"} <= set(metrics)
    capped = make(targets_per_row=2).train()
    assert capped.compute_loss(batch, 0)[1]["targets"] == 3 * 2


@pytest.mark.parametrize("overrides", [{}, {"sampler": "heun", "sampling_steps": 2}])
@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_imagination_is_reproducible_with_a_fixed_seed(kind, overrides):
    model = make(kind, **overrides).eval()
    batch = square_batch(2, 3, torch.Generator().manual_seed(2))
    actions = batch.actions if kind == "discrete" else torch.rand(2, 3, 1) * 2 - 1
    model.denoiser.unet.conv_out.weight.data.normal_(0, 0.1)  # so the output depends on the context

    def rollout(seed: int) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            state = burn_in(model, batch.frames, actions)
            out = []
            for _ in range(3):
                step = model.step(state, actions[:, 1], gen)
                state = step.state
                out += [model.decode(state), model.features(state), step.reward, step.cont_prob]
        return out

    first, again, other = rollout(0), rollout(0), rollout(1)
    assert first[0].dtype == torch.uint8 and first[0].shape == (2, SIZE, SIZE, 3)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(first[0], other[0])


def test_latent_variant_trains_the_vae_then_the_denoiser():
    model = make(variant="latent", vae_steps=1)
    assert model.space.shape == (2, SIZE // 2, SIZE // 2)
    stages = model.training_stages()
    assert [s.name for s in stages] == ["autoencoder", "dynamics"]
    trainer = WorldModelTrainer(model, lr=1e-3, grad_clip=10.0, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    m0 = trainer.update(FixedSource(), 2, 6)  # autoencoder stage: VAE + reward predictor
    assert "vae_recon" in m0 and "denoise_loss" not in m0
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items() if k.startswith("denoiser."))
    assert float(model.space.latent_std) == 0.0
    after_vae = {k: v.clone() for k, v in model.state_dict().items()}
    m1 = trainer.update(FixedSource(), 2, 6)  # dynamics stage: denoiser + reward predictor, VAE frozen
    assert "denoise_loss" in m1 and m1["stage"] == 1.0
    assert float(model.space.latent_std) > 0.0
    for key, value in model.state_dict().items():
        if key.startswith("space.") and key != "space.latent_std":
            assert torch.equal(value, after_vae[key]), key
    trained = [k for k, v in model.state_dict().items() if not torch.equal(v, after_vae[k])]
    assert any(k.startswith("denoiser.") for k in trained)
    ema = trainer.sampling_model
    batch = square_batch(2, 2, torch.Generator().manual_seed(3))
    with torch.no_grad():
        state = burn_in(ema, batch.frames, batch.actions)
        step = ema.step(state, batch.actions[:, 1], torch.Generator().manual_seed(0))
    assert ema.decode(step.state).shape == (2, SIZE, SIZE, 3)
    assert step.state["context"].shape == (2, 4, 2, SIZE // 2, SIZE // 2)


def test_make_spec_validates_the_working_resolution_and_round_trips_as_json():
    with pytest.raises(ValueError, match="divisible by 8"):
        families.make_spec("diffusion", (SIZE, SIZE, 3), "discrete", 3, preset="tiny",
                           overrides={"fold": 4, "channels": [8, 8, 8, 8]})
    with pytest.raises(ValueError, match="unknown reward predictor options"):
        families.make_spec("diffusion", (SIZE, SIZE, 3), "discrete", 3, preset="tiny",
                           overrides={"predictor": {"bogus": 1}})
    spec = families.make_spec("diffusion", (64, 64, 3), "discrete", 2, preset="small")
    assert spec.context_len == 4 and spec.feature_dim == 128 and spec.hparams["fold"] == 2
    again = ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    model = families.build_model(again)
    assert model.space.shape == (12, 32, 32)
    grid = families.make_spec("diffusion", (64, 64, 3), "discrete", 6, preset="tiny",
                              overrides={"native_grid": 10})
    with pytest.raises(ValueError, match="divisible by 2"):
        families.make_spec("diffusion", (64, 64, 3), "discrete", 6, preset="tiny",
                           overrides={"native_grid": 9})
    assert families.build_model(grid).space.shape == (3, 10, 10)
