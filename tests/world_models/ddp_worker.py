"""One rank of the data-parallel tests in `test_distributed.py`, started by torchrun.

``python -m torch.distributed.run --standalone --nproc_per_node 2 -m
tests.world_models.ddp_worker DATASET OUT`` trains a tiny RSSM on DATASET (in the current
``MINARI_DATASETS_PATH``) into OUT/<name>:

- ``step``: one DDP step with the posterior's straight-through sample replaced by its mode,
  so the loss is a deterministic function of the batch (what a single process reproduces);
- ``full``: two steps (sampling noise on);
- ``split``: one step, then resumed to two.
"""

from __future__ import annotations

import sys
from pathlib import Path

import world_models.rssm.model as rssm_model
from world_models.distributed import shutdown_distributed
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


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
