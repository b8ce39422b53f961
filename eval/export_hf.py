"""
A checkpoint -> a Hugging Face transformers folder (config.json + model.safetensors + tokenizer files), so the
rest of the ecosystem (transformers, vLLM, lm_eval's `hf` model, the hub) can use it:

    python -m eval.export_hf out/cpt_en_de hf/cpt_en_de
    python -c "from transformers import AutoModelForCausalLM; AutoModelForCausalLM.from_pretrained('hf/cpt_en_de')"

The architecture follows from the model's shape:
  GPT-NeoX (GPTNeoXForCausalLM)  rotary positions (any rotary_pct), parallel or sequential residual: Pythia, the paper's
  GPT-2    (GPT2LMHeadModel)     learned positions, sequential residual
Both need LayerNorm and a GELU MLP; other shapes (RMSNorm, SwiGLU, ...) are refused with the reason. A model
trained without biases gets zero biases (the same function: neither HF class can drop them). Only the tokenizer's
vocab_size rows of the embeddings are written: our padding rows (to a multiple of 64) are never a real token.
Tokenizer: the checkpoint's tiktoken vocabulary converted to tokenizer.json (transformers' TikTokenConverter),
loadable with AutoTokenizer; skipped with a note when the run's tokenizer cannot be found.
"""
import argparse
import json
import os
import sys

if __package__ in (None, ''):  # run as a file (python eval/x.py, the nanoGPT habit): the repo root on the path, as -m
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPTNeoXConfig
from transformers.convert_slow_tokenizer import TikTokenConverter

import checkpoint
import runtime
from eval.common import load_checkpoint, load_tokenizer
from model import GPTConfig


def architecture(c):
    """'gpt_neox' or 'gpt2' for a GPTConfig, or ValueError saying what does not fit either."""
    problems = []
    if c.norm != 'layernorm':
        problems.append(f"norm={c.norm!r} (both use LayerNorm)")
    if c.mlp != 'gelu':
        problems.append(f"mlp={c.mlp!r} (both use a GELU MLP)")
    if c.position == 'learned' and c.parallel_residual:
        problems.append("learned positions with parallel_residual=True (GPT-2 is sequential; GPT-NeoX is rotary)")
    head_dim = c.n_embd // c.n_head
    if c.position == 'rotary' and int(head_dim * c.rotary_pct) != c.rot_dim:
        problems.append(f"rotary_pct={c.rotary_pct} rotates an odd {int(head_dim * c.rotary_pct)} of {head_dim} head "
                        f"dims, which transformers' GPT-NeoX does not round the way model.py does")
    if problems:
        raise ValueError("this model matches neither transformers' GPT-2 nor GPT-NeoX: " + '; '.join(problems)
                         + ". Keep the checkpoint in nanoCPT's format (sample.py and eval.harness read it)")
    return 'gpt_neox' if c.position == 'rotary' else 'gpt2'


def hf_config(c, arch, eot_id):
    act = 'gelu_pytorch_tanh' if c.gelu_approximate == 'tanh' else 'gelu'  # F.gelu(approximate='tanh') exactly
    if arch == 'gpt2':
        return GPT2Config(vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer,
                          n_head=c.n_head, n_inner=c.hidden, activation_function=act, layer_norm_epsilon=c.norm_eps,
                          resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=c.tie_embeddings,
                          bos_token_id=eot_id, eos_token_id=eot_id, architectures=['GPT2LMHeadModel'])
    return GPTNeoXConfig(vocab_size=c.vocab_size, hidden_size=c.n_embd, num_hidden_layers=c.n_layer,
                         num_attention_heads=c.n_head, intermediate_size=c.hidden, hidden_act=act,
                         max_position_embeddings=c.block_size, layer_norm_eps=c.norm_eps,
                         use_parallel_residual=c.parallel_residual, tie_word_embeddings=c.tie_embeddings,
                         rope_parameters={'rope_type': 'default', 'rope_theta': c.rotary_base,
                                          'partial_rotary_factor': c.rotary_pct},
                         attention_bias=True, hidden_dropout=0.0, attention_dropout=0.0,
                         bos_token_id=eot_id, eos_token_id=eot_id, architectures=['GPTNeoXForCausalLM'])


def convert(sd, c, arch):
    """Our state dict -> the HF class's, tensor by tensor."""
    V, C, nh = c.vocab_size, c.n_embd, c.n_head
    get = lambda k: sd[k].float()  # exported in fp32, whatever the checkpoint holds
    bias = lambda k, n: get(k) if k in sd else torch.zeros(n)  # bias=False trained without them: zeros are the same
    out = {}
    if arch == 'gpt2':
        out['transformer.wte.weight'] = get('transformer.wte.weight')[:V]
        out['transformer.wpe.weight'] = get('transformer.wpe.weight')
        for i in range(c.n_layer):
            p = f'transformer.h.{i}.'  # GPT-2's names are ours (nanoGPT took them from there)
            for ln in ('ln_1', 'ln_2'):
                out[p + f'{ln}.weight'], out[p + f'{ln}.bias'] = get(p + f'{ln}.weight'), bias(p + f'{ln}.bias', C)
            # HF GPT-2 uses Conv1D, y = x W + b with W (in, out): our nn.Linear weights transposed.
            # c_attn's output is [q; k; v] in both, so no reordering.
            for name, n_out in (('attn.c_attn', 3 * C), ('attn.c_proj', C), ('mlp.c_fc', c.hidden), ('mlp.c_proj', C)):
                out[p + f'{name}.weight'] = get(p + f'{name}.weight').t().contiguous()
                out[p + f'{name}.bias'] = bias(p + f'{name}.bias', n_out)
        out['transformer.ln_f.weight'] = get('transformer.ln_f.weight')
        out['transformer.ln_f.bias'] = bias('transformer.ln_f.bias', C)
        if not c.tie_embeddings:
            out['lm_head.weight'] = get('lm_head.weight')[:V]
        return out
    out['gpt_neox.embed_in.weight'] = get('transformer.wte.weight')[:V]
    for i in range(c.n_layer):
        p, q = f'transformer.h.{i}.', f'gpt_neox.layers.{i}.'
        for ours, theirs in (('ln_1', 'input_layernorm'), ('ln_2', 'post_attention_layernorm')):
            out[q + f'{theirs}.weight'], out[q + f'{theirs}.bias'] = get(p + f'{ours}.weight'), bias(p + f'{ours}.bias', C)
        # our c_attn rows are [q of all heads; k of all heads; v of all heads]; GPT-NeoX's query_key_value
        # groups them per head: [q_h0 k_h0 v_h0; q_h1 k_h1 v_h1; ...]
        w = get(p + 'attn.c_attn.weight').view(3, nh, C // nh, C).transpose(0, 1).reshape(3 * C, C)
        b = bias(p + 'attn.c_attn.bias', 3 * C).view(3, nh, C // nh).transpose(0, 1).reshape(3 * C)
        out[q + 'attention.query_key_value.weight'], out[q + 'attention.query_key_value.bias'] = w.contiguous(), b.contiguous()
        for ours, theirs, n_out in (('attn.c_proj', 'attention.dense', C), ('mlp.c_fc', 'mlp.dense_h_to_4h', c.hidden),
                                    ('mlp.c_proj', 'mlp.dense_4h_to_h', C)):
            out[q + f'{theirs}.weight'], out[q + f'{theirs}.bias'] = get(p + f'{ours}.weight'), bias(p + f'{ours}.bias', n_out)
    out['gpt_neox.final_layer_norm.weight'] = get('transformer.ln_f.weight')
    out['gpt_neox.final_layer_norm.bias'] = bias('transformer.ln_f.bias', C)
    if not c.tie_embeddings:
        out['embed_out.weight'] = get('lm_head.weight')[:V]
    return out


def save_tokenizer(ckpt_name, ckpt, out_dir, block_size):
    """tokenizer.json from the run's tiktoken vocabulary; returns a note when there is none to convert."""
    try:
        enc = load_tokenizer(ckpt_name, ckpt)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        return f"no tokenizer written ({str(e)[:200]}); pair the model with its tokenizer yourself"
    conv = TikTokenConverter(vocab_file=None, pattern=enc._pat_str, extra_special_tokens=enc._special_tokens)
    # the converter reads merge ranks from a .tiktoken file; hand it the ranks we hold instead (tiktoken would
    # cache a file by its path, and writing one needs the blobfile package)
    conv.load_tiktoken_bpe = lambda _: enc._mergeable_ranks
    conv.converted().save(os.path.join(out_dir, 'tokenizer.json'))
    eot = enc.decode([ckpt['tokenizer']['eot_id']])
    with open(os.path.join(out_dir, 'tokenizer_config.json'), 'w') as f:
        # decoding must give tiktoken's text back: older transformers "clean up" ' .' into '.' unless told not to
        json.dump({'tokenizer_class': 'PreTrainedTokenizerFast', 'bos_token': eot, 'eos_token': eot,
                   'unk_token': eot, 'model_max_length': block_size, 'add_prefix_space': False,
                   'clean_up_tokenization_spaces': False}, f, indent=2)
    return f"tokenizer {enc.name!r} -> tokenizer.json"


def export(path, out_dir, tokenizer=True):
    """Writes the HF folder for checkpoint `path` (a run folder or a step_N.pt); returns the architecture."""
    ckpt = load_checkpoint(path)
    c = GPTConfig(**{**ckpt['model_args'], 'use_kernels': False})
    arch = architecture(c)
    os.makedirs(out_dir, exist_ok=True)
    hf_config(c, arch, ckpt['tokenizer']['eot_id']).save_pretrained(out_dir)
    tensors = convert(checkpoint.clean_state_dict(ckpt['model']), c, arch)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, 'model.safetensors'),
              metadata={'format': 'pt'})
    note = save_tokenizer(path, ckpt, out_dir, c.block_size) if tokenizer else 'no tokenizer written (asked not to)'
    print(f"{path} -> {out_dir}: {arch} ({'GPTNeoXForCausalLM' if arch == 'gpt_neox' else 'GPT2LMHeadModel'}), "
          f"{sum(v.numel() for v in tensors.values()) / 1e6:.2f}M parameters; {note}")
    return arch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('checkpoint', help='a run folder (its newest checkpoint) or a step_N.pt / step_N/')
    p.add_argument('out_dir', help='the transformers folder to write')
    p.add_argument('--no_tokenizer', action='store_true', help='write only config.json and model.safetensors')
    args = p.parse_args(argv)
    return export(args.checkpoint, args.out_dir, tokenizer=not args.no_tokenizer)


if __name__ == '__main__':
    runtime.clean_errors()
    main()
