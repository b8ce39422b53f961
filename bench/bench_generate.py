"""
Generation speed of model.generate with its KV cache against recomputing the whole window every step (nanoGPT's
way, use_cache=False): new tokens/s, both measured in one run, rounds alternating, medians and their ratio.

    python bench/bench_generate.py                       # the demo's shape (CUDA: GPT-2 and Pythia-410M), batch 1, 8
    OMP_NUM_THREADS=1 python bench/bench_generate.py --shapes=gpt2 --batch=1    # CPU: GPT-2 124M, about 2 minutes
    python bench/bench_generate.py --device=cuda --dtype=bfloat16
    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 python bench/bench_generate.py   # glibc keeps its memory

Weights are random (speed does not depend on them); decoding is greedy with no end-of-text token, so every row
generates exactly --new tokens after a --prompt-token prompt, within block_size (the cache's whole range).
"""
import argparse
import os
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model import config_from, GPT  # noqa: E402

SHAPES = {  # name -> (model options, prompt tokens, new tokens)
    'demo': (dict(n_layer=4, n_head=4, n_embd=128, block_size=128, vocab_size=8192, position='rotary',
                  rotary_pct=0.25, parallel_residual=True, tie_embeddings=False, bias=False), 16, 100),
    'gpt2': (dict(preset='gpt2'), 32, 64),
    'pythia-410m': (dict(preset='pythia-410m'), 64, 256),
}


def tokens_per_s(model, x, new, use_cache, device):
    if device.type == 'cuda':
        torch.cuda.synchronize()
    t = time.perf_counter()
    y = model.generate(x, new, temperature=0, use_cache=use_cache)
    if device.type == 'cuda':
        torch.cuda.synchronize()
    assert y.shape[1] == x.shape[1] + new
    return x.shape[0] * new / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--dtype', default='float32', help="float32 | bfloat16 (autocast)")
    p.add_argument('--shapes', default='', help=f"comma-separated, of {sorted(SHAPES)} (default: CPU demo, "
                   f"CUDA gpt2,pythia-410m)")
    p.add_argument('--batch', default='1,8', help="comma-separated batch sizes")
    p.add_argument('--rounds', type=int, default=3, help="timed rounds per arm (after one untimed)")
    args = p.parse_args()
    device = torch.device(args.device)
    amp = nullcontext() if args.dtype == 'float32' else torch.autocast(device.type, getattr(torch, args.dtype))
    malloc = {k: v for k, v in os.environ.items() if k.startswith('MALLOC_')}
    print(f"device {device}, {args.dtype}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}, "
          f"allocator {malloc or 'glibc defaults'}")
    print(f"{'shape':<12} {'batch':>5} {'prompt+new':>10} {'recompute tok/s':>16} {'KV cache tok/s':>15} {'ratio':>6}")
    names = (args.shapes or ('gpt2,pythia-410m' if device.type == 'cuda' else 'demo')).split(',')
    if set(names) - set(SHAPES):
        p.error(f"unknown shape(s) {sorted(set(names) - set(SHAPES))}: choose among {sorted(SHAPES)}")
    for name in names:
        opts, prompt, new = SHAPES[name]
        torch.manual_seed(0)
        model = GPT(config_from(**opts)).to(device).eval()
        for batch in map(int, args.batch.split(',')):
            x = torch.randint(0, model.config.vocab_size, (batch, prompt), device=device)
            speeds = {True: [], False: []}
            with torch.no_grad(), amp:
                for r in range(args.rounds + 1):
                    for use_cache in ((True, False) if r % 2 else (False, True)):  # alternate which goes first
                        s = tokens_per_s(model, x, new, use_cache, device)
                        if r:
                            speeds[use_cache].append(s)
            slow, fast = statistics.median(speeds[False]), statistics.median(speeds[True])
            print(f"{name:<12} {batch:>5} {f'{prompt}+{new}':>10} {slow:>16,.0f} {fast:>15,.0f} {fast / slow:>5.1f}x")
    print(f"load at the end {os.getloadavg()[0]:.2f}")


if __name__ == '__main__':
    main()
