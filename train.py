"""
Train a GPT on a weighted mixture of token bins: pre-training, a continual phase, or a resumed run.

    python train.py config/pretrain_pile_405m.py                        # one process
    python train.py config/cpt_en_de.py --init_from=out/pile_405m      # a new phase from another run
    torchrun --standalone --nproc_per_node=8 train.py config/cpt_en_de.py

Defaults are the module-level names below; a config file, then --key=value, override them (configurator.py).
"""
import itertools
import json
import math
import os
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

import checkpoint
import data as datalib
import schedules
from configurator import clean_errors, config_keys, load_config
from model import GPT, GPTConfig, MODEL_KEYS, PRESETS
from prepare import default_data_dir

# -----------------------------------------------------------------------------------------------------------------
# defaults
# I/O
out_dir = 'out'
data_dir = default_data_dir()  # $NANOCPT_DATA, else the repo's data/ (where prepare/ writes)
init_from = 'scratch'     # 'scratch' | 'resume' (continue out_dir exactly) | path to another run's checkpoint (new phase)
auto_resume = False       # if out_dir already holds a checkpoint, resume it instead of init_from (requeued jobs)
reset_optimizer = True    # new phase: fresh AdamW state (the paper); False keeps the source run's state
continue_schedule = False # new phase: the schedule continues from the source run's step (infinite schedules)
new_streams = False       # new phase: ignore the source run's data record and read every dataset from its start
eval_interval = 200       # evaluate and checkpoint every this many steps, and at the end
keep_last = 2             # checkpoints kept: the newest keep_last (out_dir/step_NNNNNN[.pt]) ...
keep_every = 0            # ... and every checkpoint of a step that is a multiple of this, for good (0 = none)
eval_windows = 100        # validation windows per dataset (0 = the whole val bin); the same windows every time
log_interval = 10
stop_at = 0               # >0: checkpoint and stop after this many steps, the schedule still sized by max_iters
eval_only = False         # evaluate the initial (or resumed) model on val_data, print, and exit
dry_run = False           # print the model's size and the run's cost (FLOPs, GPU-hours), build nothing, exit
wandb_log = False
wandb_project = 'nanocpt'
wandb_run_name = ''
# data: a fraction w_i of every step's sequences comes from dataset i, weights normalised over data and replay.
# `data` continues each dataset's stream (new windows); `replay` re-reads only windows the lineage has read (data.py)
data = {'en': 1.0}
replay = {}               # e.g. {'en': 0.25} beside data = {'de': 0.75}: the paper's replay of D0
val_data = []             # datasets to report validation loss on; [] = the keys of data and replay
batch_size = 8            # sequences per micro-step per process
gradient_accumulation_steps = 1  # micro-steps per optimizer step, summed over all processes
total_batch_size = 0      # >0: sequences per optimizer step; sets gradient_accumulation_steps from the process count
seed = 1337
# model: `preset` names a shape in model.py (e.g. 'pythia-410m'); the keys below are GPTConfig's fields (same
# defaults, see model.py) and a key set in a config or on the command line wins over the preset
preset = ''
n_layer = 12
n_head = 12
n_embd = 768
block_size = 1024         # also the training sequence length
vocab_size = 0            # 0 = the bins' tokenizer vocab (padded to a multiple of 64 inside the model)
norm = 'layernorm'        # 'layernorm' | 'rmsnorm'
norm_eps = 1e-5
mlp = 'gelu'              # 'gelu' | 'swiglu'
gelu_approximate = 'tanh' # 'tanh' (GPT-2) | 'none' (GPT-NeoX)
n_hidden = 0              # MLP width; 0 = 4 n_embd (gelu), 8/3 n_embd (swiglu)
position = 'learned'      # 'learned' | 'rotary'
rotary_pct = 1.0          # rotary: fraction of each head's dims that rotate (Pythia: 0.25)
rotary_base = 10000.0
parallel_residual = False # attention and MLP read the same input (GPT-NeoX)
tie_embeddings = True
bias = True
dropout = 0.0
init = 'gpt2'             # 'gpt2' | 'neox': the authors' GPT-NeoX init (model.py); the neox presets use it
use_kernels = False       # Triton kernels; on by default on CUDA unless set
# AdamW, as in the paper
learning_rate = 6e-4      # η_max
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
eps = 1e-8
grad_clip = 1.0           # 0 = off
max_bad_steps = 10        # a step whose gradient norm is not finite is skipped (no update); stop after this many in a row
max_iters = 1000          # optimizer steps in this phase
# learning-rate schedule (schedules.py): lr = schedule(schedule_offset + step)
lr_schedule = 'cosine'
min_lr = 6e-5             # η_min
warmup_iters = 0.01       # int: steps; float in [0, 1): fraction of max_iters
schedule_args = {}        # the schedule's own parameters, e.g. {'decay_frac': 0.2}
# system
device = 'cuda' if torch.cuda.is_available() else 'cpu'
dtype = 'auto'            # 'auto' (bf16 autocast where the device has it) | 'bfloat16' | 'float32'
compile = True            # torch.compile the model (per block under FSDP)
fsdp = False              # shard parameters, gradients and optimizer state (FSDP2) instead of DDP's full copies
replicate = 1             # FSDP: HSDP, a replicas x shards mesh (shard within a node, replicate across nodes)
activation_checkpointing = False  # recompute each block's activations in backward: less memory, ~30% more compute
peak_flops = 0.0          # accelerator peak FLOP/s for MFU; 0 = look the GPU up in PEAK_FLOPS (bf16 dense)
backend = ''              # '' = nccl on CUDA, gloo on CPU
# -----------------------------------------------------------------------------------------------------------------
clean_errors()
cfg, explicit = load_config(config_keys(globals()), sys.argv[1:])
globals().update(cfg)
for k in ('batch_size', 'gradient_accumulation_steps', 'max_iters', 'block_size', 'eval_interval', 'log_interval',
          'keep_last', 'replicate'):
    if cfg[k] < 1:
        raise ValueError(f"{k}={cfg[k]} must be at least 1")
for k in ('learning_rate', 'min_lr', 'weight_decay', 'grad_clip', 'dropout', 'total_batch_size', 'keep_every',
          'max_bad_steps', 'stop_at', 'eval_windows'):
    if not cfg[k] >= 0:  # `not >=` also catches nan
        raise ValueError(f"{k}={cfg[k]} must not be negative")
if 'use_kernels' not in explicit:
    use_kernels = device.startswith('cuda')

# distributed: torchrun sets RANK / WORLD_SIZE; every process runs this same script
ddp = int(os.environ.get('RANK', -1)) != -1
if ddp:
    backend = backend or ('nccl' if device.startswith('cuda') else 'gloo')
    dist.init_process_group(backend=backend)
    rank, local_rank, world_size = dist.get_rank(), int(os.environ['LOCAL_RANK']), dist.get_world_size()
    if device.startswith('cuda'):
        device = f'cuda:{local_rank}'
        torch.cuda.set_device(device)
else:
    rank, local_rank, world_size = 0, 0, 1
    if fsdp:  # FSDP needs a process group even alone: a one-process one, no torchrun required
        dist.init_process_group(backend or ('nccl' if device.startswith('cuda') else 'gloo'),
                                store=dist.HashStore(), rank=0, world_size=1)
master = rank == 0
if replicate > 1 and not fsdp:
    raise ValueError(f"replicate={replicate} is HSDP (FSDP sharding within groups, replicas across them): set fsdp=True")
if world_size % replicate:
    raise ValueError(f"replicate={replicate} must divide the number of processes ({world_size}): e.g. the node count")
if total_batch_size:
    # the paper's batch (1104 sequences) from any GPU count: accumulate as many micro-steps as it takes
    if total_batch_size % (batch_size * world_size):
        raise ValueError(f"total_batch_size={total_batch_size} is not a multiple of batch_size={batch_size} x "
                         f"{world_size} processes; choose a batch_size that divides {total_batch_size // world_size}")
    gradient_accumulation_steps = total_batch_size // batch_size
if gradient_accumulation_steps % world_size:
    raise ValueError(f"gradient_accumulation_steps={gradient_accumulation_steps} must be a multiple of the "
                     f"number of processes ({world_size})")
accum = gradient_accumulation_steps // world_size
device_type = 'cuda' if device.startswith('cuda') else 'cpu'
if dtype not in ('auto', 'bfloat16', 'float32'):
    raise ValueError(f"dtype={dtype!r} is not one of 'auto', 'bfloat16', 'float32' (fp16 would need loss scaling)")
if dtype == 'auto':
    bf16 = torch.cuda.is_bf16_supported() if device_type == 'cuda' else torch.ops.mkldnn._is_mkldnn_bf16_supported()
    dtype = 'bfloat16' if bf16 else 'float32'
ptdtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16}[dtype]
# FSDP casts parameters to bf16 itself (its mixed-precision policy); autocast covers what stays fp32 there
autocast = nullcontext() if dtype == 'float32' else torch.autocast(device_type=device_type, dtype=ptdtype)
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
if master and not dry_run:
    os.makedirs(out_dir, exist_ok=True)

# dense bf16 peak of one accelerator, for MFU (data sheets; the sparse figures are twice these)
PEAK_FLOPS = {'A100': 312e12, 'H100': 989e12, 'H200': 989e12}
if not peak_flops and device_type == 'cuda':
    gpu = torch.cuda.get_device_name(device)
    peak_flops = next((v for k, v in PEAK_FLOPS.items() if k in gpu), 0.0)

# the model's shape: a preset and explicit keys, or (for resume and new phases) the source checkpoint's
if auto_resume and checkpoint.checkpoints(out_dir):
    init_from = 'resume'  # a requeued job: the same command carries on from its own newest checkpoint
resume = init_from == 'resume'
source = source_path = None
if init_from != 'scratch' and not dry_run:  # a dry run takes the shape from the config and reads nothing
    source_path = checkpoint.find(out_dir if resume else init_from)  # the newest readable one of a run dir
    source = checkpoint.load_meta(source_path)
if preset and preset not in PRESETS:
    raise ValueError(f"unknown model preset {preset!r}; valid presets: {sorted(PRESETS)} (or '' for none)")
if source is None:
    model_args = {**PRESETS[preset], **{k: cfg[k] for k in explicit & set(MODEL_KEYS)}} if preset else \
                 {k: cfg[k] for k in MODEL_KEYS}
    model_args['vocab_size'] = vocab_size  # 0: the bins' tokenizer decides (below), whatever the preset says
else:
    # the checkpoint decides the shape; asking for a different one is a mistake, not an override
    model_args = dict(source['model_args'])
    shape_keys = set(MODEL_KEYS) - {'dropout', 'use_kernels', 'init'}
    clash = {k: (cfg[k], model_args[k]) for k in explicit & shape_keys if cfg[k] != model_args[k]}
    if vocab_size and vocab_size != model_args['vocab_size']:
        clash['vocab_size'] = (vocab_size, model_args['vocab_size'])
    if clash:
        listing = ', '.join(f"{k}={mine!r} (checkpoint: {theirs!r})" for k, (mine, theirs) in clash.items())
        raise ValueError(f"{init_from} has a different model shape: {listing}; drop these settings to use the "
                         f"checkpoint's shape, or start from scratch")
model_args.update(dropout=dropout, use_kernels=use_kernels)
if 'block_size' not in explicit:
    block_size = model_args['block_size']  # a preset's or checkpoint's context is the run's sequence length
tokens_per_step = batch_size * block_size * gradient_accumulation_steps

if dry_run:
    # what this config would build and cost, without data or memory: the model lives on the meta device
    if not model_args['vocab_size']:  # the data's if it is there, else the preset's, else GPT-2's (prepare's default)
        first_meta = os.path.join(data_dir, next(iter(datalib.normalise_weights(data))), 'meta.json')
        model_args['vocab_size'] = datalib.load_meta(data_dir, next(iter(data)))['vocab_size'] \
            if os.path.exists(first_meta) else PRESETS.get(preset, {}).get('vocab_size', 50257)
    with torch.device('meta'):
        meta_model = GPT(GPTConfig(**model_args))
    n, fpt = meta_model.num_params(), meta_model.flops_per_token()
    total = tokens_per_step * max_iters
    print(f"model: {n / 1e6:.1f}M parameters ({n:,}), vocab {model_args['vocab_size']}, "
          f"{fpt / 1e9:.2f} GFLOPs per token")
    print(f"run: {max_iters:,} steps x {tokens_per_step:,} tokens = {total / 1e9:.2f}B tokens, "
          f"{fpt * total:.3g} FLOPs")
    for mfu in (0.4, 0.5):
        print(f"cost at {mfu:.0%} MFU on H100 (989 TFLOP/s bf16): {fpt * total / (mfu * 989e12) / 3600:,.0f} GPU-hours")
    sys.exit(0)

# data: each dataset's stream carries on from where the source run's lineage left it (resume: where this run began)
lineage = {}
if source is not None and (resume or not new_streams):
    lineage = source.get('data_start' if resume else 'data_state')
    if lineage is None:
        raise ValueError(f"{init_from} has no data record (trained before streams were recorded): pass "
                         f"--new_streams=True to read every dataset from its start")
mixture = datalib.Mixture(data_dir, data, block_size, batch_size, accum, world_size, seed, replay, lineage,
                          source=f"init_from={init_from}")
val_data = val_data or list(mixture.names)
val_tok = datalib.shared_tokenizer({n: datalib.load_meta(data_dir, n) for n in val_data})
if val_tok['tokenizer_hash'] != mixture.tokenizer['tokenizer_hash']:
    raise ValueError(f"val_data {val_data} were prepared with tokenizer {val_tok['tokenizer']}, the training data "
                     f"with {mixture.tokenizer['tokenizer']}: re-prepare them with one tokenizer")
if source is not None and source['tokenizer']['tokenizer_hash'] != mixture.tokenizer['tokenizer_hash']:
    raise ValueError(f"{init_from} was trained with tokenizer {source['tokenizer']['tokenizer']}, but data "
                     f"{list(mixture.names)} uses {mixture.tokenizer['tokenizer']}: prepare the new data with the "
                     f"checkpoint's tokenizer")
model_args['vocab_size'] = model_args['vocab_size'] or mixture.tokenizer['vocab_size']
if mixture.tokenizer['vocab_size'] > model_args['vocab_size']:
    raise ValueError(f"the bins' tokenizer has {mixture.tokenizer['vocab_size']} tokens but the model's vocab_size is "
                     f"{model_args['vocab_size']}: set vocab_size >= {mixture.tokenizer['vocab_size']} (or 0 to follow the data)")
if model_args['block_size'] < block_size:
    raise ValueError(f"block_size={block_size} exceeds the model's block_size={model_args['block_size']}")

# the model. FSDP builds it on the meta device (no memory), shards it, then materialises only each rank's shard
torch.manual_seed(seed)  # the same initial weights on every rank and every run with this seed
gptconf = GPTConfig(**model_args)
with torch.device('meta' if fsdp else 'cpu'):
    raw_model = GPT(gptconf)
raw_model.activation_checkpointing = activation_checkpointing
if compile and fsdp:
    for block in raw_model.transformer.h:
        block.compile()  # per block: FSDP's all-gathers stay between compiled regions
elif compile:
    raw_model.compile()  # in place, so state dict names never carry `_orig_mod.`
if fsdp:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    mp = MixedPrecisionPolicy(param_dtype=ptdtype, reduce_dtype=torch.float32)  # bf16 compute, fp32 gradient sums
    # a 2-D mesh: parameters sharded over the `shard` dim (within a node: fast links) and replicated over the
    # `replicate` one (across nodes, which then exchange only one all-reduce of the gradients per step)
    mesh = init_device_mesh(device_type, (replicate, world_size // replicate), mesh_dim_names=('replicate', 'shard'))
    for block in raw_model.transformer.h:
        fully_shard(block, mesh=mesh, mp_policy=mp)
    fully_shard(raw_model, mesh=mesh, mp_policy=mp)
    raw_model.to_empty(device=device)
    raw_model.init_weights()
else:
    raw_model.to(device)
optimizer = raw_model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2), eps, device_type)
keep_optimizer = resume or (source is not None and not reset_optimizer)
if source is not None:
    checkpoint.load_into(source_path, raw_model, optimizer if keep_optimizer else None)
iter_num = source['iter_num'] if resume else 0
schedule_offset = 0
tokens = {n: 0 for n in mixture.names}  # drawn in this run, per dataset
tokens_before = {}                      # drawn by the phases this run continues from
if resume:
    schedule_offset, tokens_before = source['schedule_offset'], source['tokens_before']
    tokens = {**tokens, **source['tokens']}
elif source is not None:
    if continue_schedule:
        schedule_offset = source['schedule_offset'] + source['iter_num']
    tokens_before = {n: source['tokens_before'].get(n, 0) + source['tokens'].get(n, 0)
                     for n in set(source['tokens_before']) | set(source['tokens'])}
get_lr = schedules.make_schedule(lr_schedule, max_lr=learning_rate, min_lr=min_lr, warmup_iters=warmup_iters,
                                 max_iters=max_iters, **schedule_args)
model = DDP(raw_model, device_ids=[local_rank] if device_type == 'cuda' else None) if ddp and not fsdp else raw_model
n_params = raw_model.num_params()
flops_per_step = raw_model.flops_per_token() * tokens_per_step
cfg = {k: globals()[k] for k in cfg}  # resolved (preset shape, derived accumulation, dtype, ...): what actually ran
if master:
    with open(os.path.join(out_dir, 'config.json'), 'w') as f:
        json.dump(cfg, f, indent=1)
    print(f"model: {n_params / 1e6:.2f}M parameters, {gptconf.n_layer} layers, n_embd {gptconf.n_embd}, "
          f"vocab {gptconf.vocab_size}; {dtype} on {device} x{world_size}; {tokens_per_step:,} tokens per step")
    print(f"data: {mixture.weights}; val: {val_data}; init_from={init_from} at step {iter_num}, "
          f"schedule {lr_schedule} from step {schedule_offset}")
    print('\n'.join(mixture.describe(iter_num)))


def all_reduce(values, op=dist.ReduceOp.SUM):
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if ddp:
        dist.all_reduce(t, op=op)
    return t.tolist()


@torch.no_grad()
def evaluate():
    """Mean loss over the fixed validation windows of every dataset in val_data, and their plain mean."""
    model.eval()
    out = {}
    for name in val_data:
        total = count = 0.0
        batches = datalib.val_batches(data_dir, name, block_size, batch_size, eval_windows, rank, world_size, device)
        if fsdp:
            # FSDP's forward is collective, so every rank must run as many as the busiest one: the windows split
            # round-robin, so that is ceil(ceil(windows / world) / batch) batches, known without asking
            n = len(datalib.val_offsets(len(datalib.open_bin(data_dir, name, 'val')), block_size, eval_windows))
            idle = torch.zeros((1, block_size), dtype=torch.long, device=device)
            batches = itertools.islice(itertools.chain(batches, itertools.repeat((idle, None))),
                                       math.ceil(math.ceil(n / world_size) / batch_size))
        for x, y in batches:
            with autocast:
                if y is None:  # a throwaway forward that keeps this rank in step
                    raw_model(x)
                    continue
                _, loss = raw_model(x, y)  # every window has block_size targets, so window means average exactly
            total += loss.item() * x.shape[0]
            count += x.shape[0]
        total, count = all_reduce([total, count])
        out[name] = total / count
    out['mean'] = sum(out[n] for n in val_data) / len(val_data)
    model.train()
    return out


def save_checkpoint(metrics):
    meta = {'model_args': asdict(gptconf), 'config': cfg, 'iter_num': iter_num, 'schedule_offset': schedule_offset,
            'tokens': tokens, 'tokens_before': tokens_before, 'tokenizer': mixture.tokenizer, 'metrics': metrics,
            'world_size': world_size, 'data_start': mixture.lineage, 'data_state': mixture.state(iter_num)}
    checkpoint.save_run(out_dir, iter_num, raw_model, optimizer, meta, sharded=fsdp, master=master,
                        keep_last=keep_last, keep_every=keep_every)


if eval_only:
    losses = evaluate()
    if master:
        print(json.dumps(losses))
    sys.exit(0)

metrics_path = os.path.join(out_dir, 'metrics.jsonl')


def log_metrics(row):
    with open(metrics_path, 'a') as f:
        f.write(json.dumps(row) + '\n')
    if wandb_log:
        wandb.log({k: v for k, v in row.items() if k != 'kind'}, step=row['iter'])


if master:
    if resume and os.path.exists(metrics_path):
        # a run killed after its last checkpoint may have logged steps it will now redo: drop them
        with open(metrics_path) as f:
            rows = [r for r in map(json.loads, f) if r['iter'] <= iter_num]
        with open(metrics_path, 'w') as f:
            f.writelines(json.dumps(r) + '\n' for r in rows)
    elif not resume and os.path.exists(metrics_path):
        os.remove(metrics_path)  # a fresh run in an old out_dir starts a fresh log
    if wandb_log:
        import wandb
        wandb.init(project=wandb_project, name=wandb_run_name or os.path.basename(os.path.abspath(out_dir)),
                   config=cfg, dir=out_dir, id=wandb_run_name or None, resume='allow')

# preemption: clusters send SIGTERM (or SIGUSR1, ahead of time) before killing a job. Finish the step, checkpoint,
# leave cleanly; `init_from='resume'` then continues exactly.
preempted = False


def on_signal(signum, frame):
    global preempted
    preempted = True


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGUSR1, on_signal)

# -----------------------------------------------------------------------------------------------------------------
# the loop
start_iter = iter_num
last_stop = min(max_iters, stop_at) if stop_at else max_iters
x, y = mixture.get_batch(iter_num, 0, rank, device)
t0 = time.time()
window_tokens, window_loss, window_steps, window_norm, window_good = 0, 0.0, 0, 0.0, 0
bad_steps = 0  # non-finite steps in a row
losses = source['metrics'] if resume else None  # the last eval, until the next one
while True:
    lr = get_lr(schedule_offset + iter_num)
    for group in optimizer.param_groups:
        group['lr'] = lr

    at_eval = iter_num % eval_interval == 0 or iter_num == last_stop
    if at_eval and not (resume and iter_num == start_iter):  # a resumed run already evaluated this step
        t_eval = time.time()
        losses = evaluate()
        if master:
            row = {'kind': 'eval', 'iter': iter_num, 'lr': lr, 'tokens': sum(tokens.values()),
                   'tokens_total': sum(tokens.values()) + sum(tokens_before.values()),
                   **{f'val/{k}': v for k, v in losses.items()}}
            print(f"eval step {iter_num}: " + ', '.join(f"{k} {v:.4f}" for k, v in losses.items()))
            log_metrics(row)
        if iter_num > start_iter or iter_num == last_stop:
            save_checkpoint(losses)
        t0 += time.time() - t_eval  # tokens/s measures training, not evaluation and saving
    if iter_num >= last_stop:
        break
    if ddp:
        preempted = bool(all_reduce([preempted], dist.ReduceOp.MAX)[0])  # every rank must stop at the same step
    if preempted:
        save_checkpoint(losses)
        if master:
            print(f"preempted: checkpoint at step {iter_num} in {out_dir}; continue with --init_from=resume")
        break

    # one optimizer step: accum micro-steps; DDP synchronises gradients only on the last one
    step_loss = 0.0
    for micro in range(accum):
        if ddp and not fsdp:  # (FSDP reduce-scatters every micro-step: unsharded gradients would not fit at 10B)
            model.require_backward_grad_sync = micro == accum - 1
        torch.manual_seed(hash((seed, rank, iter_num, micro)) % 2**63)  # dropout: a pure function of the step
        with autocast:
            _, loss = model(x, y)
        # prefetch the next micro-batch while the backward pass runs on the GPU
        nxt = (iter_num, micro + 1) if micro + 1 < accum else (iter_num + 1, 0)
        x, y = mixture.get_batch(*nxt, rank, device)
        (loss / accum).backward()
        step_loss += loss.detach() / accum
    # the norm before clipping (and inf as the bound when clipping is off); under DDP and FSDP it is the global one,
    # so every rank takes the same decision below
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else float('inf'))
    norm = float(norm.full_tensor() if hasattr(norm, 'full_tensor') else norm)  # FSDP: a DTensor
    if math.isfinite(norm):
        optimizer.step()
        bad_steps, window_norm, window_good = 0, window_norm + norm, window_good + 1
    else:  # a NaN/inf gradient never reaches the weights, the optimizer state or a checkpoint
        bad_steps += 1
        if master:
            print(f"step {iter_num}: gradient norm {norm} is not finite (loss {float(step_loss):.4f}): skipped, "
                  f"no update ({bad_steps} in a row)")
        if bad_steps > max_bad_steps:
            raise SystemExit(f"error: {bad_steps} steps in a row with a non-finite gradient (max_bad_steps="
                             f"{max_bad_steps}): stopping without saving; the last checkpoint in {out_dir} is intact. "
                             f"Resume it with a lower learning_rate, or from an earlier step_* checkpoint")
    optimizer.zero_grad(set_to_none=True)
    for name, n in mixture.samples_per_dataset(iter_num).items():
        tokens[name] += n * block_size
    if master:
        for line in mixture.new_epochs(iter_num):
            print(line)
    iter_num += 1
    window_tokens += tokens_per_step
    window_loss += step_loss
    window_steps += 1

    if iter_num % log_interval == 0 or iter_num == last_stop:
        mean_loss, = all_reduce([float(window_loss) / window_steps])
        mean_loss /= world_size
        dt = time.time() - t0
        tok_s = window_tokens / dt
        grad_norm = window_norm / window_good if window_good else float('nan')  # mean pre-clip norm, updated steps
        row = {'kind': 'train', 'iter': iter_num, 'loss': mean_loss, 'lr': lr, 'tokens_per_s': tok_s,
               'grad_norm': grad_norm, 'skipped': window_steps - window_good,
               **{f'tokens/{n}': v for n, v in tokens.items()}}
        msg = f"step {iter_num}/{max_iters} | loss {mean_loss:.4f} | lr {lr:.2e} | {tok_s:,.0f} tok/s"
        if peak_flops:
            row['mfu'] = flops_per_step * window_steps / dt / (peak_flops * world_size)
            msg += f" | mfu {100 * row['mfu']:.1f}%"
        if device_type == 'cuda':
            row['peak_mem_gb'] = torch.cuda.max_memory_allocated(device) / 2**30
            msg += f" | {row['peak_mem_gb']:.1f} GiB"
        msg += f" | grad norm {grad_norm:.3f}" + ' | tokens ' + ' '.join(f"{n} {v / 1e6:.2f}M" for n, v in tokens.items())
        if master:
            print(msg)
            log_metrics(row)
        t0, window_tokens, window_loss, window_steps, window_norm, window_good = time.time(), 0, 0.0, 0, 0.0, 0

if master and iter_num == max_iters:
    # the run is complete (not stopped early or preempted): pipelines such as `make demo` wait for this file
    with open(os.path.join(out_dir, 'final.json'), 'w') as f:
        json.dump({'iter': iter_num, 'val': losses, 'tokens': tokens, 'tokens_before': tokens_before}, f, indent=1)
if master and wandb_log:
    wandb.finish()
if dist.is_initialized():  # torchrun, or a one-process FSDP run
    dist.barrier()
    dist.destroy_process_group()
if ddp:
    # gloo sometimes aborts in its destructor after a correct run; leave without running it
    sys.stdout.flush()
    os._exit(0)
