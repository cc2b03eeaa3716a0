"""MaskGIT dynamics: a spatio-temporal transformer over token grids, conditioned on actions.

Architecture after Genie's dynamics model (Bruce et al. 2024, arXiv:2402.15391, section 2.1):
ST-transformer blocks, each spatial attention within a frame's N tokens, then causal
temporal attention across frames at each token position, then an MLP. The latent action
that led into frame t is embedded and added to frame t's tokens (an episode's first frame
gets a dedicated "start" action). Temporal attention carries a learned bias per frame
distance (0..K), so the model needs no absolute time and a history with empty slots (a
short context) is simply masked out: no padding frames.

Training and sampling follow MaskGIT (Chang et al. 2022, "MaskGIT: Masked Generative Image
Transformer", arXiv:2202.04200): a cosine-scheduled fraction of a frame's tokens is replaced
by a mask token and predicted (`mask_tokens`, cross-entropy on masked tokens); a frame is
generated in S steps (`maskgit_sample`), each sampling every masked token and keeping the
most confident ones, with Gumbel noise on the confidences annealed to zero (greedy
confidence unmasking tends to copy the previous frame). Every random number comes from a
`world_models.sampling.Noise`, so imagined videos reproduce per seed and per row.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from world_models.sampling import Noise


class Attention(nn.Module):
    """Multi-head self-attention over (M, L, D) with an optional additive mask (M, H, L, L)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        """x (M, L, D) -> (M, L, D)."""
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # 3 x (M, L, D)
        return self.attend(q, k, v, bias)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None = None) -> Tensor:
        """Queries (M, Lq, D), keys and values (M, Lk, D) (as `qkv` projects them), additive
        bias broadcastable to (M, H, Lq, Lk) -> (M, Lq, D)."""
        m, lq, dim = q.shape

        def heads(x: Tensor) -> Tensor:  # (M, L, D) -> (M, H, L, D/H)
            return x.view(m, x.shape[1], self.heads, dim // self.heads).transpose(1, 2)

        y = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=bias)  # (M, H, Lq, D/H)
        return self.out(y.transpose(1, 2).reshape(m, lq, dim))


class STBlock(nn.Module):
    """Spatial attention, causal temporal attention, MLP; pre-norm residuals."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm_s, self.spatial = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm_t, self.temporal = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm_m = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor, temporal_bias: Tensor) -> Tensor:
        """x (B, T, N, D), temporal_bias (B * N, H, T, T) -> (B, T, N, D)."""
        b, t, n, d = x.shape
        x = x + self.spatial(self.norm_s(x).reshape(b * t, n, d)).view(b, t, n, d)
        y = self.norm_t(x).transpose(1, 2).reshape(b * n, t, d)  # (B*N, T, D)
        x = x + self.temporal(y, temporal_bias).view(b, n, t, d).transpose(1, 2)
        return x + self.mlp(self.norm_m(x))

    def forward_newest(self, x: Tensor, past: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
        """One frame x (B, N, D) after K cached past frames: `past` (B, K, 2, N, D) holds
        their temporal keys and values at this block, `bias` (B, H, K+1) the additive
        temporal bias over (past..., self). Returns (x (B, N, D), own keys/values (B, 2, N, D)).

        The temporal attention has one query per token position and K+1 keys, so it is
        written out (scores, softmax, weighted sum) over the cache as it lies: no copy of
        the past keys, and no per-sequence overhead of a fused kernel on 1 x (K+1) problems.
        """
        b, n, d = x.shape
        heads = self.temporal.heads
        x = x + self.spatial(self.norm_s(x))
        q, k, v = self.temporal.qkv(self.norm_t(x)).chunk(3, dim=-1)  # 3 x (B, N, D)
        split = (b, n, heads, d // heads)
        q = q.reshape(split) * (d // heads) ** -0.5  # (B, N, H, D/H)
        past_k = past[:, :, 0].unflatten(-1, split[2:])  # (B, K, N, H, D/H)
        past_v = past[:, :, 1].unflatten(-1, split[2:])
        scores = torch.cat([(q[:, None] * past_k).sum(-1), (q * k.reshape(split)).sum(-1)[:, None]], 1)
        weights = torch.softmax(scores + bias.permute(0, 2, 1)[:, :, None], dim=1)  # (B, K+1, N, H)
        y = (weights[:, :-1, ..., None] * past_v).sum(1) + weights[:, -1, ..., None] * v.reshape(split)
        x = x + self.temporal.out(y.reshape(b, n, d))
        return x + self.mlp(self.norm_m(x)), torch.stack([k, v], 1)


class DynamicsTransformer(nn.Module):
    """Token grids (B, T, N) (mask id = vocab) + actions (B, T) -> logits (B, T, N, vocab)."""

    def __init__(self, vocab: int, num_tokens: int, n_actions: int, context_len: int,
                 dim: int, layers: int, heads: int) -> None:
        super().__init__()
        self.vocab, self.mask_id, self.start_action = vocab, vocab, n_actions
        self.span = context_len  # farthest past frame a frame attends to
        self.heads = heads
        self.token_emb = nn.Embedding(vocab + 1, dim)
        self.pos_emb = nn.Parameter(torch.randn(num_tokens, dim) * 0.02)
        self.action_emb = nn.Embedding(n_actions + 1, dim)
        self.time_bias = nn.Parameter(torch.zeros(heads, context_len + 1))
        self.blocks = nn.ModuleList(STBlock(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)

    def temporal_bias(self, allowed: Tensor, num_tokens: int) -> Tensor:
        """allowed (B, T, T) bool (query frame i may read key frame j; the diagonal is always
        allowed) -> additive bias (B * N, H, T, T): the distance bias, -inf where not allowed."""
        t = allowed.shape[-1]
        steps = torch.arange(t, device=allowed.device)
        distance = (steps[:, None] - steps[None, :]).clamp(0, self.span)  # (T, T)
        bias = self.time_bias[:, distance]  # (H, T, T)
        allowed = allowed | torch.eye(t, dtype=torch.bool, device=allowed.device)
        full = torch.where(allowed[:, None], bias[None], float("-inf"))  # (B, H, T, T)
        return full.repeat_interleave(num_tokens, dim=0)  # (B*N, H, T, T)

    def forward(self, tokens: Tensor, actions: Tensor, allowed: Tensor) -> Tensor:
        """tokens (B, T, N) int64 (mask id where masked), actions (B, T) int64 (start id for
        an episode's first frame), allowed (B, T, T) bool -> logits (B, T, N, vocab)."""
        x = self.token_emb(tokens) + self.pos_emb + self.action_emb(actions)[:, :, None]  # (B, T, N, D)
        bias = self.temporal_bias(allowed, tokens.shape[-1])
        for block in self.blocks:
            x = block(x, bias)
        return self.head(self.norm(x))

    def forward_newest(self, tokens: Tensor, actions: Tensor, cache: Tensor, distance: Tensor,
                       present: Tensor) -> tuple[Tensor, Tensor]:
        """The newest frame only, reading its past from a key/value cache.

        tokens (B, N) int64 (mask id where masked), actions (B,) the action that led into it,
        cache (B, K, L, 2, N, D) the temporal keys/values of K past frames at each of the L
        blocks (any slot order), distance (B, K) int64 each slot's distance in frames (>= 1),
        present (B, K) bool which slots hold a frame of this episode. Returns (logits
        (B, N, vocab), the frame's own keys/values (B, L, 2, N, D) for the cache). With the
        same past this equals the last frame of `forward` over the whole sequence, whose
        frames see `context_len` frames back (a sliding window, as in training).
        """
        x = self.token_emb(tokens) + self.pos_emb + self.action_emb(actions)[:, None]  # (B, N, D)
        b = tokens.shape[0]
        zero = torch.zeros(b, 1, dtype=distance.dtype, device=distance.device)
        dist = torch.cat([distance, zero], 1).clamp(0, self.span)  # (B, K+1)
        allowed = torch.cat([present, torch.ones(b, 1, dtype=torch.bool, device=present.device)], 1)
        by_distance = self.time_bias[:, dist].transpose(0, 1)  # (B, H, K+1)
        bias = torch.where(allowed[:, None], by_distance, float("-inf"))  # (B, H, K+1)
        own = []
        for layer, block in enumerate(self.blocks):
            x, kv = block.forward_newest(x, cache[:, :, layer], bias)
            own.append(kv)
        return self.head(self.norm(x)), torch.stack(own, 1)


def causal_allowed(episode: Tensor, present: Tensor, span: int) -> Tensor:
    """(B, T, T) bool: frame i may attend to frame j <= i within `span` frames, in the same
    episode (`episode` (B, T) ids), where j is `present` (B, T)."""
    t = episode.shape[1]
    steps = torch.arange(t, device=episode.device)
    causal = (steps[None, :] <= steps[:, None]) & (steps[:, None] - steps[None, :] <= span)  # (T, T)
    same = episode[:, :, None] == episode[:, None, :]  # (B, T, T)
    return causal[None] & same & present[:, None, :]


def mask_tokens(tokens: Tensor, targets: Tensor, mask_id: int) -> tuple[Tensor, Tensor]:
    """MaskGIT training corruption of tokens (B, T, N): in each frame where `targets` (B, T),
    a fraction cos(pi/2 * u), u ~ U(0, 1), of tokens (at least one) is masked, drawn with
    torch's global generator. Returns (corrupted tokens, bool mask (B, T, N))."""
    b, t, n = tokens.shape
    ratio = torch.cos(0.5 * math.pi * torch.rand(b, t, device=tokens.device))  # (B, T)
    count = (ratio * n).ceil().clamp(1, n)  # (B, T)
    rank = torch.rand(b, t, n, device=tokens.device).argsort(-1).argsort(-1)  # (B, T, N) random ranks
    masked = (rank < count[..., None]) & targets[..., None]
    return torch.where(masked, torch.full_like(tokens, mask_id), tokens), masked


def maskgit_sample(
    logits_fn, num_tokens: int, batch: int, mask_id: int, steps: int, temperature: float,
    confidence_noise: float, noise: Noise, device: torch.device,
) -> Tensor:
    """Generate one frame's tokens (B, N) in `steps` MaskGIT steps.

    `logits_fn(tokens (B, N)) -> logits (B, N, V)` reads the current partially masked frame
    (`mask_id` where masked). Step s samples every masked token (temperature 0: argmax), then
    re-masks the floor(N cos(pi/2 (s+1)/S)) least confident of the newly sampled ones, the
    confidence being the log-probability plus Gumbel noise annealed to 0. Draws per step:
    ``noise.categorical`` on (B, N, V) and ``noise.uniform`` on (B, N), whatever the
    settings, so the noise streams do not depend on the temperature.
    """
    tokens = torch.full((batch, num_tokens), mask_id, dtype=torch.long, device=device)  # (B, N)
    for s in range(steps):
        logits = logits_fn(tokens).float()  # (B, N, V)
        masked = tokens == mask_id  # (B, N)
        probs = torch.softmax(logits / max(temperature, 1e-6), dim=-1)  # (B, N, V)
        drawn = noise.categorical(probs)  # (B, N)
        if temperature <= 0:
            drawn = logits.argmax(-1)
        u = noise.uniform((batch, num_tokens), device)  # (B, N)
        sampled = torch.where(masked, drawn, tokens)
        if s == steps - 1:
            return sampled
        chosen = torch.log_softmax(logits, -1).gather(-1, sampled[..., None])[..., 0]  # (B, N)
        gumbel = -torch.log(-torch.log(u.clamp(1e-10, 1 - 1e-7)))
        confidence = chosen + confidence_noise * (1.0 - (s + 1) / steps) * gumbel
        confidence = torch.where(masked, confidence, float("inf"))  # fixed tokens stay fixed
        keep_masked = math.floor(num_tokens * math.cos(0.5 * math.pi * (s + 1) / steps))
        rank = confidence.argsort(-1).argsort(-1)  # (B, N) 0 = least confident
        tokens = torch.where(rank < keep_masked, torch.full_like(sampled, mask_id), sampled)
    return tokens
