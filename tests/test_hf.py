"""zoo.from_hf: a Hugging Face Llama checkpoint (written here by transformers, no downloads)
gives transformers' logits, every parameter READY straight from the file."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

import lateinit
from lateinit import zoo

transformers = pytest.importorskip("transformers")

CONFIG = {
    "vocab_size": 128,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,  # grouped-query attention
    "intermediate_size": 96,
    "max_position_embeddings": 64,
    "rms_norm_eps": 1e-5,
    "rope_theta": 5000.0,
    "tie_word_embeddings": False,
}


def write_checkpoint(directory, dtype=torch.float32, seed=0, **config):
    """``LlamaForCausalLM`` with random weights saved to ``directory``; returns it (eval)."""
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(
        transformers.LlamaConfig(**{**CONFIG, **config}, torch_dtype=dtype)
    )
    model.to(dtype).eval()
    model.save_pretrained(directory, safe_serialization=True, max_shard_size="20KB")
    return model


def write_single(directory, **config):
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**CONFIG, **config}))
    model.eval().save_pretrained(directory, safe_serialization=True)
    return model


TOKENS = torch.randint(0, 128, (2, 13), generator=torch.Generator().manual_seed(1))


def logits(net, tokens=TOKENS):
    with torch.no_grad():
        out = net(tokens)
    return out.logits if hasattr(out, "logits") else out


@pytest.mark.parametrize("sharded", [False, True], ids=["single", "sharded"])
def test_logits_equal_transformers(tmp_path, sharded):
    model = (write_checkpoint if sharded else write_single)(tmp_path)
    files = sorted(p.name for p in tmp_path.glob("*.safetensors"))
    assert (len(files) > 1) == sharded
    assert (tmp_path / "model.safetensors.index.json").exists() == sharded
    net = zoo.from_hf(tmp_path).eval()
    assert all(lateinit.state(p) == lateinit.State.READY for p in net.parameters())
    assert {p.dtype for p in net.parameters()} == {torch.float32}
    assert sum(p.numel() for p in net.parameters()) == model.num_parameters()
    assert (logits(net) - logits(model)).abs().max().item() < 1e-4


def test_parameters_come_from_the_file_no_initializer(tmp_path):
    write_single(tmp_path)
    file = load_file(str(tmp_path / "model.safetensors"))
    torch.manual_seed(123)
    first = zoo.from_hf(tmp_path)
    torch.manual_seed(456)
    second = zoo.from_hf(tmp_path)
    state = first.state_dict()
    assert len(state) == len(file)
    for hf_name, tensor in file.items():
        pattern, replacement = next(
            (p, r) for p, r in zoo.HF_KEY_MAP.items() if re.search(p, hf_name)
        )
        assert torch.equal(state[re.sub(pattern, replacement, hf_name)], tensor), hf_name
    assert state.keys() == second.state_dict().keys()
    assert all(
        torch.equal(a, b) for a, b in zip(state.values(), second.state_dict().values(), strict=True)
    )
    # building the network draws one seed per parameter (for a later initialize());
    # loading draws nothing more: no initializer ran
    torch.manual_seed(0)
    zoo.llama(128, 64, 2, 4, 96, n_kv_heads=2)
    built = torch.random.get_rng_state()
    torch.manual_seed(0)
    zoo.from_hf(tmp_path)
    assert torch.equal(built, torch.random.get_rng_state())


def test_bfloat16_checkpoint_loads_as_bfloat16(tmp_path):
    model = write_checkpoint(tmp_path, dtype=torch.bfloat16)
    assert json.loads((tmp_path / "config.json").read_text()).get("dtype", "bfloat16") == (
        "bfloat16"
    )
    net = zoo.from_hf(tmp_path).eval()
    assert {p.dtype for p in net.parameters()} == {torch.bfloat16}
    assert torch.equal(net.tok_embeddings.weight, model.model.embed_tokens.weight)
    out, ref = logits(net), logits(model)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref.float()).abs().max().item() < 0.1  # bf16 rounding only
    as_float = zoo.from_hf(tmp_path, dtype=torch.float32)
    assert {p.dtype for p in as_float.parameters()} == {torch.float32}


def test_tied_embeddings(tmp_path):
    model = write_single(tmp_path, tie_word_embeddings=True)
    net = zoo.from_hf(tmp_path).eval()
    assert net.output is None and "output.weight" not in net.state_dict()
    assert (logits(net) - logits(model)).abs().max().item() < 1e-4


def test_overrides(tmp_path):
    model = write_single(tmp_path)
    assert (logits(zoo.from_hf(tmp_path)) - logits(model)).abs().max().item() < 1e-6
    net = zoo.from_hf(tmp_path / "config.json", rope_theta=10.0).eval()
    assert net.layers[0].attention.rope_theta == 10.0
    assert (logits(net) - logits(model)).abs().max().item() > 1e-5  # another rotary base
    assert zoo.from_hf(tmp_path, max_seq_len=8).layers[0].attention.rope_theta == 5000.0
    with pytest.raises(TypeError, match="unknown overrides \\['n_layer'\\]"):
        zoo.from_hf(tmp_path, n_layer=1)
    with pytest.raises(
        lateinit.ParameterFileError, match=r"'model\.layers\.1\.[a-z_.]+' \(mapped to 'layers\.1\."
    ):
        zoo.from_hf(tmp_path, n_layers=1)  # the file has a second layer


def test_missing_extra_and_mismatched_keys_name_the_hf_key(tmp_path):
    write_single(tmp_path)
    path = tmp_path / "model.safetensors"
    tensors = load_file(str(path))

    save_file({k: v for k, v in tensors.items() if k != "lm_head.weight"}, str(path))
    with pytest.raises(lateinit.ParameterFileError, match=r"'output\.weight' .*not in the file"):
        zoo.from_hf(tmp_path)

    save_file({**tensors, "model.layers.0.self_attn.q_proj.bias": torch.zeros(64)}, str(path))
    with pytest.raises(
        lateinit.ParameterFileError, match=r"'model\.layers\.0\.self_attn\.q_proj\.bias'"
    ):
        zoo.from_hf(tmp_path)

    save_file(tensors, str(path))
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "intermediate_size": 80}))
    with pytest.raises(
        lateinit.ShapeMismatchError, match=r"'model\.layers\.0\.mlp\.gate_proj\.weight' \(mapped to"
    ):
        zoo.from_hf(tmp_path)


def test_rope_layouts_agree_up_to_a_permutation():
    """``rope_layout="half"`` is the interleaved layout with q/k features permuted."""
    kwargs = {"vocab_size": 50, "dim": 32, "n_layers": 1, "n_heads": 4, "hidden_dim": 40}
    torch.manual_seed(0)
    half = zoo.llama(**kwargs, rope_layout="half").eval()
    tokens = torch.randint(0, 50, (1, 9))
    ref = logits(half, tokens)
    state = dict(half.state_dict())
    head_dim = 8
    order = torch.arange(head_dim).view(2, head_dim // 2).t().reshape(-1)  # 0,4,1,5,...
    for key in ("layers.0.attention.wq.weight", "layers.0.attention.wk.weight"):
        w = state[key]
        state[key] = w.view(-1, head_dim, w.shape[-1])[:, order].reshape(w.shape)
    interleaved = zoo.llama(**kwargs)
    interleaved.load_state_dict(state)
    torch.testing.assert_close(logits(interleaved.eval(), tokens), ref)


def test_zoo_does_not_import_transformers():
    code = "import sys, lateinit.zoo; assert 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
