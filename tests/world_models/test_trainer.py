"""The staged trainer: stages, frozen parts, warm-up, EMA, exact resume, tied weights, eval mode."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tests.conftest import collect_tiny, train_tiny
from world_models.base import ModelSpec
from world_models.checkpoint import ContextBank, load_checkpoint, load_weights, save_checkpoint
from world_models.data import SequenceDataset
from world_models.stages import ParamGroup, Stage, stage_at, warmup_factor
from world_models.train import save_run_checkpoint
from world_models.trainer import WorldModelTrainer

SPEC = ModelSpec(family="twostage", frame_shape=(2, 2, 1), action_kind="discrete", action_dim=2,
                 context_len=1, feature_dim=4)


class TwoStage(nn.Module):
    """Part A (`a.*`) trains for 3 steps with B frozen, then part B (`b.*`) with A frozen."""

    ema_decay = 0.5

    def __init__(self) -> None:
        super().__init__()
        self.spec = SPEC
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 1)

    def training_stages(self) -> list[Stage]:
        return [
            Stage("a", steps=3, groups=(ParamGroup(("a.",)),), lr=0.1, warmup=2),
            Stage("b", groups=(ParamGroup(("b.weight",), lr=0.02), ParamGroup(("b.",)))),
        ]

    def compute_loss(self, batch, step: int = 0):
        x = batch.frames.float().flatten(2) / 255  # (B, T, 4)
        x = x + 0.01 * torch.randn_like(x)  # global RNG: resume must restore it
        loss = (self.b(torch.tanh(self.a(x))) - batch.rewards[..., None]).square().mean()
        return loss, {"loss": float(loss.detach())}


def _data() -> SequenceDataset:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (40, 2, 2, 1), dtype=np.uint8)
    return SequenceDataset(frames, rng.integers(0, 2, 40), rng.random(40).astype(np.float32),
                           np.zeros(40, bool), np.array([0, 10, 25, 40]), "discrete", 2)


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_stage_schedule_helpers():
    stages = [Stage("a", steps=3), Stage("b", steps=1)]
    assert [stage_at(stages, s) for s in (0, 2, 3, 7)] == [(0, 0), (0, 2), (1, 0), (1, 4)]
    assert [warmup_factor(i, 4) for i in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]


def test_two_stages_freeze_warm_up_and_keep_ema(tmp_path):
    torch.manual_seed(0)
    model, data = TwoStage(), _data()
    trainer = WorldModelTrainer(model, lr=1.0, grad_clip=100.0, seed=0)
    start = _snapshot(model)
    lrs = [trainer.update(data, 4, 3)["lr"] for _ in range(3)]
    assert lrs == pytest.approx([0.05, 0.1, 0.1])  # stage lr 0.1, 2 warm-up steps
    after_a = _snapshot(model)
    assert not torch.equal(after_a["a.weight"], start["a.weight"])
    for key in ("b.weight", "b.bias"):
        assert torch.equal(after_a[key], start[key]), "part B is frozen in stage 1"
    metrics = trainer.update(data, 4, 3)
    assert metrics["stage"] == 1
    assert [g["lr"] for g in trainer.optimizers[1].param_groups] == [0.02, 1.0]  # group, run lr
    for _ in range(2):
        trainer.update(data, 4, 3)
    after_b = _snapshot(model)
    assert torch.equal(after_b["a.weight"], after_a["a.weight"]), "part A is frozen in stage 2"
    assert not torch.equal(after_b["b.weight"], after_a["b.weight"])
    assert all(p.requires_grad for p in model.parameters()), "freezing is undone after a step"
    # EMA: differs from the raw weights, is what sampling uses, and what a load gives back
    assert trainer.sampling_model is trainer.ema
    ema = _snapshot(trainer.ema)
    assert not torch.equal(ema["b.weight"], after_b["b.weight"])
    bank = ContextBank(torch.zeros(1, 1, 2, 2, 1, dtype=torch.uint8), torch.zeros(1, 1, dtype=torch.int64))
    path = save_run_checkpoint(tmp_path, trainer, bank, {"task": None})
    fresh = TwoStage()
    assert load_weights(path, fresh) is True
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, ema[key]), key
    assert load_weights(path, fresh, ema=False) is False
    assert torch.equal(fresh.b.weight, after_b["b.weight"])


def _resumed_run(tmp_path, total: int, split: int) -> tuple[dict, dict]:
    """Train `split` steps, save, rebuild everything from disk, train to `total`."""
    torch.manual_seed(0)
    model, data = TwoStage(), _data()
    trainer = WorldModelTrainer(model, lr=0.05, grad_clip=1.0, seed=3)
    for _ in range(split):
        trainer.update(data, 4, 3)
    tensors, info = trainer.state_tensors()
    save_file(tensors, str(tmp_path / "trainer.safetensors"))
    bank = ContextBank(torch.zeros(1, 1, 2, 2, 1, dtype=torch.uint8), torch.zeros(1, 1, dtype=torch.int64))
    path = save_run_checkpoint(tmp_path, trainer, bank, {})
    torch.manual_seed(123)  # whatever happened in between
    model = TwoStage()
    load_weights(path, model, ema=False)
    trainer = WorldModelTrainer(model, lr=0.05, grad_clip=1.0, seed=99)
    trainer.load_state(load_file(str(tmp_path / "trainer.safetensors")), json.loads(json.dumps(info)))
    load_weights(path, trainer.ema)
    for _ in range(total - split):
        trainer.update(data, 4, 3)
    return _snapshot(model), _snapshot(trainer.ema)


@pytest.mark.parametrize("split", [2, 3, 5])
def test_resume_is_bit_exact_across_stages(tmp_path, split):
    torch.manual_seed(0)
    model, data = TwoStage(), _data()
    trainer = WorldModelTrainer(model, lr=0.05, grad_clip=1.0, seed=3)
    for _ in range(6):
        trainer.update(data, 4, 3)
    raw, ema = _resumed_run(tmp_path, 6, split)
    for key in raw:
        assert torch.equal(raw[key], model.state_dict()[key]), key
        assert torch.equal(ema[key], trainer.ema.state_dict()[key]), key


class Tied(nn.Module):
    """Input embedding and output projection share one weight."""

    def __init__(self) -> None:
        super().__init__()
        self.spec = SPEC
        self.embed = nn.Linear(4, 4, bias=False)
        self.out = nn.Linear(4, 4, bias=False)
        self.out.weight = self.embed.weight


def test_tied_weights_round_trip(tmp_path):
    model = Tied()
    bank = ContextBank(torch.zeros(1, 1, 2, 2, 1, dtype=torch.uint8), torch.zeros(1, 1, dtype=torch.int64))
    path = save_checkpoint(tmp_path / "ckpt", model, bank, {})
    fresh = Tied()
    load_weights(path, fresh)
    assert fresh.out.weight is fresh.embed.weight
    assert torch.equal(fresh.embed.weight, model.embed.weight)


def test_holdout_zero_evaluates_on_training_windows(tmp_path):
    from world_models.train import TrainConfig, train_world_model

    dataset = collect_tiny(tmp_path / "minari", steps=300)
    with pytest.warns(UserWarning, match="measured on training windows"):
        path = train_world_model(TrainConfig(
            dataset=dataset, out=str(tmp_path / "run"), preset="tiny", steps=2, batch_size=2,
            seq_len=6, holdout_episodes=0, num_contexts=2, eval_every=1, eval_horizon=5,
            tensorboard=True, progress=False,
        ))
    config = load_checkpoint(path).config
    assert config["eval_split"] == "training" and "psnr_h1" in config["eval"]


def test_rssm_ema_checkpoint_resume_and_eval_mode(tmp_path, monkeypatch):
    from world_models.rssm.model import RSSMWorldModel

    modes: list[bool] = []
    original = RSSMWorldModel.init_state

    def recording(self, frames, actions):
        modes.append(self.training)
        return original(self, frames, actions)

    monkeypatch.setattr(RSSMWorldModel, "init_state", recording)
    dataset = collect_tiny(tmp_path / "minari", steps=300)
    kw = dict(overrides='{"ema_decay": 0.5}')
    full = train_tiny(dataset, tmp_path / "full", steps=4, **kw)
    assert modes and not any(modes), "evaluation runs in eval mode"
    train_tiny(dataset, tmp_path / "split", steps=2, **kw)
    resumed = train_tiny(dataset, tmp_path / "split", steps=4, resume=True, **kw)
    for name in ("model.safetensors", "ema.safetensors"):
        a, b = load_file(str(full / name)), load_file(str(resumed / name))
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)
    raw, ema = load_file(str(full / "model.safetensors")), load_file(str(full / "ema.safetensors"))
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)
    imagined = load_checkpoint(full).model.state_dict()
    assert all(torch.equal(imagined[k], ema[k]) for k in ema)
    trained = load_checkpoint(full, ema=False).model.state_dict()
    assert all(torch.equal(trained[k], raw[k]) for k in raw)


def test_cuda_rng_state_is_saved_and_restored(monkeypatch):
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [torch.arange(4, dtype=torch.uint8)])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.extend)
    trainer = WorldModelTrainer(TwoStage(), lr=0.01, grad_clip=1.0, seed=0)
    tensors, info = trainer.state_tensors()
    assert torch.equal(tensors["cuda_rng.0"], torch.arange(4, dtype=torch.uint8))
    WorldModelTrainer(TwoStage(), lr=0.01, grad_clip=1.0, seed=0).load_state(tensors, info)
    assert len(restored) == 1 and torch.equal(restored[0], tensors["cuda_rng.0"])


def test_single_optimizer_state_of_older_runs_loads():
    from world_models.checkpoint import optimizer_to_tensors

    torch.manual_seed(0)
    model, data = TwoStage(), _data()
    model.training_stages = None  # a family without stages: one optimiser, as before
    old = torch.optim.Adam(model.parameters(), lr=0.01)
    model.compute_loss(data.sample(2, 2, np.random.default_rng(0)))[0].backward()
    old.step()
    tensors, groups = optimizer_to_tensors(old.state_dict())
    tensors["torch_rng"] = torch.get_rng_state()
    info = {"param_groups": groups, "numpy_rng": np.random.default_rng(1).bit_generator.state, "step": 1}
    trainer = WorldModelTrainer(model, lr=0.01, grad_clip=1.0, seed=0)
    trainer.load_state(tensors, info)
    assert trainer.step == 1
    assert torch.equal(trainer.optimizers[0].state_dict()["state"][0]["exp_avg"], tensors["optim.0.exp_avg"])
    trainer.update(data, 2, 2)


def test_ema_decay_warms_up_to_the_declared_decay():
    from world_models.trainer import ema_decay_at

    assert ema_decay_at(0.999, 0) == pytest.approx(0.1)
    assert ema_decay_at(0.999, 90) == pytest.approx(0.91)
    assert ema_decay_at(0.999, 100_000) == 0.999
    assert ema_decay_at(0.5, 1000) == 0.5
