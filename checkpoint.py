"""
Checkpoints: one file, ckpt.pt, holding everything a run needs to continue exactly or to start a new phase:
  model          state dict (never with torch.compile's `_orig_mod.` or DDP's `module.` prefix)
  optimizer      AdamW state
  model_args     the GPTConfig fields
  config         the run's resolved config
  iter_num       optimizer steps done in this run; schedule_offset: the schedule step this run started at
  tokens         tokens drawn per dataset in this run; tokens_total: across all phases before it too
  tokenizer      name, hash, vocab size and eot id of the bins it was trained on
  metrics        the last eval
Written atomically: a temporary file in the same folder, then os.replace, so a run killed while saving leaves
the previous checkpoint intact.
"""
import os

import torch


def save(obj, path):
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one, never half of one
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(path, map_location='cpu'):
    if os.path.isdir(path):
        path = os.path.join(path, 'ckpt.pt')
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist: check init_from / out_dir, or train that run first")
    # weights_only=False: the checkpoint holds the config dict and optimizer state, and we wrote it ourselves
    return torch.load(path, map_location=map_location, weights_only=False)


def clean_state_dict(sd):
    """Drop the prefixes that wrappers add, so checkpoints load into a bare GPT."""
    out = {}
    for k, v in sd.items():
        for prefix in ('_orig_mod.', 'module.'):
            k = k.replace(prefix, '')
        out[k] = v
    return out
