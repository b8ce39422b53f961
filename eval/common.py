"""
What eval/'s scripts share: a checkpoint loaded into a ready-to-run GPT, its text tokenizer, and the check that
keeps a checkpoint away from data whose token ids mean something else.
"""
import os
from contextlib import nullcontext

import torch

import checkpoint
from model import GPT, GPTConfig


def default_device():
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def load_checkpoint(path):
    """The checkpoint dict of a run folder (its newest checkpoint) or a step_N.pt / step_N/, without the optimizer state (twice the model's size, and
    eval never needs it). A missing path raises FileNotFoundError naming it."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}: give a run folder (a train.py out_dir) or one of its step_N.pt")
    ckpt = checkpoint.load(path)  # a folder without checkpoints gets checkpoint.load's message
    ckpt.pop('optimizer', None)
    return ckpt


def load_model(path, device='cpu'):
    """(GPT in eval mode on `device`, the checkpoint dict without its weights and optimizer state)."""
    ckpt = load_checkpoint(path)
    # Triton kernels where train.py would use them (CUDA); dropout off (eval mode makes it a no-op anyway)
    args = {**ckpt['model_args'], 'dropout': 0.0, 'use_kernels': str(device).startswith('cuda')}
    model = GPT(GPTConfig(**args))
    model.load_state_dict(checkpoint.clean_state_dict(ckpt.pop('model')))
    return model.to(device).eval(), ckpt


def autocast(device, dtype='auto'):
    """'auto' = bf16 on CUDA, fp32 on CPU (exact, and CPU bf16 is slow on many CPUs)."""
    device_type = 'cuda' if str(device).startswith('cuda') else 'cpu'
    if dtype == 'auto':
        dtype = 'bfloat16' if device_type == 'cuda' else 'float32'
    if dtype not in ('float32', 'bfloat16', 'float16'):
        raise ValueError(f"dtype must be 'auto', 'float32', 'bfloat16' or 'float16', got {dtype!r}")
    if dtype == 'float32':
        return nullcontext()
    return torch.autocast(device_type=device_type, dtype=getattr(torch, dtype))


def check_tokenizer(ckpt_name, ckpt, data_dir, name, meta):
    """A model only means something on ids from the tokenizer it was trained with."""
    mine, theirs = ckpt['tokenizer'], meta
    if mine['tokenizer_hash'] != theirs['tokenizer_hash']:
        raise ValueError(
            f"{ckpt_name} was trained with tokenizer {mine['tokenizer']!r} (hash {mine['tokenizer_hash']}), but "
            f"dataset {name!r} in {data_dir} was prepared with {theirs['tokenizer']!r} (hash {theirs['tokenizer_hash']}): "
            f"evaluate it on data prepared with the checkpoint's tokenizer "
            f"(python -m prepare.text --name ... --tokenizer {mine['tokenizer']})")


def load_tokenizer(ckpt_name, ckpt, data_dir=None):
    """The checkpoint's text tokenizer (a tiktoken Encoding), checked against the hash the run recorded.
    Custom tokenizers live in <data_dir>/tokenizers/; by default the run's own data_dir."""
    from prepare.tokenizer import get_tokenizer, tokenizer_hash
    tok = ckpt['tokenizer']
    data_dir = data_dir or ckpt.get('config', {}).get('data_dir')
    try:
        enc = get_tokenizer(tok['tokenizer'], data_dir)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{ckpt_name} needs its tokenizer {tok['tokenizer']!r} to read text: {e} "
                                f"(pass --data_dir if its data moved)") from None
    if tokenizer_hash(enc) != tok['tokenizer_hash']:
        raise ValueError(f"tokenizer {tok['tokenizer']!r} found for {ckpt_name} is not the one it was trained with "
                         f"(hash {tokenizer_hash(enc)}, checkpoint: {tok['tokenizer_hash']}): point --data_dir at "
                         f"the data folder the run used")
    return enc
