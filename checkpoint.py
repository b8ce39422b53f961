"""
Checkpoints. A run writes one of two forms into its out_dir:

  ckpt.pt   one file (DDP and single-process runs), everything a run needs to continue or start a new phase:
            model        state dict with plain names (never `_orig_mod.` or `module.`)
            optimizer    AdamW state keyed by parameter name (torch.distributed.checkpoint's "full" form, which
                         loads into a plain, DDP or FSDP model alike)
            model_args   the GPTConfig fields;  config: the run's resolved config
            iter_num     optimizer steps done in this run;  schedule_offset: the schedule step the run started at
            tokens       tokens drawn per dataset in this run;  tokens_before: by the phases it continued from
            tokenizer    name, hash, vocab size and eot id of the bins;  metrics: the last eval
            data_start   per dataset, where its stream stood when this run began (data.py; resume reads this)
            data_state   the same after iter_num steps (a new phase from this run continues from here)
            world_size   processes the run trained with (the data audit needs it to name each sample's rank)
  ckpt/     FSDP runs: the same, sharded with torch.distributed.checkpoint (DCP); every rank writes its shards in
            parallel, and it loads at any world size. `python checkpoint.py RUN_DIR` consolidates it to ckpt.pt.

Both are written atomically (a temporary name, then a rename): a run killed while saving leaves the previous
checkpoint intact. `load(path)` reads either form, so sample.py and eval/ never need to care which one a run wrote.
"""
import os
import shutil
import sys

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def save(obj, path):
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one, never half of one
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_run(out_dir, model, optimizer, meta, sharded, master):
    """Writes a run's checkpoint. Called on every rank (gathering or sharding the state is collective)."""
    if not sharded:
        model_sd, optim_sd = get_state_dict(model, optimizer, options=FULL)
        if master:
            save({'model': clean_state_dict(model_sd), 'optimizer': optim_sd, **meta}, os.path.join(out_dir, 'ckpt.pt'))
        return
    model_sd, optim_sd = get_state_dict(model, optimizer)
    final, tmp, old = (os.path.join(out_dir, n) for n in ('ckpt', 'ckpt.tmp', 'ckpt.old'))
    if master and os.path.exists(tmp):
        shutil.rmtree(tmp)  # the remains of a save that was killed
    _barrier()
    dcp.save({'model': model_sd, 'optimizer': optim_sd}, checkpoint_id=tmp)
    if master:
        save(meta, os.path.join(tmp, 'meta.pt'))  # written last: a ckpt dir without meta.pt is incomplete
        # two renames: between them only ckpt.old exists, and find() falls back to it
        if os.path.exists(final):
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    _barrier()


def find(path):
    """A checkpoint file or DCP folder from a run dir, a ckpt.pt path or a ckpt/ path."""
    candidates = [path] if not os.path.isdir(path) or _is_sharded(path) else \
        [os.path.join(path, n) for n in ('ckpt.pt', 'ckpt', 'ckpt.old')]
    found = [c for c in candidates if os.path.isfile(c) or _is_sharded(c)]
    if found:
        return max(found, key=os.path.getmtime)  # a run dir with both forms: the newer (consolidated after sharded)
    raise FileNotFoundError(f"checkpoint {path} does not exist (looked for {', '.join(candidates)}): "
                            f"check init_from / out_dir, or train that run first")


def _is_sharded(path):
    return os.path.isfile(os.path.join(path, 'meta.pt')) and os.path.isfile(os.path.join(path, '.metadata'))


def load_meta(path):
    """Everything but the tensors of a checkpoint (mmap: a single file is not read into memory for this)."""
    path = find(path)
    if _is_sharded(path):
        return torch.load(os.path.join(path, 'meta.pt'), weights_only=False)
    ck = torch.load(path, map_location='cpu', mmap=True, weights_only=False)
    return {k: v for k, v in ck.items() if k not in ('model', 'optimizer')}


def load_into(path, model, optimizer=None):
    """Fill model (plain, DDP'd or FSDP-sharded) and optionally optimizer from either checkpoint form.
    Called on every rank; a DCP checkpoint reshards to the current world size on the way in."""
    path = find(path)
    if _is_sharded(path):
        model_sd, optim_sd = get_state_dict(model, optimizer or [])
        state = {'model': model_sd, **({'optimizer': optim_sd} if optimizer else {})}
        dcp.load(state, checkpoint_id=path)
        set_state_dict(model, optimizer or [], model_state_dict=state['model'],
                       optim_state_dict=state.get('optimizer', {}))
        return
    # weights_only=False: the file holds the config dict and optimizer state, and a run of ours wrote it
    ck = torch.load(path, map_location='cpu', mmap=True, weights_only=False)
    if optimizer and ck.get('optimizer') is None:
        raise ValueError(f"{path} holds no optimizer state (a consolidated checkpoint): start the phase with "
                         f"reset_optimizer=True, or resume from the run's sharded ckpt/ folder")
    opts = StateDictOptions(full_state_dict=True)
    set_state_dict(model, optimizer or [], model_state_dict=clean_state_dict(ck['model']),
                   optim_state_dict=ck['optimizer'] if optimizer else {}, options=opts)


def load(path, map_location='cpu'):
    """The whole checkpoint as one dict, whatever its form. A sharded one is consolidated in memory (model
    weights only: the optimizer state stays in the shards, for `init_from='resume'`)."""
    path = find(path)
    if not _is_sharded(path):
        return torch.load(path, map_location=map_location, weights_only=False)
    from model import GPT, GPTConfig
    meta = load_meta(path)
    with torch.device('meta'):
        model = GPT(GPTConfig(**meta['model_args']))
    model.to_empty(device='cpu')
    sd = model.state_dict()
    dcp.load({'model': sd}, checkpoint_id=path)  # with no process group DCP reads every shard into these tensors
    return {**meta, 'model': sd}


def clean_state_dict(sd):
    """Drop the prefixes that wrappers add, so checkpoints load into a bare GPT."""
    out = {}
    for k, v in sd.items():
        for prefix in ('_orig_mod.', 'module.'):
            k = k.replace(prefix, '')
        out[k] = v
    return out


def _barrier():
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


if __name__ == '__main__':
    # python checkpoint.py RUN_DIR: consolidate an FSDP run's ckpt/ into the single file ckpt.pt
    if len(sys.argv) != 2:
        sys.exit("usage: python checkpoint.py RUN_DIR   (writes RUN_DIR/ckpt.pt from RUN_DIR/ckpt/)")
    src = find(sys.argv[1])
    if not _is_sharded(src):
        sys.exit(f"{src} is already a single-file checkpoint")
    out = os.path.join(os.path.dirname(src), 'ckpt.pt')
    save({**load(src), 'optimizer': None}, out)
    print(f"wrote {out} (model weights and run state; resume from {src} to keep the optimizer state)")
