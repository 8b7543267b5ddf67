"""The shared backbone: tokens (+ optional noise level) in, logits out. It knows nothing about noise or masks.

A DiT-style transformer (Peebles & Xie, arXiv 2212.09748) as used by SEDD (arXiv 2310.16834) and MDLM
(arXiv 2406.07524): pre-norm blocks with rotary attention and a GELU MLP. With time conditioning on, each block's
LayerNorms are modulated by adaLN (shift, scale, gate from the conditioning vector c = MLP(sinusoid(cond)));
with it off (time-independent models: MDLM default, RADD, AR) blocks are plain pre-norm residual blocks.
With cfg.num_classes > 0 a class-label embedding is added to every token embedding; the label num_classes is the
null class ("no label"), so one network is conditional and unconditional (classifier-free guidance, dlm/guidance/).
With cfg.learned_positions a learned absolute position embedding (GPT-2's wpe) is added too: rotary attention alone
sees only offsets, so a bidirectional model must locate a token through content anchors, while grid puzzles
(Sudoku: row, column and box of a cell) need absolute positions (dlm/tasks/).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlm.config import ModelConfig
from dlm.model.activation import TanhGELU
from dlm.model.attention import Attention, KVHook, as_block_mask
from dlm.model.rotary import Rotary
from dlm.registry import ConfigError
from dlm.utils.deprecation import renamed


class TimeEmbedding(nn.Module):
    """cond (B,) or per token (B, L) -> (B, cond_dim) or (B, L, cond_dim): a sinusoidal feature of the noise level
    followed by a 2-layer MLP (DiT)."""

    def __init__(self, cond_dim: int, n_freq: int = 256):
        super().__init__()
        self.n_freq = n_freq
        self.mlp = nn.Sequential(nn.Linear(n_freq, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))

    def forward(self, cond: Tensor) -> Tensor:
        half = self.n_freq // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=cond.device, dtype=torch.float32) / half)
        angles = cond.float()[..., None] * freqs
        return self.mlp(torch.cat([angles.cos(), angles.sin()], dim=-1))


def over_tokens(c: Tensor) -> Tensor:
    """A condition per row (B, cond_dim) -> (B, 1, cond_dim), broadcast over tokens; per token (B, L, cond_dim) kept."""
    return c[:, None] if c.dim() == 2 else c


class TransformerBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int, conditioned: bool):
        super().__init__()
        d = cfg.d_model
        self.norm1 = nn.LayerNorm(d, elementwise_affine=not conditioned)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=not conditioned)
        self.attn = Attention(d, cfg.n_heads, layer, cfg.dropout, use_flash=cfg.attention == "flash")
        hidden = int(cfg.mlp_ratio * d)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), TanhGELU(), nn.Linear(hidden, d))
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()  # no call per residual at p = 0
        self.adaln = nn.Linear(cfg.cond_dim, 6 * d) if conditioned else None
        if self.adaln is not None:  # zero init: every block starts as the identity map (DiT adaLN-Zero)
            nn.init.zeros_(self.adaln.weight)
            nn.init.zeros_(self.adaln.bias)

    def forward(self, x: Tensor, c: Tensor | None, cos: Tensor, sin: Tensor, **attn_kwargs) -> Tensor:
        """x (B, L, d), c (B, 1, cond_dim) or per token (B, L, cond_dim), or None."""
        if self.adaln is None:
            x = x + self.drop(self.attn(self.norm1(x), cos, sin, **attn_kwargs))
            return x + self.drop(self.mlp(self.norm2(x)))
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaln(over_tokens(c)).chunk(6, dim=-1)
        # addcmul fuses modulate(h) = h (1 + scale) + shift and the gated residual x + gate y into one pass each
        h = torch.addcmul(shift1, self.norm1(x), 1 + scale1)
        x = torch.addcmul(x, gate1, self.drop(self.attn(h, cos, sin, **attn_kwargs)))
        h = torch.addcmul(shift2, self.norm2(x), 1 + scale2)
        return torch.addcmul(x, gate2, self.drop(self.mlp(h)))


class Transformer(nn.Module):
    """tokens (B, L) in [0, vocab_in), cond (B,) or per token (B, L) or None -> logits (B, L, vocab_out) float32.

    Soft input: tokens may instead be float weights (B, L, vocab_in) over the vocabulary, whose embedding is
    weights @ E (E the token embedding table): a one-hot row embeds exactly as its id, and Duo's curriculum
    (docs/uniform.md#curriculum) feeds the probabilities softmax(w / tau). The caller normalizes (Duo's embedding
    layer applies the softmax itself; here the weights are taken as given).

    The input may be longer than max_len when explicit positions say where each token sits (block diffusion feeds
    x_t and x_0 side by side at the same positions 0..L-1, docs/block_diffusion.md)."""

    def __init__(self, cfg: ModelConfig, vocab_in: int, vocab_out: int, *, time_conditioning: bool, causal: bool):
        super().__init__()
        self.cfg, self.vocab_in, self.vocab_out = cfg, vocab_in, vocab_out
        self.time_conditioning, self.causal = time_conditioning, causal
        self.embed = nn.Embedding(vocab_in, cfg.d_model)
        self.label_embed = nn.Embedding(cfg.num_classes + 1, cfg.d_model) if cfg.num_classes > 0 else None
        self.position_embed = nn.Embedding(cfg.max_len, cfg.d_model) if cfg.learned_positions else None
        self.time_embed = TimeEmbedding(cfg.cond_dim) if time_conditioning else None
        self.rotary = Rotary(cfg.d_model // cfg.n_heads, cfg.rope_base)
        self.blocks = nn.ModuleList(TransformerBlock(cfg, i, time_conditioning) for i in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model, elementwise_affine=not time_conditioning)
        self.final_adaln = nn.Linear(cfg.cond_dim, 2 * cfg.d_model) if time_conditioning else None
        self.head = nn.Linear(cfg.d_model, vocab_out)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear) and module not in self._zero_init():
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.embed.weight, std=0.02)
        for table in (self.label_embed, self.position_embed):
            if table is not None:
                nn.init.normal_(table.weight, std=0.02)
        for block in self.blocks:  # GPT-2 scaled init of residual projections
            nn.init.normal_(block.attn.out.weight, std=0.02 / math.sqrt(2 * self.cfg.n_layers))
        if self.final_adaln is not None:
            nn.init.zeros_(self.final_adaln.weight)
            nn.init.zeros_(self.final_adaln.bias)

    def _zero_init(self) -> list[nn.Module]:
        return [b.adaln for b in self.blocks if b.adaln is not None]

    def forward(self, tokens: Tensor, cond: Tensor | None = None, *, positions: Tensor | None = None,
                attn_mask: Tensor | None = None, kv_cache: KVHook | None = None, label: Tensor | None = None) -> Tensor:
        """tokens (B, L) ids or soft weights (B, L, vocab_in) (class docstring); positions (L,) or per row (B, L),
        default arange(L); attn_mask bool (B|1, 1, L|1, L_keys) True = attend;
        label (B,) long in [0, num_classes], default num_classes (no label), only for a class-conditional backbone."""
        B, L = tokens.shape[:2]
        self._check_input(tokens, cond, positions)
        if positions is None:
            positions = torch.arange(L, device=tokens.device)
        cos, sin = self.rotary(positions.reshape(-1))
        if positions.dim() == 2:  # per-row positions (cached decoding): angles (B, L, head_dim)
            cos, sin = cos.view(B, L, -1), sin.view(B, L, -1)
        if self.cfg.attention == "flex" and isinstance(attn_mask, Tensor):  # once per forward, shared by layers
            attn_mask = as_block_mask(attn_mask)
        c = over_tokens(F.silu(self.time_embed(cond))) if self.time_embed is not None else None
        x = self._token_embedding(tokens)
        if self.position_embed is not None:
            x = x + self.position_embed(positions)  # (L, d) or per row (B, L, d)
        label_vector = self._label_embedding(label, B, tokens.device)
        if label_vector is not None:
            x = x + label_vector
        for block in self.blocks:
            x = block(x, c, cos, sin, causal=self.causal, attn_mask=attn_mask, positions=positions, kv_cache=kv_cache)
        x = self.norm(x)
        if self.final_adaln is not None:
            shift, scale = self.final_adaln(c).chunk(2, dim=-1)
            x = torch.addcmul(shift, x, 1 + scale)
        return self.head(x).float()

    def _token_embedding(self, tokens: Tensor) -> Tensor:
        """ids (B, L) -> E[ids]; soft weights (B, L, vocab_in) -> weights @ E. (B, L, d)."""
        if tokens.is_floating_point():
            return tokens.to(self.embed.weight.dtype) @ self.embed.weight
        return self.embed(tokens)

    def _label_embedding(self, label: Tensor | None, batch: int, device: torch.device) -> Tensor | None:
        """(B, 1, d) embedding of the class label (the null class when label is None); None without labels."""
        if self.label_embed is None:
            if label is not None:
                raise ConfigError("this backbone has no class labels (model.num_classes = 0); do not pass label")
            return None
        n = self.cfg.num_classes
        if label is None:
            label = torch.full((batch,), n, dtype=torch.long, device=device)
        if label.shape != (batch,) or int(label.min()) < 0 or int(label.max()) > n:
            raise ConfigError(f"label must be a (batch={batch},) tensor of ids in [0, {n}] ({n} = no label), "
                              f"got shape {tuple(label.shape)}")
        return self.label_embed(label)[:, None]

    def _check_input(self, tokens: Tensor, cond: Tensor | None, positions: Tensor | None) -> None:
        """Shape checks only: they read no tensor values, so the forward stays free of host syncs and compiles
        without graph breaks. Token ids are checked once at the entry points (loss, elbo, generate, the CLI);
        explicit positions are the caller's (objectives, caches), which keep them below max_len."""
        if tokens.is_floating_point() and (tokens.dim() != 3 or tokens.shape[-1] != self.vocab_in):
            raise ConfigError(f"soft input must be float weights (B, L, {self.vocab_in}) over the vocabulary, got "
                              f"shape {tuple(tokens.shape)}")
        if positions is None and tokens.shape[1] > self.cfg.max_len:
            raise ConfigError(f"sequence length {tokens.shape[1]} exceeds the model's max_len={self.cfg.max_len}; "
                              "shorten the input or train a model with a larger model.max_len")
        if self.time_embed is not None and cond is None:
            raise ConfigError("this backbone is time-conditioned: pass cond (B,)")

    def num_flops_per_token(self, seq_len: int) -> int:
        """Forward+backward FLOPs per token: 6 N_matmul + 12 n_layers d L (PaLM appendix B accounting). N_matmul
        counts the weights applied to every token: not the embeddings, nor the time MLP and adaLN projections, which
        act once per sequence on the conditioning vector."""
        n_matmul = sum(p.numel() for n, p in self.named_parameters()
                       if p.dim() == 2 and "embed" not in n and "adaln" not in n)
        return 6 * n_matmul + 12 * self.cfg.n_layers * self.cfg.d_model * seq_len


__getattr__ = renamed(__name__, {"Block": ("TransformerBlock", TransformerBlock)})
