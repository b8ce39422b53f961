"""
Checkpoints. A run saves into its out_dir, at every eval_interval, on preemption and at the end, one checkpoint
per step, in one of two forms:

  step_001000.pt  one file (DDP and single-process runs), everything a run needs to continue or start a new phase:
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
  step_001000/    FSDP runs: the same, sharded with torch.distributed.checkpoint (DCP); every rank writes its shards
            in parallel, and it loads at any world size. `python checkpoint.py RUN_DIR` consolidates the newest
            into one file beside it (step_001000.pt, without the optimizer).

The last `keep_last` checkpoints are kept, and every `keep_every`-th step's for good; each is addressable
(`init_from=out/run/step_001000`), and a run dir means its newest readable one: find() passes over a checkpoint it
cannot read (a truncated file, a half-written folder) to the one before, and says so. Writes are atomic and
durable: a temporary name, fsync'd, renamed, the folder fsync'd, so a run killed (or a machine cut off) while
saving keeps its previous checkpoints. `load(path)` reads either form, so sample.py and eval/ never need to care.
"""
import os
import re
import shutil
import sys

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

import data as datalib
import runtime
from model import GPT, GPTConfig, MODEL_KEYS

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
STEP = re.compile(r'step_(\d+)(\.pt)?$')
LEGACY = ('ckpt.pt', 'ckpt')  # what runs wrote before checkpoints were step-addressed


def save(obj, path):
    """torch.save, atomic and durable (runtime.atomic_write): the old file or the new one, never half of one."""
    runtime.atomic_write(path, lambda f: torch.save(obj, f))


def step_name(step, sharded):
    return f"step_{step:06d}" + ('' if sharded else '.pt')


def save_run(out_dir, step, model, optimizer, meta, sharded, master, keep_last=2, keep_every=0):
    """Writes a run's checkpoint of step `step`, then drops the old ones the retention rule lets go. Called on every
    rank (gathering or sharding the state is collective). Returns the checkpoint's path."""
    final = os.path.join(out_dir, step_name(step, sharded))
    if not sharded:
        model_sd, optim_sd = get_state_dict(model, optimizer, options=FULL)
        if master:
            save({'model': clean_state_dict(model_sd), 'optimizer': optim_sd, **meta}, final)
            prune(out_dir, keep_last, keep_every)
        return final
    model_sd, optim_sd = get_state_dict(model, optimizer)
    tmp, old = final + '.tmp', final + '.old'
    if master and os.path.exists(tmp):
        shutil.rmtree(tmp)  # the remains of a save that was killed
    _barrier()
    dcp.save({'model': model_sd, 'optimizer': optim_sd}, checkpoint_id=tmp)  # each rank fsyncs its own files
    if master:
        save(meta, os.path.join(tmp, 'meta.pt'))  # written last: a step folder without meta.pt is incomplete
        if os.path.exists(final):  # the same step saved again (a resumed run preempted at once): swap it in
            os.replace(final, old)
        os.replace(tmp, final)
        runtime.fsync_dir(out_dir)
        shutil.rmtree(old, ignore_errors=True)
        prune(out_dir, keep_last, keep_every)
    _barrier()
    return final


def checkpoints(run_dir):
    """A run dir's checkpoints, newest first: (step, path). For one step, the sharded form (it holds the optimizer)
    comes before a consolidated file. Checkpoints of the old naming (ckpt.pt, ckpt/) come last."""
    found = []
    for name in os.listdir(run_dir) if os.path.isdir(run_dir) else []:
        m = STEP.match(name)
        path = os.path.join(run_dir, name)
        if m and (os.path.isfile(path) if m.group(2) else os.path.isdir(path)):
            found.append((int(m.group(1)), not m.group(2), path))
    found.sort(reverse=True)
    legacy = [os.path.join(run_dir, n) for n in LEGACY if os.path.exists(os.path.join(run_dir, n))]
    return [(s, p) for s, _, p in found] + [(-1, p) for p in legacy]


def prune(out_dir, keep_last, keep_every):
    """Deletes the step checkpoints that are neither among the newest keep_last steps nor on a keep_every step."""
    steps = sorted({s for s, _ in checkpoints(out_dir) if s >= 0}, reverse=True)
    keep = set(steps[:keep_last]) | {s for s in steps if keep_every and s % keep_every == 0}
    for s, path in checkpoints(out_dir):
        if s >= 0 and s not in keep:
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def _is_sharded(path):
    return os.path.isfile(os.path.join(path, 'meta.pt')) and os.path.isfile(os.path.join(path, '.metadata'))


def _read_meta(path):
    """Everything but the tensors (mmap: a single file is not read into memory for this)."""
    if os.path.isdir(path):
        if not _is_sharded(path):
            raise ValueError("no meta.pt and .metadata: an incomplete sharded save")
        return torch.load(os.path.join(path, 'meta.pt'), weights_only=False)
    ck = torch.load(path, map_location='cpu', mmap=True, weights_only=False)
    return {k: v for k, v in ck.items() if k not in ('model', 'optimizer')}


def find(path):
    """The checkpoint `path` names: a run dir's newest readable checkpoint, or a step (`RUN/step_001000`, with or
    without .pt), or any checkpoint file or sharded folder. Unreadable ones raise a one-line ValueError; in a run dir
    the one before is taken instead, with a line saying so."""
    if os.path.isdir(path) and not (_is_sharded(path) or STEP.match(os.path.basename(os.path.normpath(path)))):
        found = checkpoints(path)
        if not found:
            raise FileNotFoundError(f"checkpoint {path} does not exist (no step_*.pt or step_*/ in it): check "
                                    f"init_from / out_dir, or train that run first")
        for i, (_, candidate) in enumerate(found):
            try:
                _read_meta(candidate)
            except Exception as e:  # a truncated zip, a half-written folder, a pickle cut short: try the one before
                print(f"warning: checkpoint {candidate} is unreadable ({type(e).__name__}: {_first(e)}); "
                      f"{'trying the one before it' if i + 1 < len(found) else 'no older one left'}", file=sys.stderr)
                continue
            return candidate
        raise ValueError(f"no checkpoint in {path} is readable (all are truncated or corrupt): start again from "
                         f"scratch or from another run")
    if not os.path.exists(path) and os.path.exists(path + '.pt'):
        path += '.pt'  # RUN/step_001000 names the single-file form too
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist: check init_from / out_dir, or train that run first")
    try:
        _read_meta(path)
    except Exception as e:
        raise ValueError(f"checkpoint {path} is unreadable, truncated or corrupt ({type(e).__name__}: "
                         f"{_first(e)}): give its run dir to fall back to the checkpoint before it") from None
    return path


def _first(err):
    return str(err).split('. ')[0][:160]


def load_meta(path):
    """Everything but the tensors of a checkpoint."""
    return _read_meta(find(path))


def load_into(path, model, optimizer=None):
    """Fill model (plain, DDP'd or FSDP-sharded) and optionally optimizer from either checkpoint form.
    Called on every rank; a DCP checkpoint reshards to the current world size on the way in. The optimizer keeps
    its own hyperparameters (lr, betas, eps, weight decay: this run's config, what config.json records), and takes
    only the state (moments, step counts): loading a state dict would otherwise bring back the source run's."""
    path = find(path)
    hyper = [{k: v for k, v in g.items() if k != 'params'} for g in optimizer.param_groups] if optimizer else []
    _load_into(path, model, optimizer)
    for group, h in zip(optimizer.param_groups if optimizer else [], hyper):
        group.update(h)


def _load_into(path, model, optimizer):
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
                         f"reset_optimizer=True, or resume from the run's sharded step folder")
    opts = StateDictOptions(full_state_dict=True)
    set_state_dict(model, optimizer or [], model_state_dict=clean_state_dict(ck['model']),
                   optim_state_dict=ck['optimizer'] if optimizer else {}, options=opts)


def load(path, map_location='cpu'):
    """The whole checkpoint as one dict, whatever its form. A sharded one is consolidated in memory (model
    weights only: the optimizer state stays in the shards, for `init_from='resume'`)."""
    path = find(path)
    if not _is_sharded(path):
        return torch.load(path, map_location=map_location, weights_only=False)
    meta = _read_meta(path)
    with torch.device('meta'):
        model = GPT(GPTConfig(**meta['model_args']))
    model.to_empty(device='cpu')
    sd = model.state_dict()
    dcp.load({'model': sd}, checkpoint_id=path)  # with no process group DCP reads every shard into these tensors
    return {**meta, 'model': sd}


# -----------------------------------------------------------------------------------------------------------------
# a run's lineage: what a resume must keep, and an out_dir that holds another run

def source_shape(source, cfg, given, init_from):
    """The model shape of the run a phase or resume starts from (model_args). Asking for another one is a mistake,
    not an override: one line names each key that differs. dropout, use_kernels and init may change."""
    model_args = dict(source['model_args'])
    clash = {k: (cfg[k], model_args[k]) for k in given & (set(MODEL_KEYS) - {'dropout', 'use_kernels', 'init'})
             if cfg[k] != model_args[k] and (k != 'vocab_size' or cfg[k])}
    if clash:
        listing = ', '.join(f"{k}={mine!r} (checkpoint: {theirs!r})" for k, (mine, theirs) in clash.items())
        raise ValueError(f"{init_from} has a different model shape: {listing}; drop these settings to use the "
                         f"checkpoint's shape, or start from scratch")
    return model_args


def check_resume(source, out_dir, seed, block_size, data, replay, sequences):
    """A resume continues the run exactly, so it must be the same recipe: the same seed (the streams' order and
    the batch plan), block_size (the windows), data and replay weights and sequences per optimizer step
    (batch_size x gradient_accumulation_steps, whatever the process count). A changed recipe is a new phase
    (init_from=<run>), not a resume; the tokenizer and the bins are checked where the data is opened."""
    was = source['config']

    def recipe(seed, block_size, data, replay, sequences):
        data = {data: 1.0} if isinstance(data, str) else data
        return {'seed': seed, 'block_size': block_size, 'data': datalib.normalise_weights({**data, **(replay or {})}),
                'replay': sorted(replay or {}), 'batch_size x gradient_accumulation_steps': sequences}

    now = recipe(seed, block_size, data, replay, sequences)
    then = recipe(was['seed'], was['block_size'], was['data'], was.get('replay'),
                  was['batch_size'] * was['gradient_accumulation_steps'])
    for k in now:
        if now[k] != then[k]:
            raise ValueError(f"init_from=resume with {k}={now[k]!r}, but the run in {out_dir} was trained with "
                             f"{k}={then[k]!r}: resume with its settings, or start a new phase from it "
                             f"(--init_from={out_dir} --out_dir=<another>)")


def progress(source, resume, continue_schedule, names):
    """Where a run starts: (iter_num, schedule_offset, tokens per dataset of `names` in this run, tokens per
    dataset in the phases before it). A resume picks all four up from its checkpoint. A new phase counts its
    own steps and tokens from 0, adds the source's tokens to those before it, and starts its schedule at 0, or
    where the source's ended (continue_schedule, for the infinite schedules). A run from scratch: nothing."""
    tokens = dict.fromkeys(names, 0)
    if source is None:
        return 0, 0, tokens, {}
    if resume:
        tokens.update(source['tokens'])
        return source['iter_num'], source['schedule_offset'], tokens, source['tokens_before']
    before = dict(source['tokens_before'])
    for name, n in source['tokens'].items():
        before[name] = before.get(name, 0) + n
    offset = source['schedule_offset'] + source['iter_num'] if continue_schedule else 0
    return 0, offset, tokens, before


RUN_FILES = ('metrics.jsonl', 'config.json', 'final.json')  # beside the checkpoints, what a run writes


def claim_out_dir(out_dir, overwrite, master, source_path=None):
    """A fresh run (scratch or a new phase) must not mix with another run's files: retention would delete its own
    checkpoints in favour of the old run's newer steps, and init_from=out_dir would load the old model. With
    overwrite the old run's checkpoints and logs are deleted first (by the master); else the run stops."""
    old = checkpoints(out_dir)
    _barrier()  # every rank has looked before the master deletes anything
    if not old:
        return
    if not overwrite:
        raise ValueError(f"out_dir {out_dir} holds another run's checkpoints ({os.path.basename(old[0][1])}, ...): "
                         f"resume it with --init_from=resume, pick another --out_dir, or pass --overwrite=True to "
                         f"delete that run's checkpoints and logs first")
    if source_path and os.path.abspath(source_path).startswith(os.path.abspath(out_dir) + os.sep):
        raise ValueError(f"--overwrite=True would delete {source_path}, the checkpoint this run starts from: pick "
                         f"another --out_dir")
    if master:
        for _, path in old:
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        for name in RUN_FILES:
            if os.path.exists(os.path.join(out_dir, name)):
                os.remove(os.path.join(out_dir, name))
        print(f"overwrite: deleted {len(old)} checkpoint(s) and the logs of the run in {out_dir}")
    _barrier()


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
    # python checkpoint.py RUN_DIR|STEP_DIR: consolidate an FSDP checkpoint into one file beside it
    if len(sys.argv) != 2:
        sys.exit("usage: python checkpoint.py RUN_DIR   (writes RUN_DIR/step_N.pt from its newest sharded step_N/)")
    try:
        src = find(sys.argv[1])
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    if not _is_sharded(src):
        sys.exit(f"{src} is already a single-file checkpoint")
    out = os.path.normpath(src) + '.pt'
    save({**load(src), 'optimizer': None}, out)
    print(f"wrote {out} (model weights and run state; resume from {src} to keep the optimizer state)")
