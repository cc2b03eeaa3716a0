"""DreamerV3-style actor-critic learned purely inside a world model's imagination.

Hafner et al. 2023, "Mastering Diverse Domains through World Models" (arXiv:2301.04104),
section "Actor-critic learning": imagined rollouts of horizon H from model states, lambda
returns bootstrapped by a two-hot symlog critic regularised towards a slow EMA copy,
returns normalised by the EMA of their 5th-95th percentile range (floor 1), and an actor
with entropy regularisation that learns by REINFORCE for discrete actions and, as in the
paper's 2023 recipe, by backpropagating the lambda-returns through the world model's
dynamics for continuous ones (`DreamerConfig.continuous_grad`); the world model itself is
never updated by the actor's loss.

The agent sees `model.features(state)`, exactly what `vwm/Imagined-v0` gives in
``obs_mode="latent"``; on the real task `DreamerPolicy` filters real frames with the model
to build the same features.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from agents.actor import Actor, bounded_normal
from agents.returns import ReturnNormalizer, lambda_returns
from world_models.atomic import atomic_folder
from world_models.base import ModelSpec, State, WorldModel
from world_models.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    resolve_checkpoint_dir,
)
from world_models.filter import ModelFilter
from world_models.heads import RewardHead, twohot_loss
from world_models.imagine import imagine as imagine_rollout

__all__ = ["Actor", "DreamerAgent", "DreamerConfig", "DreamerPolicy", "Rollout", "bounded_normal",
           "imagine", "is_dreamer_agent", "trajectory_weights"]


@dataclass
class DreamerConfig:
    """Hyper-parameters of the Dreamer actor-critic."""

    hidden: int = 256
    """Width of the actor and critic MLPs."""
    layers: int = 2
    """Hidden layers of the actor and critic MLPs."""
    horizon: int = 15
    """Imagination horizon H."""
    discount: float = 0.985
    """Discount per step."""
    lambda_: float = 0.95
    """Lambda of the lambda-returns."""
    actor_lr: float = 1e-4
    """Actor learning rate."""
    critic_lr: float = 3e-4
    """Critic learning rate."""
    entropy: float = 1e-3
    """Entropy bonus scale (after return normalisation)."""
    slow_critic_decay: float = 0.98
    """EMA decay of the slow critic."""
    slow_critic_reg: float = 1.0
    """Weight of the critic's regulariser towards the slow critic."""
    unimix: float = 0.01
    """Uniform mix of the discrete policy."""
    min_std: float = 0.1
    """Minimum std of the continuous policy."""
    max_std: float = 1.0
    """Maximum std of the continuous policy."""
    grad_clip: float = 100.0
    """Gradient-norm clip of actor and critic."""
    batch_size: int = 256
    """Imagined trajectories per update."""
    continuous_grad: str = "backprop"
    """Actor gradient for continuous actions: "backprop" (through the model's dynamics, the
    DreamerV3 paper's recipe of 2023) or "reinforce" (its 2024 revision's); discrete actions
    always use REINFORCE."""

    def __post_init__(self) -> None:
        if self.continuous_grad not in ("backprop", "reinforce"):
            raise ValueError(f"continuous_grad must be 'backprop' or 'reinforce', "
                             f"got {self.continuous_grad!r}")


OPTIMIZERS = ("actor_opt", "critic_opt")
"""The agent's optimisers, saved with it."""


class Rollout(NamedTuple):
    """An imagined rollout of horizon H for B start states."""

    features: Tensor
    """(H+1, B, F) features of states s_0..s_H."""
    actions: Tensor
    """(H, B) int64 or (H, B, A) float32 actions in [-1, 1] policy space for continuous."""
    rewards: Tensor
    """(H, B) reward on arriving at s_{t+1}."""
    continues: Tensor
    """(H, B) probability the episode continues after s_{t+1}."""


def imagine(
    model: WorldModel, actor: Actor, start: State, horizon: int, generator: torch.Generator | None,
    grad: bool = False,
) -> tuple[Rollout, State]:
    """Roll the actor out in the model for `horizon` steps from `start` (B rows); with `grad`
    the rollout keeps the graph from the actor's actions through the dynamics."""

    def act(features: Tensor) -> tuple[Tensor, Tensor]:
        action = actor.sample(features, generator)
        return action, actor.to_env(action)

    out = imagine_rollout(model, start, act, horizon, generator, grad=grad)
    return Rollout(out.features, out.actions, out.rewards, out.continues), out.state  # type: ignore[arg-type]


def trajectory_weights(continues: Tensor, discount: float) -> Tensor:
    """(H, B) weight of each imagined step: discounted probability the episode is still alive.

    Step 0 has weight 1; step t has ``prod_{i<t} discount * c_i``.
    """
    ones = torch.ones_like(continues[:1])
    return torch.cumprod(torch.cat([ones, discount * continues[:-1]], 0), 0)


class DreamerAgent(nn.Module):
    """Actor, critic, slow critic and return normaliser, with their optimisers."""

    def __init__(self, spec: ModelSpec, cfg: DreamerConfig | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.cfg = cfg or DreamerConfig()
        self.actor = Actor(spec.feature_dim, spec, self.cfg)
        self.critic = RewardHead(spec.feature_dim, self.cfg.hidden, self.cfg.layers)
        self.slow_critic = RewardHead(spec.feature_dim, self.cfg.hidden, self.cfg.layers)
        self.slow_critic.load_state_dict(self.critic.state_dict())
        self.slow_critic.requires_grad_(False)
        self.normalizer = ReturnNormalizer()
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=self.cfg.actor_lr, eps=1e-5)
        self.critic_opt = torch.optim.Adam(
            self.critic.parameters(), lr=self.cfg.critic_lr, eps=1e-5
        )

    @property
    def backprop(self) -> bool:
        """Whether the actor learns by backpropagation through the dynamics (continuous
        actions with ``continuous_grad="backprop"``); else by REINFORCE."""
        return not self.actor.discrete and self.cfg.continuous_grad == "backprop"

    def update(self, rollout: Rollout) -> dict[str, float]:
        """One actor and one critic step on an imagined rollout.

        With `backprop` the rollout must carry its graph (``imagine(..., grad=True)``): the
        actor then maximises the normalised lambda-return itself; only the actor's
        parameters get gradients (the model's and the critic's are left untouched).
        """
        cfg = self.cfg
        continues = rollout.continues.detach()  # (H, B)
        with torch.set_grad_enabled(self.backprop):
            values = self.critic.predict(rollout.features)  # (H+1, B)
            returns = lambda_returns(rollout.rewards, values, continues, cfg.discount, cfg.lambda_)  # (H, B)
        values, feats = values.detach(), rollout.features.detach()  # (H+1, B), (H+1, B, F)
        weights = trajectory_weights(continues, cfg.discount)  # (H, B)
        scale = self.normalizer.update(returns.detach())
        advantage = (returns - values[:-1]) / scale  # (H, B); differentiable only for backprop

        dist = self.actor.distribution(feats[:-1])
        entropy = dist.entropy()  # (H, B)
        if self.backprop:
            objective = advantage
        else:
            objective = dist.log_prob(rollout.actions.detach()) * advantage.detach()  # (H, B)
        actor_loss = -(weights * (objective + cfg.entropy * entropy)).mean()
        params = [p for p in self.actor.parameters() if p.requires_grad]
        grads = torch.autograd.grad(actor_loss, params, allow_unused=True)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        self.actor_opt.step()
        returns = returns.detach()

        logits = self.critic(feats[:-1])  # (H, B, K)
        with torch.no_grad():
            slow_target = self.slow_critic.predict(feats[:-1])  # (H, B)
        critic_loss = twohot_loss(logits, returns, self.critic.bins)
        critic_loss = critic_loss + cfg.slow_critic_reg * twohot_loss(
            logits, slow_target, self.critic.bins
        )
        critic_loss = (weights * critic_loss).mean()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.grad_clip)
        self.critic_opt.step()
        with torch.no_grad():
            for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters()):
                slow.lerp_(fast, 1.0 - cfg.slow_critic_decay)
        return {
            "actor_loss": float(actor_loss.detach()),
            "critic_loss": float(critic_loss.detach()),
            "imagined_return": float(returns[0].mean()),
            "imagined_reward": float(rollout.rewards.detach().mean()),
            "entropy": float(entropy.detach().mean()),
            "return_scale": float(scale),
            "value": float(values.mean()),
        }

    # ----------------------------------------------------------------- persistence
    def save(self, folder: str | Path, world_model: str | Path | None = None,
             extra: dict[str, Any] | None = None) -> Path:
        """Write the agent, its optimiser moments (so training resumes exactly) and a copy of
        its world-model checkpoint to `folder` atomically."""
        tensors = {f"agent.{k}": v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        groups = {}
        for name in OPTIMIZERS:
            optim_tensors, groups[name] = optimizer_to_tensors(getattr(self, name).state_dict())
            tensors.update({f"{name}.{k}": v.cpu().contiguous() for k, v in optim_tensors.items()})
        meta = {
            "kind": "dreamer",
            "config": asdict(self.cfg),
            "spec": self.spec.to_dict(),
            "normalizer": self.normalizer.state(),
            "optimizer_groups": groups,
            **(extra or {}),
        }
        with atomic_folder(folder) as tmp:
            save_file(tensors, str(tmp / "agent.safetensors"))
            (tmp / "agent.json").write_text(json.dumps(meta, indent=2))
            if world_model is not None:
                shutil.copytree(resolve_checkpoint_dir(world_model), tmp / "world_model")
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> DreamerAgent:
        """Load an agent written by `save` onto `device` (with its optimiser moments when saved)."""
        folder = Path(folder)
        meta_file = folder / "agent.json"
        if not meta_file.is_file():
            raise CheckpointError(f"not a Dreamer agent: {meta_file} is missing")
        meta = json.loads(meta_file.read_text())
        agent = cls(ModelSpec.from_dict(meta["spec"]), DreamerConfig(**meta["config"]))
        tensors = load_file(str(folder / "agent.safetensors"))
        agent.load_state_dict({k.removeprefix("agent."): v for k, v in tensors.items()
                               if k.startswith("agent.")})
        agent.normalizer.load_state(meta["normalizer"])
        agent.to(device)  # before the optimiser state, which follows its parameters' device
        for name, groups in meta.get("optimizer_groups", {}).items():
            prefix = f"{name}."
            state = optimizer_from_tensors(
                {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}, groups)
            getattr(agent, name).load_state_dict(state)
        return agent


def is_dreamer_agent(path: str | Path) -> bool:
    """Whether `path` is a folder written by `DreamerAgent.save`."""
    return (Path(path) / "agent.json").is_file()


class DreamerPolicy:
    """Acts on the real task: filters real frames with the model, then queries the actor."""

    def __init__(self, agent: DreamerAgent, model: WorldModel, seed: int = 0) -> None:
        self.agent = agent
        self.model = model
        device = next(model.parameters()).device
        self.agent.to(device)
        self.filter = ModelFilter(model, device)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self._last: Tensor | None = None
        self.action_repeat = 1
        """Real steps each action is held for, as the agent was trained (its ``agent.json``)."""

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> DreamerPolicy:
        """A saved agent together with the world model copied next to it."""
        folder = Path(folder)
        checkpoint: Checkpoint = load_checkpoint(folder / "world_model", device=device)
        policy = cls(DreamerAgent.load(folder, device), checkpoint.model)
        policy.action_repeat = int(json.loads((folder / "agent.json").read_text()).get("action_repeat", 1))
        return policy

    def reset(self) -> None:
        """Forget the tracked episode (the next `predict` starts a new one)."""
        self.filter.state = None
        self._last = None

    def tracking_state(self) -> dict[str, Tensor]:
        """The tracked episodes (filter state, last actions) and the sampling RNG, as tensors."""
        tensors = {f"filter.{k}": v for k, v in (self.filter.state or {}).items()}
        if self._last is not None:
            tensors["last_action"] = self._last
        tensors["rng"] = self.generator.get_state()
        return tensors

    def load_tracking_state(self, tensors: dict[str, Tensor]) -> None:
        """Inverse of `tracking_state`."""
        device = self.filter.device
        state = {k.removeprefix("filter."): v.to(device) for k, v in tensors.items()
                 if k.startswith("filter.")}
        self.filter.state = state or None
        self._last = tensors["last_action"].to(device) if "last_action" in tensors else None
        self.generator.set_state(tensors["rng"])

    @torch.inference_mode()
    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """SB3-like: frames (N, H, W, C) or (H, W, C) uint8 -> actions for the real env."""
        single = observation.ndim == 3
        frames = observation[None] if single else observation
        n = frames.shape[0]
        if episode_start is None:
            episode_start = np.full(n, self.filter.state is None or self._last is None)
        prev = self._last if self._last is not None and len(self._last) == n else torch.zeros(n)
        self.filter.update(frames, prev, np.asarray(episode_start, dtype=bool).reshape(n))
        feats = self.filter.features()
        actor = self.agent.actor
        action = actor.mode(feats) if deterministic else actor.sample(feats, self.generator)
        env_action = actor.to_env(action)
        self._last = env_action
        out = env_action.cpu().numpy()
        return (out[0] if single else out), None

