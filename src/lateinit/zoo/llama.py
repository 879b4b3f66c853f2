"""A Llama-style decoder: RMSNorm, rotary (or learned) positions, causal attention with
optional grouped-query heads, and a SwiGLU MLP — written without input sizes.

With ``llama(32000, 4096, 32, 32, 11008)`` it has Llama-2-7B's 6,738,415,616 parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import nn

__all__ = ["llama", "Attention", "FeedForward", "DecoderLayer", "Llama", "rotary"]


def rotary(x: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """Rotate pairs of features of ``x`` ``(N, heads, T, head_dim)`` by their position."""
    seq, dim = x.shape[-2], x.shape[-1]
    freqs = theta ** (-torch.arange(0, dim, 2, device=x.device, dtype=torch.float32) / dim)
    angles = torch.outer(torch.arange(seq, device=x.device, dtype=torch.float32), freqs)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


class Attention(nn.Block):
    """Causal multi-head self-attention with rotary positions and ``n_kv_heads`` key/value
    heads (grouped-query attention when fewer than ``n_heads``)."""

    def __init__(self, dim: int, n_heads: int, n_kv_heads: int, rope: bool) -> None:
        super().__init__()
        if dim % n_heads or n_heads % n_kv_heads:
            raise ValueError(
                f"Attention: dim={dim} must be divisible by n_heads={n_heads}, and n_heads by "
                f"n_kv_heads={n_kv_heads}"
            )
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, dim // n_heads
        self.rope = rope
        self.wq = nn.Dense(n_heads * self.head_dim, flatten=False, use_bias=False)
        self.wk = nn.Dense(n_kv_heads * self.head_dim, flatten=False, use_bias=False)
        self.wv = nn.Dense(n_kv_heads * self.head_dim, flatten=False, use_bias=False)
        self.wo = nn.Dense(dim, flatten=False, use_bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, _ = x.shape

        def heads(t: torch.Tensor, n: int) -> torch.Tensor:
            return t.view(batch, seq, n, self.head_dim).transpose(1, 2)

        q = heads(self.wq(x), self.n_heads)
        k = heads(self.wk(x), self.n_kv_heads)
        v = heads(self.wv(x), self.n_kv_heads)
        if self.rope:
            q, k = rotary(q), rotary(k)
        if self.n_kv_heads != self.n_heads:
            repeat = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.wo(out.transpose(1, 2).reshape(batch, seq, -1))


class FeedForward(nn.Block):
    """SwiGLU: ``w2(silu(w1 x) * w3 x)``."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.w1 = nn.Dense(hidden_dim, flatten=False, use_bias=False)
        self.w3 = nn.Dense(hidden_dim, flatten=False, use_bias=False)
        self.w2 = nn.Dense(dim, flatten=False, use_bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class DecoderLayer(nn.Block):
    """Pre-norm decoder layer: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(
        self, dim: int, n_heads: int, n_kv_heads: int, hidden_dim: int, eps: float, rope: bool
    ) -> None:
        super().__init__()
        self.attention_norm = nn.RMSNorm(epsilon=eps)
        self.attention = Attention(dim, n_heads, n_kv_heads, rope)
        self.ffn_norm = nn.RMSNorm(epsilon=eps)
        self.feed_forward = FeedForward(dim, hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x))
        return x + self.feed_forward(self.ffn_norm(x))


class Llama(nn.Block):
    """Token embedding, decoder layers, final RMSNorm, and the output projection.

    ``forward(tokens)`` maps ``(N, T)`` token ids to ``(N, T, vocab_size)`` logits.
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        n_layers: int,
        n_heads: int,
        hidden_dim: int,
        n_kv_heads: int | None = None,
        norm_eps: float = 1e-5,
        positions: str = "rotary",
        max_seq_len: int = 2048,
    ) -> None:
        super().__init__()
        if positions not in ("rotary", "learned"):
            raise ValueError(f"llama: positions must be 'rotary' or 'learned', got {positions!r}")
        self.tok_embeddings = nn.Embedding(vocab_size, dim)
        self.pos_embeddings = nn.Embedding(max_seq_len, dim) if positions == "learned" else None
        self.layers = nn.Sequential(
            *(
                DecoderLayer(
                    dim, n_heads, n_kv_heads or n_heads, hidden_dim, norm_eps, positions == "rotary"
                )
                for _ in range(n_layers)
            )
        )
        self.norm = nn.RMSNorm(epsilon=norm_eps)
        self.output = nn.Dense(vocab_size, flatten=False, use_bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tok_embeddings(tokens)
        if self.pos_embeddings is not None:
            positions = torch.arange(tokens.shape[1], device=tokens.device)
            x = x + self.pos_embeddings(positions)
        return self.output(self.norm(self.layers(x)))


def llama(
    vocab_size: int = 32000,
    dim: int = 4096,
    n_layers: int = 32,
    n_heads: int = 32,
    hidden_dim: int = 11008,
    n_kv_heads: int | None = None,
    norm_eps: float = 1e-5,
    positions: str = "rotary",
    max_seq_len: int = 2048,
) -> Llama:
    """A Llama-style decoder (defaults: Llama-2-7B's shape).

    Example:
        >>> import torch
        >>> from lateinit import zoo
        >>> net = zoo.llama(vocab_size=100, dim=32, n_layers=2, n_heads=4, hidden_dim=64)
        >>> net(torch.randint(0, 100, (2, 8))).shape
        torch.Size([2, 8, 100])
    """
    return Llama(
        vocab_size,
        dim,
        n_layers,
        n_heads,
        hidden_dim,
        n_kv_heads,
        norm_eps,
        positions,
        max_seq_len,
    )
