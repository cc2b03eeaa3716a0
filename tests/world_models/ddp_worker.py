"""One rank of the data-parallel tests in `test_distributed.py`, started by torchrun.

``python -m torch.distributed.run --standalone --nproc_per_node 2 -m
tests.world_models.ddp_worker DATASET OUT`` trains a tiny RSSM on DATASET (in the current
``MINARI_DATASETS_PATH``) into OUT/<name>:

- ``step``: one DDP step with the posterior's straight-through sample replaced by its mode,
  so the loss is a deterministic function of the batch (what a single process reproduces);
- ``full``: two steps (sampling noise on);
- ``split``: one step, then resumed to two.

`staged_rank` is the body of a rank started by ``torch.multiprocessing.spawn`` instead: a
two-stage model through the trainer alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

import world_models.rssm.model as rssm_model
from world_models.distributed import DistContext, shutdown_distributed
from world_models.rssm.distributions import mode_onehot
from world_models.train import TrainConfig, train_world_model


def tiny_config(dataset: str, out: Path, steps: int, resume: bool = False) -> TrainConfig:
    """The options every rank and the single-process reference use."""
    return TrainConfig(dataset=dataset, out=str(out), preset="tiny", steps=steps, batch_size=2, seq_len=4,
                       holdout_episodes=2, num_contexts=4, eval_every=0, eval_horizon=1,
                       checkpoint_every=1, tensorboard=False, progress=False, device="cpu",
                       resume=resume)


def mode_sample(probs, noise=None):
    """The posterior's mode instead of a sample (a noise-free loss)."""
    return mode_onehot(probs)


def main(dataset: str, out: Path) -> None:
    """Run the three trainings of the module docstring on this rank."""
    sampled = rssm_model.sample_onehot
    rssm_model.sample_onehot = mode_sample
    try:
        train_world_model(tiny_config(dataset, out / "step", 1))
    finally:
        rssm_model.sample_onehot = sampled
    train_world_model(tiny_config(dataset, out / "full", 2))
    train_world_model(tiny_config(dataset, out / "split", 1))
    train_world_model(tiny_config(dataset, out / "split", 2, resume=True))
    shutdown_distributed()


def staged_rank(rank: int, world_size: int, init_file: str, out: str) -> None:
    """Train `TwoStage` (3 steps of part a, then part b) for 5 steps on a gloo rank, starting
    from rank-dependent weights, and save the final weights to OUT/rank<r>.pt."""
    from tests.world_models.test_trainer import TwoStage, _data
    from world_models.trainer import WorldModelTrainer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(rank)  # DDP must broadcast rank 0's weights
        model = TwoStage()
        trainer = WorldModelTrainer(model, lr=0.05, grad_clip=1.0, seed=3,
                                    context=DistContext(rank, world_size, rank))
        after_a = None
        for step in range(5):
            trainer.update(_data(), 4, 3)
            if step == 2:
                after_a = {k: v.clone() for k, v in model.state_dict().items()}
        torch.save({"final": model.state_dict(), "after_a": after_a}, f"{out}/rank{rank}.pt")
        del trainer  # drop the DDP wrappers (and their reducer threads) before the group goes
        dist.barrier()  # no rank tears the group down while another still talks to it
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
