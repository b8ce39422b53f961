"""
Train a GPT on a weighted mixture of token bins: pre-training, a continual phase, or a resumed run.

    python train.py config/pretrain_pile_405m.py                     # one process
    python train.py config/cpt_en_de.py --init_from=out/pile_405m   # a new phase from another run
    torchrun --standalone --nproc_per_node=8 train.py config/cpt_en_de.py
    python train.py --help                                           # every key and its default

Defaults are the module-level names below; a config file, then --key=value, override them. Setup
reads top to bottom: processes and precision, the run this one continues, the model's shape (and the
dry run), the data, the model wrapped for parallel training, optimizer, counters, logging; the loop.
"""
import json
import math
import os
import sys
import time
from dataclasses import asdict

import torch

import checkpoint
import data as datalib
import runtime
import schedules
from configurator import config_keys, load_config, require
from model import GPTConfig, config_args, config_from, default_kernels, parallelize, print_cost
from model import choose_cpu_paths
from prepare import default_data_dir

# --------------------------------------------------------------------------------------------------
# defaults (`python train.py --help` lists them with the comments beside them)
# I/O
out_dir = 'out'
data_dir = default_data_dir()  # $NANOCPT_DATA, else the repo's data/ (where prepare/ writes)
init_from = 'scratch'     # 'scratch' | 'resume' (out_dir, exactly) | a run or step_N: a new phase
auto_resume = False       # resume out_dir if it holds a checkpoint, whatever init_from (requeues)
overwrite = False         # a fresh run deletes another run's checkpoints in out_dir (else: refused)
reset_optimizer = True    # new phase: fresh AdamW state (the paper); False keeps the source run's
continue_schedule = False # new phase: the schedule goes on from the source run's step (infinite)
new_streams = False       # new phase: read each dataset from its start, not where the source was
eval_interval = 200       # evaluate and checkpoint every this many steps and at the end (0: end only)
keep_last = 2             # checkpoints kept: the newest keep_last (out_dir/step_NNNNNN[.pt]) ...
keep_every = 0            # ... and, for good, those at a multiple of this step (0 = none)
eval_windows = 100        # validation windows per dataset (0 = the whole val bin); always the same
log_interval = 10
stop_at = 0               # >0: checkpoint and stop after this many steps (schedule: max_iters)
eval_only = False         # evaluate the initial (or resumed) model on val_data, print, and exit
dry_run = False           # print the model's size and the run's cost (FLOPs, GPU-hours), and exit
wandb_log = False
wandb_project = 'nanocpt'
wandb_run_name = ''
# data: a fraction w_i of every step's sequences comes from dataset i (normalised over data and
# replay); `data` continues a dataset's stream (new windows), `replay` re-reads windows already read
data = {'en': 1.0}
replay = {}               # e.g. {'en': 0.25} beside data = {'de': 0.75}: the paper's replay of D0
val_data = []             # datasets to report validation loss on; [] = the keys of data and replay
batch_size = 8            # sequences per micro-step per process
gradient_accumulation_steps = 1  # micro-steps per optimizer step, summed over all processes
total_batch_size = 0      # >0: sequences per optimizer step (sets gradient_accumulation_steps)
seed = 1337
# model: `preset` names a shape in model.py (e.g. 'pythia-410m'); the keys below are GPTConfig's
# fields (same defaults, see model.py), and a key a config or the command line sets wins over it
preset = ''
n_layer = 12
n_head = 12
n_embd = 768
block_size = 1024         # also the training sequence length
vocab_size = 0            # 0 = the bins' tokenizer's (padded to a multiple of 64 inside the model)
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
init = 'gpt2'             # 'gpt2' | 'neox': the authors' GPT-NeoX init (model.py; neox presets)
use_kernels = None        # Triton kernels: True, False, 'lm_head,norm'; None: those measured faster
# AdamW, as in the paper
learning_rate = 6e-4      # η_max
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
eps = 1e-8
grad_clip = 1.0           # 0 = off
max_bad_steps = 10        # a step with a non-finite gradient is skipped; this many in a row stop
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
cpu_paths = 'auto'        # CPU calls (matmuls, attention, loss): 'auto' (measured) | 'loss=fused'
fsdp = False              # FSDP2: shard weights, gradients, optimizer state (not DDP's copies)
replicate = 1             # FSDP: HSDP, a replicas x shards mesh (shard in a node, replicate across)
activation_checkpointing = False  # recompute in backward: less memory, ~30% more compute
peak_flops = 0.0          # peak FLOP/s for MFU; 0 = look the GPU up (runtime.PEAK_FLOPS)
backend = ''              # '' = nccl on CUDA, gloo on CPU
# --------------------------------------------------------------------------------------------------
runtime.clean_errors()
# the config: these defaults, then config files, then --key=value (`given`: what a file or argv set)
cfg, given = load_config(config_keys(globals()), sys.argv[1:], script=__file__)
globals().update(cfg)
require(cfg, at_least_one=('batch_size', 'gradient_accumulation_steps', 'max_iters', 'block_size',
                           'log_interval', 'keep_last', 'replicate'),
        non_negative=('learning_rate', 'min_lr', 'weight_decay', 'grad_clip', 'dropout', 'seed',
                      'eval_interval', 'total_batch_size', 'keep_every', 'max_bad_steps', 'stop_at',
                      'eval_windows'))
use_kernels = default_kernels(device) if use_kernels is None else use_kernels

# processes and precision: torchrun sets RANK / WORLD_SIZE, every process runs this same script
torchrun, rank, local_rank, world_size, device = runtime.init_distributed(device, backend, fsdp)
master = rank == 0
# micro-steps per step, all processes (total_batch_size: the paper's 1104 sequences on any GPUs)
gradient_accumulation_steps = runtime.micro_steps(batch_size, gradient_accumulation_steps,
                                                  total_batch_size, world_size)
accum = gradient_accumulation_steps // world_size
device_type = runtime.device_type(device)
dtype = runtime.resolve_dtype(dtype, device)
amp = runtime.autocast(device, dtype)  # FSDP casts the parameters; autocast covers what stays fp32
peak_flops = peak_flops or runtime.peak_flops(device)

# the run this one continues: its own newest checkpoint (resume; auto_resume when a requeued job
# finds one), or another run's (a new phase). A dry run reads nothing.
if auto_resume and checkpoint.checkpoints(out_dir):
    init_from = 'resume'
resume = init_from == 'resume'
source_path = source = None
if init_from != 'scratch' and not dry_run:
    source_path = checkpoint.find(out_dir if resume else init_from)
    source = checkpoint.load_meta(source_path)
if not (resume or eval_only or dry_run):  # a fresh run never mixes with another run's files
    checkpoint.claim_out_dir(out_dir, overwrite, master, source_path)

# the model's shape: the source checkpoint's (asking for another one is a mistake, not an override),
# else a preset with the keys given over it, else these defaults
model_args = (checkpoint.source_shape(source, cfg, given, init_from) if source is not None
              else config_args(preset, cfg, given))  # vocab_size 0: the bins' tokenizer's (below)
model_args.update(dropout=dropout, use_kernels=use_kernels)
block_size = block_size if 'block_size' in given else model_args['block_size']  # sequence length
tokens_per_step = batch_size * block_size * gradient_accumulation_steps
if resume:  # the same recipe, or it is not a resume: one line names what changed
    checkpoint.check_resume(source, out_dir, seed, block_size, data, replay,
                            batch_size * gradient_accumulation_steps)
if dry_run:  # what this config builds and costs (vocab: the bins' if they exist), without data, then stop
    vocab = model_args['vocab_size'] or datalib.prepared_vocab(data_dir, data) or config_from(preset).vocab_size
    print_cost({**model_args, 'vocab_size': vocab}, tokens_per_step, max_iters)
    sys.exit(0)

# data: each dataset's stream carries on where the source run's lineage left it (resume: where this
# run began; new_streams: from the start)
lineage = datalib.lineage(source, resume, new_streams, init_from)
mixture = datalib.Mixture(data_dir, data, block_size, batch_size, accum, world_size, seed, replay, lineage,
                          source=f"init_from={init_from}", resumed=source['data_state'] if resume else None)
val_data = val_data or list(mixture.names)
source_tokenizer = source['tokenizer'] if source is not None else None
model_args['vocab_size'] = datalib.check_tokenizer(data_dir, val_data, mixture.tokenizer,
                                                   source_tokenizer, init_from, model_args['vocab_size'])
if model_args['block_size'] < block_size:
    raise ValueError(f"block_size={block_size} exceeds the model's ({model_args['block_size']})")

# the model, wrapped for parallel training (model.parallelize: checkpointing, compile, FSDP or DDP)
torch.manual_seed(seed)  # the same initial weights on every rank and every run with this seed
gptconf = GPTConfig(**model_args)
raw_model, model = parallelize(gptconf, device, fsdp=fsdp, compile=compile, replicate=replicate,
                               activation_checkpointing=activation_checkpointing, world_size=world_size,
                               param_dtype=getattr(torch, dtype), torchrun=torchrun, local_rank=local_rank,
                               init=source is None)
cpu_paths = choose_cpu_paths(cpu_paths, raw_model, batch_size, block_size, dtype, compile, torchrun)

# optimizer, and where this run stands: its steps, its schedule's offset, the tokens per dataset of
# this run and of the phases before it (checkpoint.progress)
optimizer = raw_model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2), eps, device_type)
if source is not None:
    keep_optimizer = resume or not reset_optimizer
    checkpoint.load_into(source_path, raw_model, optimizer if keep_optimizer else None)
progress = checkpoint.progress(source, resume, continue_schedule, mixture.names)
iter_num, schedule_offset, tokens, tokens_before = progress
get_lr = schedules.make_schedule(lr_schedule, max_lr=learning_rate, min_lr=min_lr,
                                 warmup_iters=warmup_iters, max_iters=max_iters, **schedule_args)
flops_per_step = raw_model.flops_per_token(block_size) * tokens_per_step  # at this run's length
cfg = {k: globals()[k] for k in cfg}  # resolved (preset shape, accumulation, dtype, ...): what ran


def save_checkpoint(metrics):
    meta = {'model_args': asdict(gptconf), 'config': cfg, 'iter_num': iter_num,
            'schedule_offset': schedule_offset, 'tokens': tokens, 'tokens_before': tokens_before,
            'tokenizer': mixture.tokenizer, 'metrics': metrics, 'world_size': world_size,
            'data_start': mixture.lineage, 'data_state': mixture.state(iter_num)}
    checkpoint.save_run(out_dir, iter_num, raw_model, optimizer, meta, sharded=fsdp, master=master,
                        keep_last=keep_last, keep_every=keep_every)


# logging: metrics.jsonl (what eval/report.py reads), the console and wandb
metrics_path = os.path.join(out_dir, 'metrics.jsonl')


def log_metrics(row):
    runtime.append_jsonl(metrics_path, row)  # flushed and fsync'd: a crash tears at most this line
    if wandb_log:
        wandb.log({k: v for k, v in row.items() if k != 'kind'}, step=row['iter'])


if master and not eval_only:
    os.makedirs(out_dir, exist_ok=True)
    runtime.write_json(os.path.join(out_dir, 'config.json'), cfg)
    # a fresh run starts a fresh log; a resume keeps it up to its checkpoint (and redoes the rest)
    rows = runtime.read_jsonl(metrics_path) if resume else []
    kept = [r for r in rows if r['iter'] <= iter_num]
    runtime.write_text(metrics_path, ''.join(json.dumps(r) + '\n' for r in kept))
    if wandb_log:
        import wandb  # optional: only a run that logs to wandb needs it
        name = wandb_run_name or os.path.basename(os.path.abspath(out_dir))
        wandb.init(project=wandb_project, name=name, config=cfg, dir=out_dir,
                   id=wandb_run_name or None, resume='allow')
if master:
    print_cost(model_args, tokens_per_step, max_iters)
    print(f"{dtype} on {device} x{world_size}; data: {mixture.weights}; val: {val_data}; "
          f"init_from={init_from} at step {iter_num}, schedule {lr_schedule} from step {schedule_offset}")
    print('\n'.join(mixture.describe(iter_num)))

preemption = runtime.preemption_flag()  # SIGTERM, SIGUSR1: finish the step, checkpoint, leave

# --------------------------------------------------------------------------------------------------
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

    at_eval = iter_num == last_stop or (eval_interval > 0 and iter_num % eval_interval == 0)
    evaluated = resume and iter_num == start_iter  # a resumed run evaluated here before it stopped
    if eval_only or (at_eval and not evaluated):
        t_eval = time.time()
        losses = datalib.evaluate(raw_model, data_dir, val_data, block_size, batch_size,
                                  eval_windows, amp, device, rank, world_size, sharded=fsdp)
        if eval_only:  # score the model as it stands, and stop
            if master:
                print(json.dumps(losses))
            break
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
    preempted = runtime.all_reduce([preemption.is_set()], device, torch.distributed.ReduceOp.MAX)[0]
    if preempted:  # on any rank: every rank stops here together
        save_checkpoint(losses)
        if master:
            print(f"preempted: checkpoint at step {iter_num} in {out_dir}; rerun to resume it")
        break

    # one optimizer step: accum micro-steps. DDP synchronises gradients on the last one only; FSDP
    # reduce-scatters on every one (unsharded gradients would not fit at 10B)
    step_loss = 0.0
    for micro in range(accum):
        if torchrun and not fsdp:
            model.require_backward_grad_sync = micro == accum - 1
        # dropout: a pure function of the step, so a resumed run draws the same masks
        torch.manual_seed(hash((seed, rank, iter_num, micro)) % 2**63)
        with amp:
            _, loss = model(x, y)
        # prefetch the next micro-batch while the backward pass runs on the GPU
        nxt = (iter_num, micro + 1) if micro + 1 < accum else (iter_num + 1, 0)
        x, y = mixture.get_batch(*nxt, rank, device)
        (loss / accum).backward()
        step_loss += loss.detach() / accum
    # the norm before clipping, global under DDP and FSDP: every rank takes the same decision below
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else math.inf)
    norm = float(norm.full_tensor() if hasattr(norm, 'full_tensor') else norm)  # FSDP: a DTensor
    if math.isfinite(norm):
        optimizer.step()
        bad_steps, window_norm, window_good = 0, window_norm + norm, window_good + 1
        window_loss += step_loss  # the logged loss is over the steps that updated
    else:  # a NaN/inf gradient never reaches the weights, the optimizer state or a checkpoint
        bad_steps += 1
        if master:
            print(f"step {iter_num}: gradient norm {norm} is not finite (loss "
                  f"{float(step_loss):.4f}): skipped, no update ({bad_steps} in a row)")
        if bad_steps >= max_bad_steps:
            raise SystemExit(f"error: {bad_steps} steps in a row with a non-finite gradient (max_bad_steps="
                             f"{max_bad_steps}): stopping without saving; the last checkpoint in {out_dir} "
                             f"is intact. Resume it with a lower learning_rate, or from an earlier step_*")
    optimizer.zero_grad(set_to_none=True)
    for name, n in mixture.samples_per_dataset(iter_num).items():
        tokens[name] += n * block_size
    if master:
        for line in mixture.new_epochs(iter_num):
            print(line)
    iter_num += 1
    window_tokens += tokens_per_step
    window_steps += 1

    if iter_num % log_interval == 0 or iter_num == last_stop:
        # loss and pre-clip gradient norm: means over the updated steps (nan: all were skipped)
        mean_loss = float(window_loss) / window_good if window_good else math.nan
        mean_loss = runtime.all_reduce([mean_loss], device)[0] / world_size
        grad_norm = window_norm / window_good if window_good else math.nan
        dt = time.time() - t0
        tok_s = window_tokens / dt
        row = {'kind': 'train', 'iter': iter_num, 'loss': mean_loss, 'lr': lr,
               'tokens_per_s': tok_s, 'grad_norm': grad_norm, 'skipped': window_steps - window_good,
               **{f'tokens/{n}': v for n, v in tokens.items()}}
        msg = f"step {iter_num}/{max_iters} | loss {mean_loss:.4f} | lr {lr:.2e} | {tok_s:,.0f} tok/s"
        if peak_flops:
            row['mfu'] = flops_per_step * window_steps / dt / (peak_flops * world_size)
            msg += f" | mfu {100 * row['mfu']:.1f}%"
        if device_type == 'cuda':  # the window's peak (the first's includes compiling, step-0 eval)
            row['peak_mem_gb'] = torch.cuda.max_memory_allocated(device) / 2**30
            msg += f" | {row['peak_mem_gb']:.1f} GiB"
            torch.cuda.reset_peak_memory_stats(device)
        msg += f" | grad norm {grad_norm:.3f} | tokens "
        msg += ' '.join(f"{n} {v / 1e6:.2f}M" for n, v in tokens.items())
        if row['skipped']:
            msg += f" | {row['skipped']} non-finite step(s) skipped, not in the loss"
        if master:
            print(msg)
            log_metrics(row)
        t0 = time.time()
        window_tokens, window_loss, window_steps, window_norm, window_good = 0, 0.0, 0, 0.0, 0

if master and iter_num == max_iters and not eval_only:
    # the run is complete (not stopped early or preempted): `make demo` and others wait for this
    final = {'iter': iter_num, 'val': losses, 'tokens': tokens, 'tokens_before': tokens_before}
    runtime.write_json(os.path.join(out_dir, 'final.json'), final)
if master and wandb_log and not eval_only:
    wandb.finish()
runtime.teardown(torchrun)
