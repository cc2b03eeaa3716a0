"""Data-parallel training under torchrun: 2 gloo ranks on the CPU against one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import world_models.rssm.model as rssm_model
from tests.conftest import collect_tiny
from tests.world_models.ddp_worker import mode_sample, tiny_config
from world_models.batch import SequenceBatch
from world_models.checkpoint import read_config
from world_models.distributed import SINGLE, loss_seed, window_rng
from world_models.families import build_model, make_spec
from world_models.sources import load_sources
from world_models.trainer import WorldModelTrainer

ROOT = Path(__file__).resolve().parents[2]


def torchrun(module: str, *args: str, ranks: int = 2, timeout: float = 600) -> None:
    """Run `module` under ``python -m torch.distributed.run`` with `ranks` CPU ranks."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), SDL_VIDEODRIVER="dummy")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
               "-m", module, *args]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


class _Concatenated:
    """A batch source giving the ranks' windows of step 0 as one batch (the global batch)."""

    def __init__(self, data, seed: int, ranks: int) -> None:
        self.data, self.seed, self.ranks = data, seed, ranks

    def sample(self, batch_size: int, seq_len: int, generator) -> SequenceBatch:
        per_rank = batch_size // self.ranks
        parts = [self.data.sample(per_rank, seq_len, window_rng(self.seed, 0, r)) for r in range(self.ranks)]
        return SequenceBatch(*(torch.cat(field) for field in zip(*parts, strict=True)))


def _single_process_step(dataset: str, out: Path) -> WorldModelTrainer:
    """One step of the same run in one process, on the two ranks' windows concatenated."""
    cfg = tiny_config(dataset, out, 1)
    torch.manual_seed(cfg.seed)
    data = load_sources(cfg.dataset, holdout_episodes=cfg.holdout_episodes)
    space = data.action_space
    spec = make_spec("rssm", data.frame_shape, space.kind, space.dim, space.low, space.high, preset="tiny")
    trainer = WorldModelTrainer(build_model(spec), cfg.lr, cfg.grad_clip, cfg.seed + 1, cfg.warmup, SINGLE)
    trainer.update(_Concatenated(data, cfg.seed + 1, 2), 2 * cfg.batch_size, cfg.seq_len)
    return trainer


def test_two_gloo_ranks_equal_one_process_on_the_global_batch_and_resume_exactly(tmp_path, monkeypatch):
    dataset = collect_tiny(tmp_path / "minari")
    torchrun("tests.world_models.ddp_worker", dataset, str(tmp_path))

    # one DDP step == one single-process step on the concatenated windows (noise-free loss)
    monkeypatch.setattr(rssm_model, "sample_onehot", mode_sample)
    reference = _single_process_step(dataset, tmp_path / "reference")
    step = tmp_path / "step" / "checkpoint"
    assert read_config(step)["world_size"] == 2 and read_config(step)["step"] == 1
    adam = load_file(str(step / "trainer.safetensors"))
    state = reference.optimizers[0].state_dict()["state"]
    for index, moments in state.items():  # Adam's first moment after one step: 0.1 x gradient
        torch.testing.assert_close(adam[f"stage0.optim.{index}.exp_avg"], moments["exp_avg"],
                                   rtol=1e-4, atol=1e-7)
    weights = load_file(str(step / "model.safetensors"))
    for name, value in reference.model.state_dict().items():
        torch.testing.assert_close(weights[name], value, rtol=1e-4, atol=1e-6, msg=name)

    # two ranks resumed after one step end where two uninterrupted ranks do, bit for bit
    full = load_file(str(tmp_path / "full" / "checkpoint" / "model.safetensors"))
    split = load_file(str(tmp_path / "split" / "checkpoint" / "model.safetensors"))
    assert full.keys() == split.keys()
    for name in full:
        assert torch.equal(full[name], split[name]), name


def test_ranks_stay_in_sync_across_training_stages(tmp_path):
    import torch.multiprocessing as mp

    from tests.world_models.ddp_worker import staged_rank

    mp.spawn(staged_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for name, value in ranks[0]["final"].items():
        assert torch.equal(value, ranks[1]["final"][name]), name
    after_a, final = ranks[0]["after_a"], ranks[0]["final"]
    assert torch.equal(after_a["a.weight"], final["a.weight"])  # frozen in stage b
    assert not torch.equal(after_a["b.weight"], final["b.weight"])  # trained in stage b


def test_window_and_loss_seeds_differ_by_rank_and_step_and_repeat():
    draws = {(s, r): window_rng(7, s, r).integers(0, 10**9, 4).tolist() for s in range(3) for r in range(2)}
    assert len({tuple(v) for v in draws.values()}) == len(draws)
    assert window_rng(7, 2, 1).integers(0, 10**9, 4).tolist() == draws[(2, 1)]
    seeds = {loss_seed(7, s, r) for s in range(3) for r in range(2)}
    assert len(seeds) == 6 and loss_seed(7, 1, 1) == loss_seed(7, 1, 1)
    assert isinstance(np.uint32(loss_seed(7, 0, 0)), np.uint32)


def test_single_process_context_without_torchrun(monkeypatch):
    from world_models.distributed import init_distributed, launched_by_torchrun

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not launched_by_torchrun()
    context, device = init_distributed(torch.device("cpu"))
    assert context == SINGLE and context.is_main and not context.enabled and device.type == "cpu"


@pytest.mark.slow
def test_vwm_train_model_under_torchrun(tmp_path):
    dataset = collect_tiny(tmp_path / "minari")
    out = tmp_path / "run"
    torchrun("benchmarks.cli", "train-model", "--dataset", dataset, "--out", str(out), "--preset", "tiny",
             "--steps", "2", "--batch-size", "2", "--seq-len", "4", "--holdout-episodes", "2",
             "--num-contexts", "4", "--eval-horizon", "1", "--no-tensorboard", "--no-progress")
    config = read_config(out)
    assert config["world_size"] == 2 and config["step"] == 2
