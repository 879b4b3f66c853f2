"""A Llama-style decoder: RMSNorm, rotary (or learned) positions, causal attention with
optional grouped-query heads, and a SwiGLU MLP — written without input sizes.

With ``llama(32000, 4096, 32, 32, 11008)`` it has Llama-2-7B's 6,738,415,616 parameters.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from .. import nn

__all__ = [
    "llama",
    "from_hf",
    "HF_KEY_MAP",
    "Attention",
    "FeedForward",
    "DecoderLayer",
    "Llama",
    "rotary",
]


ROPE_LAYOUTS = ("interleaved", "half")


def rotary(x: torch.Tensor, theta: float = 10000.0, layout: str = "interleaved") -> torch.Tensor:
    """Rotate pairs of features of ``x`` ``(N, heads, T, head_dim)`` by their position.

    ``layout="interleaved"`` rotates features ``(2i, 2i+1)`` together (Meta's reference
    code); ``"half"`` rotates ``i`` with ``i + head_dim/2`` (Hugging Face's ``rotate_half``).
    """
    seq, dim = x.shape[-2], x.shape[-1]
    freqs = theta ** (-torch.arange(0, dim, 2, device=x.device, dtype=torch.float32) / dim)
    angles = torch.outer(torch.arange(seq, device=x.device, dtype=torch.float32), freqs)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    if layout == "half":
        first, second = x[..., : dim // 2], x[..., dim // 2 :]
        return torch.cat((first * cos - second * sin, second * cos + first * sin), dim=-1)
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


class Attention(nn.Block):
    """Causal multi-head self-attention with rotary positions and ``n_kv_heads`` key/value
    heads (grouped-query attention when fewer than ``n_heads``). ``rope_theta`` and
    ``rope_layout`` are ``rotary``'s ``theta`` and ``layout``."""

    def __init__(
        self,
        dim: int,
        n_heads: int,
        n_kv_heads: int,
        rope: bool,
        rope_theta: float = 10000.0,
        rope_layout: str = "interleaved",
    ) -> None:
        super().__init__()
        if dim % n_heads or n_heads % n_kv_heads:
            raise ValueError(
                f"Attention: dim={dim} must be divisible by n_heads={n_heads}, and n_heads by "
                f"n_kv_heads={n_kv_heads}"
            )
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, dim // n_heads
        if rope_layout not in ROPE_LAYOUTS:
            raise ValueError(
                f"Attention: rope_layout must be one of {ROPE_LAYOUTS}, got {rope_layout!r}"
            )
        self.rope, self.rope_theta, self.rope_layout = rope, rope_theta, rope_layout
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
            q = rotary(q, self.rope_theta, self.rope_layout)
            k = rotary(k, self.rope_theta, self.rope_layout)
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
        self,
        dim: int,
        n_heads: int,
        n_kv_heads: int,
        hidden_dim: int,
        eps: float,
        rope: bool,
        rope_theta: float = 10000.0,
        rope_layout: str = "interleaved",
    ) -> None:
        super().__init__()
        self.attention_norm = nn.RMSNorm(epsilon=eps)
        self.attention = Attention(dim, n_heads, n_kv_heads, rope, rope_theta, rope_layout)
        self.ffn_norm = nn.RMSNorm(epsilon=eps)
        self.feed_forward = FeedForward(dim, hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x))
        return x + self.feed_forward(self.ffn_norm(x))


class Llama(nn.Block):
    """Token embedding, decoder layers, final RMSNorm, and the output projection.

    ``forward(tokens)`` maps ``(N, T)`` token ids to ``(N, T, vocab_size)`` logits. With
    ``tie_embeddings=True`` there is no ``output`` layer: the logits use the embedding's
    weight.
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
        rope_theta: float = 10000.0,
        rope_layout: str = "interleaved",
        tie_embeddings: bool = False,
    ) -> None:
        super().__init__()
        if positions not in ("rotary", "learned"):
            raise ValueError(f"llama: positions must be 'rotary' or 'learned', got {positions!r}")
        self.tok_embeddings = nn.Embedding(vocab_size, dim)
        self.pos_embeddings = nn.Embedding(max_seq_len, dim) if positions == "learned" else None
        self.layers = nn.Sequential(
            *(
                DecoderLayer(
                    dim,
                    n_heads,
                    n_kv_heads or n_heads,
                    hidden_dim,
                    norm_eps,
                    positions == "rotary",
                    rope_theta,
                    rope_layout,
                )
                for _ in range(n_layers)
            )
        )
        self.norm = nn.RMSNorm(epsilon=norm_eps)
        self.tie_embeddings = tie_embeddings
        self.output = (
            None if tie_embeddings else nn.Dense(vocab_size, flatten=False, use_bias=False)
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tok_embeddings(tokens)
        if self.pos_embeddings is not None:
            positions = torch.arange(tokens.shape[1], device=tokens.device)
            x = x + self.pos_embeddings(positions)
        x = self.norm(self.layers(x))
        if self.output is None:
            return F.linear(x, self.tok_embeddings.weight)
        return self.output(x)


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
    rope_theta: float = 10000.0,
    rope_layout: str = "interleaved",
    tie_embeddings: bool = False,
) -> Llama:
    """A Llama-style decoder (defaults: Llama-2-7B's shape, 6,738,415,616 parameters).

    Token embedding, `n_layers` pre-norm decoder layers (RMSNorm, causal self-attention
    with rotary positions and optional grouped-query heads, a SwiGLU MLP), a final
    RMSNorm and the output projection; its `forward(tokens)` maps `(N, T)` token ids
    (`int64`) to `(N, T, vocab_size)` logits. Every `Dense` inside is declared without
    its input size; [`infer_shape`][lateinit.Block.infer_shape] with a `Spec` of
    `int64` tokens shapes even the 7B model without allocating, ready for
    `initialize(device=, dtype=)`, FSDP2, or
    [`load_parameters`][lateinit.Block.load_parameters].

    Args:
        vocab_size: the number of tokens.
        dim: the model width (the embedding size).
        n_layers: the number of decoder layers.
        n_heads: the number of attention heads (`dim` must be divisible by it).
        hidden_dim: the width of the SwiGLU MLP.
        n_kv_heads: the number of key/value heads (grouped-query attention when fewer
            than `n_heads`, which must be divisible by it); `None`: `n_heads`.
        norm_eps: the RMSNorms' epsilon.
        positions: `"rotary"` (rotary embeddings in the attention) or `"learned"` (a
            learned position embedding added to the tokens').
        max_seq_len: the longest sequence, for `positions="learned"`.
        rope_theta: the rotary base.
        rope_layout: which features rotate together: `"interleaved"` (`2i` with
            `2i+1`, Meta's reference code) or `"half"` (`i` with `i + head_dim/2`,
            Hugging Face checkpoints).
        tie_embeddings: compute the logits with the token embedding's weight (no
            `output` layer).

    Returns:
        The network (a `Llama` block), every parameter deferred.

    Examples:
        >>> import torch
        >>> import lateinit
        >>> from lateinit import zoo
        >>> net = zoo.llama(vocab_size=100, dim=32, n_layers=2, n_heads=4, hidden_dim=64)
        >>> net(torch.randint(0, 100, (2, 8))).shape
        torch.Size([2, 8, 100])
        >>> big = zoo.llama()  # Llama-2-7B, shaped without allocating
        >>> big.infer_shape(lateinit.Spec((1, 16), torch.int64))
        Spec(shape=(1, 16, 32000), dtype=torch.float32)
        >>> lateinit.count_params(big), lateinit.param_bytes(big.to(torch.bfloat16))
        (6738415616, {torch.bfloat16: 13476831232})
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
        rope_theta,
        rope_layout,
        tie_embeddings,
    )


HF_KEY_MAP: dict[str, str] = {
    r"^model\.embed_tokens\.weight$": "tok_embeddings.weight",
    r"^model\.layers\.(\d+)\.self_attn\.q_proj\.weight$": r"layers.\1.attention.wq.weight",
    r"^model\.layers\.(\d+)\.self_attn\.k_proj\.weight$": r"layers.\1.attention.wk.weight",
    r"^model\.layers\.(\d+)\.self_attn\.v_proj\.weight$": r"layers.\1.attention.wv.weight",
    r"^model\.layers\.(\d+)\.self_attn\.o_proj\.weight$": r"layers.\1.attention.wo.weight",
    r"^model\.layers\.(\d+)\.mlp\.gate_proj\.weight$": r"layers.\1.feed_forward.w1.weight",
    r"^model\.layers\.(\d+)\.mlp\.up_proj\.weight$": r"layers.\1.feed_forward.w3.weight",
    r"^model\.layers\.(\d+)\.mlp\.down_proj\.weight$": r"layers.\1.feed_forward.w2.weight",
    r"^model\.layers\.(\d+)\.input_layernorm\.weight$": r"layers.\1.attention_norm.weight",
    r"^model\.layers\.(\d+)\.post_attention_layernorm\.weight$": r"layers.\1.ffn_norm.weight",
    r"^model\.norm\.weight$": "norm.weight",
    r"^lm_head\.weight$": "output.weight",
}
"""Hugging Face Llama parameter names (regular expressions) -> [`llama`][lateinit.zoo.llama]'s
structural names (`re.sub` replacements).

The `key_map` that [`from_hf`][lateinit.zoo.from_hf] gives
[`Block.load_parameters`][lateinit.Block.load_parameters]; pass it (or a modified copy)
yourself to load a Llama checkpoint into a network of your own. Every tensor is used as
it is in the file: the rotary layout is chosen with `rope_layout="half"` instead of
permuting `q`/`k`. For example `model.layers.3.mlp.gate_proj.weight` becomes
`layers.3.feed_forward.w1.weight`, and `lm_head.weight` becomes `output.weight`.
"""


def _hf_config(directory: str) -> dict[str, Any]:
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"from_hf: no config.json in {directory!r}: give the directory that "
            "save_pretrained wrote (config.json beside model.safetensors)"
        )
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    model_type = config.get("model_type", "llama")
    if model_type != "llama":
        raise ValueError(f"from_hf: {path} is a {model_type!r} model, not 'llama'")
    unsupported = {
        "attention_bias": False,
        "mlp_bias": False,
        "hidden_act": "silu",
        "pretraining_tp": 1,
    }
    for key, value in unsupported.items():
        if config.get(key, value) != value:
            raise NotImplementedError(
                f"from_hf: {key}={config[key]!r} in {path}: zoo.llama supports {value!r} only"
            )
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise NotImplementedError(
            f"from_hf: rope_type={rope_type!r} in {path}: zoo.llama supports plain rotary "
            "positions ('default') only"
        )
    return config


def _llama_arguments(config: dict[str, Any]) -> dict[str, Any]:
    """``config.json`` -> :func:`llama`'s keyword arguments."""
    dim, n_heads = config["hidden_size"], config["num_attention_heads"]
    head_dim = config.get("head_dim") or dim // n_heads
    if head_dim * n_heads != dim:
        raise NotImplementedError(
            f"from_hf: head_dim={head_dim} with num_attention_heads={n_heads} and "
            f"hidden_size={dim}: zoo.llama needs head_dim == hidden_size / num_attention_heads"
        )
    rope = config.get("rope_parameters") or {}
    return {
        "vocab_size": config["vocab_size"],
        "dim": dim,
        "n_layers": config["num_hidden_layers"],
        "n_heads": n_heads,
        "hidden_dim": config["intermediate_size"],
        "n_kv_heads": config.get("num_key_value_heads") or n_heads,
        "norm_eps": config.get("rms_norm_eps", 1e-6),
        "positions": "rotary",
        "max_seq_len": config.get("max_position_embeddings", 2048),
        "rope_theta": float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
        "rope_layout": "half",
        "tie_embeddings": bool(config.get("tie_word_embeddings", False)),
    }


def _load_hf_weights(
    net: Llama,
    directory: str,
    key_map: dict[str, str] | Callable[[str], str | None],
    dtype: torch.dtype | None,
) -> None:
    """Every parameter of the deferred ``net`` READY from the checkpoint's tensors:
    ``load_parameters`` on the directory (one file or shards), with the key map; all or
    nothing, checksums verified where present, each parameter in the file's dtype unless
    ``dtype`` is given."""
    net.load_parameters(directory, key_map=key_map, dtype=dtype)


def from_hf(
    path_or_dir: str | os.PathLike[str],
    *,
    dtype: torch.dtype | None = None,
    key_map: dict[str, str] | Callable[[str], str | None] | None = None,
    **overrides: Any,
) -> Llama:
    """A Hugging Face Llama checkpoint as a [`llama`][lateinit.zoo.llama] network, every
    parameter READY.

    `config.json` gives `llama`'s arguments (`vocab_size`, `hidden_size` -> `dim`,
    `num_hidden_layers`, `num_attention_heads`, `num_key_value_heads`,
    `intermediate_size` -> `hidden_dim`, `rms_norm_eps`, `max_position_embeddings`, the
    rope theta, `tie_word_embeddings`; rotary layout `"half"`). The network is built
    without sizes and `model.safetensors` (or the shards of
    `model.safetensors.index.json`) fills every parameter, renamed by
    [`HF_KEY_MAP`][lateinit.zoo.HF_KEY_MAP]: the deferred parameters take their shapes
    from the file and are created with its values, all or nothing
    ([`Block.load_parameters`][lateinit.Block.load_parameters]); no initializer runs.
    The parameters keep the file's dtype (a bfloat16 checkpoint loads as bfloat16)
    unless `dtype` is given. transformers is not needed.

    Its logits equal `LlamaForCausalLM`'s on the same tokens (grouped-query attention,
    tied or untied embeddings; default rotary positions only).

    Args:
        path_or_dir: the directory `LlamaForCausalLM.save_pretrained` wrote, or its
            `config.json`.
        dtype: the floating dtype of the parameters (default: the file's).
        key_map: replaces `HF_KEY_MAP`: a dict of regex -> replacement, or a callable
            key -> name (`None` drops the key).
        **overrides: `llama` arguments that replace those from `config.json`
            (`rope_theta=5e5`).

    Returns:
        The network (a `Llama` block), every parameter READY.

    Raises:
        FileNotFoundError: no `config.json` in the directory.
        ValueError: the config is not a Llama model's.
        NotImplementedError: a config option `llama` does not support (biases, another
            activation, scaled rotary positions).
        TypeError: an override that is not an argument of `llama`.
        ParameterFileError: a key of the file with no parameter, or a parameter the
            file lacks (naming the Hugging Face key).
        ShapeMismatchError: a stored shape contradicts `config.json`.

    Examples:
        A tiny checkpoint written with `safetensors` (what `save_pretrained` writes):

        >>> import json, os, tempfile, torch
        >>> from safetensors.torch import save_file
        >>> from lateinit import zoo
        >>> config = {"model_type": "llama", "vocab_size": 32, "hidden_size": 16,
        ...           "num_hidden_layers": 1, "num_attention_heads": 2,
        ...           "intermediate_size": 24}
        >>> layer = "model.layers.0."
        >>> shapes = {"model.embed_tokens.weight": (32, 16), "model.norm.weight": (16,),
        ...           "lm_head.weight": (32, 16), layer + "input_layernorm.weight": (16,),
        ...           layer + "post_attention_layernorm.weight": (16,),
        ...           layer + "mlp.gate_proj.weight": (24, 16),
        ...           layer + "mlp.up_proj.weight": (24, 16),
        ...           layer + "mlp.down_proj.weight": (16, 24)}
        >>> for name in "qkvo":
        ...     shapes[layer + f"self_attn.{name}_proj.weight"] = (16, 16)
        >>> tmp = tempfile.TemporaryDirectory()
        >>> with open(os.path.join(tmp.name, "config.json"), "w") as f:
        ...     json.dump(config, f)
        >>> tensors = {k: torch.full(s, 0.01) for k, s in shapes.items()}
        >>> save_file(tensors, os.path.join(tmp.name, "model.safetensors"))
        >>> net = zoo.from_hf(tmp.name)
        >>> net.layers[0].feed_forward.w1.weight.shape  # from gate_proj
        torch.Size([24, 16])
        >>> net(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 32])
        >>> tmp.cleanup()
    """
    directory = os.fspath(path_or_dir)
    if os.path.basename(directory) == "config.json":
        directory = os.path.dirname(directory) or "."
    arguments = _llama_arguments(_hf_config(directory))
    unknown = sorted(set(overrides) - set(arguments))
    if unknown:
        raise TypeError(
            f"from_hf: unknown overrides {unknown}; zoo.llama's arguments are {sorted(arguments)}"
        )
    arguments.update(overrides)
    net = llama(**arguments)
    _load_hf_weights(net, directory, HF_KEY_MAP if key_map is None else key_map, dtype)
    return net
