"""
What eval/'s scripts (and sample.py) share: a checkpoint loaded into a ready-to-run GPT, its text tokenizer, and
the check that keeps a checkpoint away from data whose token ids mean something else. Device and dtype come from
runtime.py, as for train.py.
"""
import checkpoint
from model import GPT, GPTConfig, default_kernels
from prepare.tokenizer import get_tokenizer, tokenizer_hash


def load_checkpoint(path):
    """The checkpoint dict of a run folder (its newest checkpoint) or a step_N.pt / step_N/, without the optimizer
    state (twice the model's size, and eval never needs it). A missing one raises checkpoint.find's one line."""
    ckpt = checkpoint.load(path)
    ckpt.pop('optimizer', None)
    return ckpt


def load_model(path, device='cpu'):
    """(GPT in eval mode on `device`, the checkpoint dict without its weights and optimizer state)."""
    ckpt = load_checkpoint(path)
    # Triton kernels where train.py would use them (CUDA); dropout off (eval mode makes it a no-op anyway)
    args = {**ckpt['model_args'], 'dropout': 0.0, 'use_kernels': default_kernels(device)}
    model = GPT(GPTConfig(**args))
    model.load_state_dict(checkpoint.clean_state_dict(ckpt.pop('model')))
    return model.to(device).eval(), ckpt


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
