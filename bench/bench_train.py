"""
Training throughput of train.py itself, end to end: tokens/s (and on CUDA MFU and peak memory) for a few
reference settings, all measured in one run on one machine, printed as a table with ratios.

    python bench/bench_train.py                  # CPU: the reference (a plain nanoGPT-style step), our eager fp32
                                                 #      and our default (and bf16/fp32 variants where the CPU has
                                                 #      bf16), the demo model and the sweep's; 3 rounds
    python bench/bench_train.py --nanogpt=~/nanoGPT   # CPU: also karpathy/nanoGPT's own train.py, same model
                                                 # CUDA: GPT-2 124M and the 405M shape, DDP vs FSDP, eager vs
                                                 #      compiled, bf16
    python bench/bench_train.py --nproc=8        # CUDA: every arm on 8 GPUs through torchrun
    python bench/bench_train.py --models=pythia-410m --steps=30 --extra="--use_kernels=False"

Each arm is `python train.py ...` (torchrun for DDP, and for FSDP when --nproc > 1; FSDP at one process runs in
process: train.py makes a one-process group) on synthetic token bins in a temporary folder (prepare/synthetic.py),
so no corpus is needed. train.py logs every step ("... | 12,345 tok/s | mfu 41.0% | 3.2 GiB | ..."); the first
--warmup steps (compilation, allocator warm-up, the step-0 eval) are dropped and the median of the rest is an arm's
figure for the round. The arms run one after another, --rounds times in the same order (alternating, so a slow
spell of the machine hits every arm), and the table gives each arm's median over the rounds and every round's.
Peak memory is torch.cuda.max_memory_allocated on rank 0; MFU uses the model's FLOPs per token (6 N + attention)
and the GPU's dense bf16 peak (train.py's PEAK_FLOPS; --peak_flops to override).

On CPU the first arm is the reference: bench/ref_train.py, a minimal plain-PyTorch GPT step with nanoGPT's CPU
defaults (fp32, eager, torch's AdamW, the same model: GPT-2 block without bias, exact GELU, learned positions, tied
embeddings), and every arm's ratio is to it. --nanogpt=PATH (a checkout of karpathy/nanoGPT; none is kept here) adds
nanoGPT's own train.py on the same model, data and settings (eager fp32, one micro-step, no evaluation after step 0),
which checks the reference arm. "ours default" is train.py with no precision or compile flags: bf16 autocast and
torch.compile where the CPU computes bf16 (AVX-512 BF16, AMX), compiled fp32 where it does not; the CPU paths are
train.py's cpu_paths='auto' (kernels.choose_cpu_paths, measured once per CPU and cached, before any timed step). The
last arms are the demo's model and the sweep's other widths (config/demo_cpu.py, n_layer = n_head = width / 32, the
1k vocabulary, 32 x 128 tokens a step) as `make demo` and `make sweep` run them: one thread per run, two runs side
by side; their figure is tokens/s per run, the one the README quotes.

Every arm runs with the same environment: glibc malloc told to keep its memory (MALLOC_MMAP_MAX_=0,
MALLOC_TRIM_THRESHOLD_=1e11; without them glibc unmaps and remaps the large per-step buffers on every step, which
costs ~30% and adds +-25% noise on CPU), the same thread count (the demo arm: one), and the inductor cache of the
Makefile. Other processes on the machine slow every arm: the load average is printed at the start of each round.
"""
import argparse
import json
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import kernels  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402
from prepare.synthetic import make_bin  # noqa: E402

ALLOCATOR = {'MALLOC_MMAP_MAX_': '0', 'MALLOC_TRIM_THRESHOLD_': '100000000000'}
LOG = re.compile(r"step (\d+)/\d+ \| loss ([\d.]+) \| lr \S+ \| ([\d,]+) tok/s"
                 r"(?: \| mfu ([\d.]+)%)?(?: \| ([\d.]+) GiB)?")

# CPU: a 4-layer GPT-2-style model small enough to train at a few thousand tokens/s on two cores, in the shape of
# bench/ref_train.py (nanoGPT's model: no bias, exact GELU, learned positions, tied embeddings)
CPU_MODEL = ['--n_layer=4', '--n_head=4', '--n_embd=256', '--block_size=256', '--batch_size=8', '--bias=False',
             '--dropout=0.0', '--gelu_approximate=none']
CPU_VOCAB = 8192  # the demo8k tokenizer's (the demo now uses demo1k: DEMO_VOCAB)
# the demo's model and settings (compile, dtype auto, batch 32 x 128) from its config; synthetic data instead of its own
DEMO = ['config/demo_cpu.py', '--auto_resume=False', "--val_data=['synth1k']"]
DEMO_VOCAB = 1024  # the demo's tokenizer's (demo1k)
NANOGPT_LOG = re.compile(r"iter (\d+): loss ([\d.]+), time ([\d.]+)ms")
# CUDA reference shapes: a preset and the micro-batch for one GPU (tokens per micro-step: 16,384 for both)
CUDA_MODELS = {
    'gpt2': ['--preset=gpt2', '--block_size=1024', '--batch_size=16'],
    'pythia-410m': ['--preset=pythia-410m', '--block_size=2048', '--batch_size=8'],
}


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='', help="cuda | cpu (default: cuda when available)")
    p.add_argument('--models', default='gpt2,pythia-410m', help="CUDA: comma-separated presets of CUDA_MODELS")
    p.add_argument('--nproc', type=int, default=1, help="CUDA: processes (GPUs) per arm")
    p.add_argument('--steps', type=int, default=0, help="timed steps per arm (default: CUDA 20, CPU 10)")
    p.add_argument('--warmup', type=int, default=0, help="steps dropped first (default: CUDA 5, CPU 4)")
    p.add_argument('--rounds', type=int, default=0, help="times every arm runs, alternating (default: CUDA 1, CPU 3)")
    p.add_argument('--peak_flops', type=float, default=0.0,
                   help="accelerator peak FLOP/s for MFU (0: train.py's table)")
    p.add_argument('--extra', default='', help="more train.py arguments for every arm, e.g. '--use_kernels=False'")
    p.add_argument('--nanogpt', default='', help="CPU: a checkout of karpathy/nanoGPT: adds its train.py as an arm")
    p.add_argument('--arms', default='', help="only the arms whose name contains one of these, comma-separated "
                                              "(the reference always runs)")
    return p.parse_args()


def arms(args, cuda):
    """(name, model args, train.py args, launcher) per arm; the first arm is the baseline of the ratio column."""
    if not cuda:
        bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()  # what dtype='auto' takes (runtime.resolve_dtype)
        out = [('reference: nanoGPT-style, fp32 eager', CPU_MODEL, [], 'reference')]
        if args.nanogpt:
            out.append(("nanoGPT's own train.py, fp32 eager", CPU_MODEL, [], 'nanogpt'))
        out += [('ours eager fp32', CPU_MODEL, ['--compile=False', '--dtype=float32'], 'python'),
                (f"ours default (compiled {'bf16' if bf16 else 'fp32'})", CPU_MODEL, [], 'python')]
        if bf16:  # the other two corners; without native bf16 (AVX2 only) its matmuls run ~10x slower than fp32
            out += [('ours eager bf16', CPU_MODEL, ['--compile=False', '--dtype=bfloat16'], 'python'),
                    ('ours compiled fp32', CPU_MODEL, ['--compile=True', '--dtype=float32'], 'python')]
        for width in (64, 32, 96, 128):  # the demo's model first
            name = f"{'demo' if width == 64 else 'sweep'} model {width // 32} x {width}: 2 runs side by side, " \
                   f"1 thread each (per run)"
            out.append((name, [*DEMO, *shape_rule(width)], [], 'demo'))
        return out
    out = []
    for m in args.models.split(','):
        for par in ('ddp', 'fsdp'):
            for comp in (False, True):
                # DDP goes through torchrun even at one process, so the DDP wrapper's cost is in the number
                launcher = 'torchrun' if par == 'ddp' or args.nproc > 1 else 'python'
                name = f"{m} {par.upper()} {'compiled' if comp else 'eager'} bf16"
                out.append((name, CUDA_MODELS[m], [f'--fsdp={par == "fsdp"}', f'--compile={comp}',
                                                   '--dtype=bfloat16'], launcher))
    return out


def flops_per_token(model_args, vocab):
    """A CPU arm's training FLOPs per token (model.GPT.flops_per_token, built on the meta device): the bench model's
    shape, or a demo/sweep width of the shape rule (config/demo_cpu.py: untied, sequence 128)."""
    args = dict(a[2:].split('=', 1) for a in model_args if a.startswith('--n_') or a.startswith('--block_size'))
    shape = {k: int(v) for k, v in args.items()}
    if model_args[0] == DEMO[0]:
        shape.update(block_size=128, tie_embeddings=False, vocab_size=DEMO_VOCAB)
    with torch.device('meta'):
        return GPT(GPTConfig(**{'vocab_size': vocab, **shape})).flops_per_token()


def shape_rule(width):
    """The demo's and the sweep's shape rule (Makefile): n_layer = n_head = width / 32."""
    return [f'--n_layer={width // 32}', f'--n_head={width // 32}', f'--n_embd={width}']


def run_arm(args, name, model_args, arm_args, launcher, data_dir, out_dir, vocab, env):
    steps = args.warmup + args.steps
    if launcher == 'reference':
        cmd = [sys.executable, 'bench/ref_train.py', f'--data_dir={data_dir}', f'--max_iters={steps}',
               *(a for a in model_args if a.split('=')[0] in ('--n_layer', '--n_head', '--n_embd', '--block_size',
                                                                  '--batch_size'))]
        return run_cmd(args, name, cmd, out_dir, env)
    if launcher == 'nanogpt':
        return run_nanogpt(args, name, model_args, data_dir, out_dir, env)
    copies = 1
    if launcher == 'demo':  # as `make demo` runs: two runs side by side, one thread each; longer, so they overlap
        env, copies, steps = {**env, 'OMP_NUM_THREADS': '1'}, 2, args.warmup + 3 * args.steps
    cmd = [sys.executable, 'train.py'] if launcher in ('python', 'demo') else \
        [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={args.nproc}', 'train.py']
    dataset = 'synth1k' if launcher == 'demo' else 'synth'
    cmd += [*model_args, *arm_args, f'--data_dir={data_dir}', f'--out_dir={out_dir}', f"--data={{'{dataset}': 1.0}}",
            f'--vocab_size={DEMO_VOCAB if launcher == "demo" else vocab}', f'--max_iters={steps}',
            f'--eval_interval={steps}',
            f'--eval_windows={args.nproc}',  # one window per rank: FSDP's eval needs equal batch counts per rank
            '--log_interval=1', '--warmup_iters=0', f'--device={args.device}',
            f'--gradient_accumulation_steps={args.nproc}']  # one micro-batch per process per step
    if args.peak_flops:
        cmd.append(f'--peak_flops={args.peak_flops}')
    cmd += args.extra.split()
    if copies > 1:
        cmd = [a for a in cmd if not a.startswith('--out_dir=')]  # run_cmd gives each copy its own
    return run_cmd(args, name, cmd, out_dir, env, copies)


def run_nanogpt(args, name, model_args, data_dir, out_dir, env):
    """karpathy/nanoGPT's train.py as its README runs it on a CPU, on our synthetic bin: it reads configurator.py and
    data/<dataset>/ from its working folder, so that folder is a fresh one with links to the checkout's three files
    and to the bin (nanoGPT reads uint16 and meta.pkl's vocab_size). Its log line is 'iter N: loss L, time T ms'."""
    work = Path(out_dir + '_nanogpt')
    (work / 'data' / 'synth').mkdir(parents=True, exist_ok=True)
    for f in ('train.py', 'model.py', 'configurator.py'):
        if not (work / f).exists():
            (work / f).symlink_to(Path(args.nanogpt).expanduser().resolve() / f)
    for split in ('train', 'val'):
        if not (work / 'data' / 'synth' / f'{split}.bin').exists():
            (work / 'data' / 'synth' / f'{split}.bin').symlink_to(Path(data_dir) / 'synth' / f'{split}.bin')
    with open(Path(data_dir) / 'synth' / 'meta.json') as f:
        vocab = json.load(f)['vocab_size']
    with open(work / 'data' / 'synth' / 'meta.pkl', 'wb') as f:
        pickle.dump({'vocab_size': vocab}, f)
    steps = args.warmup + args.steps
    keep = ('--n_layer', '--n_head', '--n_embd', '--block_size', '--batch_size', '--bias', '--dropout')
    cmd = [sys.executable, 'train.py', '--device=cpu', '--compile=False', '--dtype=float32', '--dataset=synth',
           *(a for a in model_args if a.split('=')[0] in keep), '--gradient_accumulation_steps=1',
           f'--max_iters={steps}', f'--lr_decay_iters={steps}', '--eval_interval=100000', '--eval_iters=1',
           '--log_interval=1', '--always_save_checkpoint=False', '--wandb_log=False', '--out_dir=out']
    t0 = time.time()
    p = subprocess.run(cmd, cwd=work, env=env, text=True, capture_output=True)
    shutil.rmtree(work, ignore_errors=True)
    rows = [m.groups() for m in map(NANOGPT_LOG.search, p.stdout.splitlines()) if m]
    timed = [r for r in rows if int(r[0]) >= args.warmup]  # nanoGPT counts from iter 0
    if p.returncode != 0 or not timed:
        print(f"{name}: nanoGPT's train.py failed (rc {p.returncode})\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}",
              file=sys.stderr)
        return None
    shape = dict(a[2:].split('=', 1) for a in model_args)
    tokens = int(shape['batch_size']) * int(shape['block_size'])
    return dict(tok_s=statistics.median(tokens * 1e3 / float(r[2]) for r in timed), mfu=None, mem=None,
                loss=float(rows[-1][1]), wall=time.time() - t0)


def run_cmd(args, name, cmd, out_dir, env, copies=1):
    """Runs cmd (copies of it side by side, each with its own out_dir) and parses the step lines; with copies, the
    figures are per run (the mean of the runs' medians)."""
    t0 = time.time()
    outs = [f'{out_dir}_{i}' for i in range(copies)] if copies > 1 else [out_dir]
    procs = [subprocess.Popen([*cmd, f'--out_dir={o}'] if copies > 1 else cmd, cwd=ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for o in outs]
    done = [(p, *p.communicate()) for p in procs]
    wall = time.time() - t0
    runs = []
    for o, (p, stdout, stderr) in zip(outs, done):
        shutil.rmtree(o, ignore_errors=True)  # its checkpoint: the 405M one is ~5 GB with AdamW's state
        if p.returncode != 0:
            print(f"{name}: train.py failed (rc {p.returncode})\n{stdout[-2000:]}\n{stderr[-2000:]}", file=sys.stderr)
            return None
        rows = [m.groups() for m in map(LOG.search, stdout.splitlines()) if m]
        timed = [r for r in rows if int(r[0]) > args.warmup]
        if not timed:
            print(f"{name}: no step lines after warm-up in train.py's output\n{stdout[-2000:]}", file=sys.stderr)
            return None
        runs.append(dict(tok_s=statistics.median(float(r[2].replace(',', '')) for r in timed),
                         mfu=statistics.median(float(r[3]) for r in timed) if timed[0][3] else None,
                         mem=max(float(r[4]) for r in rows) if rows[0][4] else None, loss=float(rows[-1][1])))
    return dict(runs[0], tok_s=statistics.mean(r['tok_s'] for r in runs), wall=wall)


def main():
    args = parse()
    cuda = torch.cuda.is_available() if not args.device else args.device.startswith('cuda')
    args.device = args.device or ('cuda' if cuda else 'cpu')
    args.steps = args.steps or (20 if cuda else 10)
    args.warmup = args.warmup or (5 if cuda else 4)
    args.rounds = args.rounds or (1 if cuda else 3)
    vocab = 50_277 if cuda else CPU_VOCAB  # the GPT-NeoX-20B tokenizer's size on GPU, as the paper
    env = {**os.environ, **ALLOCATOR}
    env.setdefault('TORCHINDUCTOR_CACHE_DIR', str(ROOT / '.cache' / 'inductor'))
    threads = env.get('OMP_NUM_THREADS') or str(torch.get_num_threads())
    env['OMP_NUM_THREADS'] = threads
    device = torch.cuda.get_device_name(0) if cuda else \
        f"{kernels.cpu_name()}, {threads} thread{'' if threads == '1' else 's'}"
    print(f"# train.py throughput: {device}, torch {torch.__version__}")
    print(f"allocator: {' '.join(f'{k}={v}' for k, v in ALLOCATOR.items())}"
          + (f", PYTORCH_CUDA_ALLOC_CONF={env.get('PYTORCH_CUDA_ALLOC_CONF', '(unset)')}" if cuda else '')
          + f"; OMP_NUM_THREADS={threads} (the demo arm: 1); the same for every arm")
    print(f"{args.warmup} warm-up steps dropped, median tokens/s of the next {args.steps}; {args.rounds} round(s) of "
          f"all arms; processes per arm: {args.nproc if cuda else 1}; synthetic data, vocab {vocab}"
          + (f"; extra: {args.extra}" if args.extra else ''))
    if not cuda:
        print(f"model: {' '.join(CPU_MODEL)} (GPT-2 style), vocab {vocab}, 2,048 tokens per step; demo and sweep "
              f"models: {DEMO[0]}, n_layer = n_head = width / 32, vocab {DEMO_VOCAB}, 4,096 tokens per step")
    todo = arms(args, cuda)
    if args.arms:
        todo = [a for i, a in enumerate(todo) if i == 0 or any(k in a[0] for k in args.arms.split(','))]
    results = {name: [] for name, *_ in todo}
    with tempfile.TemporaryDirectory(prefix='bench_train_') as tmp:
        make_bin(tmp, 'synth', n_train=2_000_000 if cuda else 200_000, n_val=50_000, vocab_size=vocab, seed=0)
        if not cuda:
            make_bin(tmp, 'synth1k', n_train=400_000, n_val=50_000, vocab_size=DEMO_VOCAB, seed=0)
        for rnd in range(args.rounds):
            # other processes on the machine make every number here noisier
            print(f"round {rnd + 1}/{args.rounds}: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
                  file=sys.stderr, flush=True)
            for name, model_args, arm_args, launcher in todo:
                r = run_arm(args, name, model_args, arm_args, launcher, tmp, os.path.join(tmp, 'out'), vocab, env)
                if r is not None:
                    results[name].append(r)
                    print(f"  {name}: {r['tok_s']:,.0f} tokens/s", file=sys.stderr, flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    ratio = 'vs reference' if not cuda else 'vs first'
    speed = 'MFU' if cuda else 'GFLOP/s per thread'
    print(f"| arm | tokens/s | {ratio} | per round | {speed} | peak GiB | final loss | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    base = {}
    for name, model_args, _, launcher in todo:
        rs = results[name]
        if not rs:
            print(f"| {name} | failed | | | | | | |")
            continue
        tok_s = statistics.median(r['tok_s'] for r in rs)
        group = name.split()[0] if cuda else ''  # CUDA: ratios within a model shape
        base.setdefault(group, tok_s)
        mfu = f"{statistics.median(r['mfu'] for r in rs):.1f}%" if rs[0]['mfu'] is not None else '-'
        if not cuda:  # how busy the cores are: the model's FLOPs a second, per thread it ran on
            per_thread = tok_s / (1 if launcher == 'demo' else int(threads))
            mfu = f"{flops_per_token(model_args, vocab) * per_thread / 1e9:.0f}"
        mem = f"{max(r['mem'] for r in rs):.1f}" if rs[0]['mem'] is not None else '-'
        rounds = ' / '.join(f"{r['tok_s']:,.0f}" for r in rs)
        print(f"| {name} | {tok_s:,.0f} | {tok_s / base[group]:.2f}x | {rounds} | {mfu} | {mem} | "
              f"{rs[-1]['loss']:.3f} | {statistics.median(r['wall'] for r in rs):.0f} |")
    print(f"\ntokens/s: the median over the rounds of each round's median. {ratio}: over "
          + ("the reference arm (the demo and sweep arms are other models at one thread: their ratios say only "
             "how their tokens/s compare)" if not cuda else "the first arm of the same model shape")
          + ". wall s: one whole arm, start-up and compilation included (median)."
          + ("" if cuda else " GFLOP/s per thread: the model's training FLOPs (6 per matmul parameter, plus "
             "attention) at those tokens/s, over the threads each run had."))


if __name__ == '__main__':
    main()
