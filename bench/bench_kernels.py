"""
Benchmark the Triton kernels of kernels.py on a GPU: per kernel, forward+backward time and peak memory of the
Triton kernel vs its torch twin vs the torch.compile'd twin; then whole-model training steps (tokens/s and peak
memory) with kernels off / on, eager and compiled. All ratios come from one run on one machine.

    python bench/bench_kernels.py                      # pythia-410m shape, 8 x 2048 tokens, bf16
    python bench/bench_kernels.py --model=gpt2 --batch_size=16 --block_size=1024
    python bench/bench_kernels.py --smoke              # tiny shapes on CPU via the Triton interpreter: checks
                                                       # that this script runs, measures nothing meaningful

Without CUDA (and without --smoke) it says it is skipping and exits 0: the CPU runs the torch twins.
Peak memory is what the call allocated beyond its inputs (torch's CUDA caching allocator: max_memory_allocated),
stated in MiB; PYTORCH_CUDA_ALLOC_CONF is printed with the results.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='pythia-410m', help="a preset of model.py (pythia-410m, gpt2, neox-10b)")
    p.add_argument('--batch_size', type=int, default=8)
    p.add_argument('--block_size', type=int, default=2048)
    p.add_argument('--iters', type=int, default=20, help="timed iterations per kernel")
    p.add_argument('--steps', type=int, default=10, help="timed training steps per model variant")
    p.add_argument('--only', choices=['kernels', 'model', 'all'], default='all')
    p.add_argument('--smoke', action='store_true', help="tiny shapes on CPU through the Triton interpreter")
    return p.parse_args()


class Timer:
    """Mean milliseconds per call and the peak memory allocated beyond what existed before (CUDA only)."""

    def __init__(self, device):
        self.cuda = device.type == 'cuda'

    def __call__(self, fn, iters, warmup=3):
        for _ in range(warmup):  # compiles, autotunes, fills the allocator's cache
            fn()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        if self.cuda:
            torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) * 1e3 / iters
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if self.cuda else float('nan')
        return ms, peak


def kernel_cases(args, dev, dtype):
    """(name, inputs maker, {variant: fn}); each fn runs forward + backward on the inputs."""
    import kernels
    N = args.batch_size * args.block_size
    C, V, H, hd = 1024, 50304, 16, 64
    if args.smoke:
        N, C, V, H, hd = 64, 48, 300, 2, 16
    B, T = args.batch_size, N // args.batch_size
    hidden = (8 * C // 3 + 63) // 64 * 64  # model.py's SwiGLU width
    f32 = torch.float32

    def leaf(*shape, scale=1.0, dt=dtype):
        return (torch.randn(*shape, device=dev) * scale).to(dt).requires_grad_()

    angles = torch.outer(torch.arange(T, device=dev).float(), torch.rand(hd // 8, device=dev))
    cos, sin = angles.cos(), angles.sin()
    angles_full = torch.outer(torch.arange(T, device=dev).float(), torch.rand(hd // 2, device=dev))
    cos_f, sin_f = angles_full.cos(), angles_full.sin()
    targets = torch.randint(0, V - 47, (N,), device=dev)

    def variants(twin, fused):
        return {'triton': fused, 'twin': twin, 'compiled twin': torch.compile(twin, **args.compile)}

    return [
        # norms read the residual stream, which stays fp32 under autocast
        ('layer_norm', lambda: [leaf(N, C, dt=f32), leaf(C, dt=f32), leaf(C, dt=f32)],
         variants(kernels.layer_norm_torch, lambda x, w, b: kernels.layer_norm(x, w, b, triton=True))),
        ('rms_norm', lambda: [leaf(N, C, dt=f32), leaf(C, dt=f32)],
         variants(kernels.rms_norm_torch, lambda x, w: kernels.rms_norm(x, w, triton=True))),
        ('rotary 25%', lambda: [leaf(B, T, H, hd)],
         variants(lambda x: kernels.rotary_torch(x.transpose(1, 2), cos, sin),
                  lambda x: kernels.rotary(x.transpose(1, 2), cos, sin, triton=True))),
        ('rotary 100%', lambda: [leaf(B, T, H, hd)],
         variants(lambda x: kernels.rotary_torch(x.transpose(1, 2), cos_f, sin_f),
                  lambda x: kernels.rotary(x.transpose(1, 2), cos_f, sin_f, triton=True))),
        ('gelu tanh', lambda: [leaf(N, 4 * C)],
         variants(lambda x: kernels.gelu_torch(x, 'tanh'), lambda x: kernels.gelu(x, 'tanh', triton=True))),
        ('gelu exact', lambda: [leaf(N, 4 * C)],
         variants(lambda x: kernels.gelu_torch(x, 'none'), lambda x: kernels.gelu(x, 'none', triton=True))),
        ('swiglu', lambda: [leaf(N, 2 * hidden)],
         variants(lambda h: kernels.swiglu_torch(*h.chunk(2, -1)), lambda h: kernels.swiglu(*h.chunk(2, -1), triton=True))),
        ('cross_entropy', lambda: [leaf(N, V, scale=3.0)],
         variants(lambda l: kernels.cross_entropy_torch(l, targets, -1, V - 47),
                  lambda l: kernels.cross_entropy(l, targets, -1, V - 47, triton=True))),
        ('linear + cross_entropy', lambda: [leaf(N, C), leaf(V, C, scale=0.02)],
         variants(lambda x, w: kernels.linear_cross_entropy_torch(x, w, targets, -1, V - 47),
                  lambda x, w: kernels.linear_cross_entropy(x, w, targets, -1, V - 47, triton=True))),
    ], dict(N=N, C=C, V=V, H=H, hd=hd)


def bench_kernels(args, dev, dtype, timer):
    cases, dims = kernel_cases(args, dev, dtype)
    print(f"\n## kernels, forward + backward, {dtype}, N={dims['N']} tokens, C={dims['C']}, V={dims['V']}, "
          f"heads {dims['H']}x{dims['hd']}\n")
    print("| kernel | triton ms | twin ms | compiled twin ms | triton MiB | twin MiB | compiled MiB "
          "| time vs twin | vs compiled | mem vs twin | vs compiled |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, make, fns in cases:
        inputs = make()
        res = {}
        for variant, f in fns.items():
            def step(f=f):
                for t in inputs:
                    t.grad = None
                out = f(*inputs)
                out.backward(torch.ones_like(out) if out.dim() else None)
            res[variant] = timer(step, args.iters)
        (tk, mk), (tt, mt), (tc, mc) = res['triton'], res['twin'], res['compiled twin']
        print(f"| {name} | {tk:.3f} | {tt:.3f} | {tc:.3f} | {mk:.0f} | {mt:.0f} | {mc:.0f} | {tt / tk:.2f}x "
              f"| {tc / tk:.2f}x | {mk / mt:.2f} | {mk / mc:.2f} |", flush=True)
        del inputs
        if dev.type == 'cuda':
            torch.cuda.empty_cache()
    print("\ntime columns: how many times faster the Triton kernel is; mem columns: its peak as a fraction of the "
          "other's (target for linear + cross_entropy: <= 0.4 of the eager twin)")


def bench_model(args, dev, dtype, timer):
    from model import GPT, config_from
    B, T = args.batch_size, args.block_size
    over = dict(block_size=T)
    if args.smoke:
        over.update(n_layer=2, n_head=2, n_embd=32, vocab_size=97)
    amp = f"{dtype} autocast" if dev.type == 'cuda' else 'fp32'
    print(f"\n## whole model: {args.model}, training step (forward, backward, AdamW), {B}x{T} tokens, {amp}\n")
    print("| variant | tokens/s | peak MiB |")
    print("|---|---|---|")
    results = {}
    for use_kernels in (False, True):
        for compiled in (False, True):
            torch.manual_seed(0)
            model = GPT(config_from(args.model, use_kernels=use_kernels, **over)).to(dev)
            opt = model.configure_optimizers(0.1, 3e-4, (0.9, 0.95), 1e-8, dev.type)
            fwd = torch.compile(model, **args.compile) if compiled else model
            V = model.config.vocab_size
            x = torch.randint(0, V, (B, T), device=dev)
            y = torch.randint(0, V, (B, T), device=dev)

            def step():
                with torch.autocast(dev.type, dtype=dtype, enabled=dev.type == 'cuda'):
                    _, loss = fwd(x, y)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            ms, peak = timer(step, args.steps)
            name = f"{'kernels' if use_kernels else 'twins'}{', compiled' if compiled else ''}"
            results[name] = (B * T / ms * 1e3, peak)
            print(f"| {name} | {results[name][0]:,.0f} | {peak:,.0f} |", flush=True)
            del model, opt, fwd
            torch._dynamo.reset()
            if dev.type == 'cuda':
                torch.cuda.empty_cache()
    base = results['twins, compiled']
    print()
    for name in ('kernels', 'kernels, compiled'):
        tps, peak = results[name]
        print(f"{name} vs compiled twins: {tps / base[0]:.2f}x tokens/s, {peak / base[1]:.2f}x peak memory "
              f"(target: >= 1.00x tokens/s, < 1.00x memory)")


def main():
    args = parse()
    if args.smoke:
        os.environ['TRITON_INTERPRET'] = '1'  # before kernels is imported: @triton.jit reads it
        args.batch_size, args.block_size, args.iters, args.steps = 2, 16, 1, 1
    elif not torch.cuda.is_available():
        print("bench_kernels: no CUDA device, skipping (the Triton kernels are benchmarked on a GPU; "
              "on CPU the model runs the torch twins). `--smoke` runs this script on CPU through the interpreter.")
        return 0
    args.compile = dict(backend='eager') if args.smoke else {}  # smoke: no code generation, just the plumbing
    dev = torch.device('cuda' if torch.cuda.is_available() and not args.smoke else 'cpu')
    dtype = torch.bfloat16
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'CPU, Triton interpreter (smoke test)'
    print(f"# bench_kernels on {name}; torch {torch.__version__}; "
          f"PYTORCH_CUDA_ALLOC_CONF={os.environ.get('PYTORCH_CUDA_ALLOC_CONF', '(unset)')}")
    timer = Timer(dev)
    if args.only in ('kernels', 'all'):
        bench_kernels(args, dev, dtype, timer)
    if args.only in ('model', 'all'):
        bench_model(args, dev, dtype, timer)
    return 0


if __name__ == '__main__':
    sys.exit(main())
