"""Dreamer actor-critic: learning in a synthetic model, saving, acting on real frames."""

from __future__ import annotations

import numpy as np
import torch

from agents.dreamer import DreamerAgent, DreamerConfig, DreamerPolicy, imagine, trajectory_weights
from agents.dreamer_train import ImaginedStarts, train_in_imagination
from tests.synthetic import SyntheticWorldModel, synthetic_context, synthetic_spec
from world_models.checkpoint import ContextBank


def _bank(model: SyntheticWorldModel, n: int = 8) -> ContextBank:
    frames, actions = synthetic_context(model, n, pos=0.0)
    return ContextBank(frames, actions)


def _mean_imagined_reward(agent, model, bank, seed=0) -> float:
    gen = torch.Generator().manual_seed(seed)
    start = model.init_state(bank.frames, bank.actions)
    rollout, _ = imagine(model, agent.actor, start, 15, gen)
    return float(rollout.rewards.mean())


def test_trajectory_weights_discount_and_stop():
    cont = torch.tensor([[1.0], [0.0], [1.0]])
    w = trajectory_weights(cont, 0.5)
    torch.testing.assert_close(w[:, 0], torch.tensor([1.0, 0.5, 0.0]))


def _train(action_kind: str, updates: int) -> tuple[float, float]:
    torch.manual_seed(0)
    model = SyntheticWorldModel(synthetic_spec(action_kind), target=0.6, speed=0.1)
    bank = _bank(model)
    cfg = DreamerConfig(hidden=64, layers=1, batch_size=64, actor_lr=3e-3, critic_lr=3e-3,
                        horizon=10)
    agent = DreamerAgent(model.spec, cfg)
    before = _mean_imagined_reward(agent, model, bank)
    starts = ImaginedStarts(model, bank, cfg.batch_size, 40, 0.5, np.random.default_rng(0))
    gen = torch.Generator().manual_seed(0)
    train_in_imagination(agent, model, starts, updates, gen, progress=False)
    return before, _mean_imagined_reward(agent, model, bank)


def test_actor_critic_raises_imagined_return_discrete():
    before, after = _train("discrete", 150)
    assert after > before + 0.1, (before, after)


def test_actor_critic_raises_imagined_return_continuous():
    before, after = _train("continuous", 150)
    assert after > before + 0.1, (before, after)


def test_save_load_and_act_on_frames(tmp_path):
    model = SyntheticWorldModel(synthetic_spec("discrete"))
    agent = DreamerAgent(model.spec, DreamerConfig(hidden=32, layers=1))
    agent.save(tmp_path / "agent")
    again = DreamerAgent.load(tmp_path / "agent")
    for (k, a), (_, b) in zip(agent.state_dict().items(), again.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)
    policy = DreamerPolicy(again, model)
    frames, _ = synthetic_context(model, 3)
    actions, _ = policy.predict(frames[:, -1].numpy(), episode_start=np.ones(3, bool))
    assert actions.shape == (3,)
    single, _ = policy.predict(frames[0, -1].numpy())
    assert np.ndim(single) == 0
