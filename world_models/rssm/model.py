"""The RSSM world model: recurrent state-space model with categorical latents.

DreamerV3 (Hafner et al. 2023, "Mastering Diverse Domains through World Models",
arXiv:2301.04104), built on PlaNet's RSSM (Hafner et al. 2019, arXiv:1811.04551):
a deterministic GRU state ``deter`` carries history; a stochastic state ``stoch`` of G
categoricals with K classes (1% unimix) is drawn from the prior p(z_t | h_t) when
imagining and from the posterior q(z_t | h_t, x_t) when a real frame x_t is seen.
Training reconstructs frames, predicts two-hot symlog rewards and continue flags from
[h_t, z_t], and ties prior and posterior by KL balancing with free bits.

State keys: ``"deter"`` float32 (B, deter) and ``"stoch"`` float32 one-hot (B, G, K).

Masks (`world_models.batch`): reconstruction and KL train on ``valid`` frames, reward and
continue heads on ``valid & has_reward``. Where ``has_action`` is False (videos,
``--ignore-actions``) the transition gets an all-zero action input, the same "no action"
input as on an episode's first frame: the RSSM still learns dynamics from action-free
video, its prior then conditioned on that zero input (a one-hot of a discrete action is
never all zero, so "no action" is distinguishable from every real action).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from world_models.action_input import action_affine
from world_models.base import ModelSpec, State, Transition, check_context
from world_models.batch import SequenceBatch
from world_models.heads import ContinueHead, RewardHead, masked_mean
from world_models.rssm.config import RSSMConfig
from world_models.rssm.distributions import (
    categorical_entropy,
    kl_balance,
    mode_onehot,
    sample_onehot,
    unimix_probs,
)
from world_models.rssm.networks import (
    ConvDecoder,
    ConvEncoder,
    NormGRUCell,
    frames_to_input,
    linear_norm_silu,
    onehot_actions,
    output_to_frames,
    upsample,
)
from world_models.sampling import Noise, as_noise


class RSSMWorldModel(nn.Module):
    """DreamerV3-style RSSM implementing the `WorldModel` protocol."""

    def __init__(self, spec: ModelSpec, config: RSSMConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else RSSMConfig(**spec.hparams)
        self.spec = spec
        self.cfg = cfg
        self.frame_shape = tuple(spec.frame_shape)
        stoch_flat = cfg.stoch * cfg.classes
        height, width, channels = spec.frame_shape
        size = cfg.image_size or height
        if height % size or width % size or height // size != width // size:
            raise ValueError(f"image_size {size} must divide the frame sides {height}x{width}")
        self.pool = height // size
        """Average-pooling factor from frames to what the model sees."""
        model_shape = (height // self.pool, width // self.pool, channels)
        self.encoder = ConvEncoder(spec.frame_shape, cfg.depth, cfg.min_res, cfg.conv_norm, self.pool)
        self.decoder = ConvDecoder(
            cfg.feature_dim, model_shape, cfg.depth, cfg.min_res, cfg.conv_norm
        )
        self.img_in = linear_norm_silu(stoch_flat + spec.action_dim, cfg.hidden)
        self.gru = NormGRUCell(cfg.hidden, cfg.deter)
        self.prior_net = nn.Sequential(
            linear_norm_silu(cfg.deter, cfg.hidden), nn.Linear(cfg.hidden, stoch_flat)
        )
        self.post_net = nn.Sequential(
            linear_norm_silu(cfg.deter + self.encoder.out_dim, cfg.hidden),
            nn.Linear(cfg.hidden, stoch_flat),
        )
        self.reward_head = RewardHead(
            cfg.feature_dim, cfg.hidden, cfg.head_layers, cfg.reward_bins, cfg.reward_low,
            cfg.reward_high,
        )
        self.cont_head = ContinueHead(cfg.feature_dim, cfg.hidden, cfg.head_layers)
        self.init_deter = nn.Parameter(torch.zeros(cfg.deter))  # learned initial state
        self.ema_decay = cfg.ema_decay
        """EMA decay for the trainer (0: no EMA weights)."""
        center, scale = action_affine(spec)
        self.register_buffer("action_center", center, persistent=False)
        self.register_buffer("action_scale", scale, persistent=False)

    # ----------------------------------------------------------------- plumbing
    def _action_input(self, action: Tensor, lead: tuple[int, ...]) -> Tensor:
        """Actions (*lead) int64 or (*lead, A) float -> float32 (*lead, A_in) network input."""
        device = self.init_deter.device
        try:
            if self.spec.action_kind == "discrete":
                return onehot_actions(action.to(device).reshape(lead), self.spec.action_dim)
            action = action.to(device=device, dtype=torch.float32)
            action = action.reshape(*lead, self.spec.action_dim)
        except RuntimeError as err:
            raise ValueError(
                f"{self.spec.action_kind} actions of shape {tuple(action.shape)} do not fit "
                f"batch shape {lead} and action_dim {self.spec.action_dim}"
            ) from err
        return (action - self.action_center) / self.action_scale

    def _check_frames(self, frames: Tensor, ndim: int) -> None:
        if ndim == 5 and frames.ndim == 5 and frames.shape[1] < 1:
            raise ValueError("need at least one frame of context, got T = 0")
        if frames.ndim != ndim or tuple(frames.shape[-3:]) != self.frame_shape:
            raise ValueError(
                f"expected uint8 frames (..., {self.frame_shape}) with {ndim} dims, "
                f"got {tuple(frames.shape)}"
            )

    def _latent_probs(self, net: nn.Module, x: Tensor) -> Tensor:
        """(..., G, K) unimixed probabilities from a logits network."""
        logits = net(x).unflatten(-1, (self.cfg.stoch, self.cfg.classes))  # (..., G, K)
        return unimix_probs(logits, self.cfg.unimix)

    def _img_step(self, deter: Tensor, stoch: Tensor, action_in: Tensor) -> Tensor:
        """Deterministic transition: h_t = GRU(h_{t-1}, [z_{t-1}, a_t])  -> (B, D)."""
        x = self.img_in(torch.cat([stoch.flatten(-2), action_in], dim=-1))  # (B, hidden)
        return self.gru(x, deter)

    def _posterior(self, deter: Tensor, embed: Tensor) -> Tensor:
        """q(z_t | h_t, x_t) probabilities (..., G, K)."""
        return self._latent_probs(self.post_net, torch.cat([deter, embed], dim=-1))

    def initial(self, batch: int) -> State:
        """The learned initial state for `batch` rows: tanh(w) and the prior's mode."""
        deter = torch.tanh(self.init_deter).expand(batch, -1)  # (B, D)
        stoch = mode_onehot(self._latent_probs(self.prior_net, deter))  # (B, G, K)
        return {"deter": deter, "stoch": stoch}

    def _features(self, deter: Tensor, stoch: Tensor) -> Tensor:
        return torch.cat([deter, stoch.flatten(-2)], dim=-1)  # (..., D + G*K)

    def posterior_rollout(
        self,
        frames: Tensor,
        actions: Tensor,
        is_first: Tensor,
        sample: bool = True,
        noise: Noise | torch.Generator | None = None,
        has_action: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Filter a real sequence from the initial state with the posterior.

        frames uint8 (B, T, H, W, C), actions (B, T) or (B, T, A), is_first bool (B, T).
        Where is_first, and always on the first frame of the window (so that training windows
        and burn-in contexts start alike), the state is reset to the initial state and the
        action input zeroed; the action input is also zeroed where `has_action` (B, T) is False.
        Posterior latents are sampled (straight-through) or, if not `sample`, the mode.
        Returns "deter" (B, T, D), "stoch" (B, T, G, K) and posterior probs "post" (B, T, G, K).
        """
        b, t = frames.shape[:2]
        device = self.init_deter.device
        noise = as_noise(noise)
        is_first = is_first.to(device).bool().clone()  # (B, T)
        is_first[:, 0] = True
        embed = self.encoder(frames.to(device).flatten(0, 1)).unflatten(0, (b, t))  # (B, T, E)
        act = self._action_input(actions, (b, t))  # (B, T, A)
        real = ~is_first if has_action is None else has_action.to(device).bool() & ~is_first
        act = act * real.unsqueeze(-1).to(act.dtype)  # zero "no action" input: first frames, unknown
        init = self.initial(b)
        deter, stoch = init["deter"], init["stoch"]
        deters, posts, stochs = [], [], []
        for i in range(t):
            first = is_first[:, i].unsqueeze(-1)  # (B, 1)
            deter = torch.where(first, init["deter"], deter)  # (B, D)
            stoch = torch.where(first.unsqueeze(-1), init["stoch"], stoch)  # (B, G, K)
            deter = self._img_step(deter, stoch, act[:, i])  # (B, D)
            post = self._posterior(deter, embed[:, i])  # (B, G, K)
            stoch = sample_onehot(post, noise) if sample else mode_onehot(post)  # (B, G, K)
            deters.append(deter)
            posts.append(post)
            stochs.append(stoch)
        return {
            "deter": torch.stack(deters, 1),
            "stoch": torch.stack(stochs, 1),
            "post": torch.stack(posts, 1),
        }

    # ----------------------------------------------------------------- protocol
    def init_state(self, frames: Tensor, actions: Tensor) -> State:
        """Burn in with the posterior (mode, so deterministic) over a real context.

        The context starts from the initial state like an episode start, so ``actions[:, 0]``
        is ignored (the padding rule of `world_models.base`; no padding is needed).
        """
        check_context(self.spec, frames, actions)
        is_first = torch.zeros(frames.shape[:2], dtype=torch.bool, device=self.init_deter.device)
        seq = self.posterior_rollout(frames, actions, is_first, sample=False)
        return {key: seq[key][:, -1].contiguous() for key in ("deter", "stoch")}

    def step(
        self, state: State, action: Tensor, noise: Noise | torch.Generator | None = None
    ) -> Transition:
        """Imagine one step with the prior (latents drawn from `noise`); the decoder is not run."""
        deter = state["deter"]
        act = self._action_input(action, (deter.shape[0],))  # (B, A)
        deter = self._img_step(deter, state["stoch"], act)  # (B, D)
        stoch = sample_onehot(self._latent_probs(self.prior_net, deter), as_noise(noise))  # (B, G, K)
        feat = self._features(deter, stoch)  # (B, F)
        return Transition(
            {"deter": deter, "stoch": stoch},
            self.reward_head.predict(feat),  # (B,)
            self.cont_head.prob(feat),  # (B,)
        )

    def features(self, state: State) -> Tensor:
        """(B, deter + stoch * classes) float32: [h_t, flattened one-hot z_t]."""
        return self._features(state["deter"], state["stoch"]).float()

    def decode(self, state: State) -> Tensor:
        """(B, H, W, C) uint8 reconstruction of the state's frame."""
        pixels = upsample(self.decoder(self.features(state)), self.pool)  # (B, H, W, C)
        return output_to_frames(pixels).contiguous()

    def observe(self, state: State, frame: Tensor, action: Tensor) -> State:
        """Posterior filter step (mode) on a real frame (B, H, W, C) reached by `action`."""
        self._check_frames(frame, 4)
        deter = state["deter"]
        act = self._action_input(action, (deter.shape[0],))
        deter = self._img_step(deter, state["stoch"], act)  # (B, D)
        embed = self.encoder(frame.to(deter.device))  # (B, E)
        return {"deter": deter, "stoch": mode_onehot(self._posterior(deter, embed))}

    def compute_loss(self, batch: SequenceBatch, step: int = 0) -> tuple[Tensor, dict[str, float]]:
        """World-model loss on a (B, T) batch; resets the state where is_first.

        Each term is averaged over the frames its mask admits (see the module docstring),
        so padding never trains anything and action-free data never trains the reward or
        continue heads. `step` is unused (no schedules).
        """
        cfg = self.cfg
        device = self.init_deter.device
        batch = batch.with_masks().to(device)
        self._check_frames(batch.frames, 5)
        b, t = batch.is_first.shape
        is_first = batch.is_first.bool()  # (B, T)
        valid, labelled = batch.valid, batch.valid & batch.has_reward  # (B, T) each
        seq = self.posterior_rollout(
            batch.frames, batch.actions, is_first, sample=True, has_action=batch.has_action
        )
        deter_seq, post_seq = seq["deter"], seq["post"]  # (B, T, D), (B, T, G, K)
        prior_seq = self._latent_probs(self.prior_net, deter_seq)  # (B, T, G, K)
        feat = self._features(deter_seq, seq["stoch"])  # (B, T, F)

        recon = self.decoder(feat.flatten(0, 1)).unflatten(0, (b, t))  # (B, T, H, W, C)
        target = frames_to_input(batch.frames.flatten(0, 1), self.pool).permute(0, 2, 3, 1)
        target = target.unflatten(0, (b, t))  # (B, T, H, W, C)
        err = recon - target
        err = err.square() if cfg.image_loss == "mse" else err.abs()
        image_loss = err.sum(dim=(-3, -2, -1))  # (B, T)
        reward_loss = self.reward_head.loss(feat, batch.rewards)  # (B, T)
        cont_target = (~batch.terminated.bool()).float()  # (B, T)
        cont_loss = self.cont_head.weighted_loss(feat, batch.terminated, labelled, cfg.terminal_weight)
        kl_loss, kl_dyn, kl_rep = kl_balance(
            post_seq, prior_seq, cfg.free_nats, cfg.kl_dyn_scale, cfg.kl_rep_scale
        )  # (B, T) each
        total = (
            cfg.image_scale * masked_mean(image_loss, valid)
            + cfg.reward_scale * masked_mean(reward_loss, labelled)
            + cfg.cont_scale * cont_loss
            + masked_mean(kl_loss, valid)
        )

        with torch.no_grad():
            mse = masked_mean((recon.clamp(-0.5, 0.5) - target).square().mean((-3, -2, -1)), valid)
            metrics = {
                "loss": total,
                "image_loss": masked_mean(image_loss, valid),
                "kl_loss": masked_mean(kl_loss, valid),
                "kl_dyn": masked_mean(kl_dyn, valid),
                "kl_rep": masked_mean(kl_rep, valid),
                "post_entropy": masked_mean(categorical_entropy(post_seq), valid),
                "prior_entropy": masked_mean(categorical_entropy(prior_seq), valid),
                "psnr": -10.0 * torch.log10(mse.clamp_min(1e-10)),
            }
            if labelled.any():  # reward metrics only where rewards are real
                reward_pred = self.reward_head.predict(feat)  # (B, T)
                cont_prob = self.cont_head.prob(feat)  # (B, T)
                metrics |= {
                    "reward_loss": masked_mean(reward_loss, labelled),
                    "cont_loss": cont_loss,
                    "reward_mae": masked_mean((reward_pred - batch.rewards).abs(), labelled),
                    "cont_acc": masked_mean(((cont_prob > 0.5).float() == cont_target).float(), labelled),
                }
                ends = labelled & batch.terminated.bool()  # (B, T)
                if ends.any():
                    metrics["cont_recall"] = masked_mean((cont_prob < 0.5).float(), ends)
            names = list(metrics)
            values = torch.stack([metrics[k].detach().float() for k in names]).tolist()
        return total, dict(zip(names, values, strict=True))
