"""
Training throughput of train.py itself, end to end: tokens/s (and on CUDA MFU and peak memory) for a few
reference settings, all measured in one run on one machine, printed as a table with ratios to the first arm.

    python bench/bench_train.py                  # CUDA: GPT-2 124M and the 405M shape, DDP vs FSDP, eager vs
                                                 #       compiled, bf16.  CPU: a small model, eager vs compiled,
                                                 #       fp32 vs bf16
    python bench/bench_train.py --nproc=8        # CUDA: every arm on 8 GPUs through torchrun
    python bench/bench_train.py --models=pythia-410m --steps=30 --extra="--use_kernels=False"

Each arm is `python train.py ...` (torchrun for DDP, and for FSDP when --nproc > 1; FSDP at one process runs in
process: train.py makes a one-process group) on synthetic token bins in a temporary folder (tests/synth.make_bin),
so no corpus is needed. train.py logs every step ("... | 12,345 tok/s | mfu 41.0% | 3.2 GiB | ..."); the first
--warmup steps (compilation, allocator warm-up, the step-0 eval) are dropped and the median of the rest is reported.
Peak memory is torch.cuda.max_memory_allocated on rank 0; MFU uses the model's FLOPs per token (6 N + attention)
and the GPU's dense bf16 peak (train.py's PEAK_FLOPS; --peak_flops to override).

Every arm runs with the same environment: glibc malloc told to keep its memory (MALLOC_MMAP_MAX_=0,
MALLOC_TRIM_THRESHOLD_=1e11; without them glibc unmaps and remaps the large per-step buffers on every step, which
costs ~30% and adds +-25% noise on CPU), the same thread count, and the inductor cache of the Makefile.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests'))
from synth import make_bin  # noqa: E402

ALLOCATOR = {'MALLOC_MMAP_MAX_': '0', 'MALLOC_TRIM_THRESHOLD_': '100000000000'}
LOG = re.compile(r"step (\d+)/\d+ \| loss ([\d.]+) \| lr \S+ \| ([\d,]+) tok/s"
                 r"(?: \| mfu ([\d.]+)%)?(?: \| ([\d.]+) GiB)?")

# CPU reference: a 4-layer GPT-2-style model small enough to train at a few thousand tokens/s on two cores
CPU_MODEL = ['--n_layer=4', '--n_head=4', '--n_embd=256', '--block_size=256', '--batch_size=8']
CPU_VOCAB = 8192
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
    p.add_argument('--peak_flops', type=float, default=0.0,
                   help="accelerator peak FLOP/s for MFU (0: train.py's table)")
    p.add_argument('--extra', default='', help="more train.py arguments for every arm, e.g. '--use_kernels=False'")
    return p.parse_args()


def arms(args, cuda):
    """(name, model args, train.py args, launcher) per arm; the first arm is the baseline of the ratio column."""
    if not cuda:
        return [('eager fp32', CPU_MODEL, ['--compile=False', '--dtype=float32'], 'python'),
                ('eager bf16', CPU_MODEL, ['--compile=False', '--dtype=bfloat16'], 'python'),
                ('compiled fp32', CPU_MODEL, ['--compile=True', '--dtype=float32'], 'python'),
                ('compiled bf16', CPU_MODEL, ['--compile=True', '--dtype=bfloat16'], 'python')]
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


def run_arm(args, name, model_args, arm_args, launcher, data_dir, out_dir, vocab, env):
    steps = args.warmup + args.steps
    cmd = [sys.executable, 'train.py'] if launcher == 'python' else \
        [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={args.nproc}', 'train.py']
    cmd += [*model_args, *arm_args, f'--data_dir={data_dir}', f'--out_dir={out_dir}', "--data={'synth': 1.0}",
            f'--vocab_size={vocab}', f'--max_iters={steps}', f'--eval_interval={steps}',
            f'--eval_windows={args.nproc}',  # one window per rank: FSDP's eval needs equal batch counts per rank
            '--log_interval=1', '--warmup_iters=0', f'--device={args.device}',
            f'--gradient_accumulation_steps={args.nproc}']  # one micro-batch per process per step
    if args.peak_flops:
        cmd.append(f'--peak_flops={args.peak_flops}')
    cmd += args.extra.split()
    t0 = time.time()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.time() - t0
    shutil.rmtree(out_dir, ignore_errors=True)  # its checkpoint: the 405M one is ~5 GB with AdamW's state
    if p.returncode != 0:
        print(f"{name}: train.py failed (rc {p.returncode})\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}", file=sys.stderr)
        return None
    rows = [m.groups() for m in map(LOG.search, p.stdout.splitlines()) if m]
    timed = [r for r in rows if int(r[0]) > args.warmup]
    if not timed:
        print(f"{name}: no step lines after warm-up in train.py's output\n{p.stdout[-2000:]}", file=sys.stderr)
        return None
    tok_s = statistics.median(float(r[2].replace(',', '')) for r in timed)
    mfu = statistics.median(float(r[3]) for r in timed) if timed[0][3] else None
    mem = max(float(r[4]) for r in rows) if rows[0][4] else None
    return dict(tok_s=tok_s, mfu=mfu, mem=mem, loss=float(rows[-1][1]), wall=wall, n=len(timed))


def main():
    args = parse()
    import torch
    cuda = torch.cuda.is_available() if not args.device else args.device.startswith('cuda')
    args.device = args.device or ('cuda' if cuda else 'cpu')
    args.steps = args.steps or (20 if cuda else 10)
    args.warmup = args.warmup or (5 if cuda else 4)
    vocab = 50_277 if cuda else CPU_VOCAB  # the GPT-NeoX-20B tokenizer's size on GPU, as the paper
    env = {**os.environ, **ALLOCATOR}
    env.setdefault('TORCHINDUCTOR_CACHE_DIR', str(ROOT / '.cache' / 'inductor'))
    threads = env.get('OMP_NUM_THREADS') or str(torch.get_num_threads())
    env['OMP_NUM_THREADS'] = threads
    device = torch.cuda.get_device_name(0) if cuda else f"CPU, {threads} thread{'' if threads == '1' else 's'}"
    load = os.getloadavg()[0]  # other processes on the machine make every number here noisier
    print(f"# train.py throughput: {device}, torch {torch.__version__}")
    print(f"allocator: {' '.join(f'{k}={v}' for k, v in ALLOCATOR.items())}"
          + (f", PYTORCH_CUDA_ALLOC_CONF={env.get('PYTORCH_CUDA_ALLOC_CONF', '(unset)')}" if cuda else '')
          + f"; OMP_NUM_THREADS={threads}; the same for every arm; load average {load:.1f} "
          f"on {os.cpu_count()} cores at the start")
    print(f"{args.warmup} warm-up steps dropped, median tokens/s of the next {args.steps}; "
          f"processes per arm: {args.nproc if cuda else 1}; synthetic data, vocab {vocab}"
          + (f"; extra: {args.extra}" if args.extra else ''))
    if not cuda:
        print(f"model: {' '.join(CPU_MODEL)} (GPT-2 style), 2,048 tokens per step")
    print()
    print("| arm | tokens/s | vs first | MFU | peak GiB | final loss | wall s |")
    print("|---|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory(prefix='bench_train_') as tmp:
        make_bin(tmp, 'synth', n_train=2_000_000 if cuda else 200_000, n_val=50_000, vocab_size=vocab, seed=0)
        base = {}
        for name, model_args, arm_args, launcher in arms(args, cuda):
            r = run_arm(args, name, model_args, arm_args, launcher, tmp, os.path.join(tmp, 'out'), vocab, env)
            if r is None:
                print(f"| {name} | failed | | | | | |", flush=True)
                continue
            group = name.split()[0] if cuda else ''  # ratios within a model shape
            base.setdefault(group, r['tok_s'])
            mfu = f"{r['mfu']:.1f}%" if r['mfu'] is not None else '-'
            mem = f"{r['mem']:.1f}" if r['mem'] is not None else '-'
            print(f"| {name} | {r['tok_s']:,.0f} | {r['tok_s'] / base[group]:.2f}x | {mfu} | {mem} | "
                  f"{r['loss']:.3f} | {r['wall']:.0f} |", flush=True)
    print("\nvs first: tokens/s over the first arm of the same model shape. wall s: the whole arm, start-up and "
          "compilation included.")


if __name__ == '__main__':
    main()
