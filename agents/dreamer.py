"""DreamerV3-style actor-critic learned purely inside a world model's imagination.

Hafner et al. 2023, "Mastering Diverse Domains through World Models" (arXiv:2301.04104),
section "Actor-critic learning": imagined rollouts of horizon H from model states, lambda
returns bootstrapped by a two-hot symlog critic regularised towards a slow EMA copy,
returns normalised by the EMA of their 5th-95th percentile range, and a REINFORCE actor
with entropy regularisation, so no gradient ever flows through the world model.

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
from world_models.heads import RewardHead, mlp, twohot_loss
from world_models.imagine import imagine as imagine_rollout
from world_models.sampling import Noise, as_noise


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


class Actor(nn.Module):
    """Policy over model features: categorical with unimix, or bounded Gaussian."""

    def __init__(self, feature_dim: int, spec: ModelSpec, cfg: DreamerConfig) -> None:
        super().__init__()
        self.discrete = spec.action_kind == "discrete"
        self.cfg = cfg
        out = spec.action_dim if self.discrete else 2 * spec.action_dim
        self.net = mlp(feature_dim, cfg.hidden, cfg.layers, out)
        if not self.discrete:
            low = torch.tensor(spec.action_low, dtype=torch.float32)
            high = torch.tensor(spec.action_high, dtype=torch.float32)
            self.register_buffer("low", low)
            self.register_buffer("high", high)

    def distribution(self, features: Tensor) -> torch.distributions.Distribution:
        """The action distribution at features (..., F) (continuous: in [-1, 1] space)."""
        out = self.net(features)
        if self.discrete:
            probs = torch.softmax(out, -1)
            probs = (1 - self.cfg.unimix) * probs + self.cfg.unimix / probs.shape[-1]
            return torch.distributions.Categorical(probs=probs)
        mean, std = out.chunk(2, -1)
        mean = torch.tanh(mean)
        std = (self.cfg.max_std - self.cfg.min_std) * torch.sigmoid(std + 2.0) + self.cfg.min_std
        return torch.distributions.Independent(torch.distributions.Normal(mean, std), 1)

    def sample(self, features: Tensor, noise: Noise | torch.Generator | None) -> Tensor:
        """Sampled policy-space actions (B,) int64 or (B, A) in [-1, 1], drawn from `noise`."""
        dist = self.distribution(features)
        noise = as_noise(noise)
        if self.discrete:
            return noise.categorical(dist.probs)  # (B,) inverse CDF over (B, K)
        base = dist.base_dist
        eps = noise.normal(tuple(base.loc.shape), base.loc.device)  # (B, A)
        return (base.loc + base.scale * eps).clamp(-1.0, 1.0)

    def mode(self, features: Tensor) -> Tensor:
        """The most likely policy-space action."""
        dist = self.distribution(features)
        if self.discrete:
            return dist.probs.argmax(-1)
        return dist.base_dist.loc

    def to_env(self, action: Tensor) -> Tensor:
        """Policy-space action -> the env's action (continuous: rescaled to [low, high])."""
        if self.discrete:
            return action
        scaled = self.low + (action + 1.0) * 0.5 * (self.high - self.low)
        return torch.minimum(torch.maximum(scaled, self.low), self.high)  # no rounding past a bound


def imagine(
    model: WorldModel, actor: Actor, start: State, horizon: int, generator: torch.Generator | None
) -> tuple[Rollout, State]:
    """Roll the actor out in the model for `horizon` steps from `start` (B rows)."""

    def act(features: Tensor) -> tuple[Tensor, Tensor]:
        action = actor.sample(features, generator)
        return action, actor.to_env(action)

    out = imagine_rollout(model, start, act, horizon, generator)
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

    def update(self, rollout: Rollout) -> dict[str, float]:
        """One actor and one critic step on an imagined rollout."""
        cfg = self.cfg
        feats = rollout.features  # (H+1, B, F)
        with torch.no_grad():
            values = self.critic.predict(feats)  # (H+1, B)
            returns = lambda_returns(
                rollout.rewards, values, rollout.continues, cfg.discount, cfg.lambda_
            )  # (H, B)
            weights = trajectory_weights(rollout.continues, cfg.discount)  # (H, B)
            scale = self.normalizer.update(returns)
            advantage = (returns - values[:-1]) / scale  # (H, B)

        dist = self.actor.distribution(feats[:-1])
        log_prob = dist.log_prob(rollout.actions)  # (H, B)
        entropy = dist.entropy()  # (H, B)
        actor_loss = -(weights * (log_prob * advantage + cfg.entropy * entropy)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.grad_clip)
        self.actor_opt.step()

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
            "imagined_reward": float(rollout.rewards.mean()),
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

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> DreamerPolicy:
        """A saved agent together with the world model copied next to it."""
        folder = Path(folder)
        checkpoint: Checkpoint = load_checkpoint(folder / "world_model", device=device)
        return cls(DreamerAgent.load(folder, device), checkpoint.model)

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

