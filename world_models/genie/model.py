"""The Genie world model: tokenizer + latent action model + MaskGIT dynamics + reward predictor.

Genie (Bruce et al. 2024, arXiv:2402.15391) as a `world_models.base.WorldModel`. Trained in
three stages (`training_stages`): the FSQ tokenizer (`tokenizer`), the latent action model
(`latent_actions`), then the MaskGIT dynamics over tokens with the reward/continue predictor
(`dynamics`); `compute_loss` computes the losses of the parts the trainer leaves trainable.

Actions. The dynamics is conditioned on latent actions only (codes of the LAM, inferred from
frame pairs during training), so action-free and labelled data train it alike. The env's
action space depends on the mode (``spec.hparams["action_mode"]``; `with_action_mode` gives
the same weights in the other mode):

- ``latent``: `step` takes a code in Discrete(n_latent);
- ``real``: `step` takes the real task's action (``spec.hparams["real_action"]``), mapped to
  a code by the `world_models.action_map.ActionMap`. Where the training data has real
  actions they enter (1) as a small label term on the LAM code (its head predicts the real
  action) and (2) as counts of (real action, LAM code) pairs in the action map, gathered
  during the dynamics stage; `vwm fit-actions` fits the same map from a few labelled
  episodes onto a model trained on video.

Burn-in and `observe` ignore the actions they are given: the code of each real transition
is inferred from its two frames by the LAM (Genie does the same), so contexts work in either
mode and from action-free data.

Oracle (``dynamics_actions`` "real"): the dynamics and the reward predictor are conditioned
on the real discrete actions themselves (ids 0..A-1, start id A), as a reference for what
the latent actions could control. Training skips the LAM stage; a transition without a
real action (``has_action`` False) is context with the start id and never a target of the
dynamics loss; burn-in and `observe` use the actions they are given; mode "real" only.

A short context needs no padding: empty history slots are masked out of the dynamics'
temporal attention.

Imagination reads the past from a key/value cache: each frame's temporal keys and values at
every dynamics block are computed once, when the frame enters the state (its own K-frame
window, as in training), so a MaskGIT step runs the transformer over the new frame's N
tokens only (S + 1 passes of N tokens per step instead of S passes of (K + 1) N).

State (fixed shape per row): ``tokens`` int64 (B, K, N) ring of token grids, ``actions``
int64 (B, K) the code (oracle: real action) that led into each slot's frame (the start id
n_latent, oracle: A, for an episode's first frame), ``filled`` bool (B, K), ``pos`` int64
(B,) next slot to write (the oldest), ``frame`` uint8 (B, H, W, C) the newest frame (real
or decoded), ``reward_h`` float32 (B, hidden) the reward predictor's GRU state, ``kv`` float32
(B, K, L, 2, N, D) each slot's cached temporal keys/values at the L dynamics blocks. Features:
the code vectors of the newest token grid (N * d) followed by ``reward_h``.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from world_models.action_map import ActionMap
from world_models.base import ModelSpec, State, Transition, check_context
from world_models.batch import SequenceBatch
from world_models.genie.config import GenieConfig
from world_models.genie.dynamics import DynamicsTransformer, causal_allowed, mask_tokens, maskgit_sample
from world_models.genie.latent_actions import LatentActionModel
from world_models.genie.quantizers import make_quantizer
from world_models.genie.tokenizer import Tokenizer
from world_models.reward_predictor import RewardPredictor, RewardPredictorConfig
from world_models.sampling import Noise, as_noise
from world_models.stages import ParamGroup, Stage


def config_from_hparams(hparams: dict[str, Any]) -> GenieConfig:
    """The `GenieConfig` stored in a spec's hparams (lists back to tuples)."""
    names = {f.name for f in fields(GenieConfig)}
    return GenieConfig().replace({k: v for k, v in hparams.items() if k in names})


def real_action_spec(spec: ModelSpec) -> ModelSpec:
    """A spec whose action fields are the real task's (``hparams["real_action"]``)."""
    real = spec.hparams["real_action"]
    low, high = real.get("low"), real.get("high")
    return ModelSpec(family=spec.family, frame_shape=tuple(spec.frame_shape), action_kind=real["kind"],
                     action_dim=int(real["dim"]), action_low=None if low is None else tuple(low),
                     action_high=None if high is None else tuple(high), feature_dim=1)


def build_spec(family: str, frame_shape: tuple[int, int, int], real_action: dict[str, Any],
               cfg: GenieConfig, mode: str) -> ModelSpec:
    """The spec of a Genie model acting in `mode` ("latent" or "real")."""
    if mode not in ("latent", "real"):
        raise ValueError(f"genie action_mode must be 'latent' or 'real', got {mode!r}")
    h, w, _ = frame_shape
    feature_dim = (h // cfg.patch) * (w // cfg.patch) * cfg.token_dim + cfg.reward_hidden
    hparams = dict(asdict(cfg), action_mode=mode, real_action=dict(real_action))
    if mode == "latent":
        action = {"action_kind": "discrete", "action_dim": cfg.n_latent, "action_low": None,
                  "action_high": None}
    else:
        low, high = real_action.get("low"), real_action.get("high")
        action = {"action_kind": real_action["kind"], "action_dim": int(real_action["dim"]),
                  "action_low": None if low is None else tuple(float(v) for v in low),
                  "action_high": None if high is None else tuple(float(v) for v in high)}
    return ModelSpec(family=family, frame_shape=tuple(frame_shape), context_len=cfg.context_len,
                     feature_dim=feature_dim, hparams=hparams, **action)


class GenieWorldModel(nn.Module):
    """Tokenizer, latent action model, MaskGIT dynamics and reward predictor behind `WorldModel`."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.cfg = cfg = config_from_hparams(spec.hparams)
        frame_shape = tuple(spec.frame_shape)
        real = real_action_spec(spec)
        self.k, self.n_latent = cfg.context_len, cfg.n_latent
        self.oracle = cfg.dynamics_actions == "real"
        if self.oracle and (real.action_kind != "discrete" or spec.hparams["action_mode"] != "real"):
            raise ValueError("genie dynamics_actions='real' needs discrete real actions and "
                             "action_mode 'real'")
        self.n_dyn = real.action_dim if self.oracle else cfg.n_latent
        """Actions the dynamics is conditioned on (its start id is n_dyn)."""
        self.ema_decay = 0.0
        self.tokenizer = Tokenizer(frame_shape, cfg.tok_channels, cfg.patch,
                                   make_quantizer(cfg.quantizer, cfg.fsq_levels, cfg.vq_dim, cfg.vq_size))
        self.lam = LatentActionModel(frame_shape, cfg.lam_channels, cfg.lam_levels, real, cfg.lam_history)
        self.dynamics = DynamicsTransformer(cfg.vocab, self.tokenizer.num_tokens, self.n_dyn,
                                            cfg.context_len, cfg.dyn_dim, cfg.dyn_layers, cfg.dyn_heads)
        latent = ModelSpec(family=spec.family, frame_shape=frame_shape, action_kind="discrete",
                           action_dim=self.n_dyn, feature_dim=1)
        self.reward = RewardPredictor(latent, RewardPredictorConfig(
            hidden=cfg.reward_hidden, depth=cfg.reward_depth, image_size=cfg.reward_image_size,
            embed=2 * cfg.reward_hidden, head_hidden=cfg.reward_hidden))
        self.action_map = ActionMap(real, cfg.n_latent)
        self.register_buffer("reward_frames", torch.zeros(()))  # labelled reward frames trained on

    @property
    def mode(self) -> str:
        """The action mode of this model's spec: "latent" or "real"."""
        return str(self.spec.hparams["action_mode"])

    # ----------------------------------------------------------------- action modes
    def with_action_mode(self, mode: str) -> GenieWorldModel:
        """The same model (weights shared) whose spec acts in `mode`."""
        if mode == self.mode:
            return self
        if self.oracle:
            raise ValueError("a genie oracle (dynamics_actions='real') acts in real actions only")
        view = copy.copy(self)
        view.spec = build_spec(self.spec.family, tuple(self.spec.frame_shape),
                               self.spec.hparams["real_action"], self.cfg, mode)
        return view

    def with_real_actions(self, real_spec: ModelSpec) -> GenieWorldModel:
        """A new model for the real action space of `real_spec`, native mode "real", holding
        these weights except the action map (emptied) and the LAM's label head (kept when
        the real action space is unchanged). Not for an oracle (its dynamics reads real
        actions)."""
        if self.oracle:
            raise ValueError("a genie oracle (dynamics_actions='real') has no latent actions to map")
        real = {"kind": real_spec.action_kind, "dim": real_spec.action_dim,
                "low": None if real_spec.action_low is None else list(real_spec.action_low),
                "high": None if real_spec.action_high is None else list(real_spec.action_high)}
        spec = build_spec(self.spec.family, tuple(self.spec.frame_shape), real, self.cfg, "real")
        model = GenieWorldModel(spec).to(self.reward_frames.device)
        own = model.state_dict()
        weights = {k: v for k, v in self.state_dict().items()
                   if not k.startswith("action_map.") and k in own and own[k].shape == v.shape}
        model.load_state_dict(weights, strict=False)
        return model.train(self.training)

    def latent_actions(self, frames: Tensor) -> Tensor:
        """Codes (B, T) of frames (B, T, H, W, C) uint8: code t is the LAM's code of the
        transition t-1 -> t (code 0 is 0)."""
        frames = frames.to(self.reward_frames.device)
        b, t = frames.shape[:2]
        if t < 2:
            return torch.zeros(b, t, dtype=torch.long, device=frames.device)
        codes = self.lam.infer(frames[:, :-1].flatten(0, 1), frames[:, 1:].flatten(0, 1)).view(b, t - 1)
        return torch.cat([torch.zeros_like(codes[:, :1]), codes], 1)

    def _to_dynamics(self, action: Tensor) -> Tensor:
        """An env action (B,) or (B, A) of the current mode -> the dynamics' action ids (B,)
        int64: latent codes (the real ones through the action map), or the oracle's real ids."""
        device = self.reward_frames.device
        if self.mode == "real" and not self.oracle:
            return self.action_map.to_latent(action.to(device))
        codes = action.to(device).long().reshape(-1)
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.n_dyn):
            raise ValueError(f"{'real' if self.oracle else 'latent'} actions must be in "
                             f"[0, {self.n_dyn}), got {codes.tolist()}")
        return codes

    # ----------------------------------------------------------------- state plumbing
    def _distance(self, state: State) -> Tensor:
        """(B, K) int64: how many frames back each slot lies from the frame written next."""
        slots = torch.arange(self.k, device=state["pos"].device)
        return self.k - (slots[None] - state["pos"][:, None]) % self.k

    def _newest(self, state: State, tokens: Tensor, code: Tensor) -> tuple[Tensor, Tensor]:
        """The dynamics over the frame after `state`: tokens (B, N) (mask id where masked),
        code (B,) -> (logits (B, N, V), its keys/values (B, L, 2, N, D))."""
        return self.dynamics.forward_newest(tokens, code, state["kv"], self._distance(state), state["filled"])

    def _push(self, state: State, tokens: Tensor, code: Tensor, frame: Tensor, h: Tensor) -> State:
        """Write a frame's tokens (B, N), the code (B,) that led into it and its keys/values
        (one pass of the dynamics over the frame) over the oldest slot."""
        kv = self._newest(state, tokens, code)[1]
        rows = torch.arange(tokens.shape[0], device=tokens.device)
        new = {key: state[key].clone() for key in ("tokens", "actions", "filled", "kv")}
        new["tokens"][rows, state["pos"]] = tokens
        new["actions"][rows, state["pos"]] = code
        new["filled"][rows, state["pos"]] = True
        new["kv"][rows, state["pos"]] = kv
        return dict(new, pos=(state["pos"] + 1) % self.k, frame=frame, reward_h=h)

    def _start(self, frame: Tensor) -> State:
        """The state after an episode's first frame (B, H, W, C) uint8."""
        b, device = frame.shape[0], frame.device
        empty = {"tokens": torch.zeros(b, self.k, self.tokenizer.num_tokens, dtype=torch.long, device=device),
                 "actions": torch.zeros(b, self.k, dtype=torch.long, device=device),
                 "filled": torch.zeros(b, self.k, dtype=torch.bool, device=device),
                 "pos": torch.zeros(b, dtype=torch.long, device=device),
                 "kv": torch.zeros(b, self.k, len(self.dynamics.blocks), 2, self.tokenizer.num_tokens,
                                   self.cfg.dyn_dim, device=device)}
        start = torch.full((b,), self.n_dyn, dtype=torch.long, device=device)
        return self._push(empty, self.tokenizer.encode(frame), start, frame, self.reward.start(frame))

    # ----------------------------------------------------------------- protocol
    @torch.no_grad()
    def init_state(self, frames: Tensor, actions: Tensor) -> State:
        """Burn in on a context (B, T, ...): first frame, then `observe` each later one
        (actions are ignored, the LAM infers each transition's code from its frames; the
        oracle reads them)."""
        check_context(self.spec, frames, actions)
        frames = frames.to(self.reward_frames.device)
        state = self._start(frames[:, 0])
        for t in range(1, frames.shape[1]):
            state = self.observe(state, frames[:, t], actions[:, t])
        return state

    @torch.no_grad()
    def observe(self, state: State, frame: Tensor, action: Tensor) -> State:
        """Fold a real frame (B, H, W, C) uint8 in; its code comes from the LAM (`action`
        unused), the oracle's from `action`."""
        frame = frame.to(self.reward_frames.device)
        code = self._to_dynamics(action) if self.oracle else self.lam.infer(state["frame"], frame)  # (B,)
        h = self.reward.update(state["reward_h"], state["frame"], frame, code)
        return self._push(state, self.tokenizer.encode(frame), code, frame, h)

    @torch.no_grad()
    def step(self, state: State, action: Tensor, noise: Noise | torch.Generator | None = None) -> Transition:
        """Generate the next token grid with MaskGIT, decode it, predict reward and continue."""
        noise = as_noise(noise)
        code = self._to_dynamics(action)  # (B,)
        cfg = self.cfg
        new_tokens = maskgit_sample(lambda target: self._newest(state, target, code)[0],
                                    self.tokenizer.num_tokens, code.shape[0], self.dynamics.mask_id,
                                    cfg.maskgit_steps, cfg.temperature, cfg.confidence_noise, noise,
                                    code.device)  # (B, N)
        frame = self.tokenizer.decode(new_tokens)  # (B, H, W, C) uint8
        h = self.reward.update(state["reward_h"], state["frame"], frame, code)
        reward, cont = self.reward.predict(h)
        if not bool(self.reward_frames > 0):  # no reward data: reward 0, never terminates
            reward, cont = torch.zeros_like(reward), torch.ones_like(cont)
        return Transition(self._push(state, new_tokens, code, frame, h), reward, cont)

    def features(self, state: State) -> Tensor:
        """(B, N * d + hidden) float32: codes of the newest token grid and the reward GRU state."""
        newest = (state["pos"] - 1) % self.k  # (B,)
        tokens = state["tokens"][torch.arange(newest.shape[0], device=newest.device), newest]  # (B, N)
        return torch.cat([self.tokenizer.codes(tokens).flatten(1), state["reward_h"]], 1).float()

    def decode(self, state: State) -> Tensor:
        """(B, H, W, C) uint8: the newest frame."""
        return state["frame"]

    # ----------------------------------------------------------------- training
    def training_stages(self) -> list[Stage]:
        """Tokenizer, then latent action model (not for the oracle), then dynamics with the
        reward predictor."""
        lr = self.cfg.lr
        stages = [Stage("tokenizer", self.cfg.tokenizer_steps, (ParamGroup(("tokenizer.",)),), lr=lr),
                  Stage("latent_actions", self.cfg.lam_steps, (ParamGroup(("lam.",)),), lr=lr),
                  Stage("dynamics", None, (ParamGroup(("dynamics.", "reward.")),), lr=lr)]
        return [stage for stage in stages if not (self.oracle and stage.name == "latent_actions")]

    def compute_loss(self, batch: SequenceBatch, step: int = 0) -> tuple[Tensor, dict[str, float]]:
        """The losses of the parts left trainable (the trainer freezes the others per stage).

        Masks: frames count where ``valid``; a transition t-1 -> t where both are valid and
        t is not ``is_first``; real actions (LAM label term, action-map counts) where also
        ``has_action``; rewards where ``valid & has_reward``. The oracle's dynamics targets
        are the labelled transitions only.
        """
        device = self.reward_frames.device
        batch = batch.with_masks().to(device)
        frames, valid, first = batch.frames, batch.valid, batch.is_first.bool()
        pairs = valid & ~first
        pairs[:, 0] = False
        pairs[:, 1:] &= valid[:, :-1]
        labelled = pairs & batch.has_action
        cfg, metrics = self.cfg, {}
        loss = torch.zeros((), device=device)

        def active(module: nn.Module) -> bool:
            return any(p.requires_grad for p in module.parameters())

        if active(self.tokenizer):
            part, m = self.tokenizer.loss(frames, valid, cfg.fg_weight, cfg.tokenizer_frames)
            loss, metrics = loss + part, metrics | m
        if active(self.lam) and not self.oracle:
            part, m = self.lam.loss(frames, pairs, batch.actions, labelled, cfg.lam_motion_weight,
                                    cfg.lam_variance_weight, cfg.lam_label_weight, cfg.lam_pairs)
            loss, metrics = loss + part, metrics | m
        targets = labelled if self.oracle else pairs  # (B, T) frames the dynamics predicts
        if self.oracle and (active(self.dynamics) or active(self.reward)):
            codes = torch.where(labelled, batch.actions.long(), 0)  # (B, T) real action ids
        elif active(self.dynamics) or active(self.reward):
            codes = torch.where(pairs, self.latent_actions(frames), 0)  # (B, T)
            if self.training:
                self.action_map.update(batch.actions[labelled], codes[labelled])
        if active(self.dynamics):
            part, m = self._dynamics_loss(frames, codes, targets, valid, first)
            loss, metrics = loss + part, metrics | m
        if active(self.reward):
            part, m = self.reward.loss(batch._replace(actions=codes, has_action=targets))
            loss, metrics = loss + part, metrics | m
            if self.training:
                self.reward_frames += (valid & batch.has_reward).sum()
        return loss, dict(metrics, loss=float(loss.detach()))

    def _dynamics_loss(self, frames: Tensor, codes: Tensor, pairs: Tensor, valid: Tensor,
                       first: Tensor) -> tuple[Tensor, dict[str, float]]:
        """MaskGIT cross-entropy on masked tokens of the frames `pairs` (B, T) (a real
        predecessor and, for the oracle, its action), which are conditioned on `codes` (B, T)."""
        tokens = self.tokenizer.encode(frames)  # (B, T, N)
        actions = torch.where(pairs, codes, self.n_dyn)  # (B, T) start id elsewhere
        episode = first.long().cumsum(1)  # (B, T)
        allowed = causal_allowed(episode, valid, self.k)  # (B, T, T)
        corrupted, masked = mask_tokens(tokens, pairs, self.dynamics.mask_id)
        logits = self.dynamics(corrupted, actions, allowed)  # (B, T, N, V)
        ce = F.cross_entropy(logits.flatten(0, 2), tokens.flatten(), reduction="none").view_as(tokens)
        count = masked.sum().clamp_min(1)
        loss = torch.where(masked, ce, 0.0).sum() / count
        with torch.no_grad():
            hits = (logits.argmax(-1) == tokens) & masked
        return loss, {"dynamics_loss": float(loss.detach()), "dynamics_accuracy": float(hits.sum() / count)}
