"""The reward predictor overlay: any video generator plus a reward/termination predictor.

`RewardOverlayModel(generator, predictor)` is the seed's ``VideoWorldModel(video_gen,
reward_predictor)``: the frames come from `generator`, a model of any registered family
(an RSSM, a diffusion model, a generator learned from reward-free video, ...), and the
reward and continue probability of every imagined step come from a
`world_models.reward_predictor.RewardPredictor` that reads the generated frame pair and the
action (the separate reward/termination model of DIAMOND, Alonso et al. 2024,
arXiv:2405.12399). It is registered as family ``overlay``; ``vwm train-reward``
(`world_models.train_reward`) fits one onto an existing checkpoint with the generator
frozen.

Spec hyper-parameters: ``{"base": <the generator's ModelSpec.to_dict()>, "predictor":
<RewardPredictorConfig.to_dict()>, "train_generator": bool}``; `OverlayFamily.make_spec`
builds them from `default_hparams` (keys documented there).

State (fixed shape per row, so `select_rows`/`reset_rows` work): the generator's state
with every key prefixed ``"gen."``, ``"reward.h"`` float32 (B, hidden) the predictor's GRU
state, ``"reward.prev"`` uint8 (B, H, W, C) the last frame the predictor read (the real
frame after burn-in and `observe`, the generated one after `step`) and ``"frame"`` uint8
(B, H, W, C) the generator's decoded frame (what `decode` returns, so the composed model
shows exactly the base model's frames).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from world_models import families
from world_models.base import (
    ModelSpec,
    State,
    Transition,
    WorldModel,
    burn_in,
    check_context,
    reset_rows,
)
from world_models.batch import SequenceBatch
from world_models.reward_predictor import RewardPredictor, RewardPredictorConfig
from world_models.sampling import Noise
from world_models.stages import ParamGroup, Stage, model_stages

GEN_PREFIX = "gen."
"""Prefix of the generator's keys inside the overlay state."""

PREDICTOR_PRESETS: dict[str, RewardPredictorConfig] = {
    # tiny: test sizes at full frame resolution (any frame size), and generated rows, so
    # the conformance suite also checks the generated-frame path
    "tiny": RewardPredictorConfig(hidden=16, depth=4, image_size=0, embed=32, head_hidden=32,
                                  generated_fraction=0.5),
    "small": RewardPredictorConfig(generated_fraction=0.25),
    "medium": RewardPredictorConfig(hidden=256, depth=32, embed=512, head_hidden=256, head_layers=2,
                                    generated_fraction=0.25),
}
"""The predictor's sizes at each preset (small: the `RewardPredictorConfig` defaults)."""


class RewardOverlayModel(nn.Module):
    """A generator of any family whose rewards and terminations come from a `RewardPredictor`."""

    def __init__(self, spec: ModelSpec, generator: WorldModel, predictor: RewardPredictor,
                 train_generator: bool = False) -> None:
        """`spec` is the overlay's (family ``overlay``); `generator` any family's model."""
        super().__init__()
        self.spec = spec
        self.generator = generator
        self.predictor = predictor
        self.train_generator = bool(train_generator)
        """Whether training updates the generator too (else it stays frozen, in eval mode)."""
        self.ema_decay = float(getattr(generator, "ema_decay", 0.0) or 0.0) if train_generator else 0.0
        """The generator's EMA decay when it trains with the overlay (else no EMA)."""
        if not self.train_generator:
            generator.requires_grad_(False)  # type: ignore[attr-defined]
            generator.eval()

    # ---------------------------------------------------------------- plumbing
    def train(self, mode: bool = True) -> RewardOverlayModel:
        """Train/eval mode; a frozen generator always stays in eval mode."""
        super().train(mode)
        if not self.train_generator:
            self.generator.eval()
        return self

    def _device(self) -> torch.device:
        return self.predictor.cell.weight_hh.device

    @staticmethod
    def generator_state(state: State) -> State:
        """The generator's own state inside an overlay state (prefix removed)."""
        return {k[len(GEN_PREFIX):]: v for k, v in state.items() if k.startswith(GEN_PREFIX)}

    def _compose(self, gen_state: State, h: Tensor, prev: Tensor, frame: Tensor | None = None) -> State:
        """An overlay state; `frame` defaults to the generator's decoded frame."""
        if frame is None:
            frame = self.generator.decode(gen_state)  # (B, H, W, C)
        device = h.device
        return {**{GEN_PREFIX + k: v for k, v in gen_state.items()}, "reward.h": h,
                "reward.prev": prev.to(device), "frame": frame.to(device)}

    # ---------------------------------------------------------------- protocol
    def init_state(self, frames: Tensor, actions: Tensor) -> State:
        """Generator burn-in and predictor burn-in on the same context (B, T, H, W, C)."""
        check_context(self.spec, frames, actions)
        gen_state = self.generator.init_state(frames, actions)
        h = self.predictor.burn_in(frames, actions)  # (B, hidden)
        return self._compose(gen_state, h, frames[:, -1])

    def step(self, state: State, action: Tensor, noise: Noise | torch.Generator | None = None) -> Transition:
        """The generator's step (its noise passed through); reward and continue from the
        predictor reading (last frame, generated frame, action)."""
        moved = self.generator.step(self.generator_state(state), action, noise).state
        frame = self.generator.decode(moved)  # (B, H, W, C)
        h = self.predictor.update(state["reward.h"], state["reward.prev"], frame, action)  # (B, hidden)
        reward, cont = self.predictor.predict(h)
        return Transition(self._compose(moved, h, frame, frame), reward, cont)

    def features(self, state: State) -> Tensor:
        """(B, generator features + predictor hidden) float32."""
        gen = self.generator.features(self.generator_state(state))  # (B, F_gen)
        return torch.cat([gen.float(), state["reward.h"].to(gen.device).float()], -1)

    def decode(self, state: State) -> Tensor:
        """(B, H, W, C) uint8: the generator's decoded frame, stored in the state."""
        return state["frame"]

    def observe(self, state: State, frame: Tensor, action: Tensor) -> State:
        """The generator's observe, and the predictor reads (last real frame, `frame`, action)."""
        gen_state = self.generator.observe(self.generator_state(state), frame, action)
        h = self.predictor.update(state["reward.h"], state["reward.prev"], frame, action)
        return self._compose(gen_state, h, frame)

    def compute_loss(self, batch: SequenceBatch, step: int = 0) -> tuple[Tensor, dict[str, float]]:
        """Predictor loss on the real transitions, a `generated_fraction` of the rows seeing
        the generator's own next frames (`generated_next_frames`); plus the generator's
        loss (metrics prefixed ``gen/``) when it trains too."""
        batch = batch.with_masks()
        loss, metrics = self.predictor.loss(batch, self.generated_next_frames(batch))
        if self.train_generator:
            gen_loss, gen_metrics = self.generator.compute_loss(batch, step)
            loss = loss + gen_loss
            metrics.update({f"gen/{k}": v for k, v in gen_metrics.items()})
        return loss, metrics

    @torch.no_grad()
    def generated_next_frames(self, batch: SequenceBatch) -> Tensor | None:
        """The batch's frames (B, T, H, W, C) with the first ceil(generated_fraction * B) rows
        replaced from t = 1 on by the generator's one-step-ahead predictions, or None.

        Teacher-forced through the protocol only (any family): burn in on frame 0, then for
        each t step with a_{t+1} and decode (the prediction of frame t+1), then observe the
        real frame t+1 (burn in anew where it starts an episode). Unknown actions read as
        zero; the step noise comes from the global torch generator (seeded runs repeat).
        """
        fraction = self.predictor.cfg.generated_fraction
        b, t = batch.frames.shape[:2]
        n = min(b, math.ceil(fraction * b)) if fraction > 0 else 0
        if n == 0 or t < 2:
            return None
        gen, device = self.generator, self._device()
        frames = batch.frames[:n].to(device)  # (n, T, H, W, C)
        actions = batch.actions[:n].to(device)  # (n, T[, A])
        known = batch.has_action[:n].to(device).view(n, t, *[1] * (actions.ndim - 2))
        actions = torch.where(known, actions, torch.zeros_like(actions))
        starts = batch.is_first[:n].to(device)  # (n, T)
        seed = int(torch.randint(0, 2**62, (1,)))
        noise = torch.Generator(device=device).manual_seed(seed)
        out = batch.frames.to(device).clone()  # (B, T, H, W, C)
        state = burn_in(gen, frames[:, 0])
        for i in range(1, t):
            out[:n, i] = gen.decode(gen.step(state, actions[:, i], noise).state)
            if i < t - 1:
                state = gen.observe(state, frames[:, i], actions[:, i])
                if bool(starts[:, i].any()):
                    state = reset_rows(state, starts[:, i], burn_in(gen, frames[starts[:, i], i]))
        return out

    def training_stages(self) -> list[Stage]:
        """Only the predictor when the generator is frozen; else the generator's stages, each
        also training the predictor."""
        predictor = ParamGroup(("predictor.",))
        if not self.train_generator:
            return [Stage(name="predictor", groups=(predictor,))]
        stages = []
        for stage in model_stages(self.generator):  # type: ignore[arg-type]
            groups = tuple(ParamGroup(tuple("generator." + p for p in g.prefixes), g.lr)
                           for g in stage.groups)
            stages.append(dataclasses.replace(stage, groups=groups + (predictor,)))
        return stages


class OverlayFamily:
    """The overlay as a `world_models.base.Family` (registered as ``overlay``)."""

    name = "overlay"
    presets: tuple[str, ...] = tuple(PREDICTOR_PRESETS)

    def default_hparams(self, preset: str) -> dict[str, Any]:
        """The valid `make_spec` overrides at `preset`:

        - ``base``: the generator's spec (a `ModelSpec` or its ``to_dict()``); None makes one.
        - ``base_family``: family of the generator made when ``base`` is None (``rssm``).
        - ``base_overrides``: that generator's hyper-parameter overrides (same preset).
        - ``predictor``: `RewardPredictorConfig` fields (a partial dict overrides the preset's).
        - ``train_generator``: train the generator with the predictor (True: a model made from
          scratch must learn its frames; ``vwm train-reward`` sets False).
        """
        return {"base": None, "base_family": "rssm", "base_overrides": {},
                "predictor": PREDICTOR_PRESETS[preset].to_dict(), "train_generator": True}

    def make_spec(
        self,
        frame_shape: tuple[int, int, int],
        action_kind: Literal["discrete", "continuous"],
        action_dim: int,
        action_low: tuple[float, ...] | None = None,
        action_high: tuple[float, ...] | None = None,
        preset: str = "small",
        overrides: dict[str, Any] | None = None,
    ) -> ModelSpec:
        """An overlay spec at `preset`; a given ``base`` must match the frames and actions."""
        hp = {**self.default_hparams(preset), **(overrides or {})}
        base = hp["base"]
        if base is None:
            base_spec = families.make_spec(hp["base_family"], frame_shape, action_kind, action_dim,
                                           action_low, action_high, preset, hp["base_overrides"])
        else:
            base_spec = base if isinstance(base, ModelSpec) else ModelSpec.from_dict(base)
            ours = (tuple(frame_shape), action_kind, int(action_dim))
            theirs = (tuple(base_spec.frame_shape), base_spec.action_kind, base_spec.action_dim)
            if ours != theirs:
                raise ValueError(f"the overlay's frames/actions {ours} differ from its base model's {theirs}")
        predictor = RewardPredictorConfig.from_dict(
            {**PREDICTOR_PRESETS[preset].to_dict(), **(hp["predictor"] or {})})
        return dataclasses.replace(
            base_spec, family=self.name, feature_dim=base_spec.feature_dim + predictor.hidden,
            hparams={"base": base_spec.to_dict(), "predictor": predictor.to_dict(),
                     "train_generator": bool(hp["train_generator"])})

    def build(self, spec: ModelSpec) -> RewardOverlayModel:
        """A fresh overlay: the generator built from the base spec, a new predictor."""
        base = ModelSpec.from_dict(spec.hparams["base"])
        generator = families.build_model(base)
        cfg = RewardPredictorConfig.from_dict(spec.hparams["predictor"])
        return RewardOverlayModel(spec, generator, RewardPredictor(spec, cfg),
                                  bool(spec.hparams.get("train_generator", False)))


FAMILY = OverlayFamily()
"""The registered overlay family."""
