"""
Benchmark the Triton kernels of kernels.py on a GPU: per kernel, forward + backward time and peak memory of the
Triton kernel vs its torch twin vs the torch.compile'd twin, and the kernel's error against the twin in fp32, at
the widths of the paper's 405M (n_embd 1024) and 10B (n_embd 4608) models; then whole-model training steps
(tokens/s and peak memory) with kernels off / on, eager and compiled. All ratios come from one run on one machine.

    python bench/bench_kernels.py                          # both widths, 8 x 2048 tokens, bf16 autocast; the
                                                           # pythia-410m model, each block compiled on its own
    python bench/bench_kernels.py --only=kernels --widths=4608
    python bench/bench_kernels.py --only=model --compile=model   # one whole-model graph (minutes to compile)
    python bench/bench_kernels.py --smoke                  # tiny shapes on CPU via the Triton interpreter: checks
                                                           # that this script runs, measures nothing meaningful

Without CUDA (and without --smoke) it says it is skipping and exits 0: the CPU runs the torch twins.
Every variant runs under bf16 autocast, as train.py does: norms see the fp32 residual stream, the LM head an fp32
master weight. Time: median of --iters calls (CUDA events). Memory: one call from a clean baseline (the inputs'
grads freed, the cache emptied, the peak reset), what it allocated beyond its inputs (its output and the inputs'
grads included), in MiB. Error: the worst over the output and every input grad of max |a - ref| (abs) and of that
over max |ref| (rel), ref = the twin in fp32 on the same inputs. A case that fails prints its error and the rest go on.
"""
import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import runtime  # noqa: E402 (imports nothing of ours: kernels stays unimported until TRITON_INTERPRET is set)

# n_embd -> heads, head_dim, the preset it stands for
WIDTHS = {1024: (16, 64, 'pythia-410m, the 405M'), 4608: (36, 128, 'neox-10b, the 10B')}
SMOKE_WIDTHS = {1024: (48, 2, 24), 4608: (96, 3, 32)}  # --smoke: n_embd, heads, head_dim that stand in for each
V, N_VALID = 50304, 50277  # the GPT-NeoX tokenizer padded to a multiple of 64


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--widths', default='1024,4608', help="n_embd values of the kernel table (1024, 4608)")
    p.add_argument('--model', default='pythia-410m', help="a preset of model.py for the whole-model steps")
    p.add_argument('--batch_size', type=int, default=8)
    p.add_argument('--block_size', type=int, default=2048)
    p.add_argument('--iters', type=int, default=20, help="timed calls per kernel variant")
    p.add_argument('--steps', type=int, default=10, help="timed training steps per model variant")
    p.add_argument('--warmup', type=int, default=3, help="untimed calls or steps first (compilation, autotuning)")
    p.add_argument('--compile', choices=['block', 'model'], default='block',
                   help="compiled model variants: each transformer block on its own (one compile, reused by every "
                        "block, as train.py does under FSDP) or the whole model as one graph (as train.py does)")
    p.add_argument('--only', choices=['kernels', 'model', 'all'], default='all')
    p.add_argument('--cases', default='', help="the kernels of the table to run, by the start of their name, "
                   "comma-separated (e.g. 'linear + cross_entropy,rotary'); default: all")
    p.add_argument('--skip', default='', help="the kernels of the table not to run, named as for --cases")
    p.add_argument('--smoke', action='store_true', help="tiny shapes on CPU through the Triton interpreter")
    return p.parse_args()


def free(dev):
    gc.collect()
    if dev.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def time_ms(fn, iters, dev, warmup):
    """Median milliseconds per call, after warm-up calls (compilation, autotuning, the allocator's cache)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if dev.type == 'cuda':
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def peak_mib(fn, dev):
    """MiB that one call of fn allocates at its peak beyond what is allocated just before it (NaN off CUDA).
    Callers hold no grads from earlier calls (torch.autograd.grad returns them; zero_grad(set_to_none=True))."""
    free(dev)
    if dev.type != 'cuda':
        fn()
        return float('nan')
    torch.cuda.reset_peak_memory_stats(dev)
    base = torch.cuda.memory_allocated(dev)
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated(dev) - base) / 2**20


def kernel_cases(args, dev, C):
    """(name, make inputs, twin, Triton) for one width; twin and Triton take the inputs and return the output."""
    import kernels  # here, not at the top: after main() has set TRITON_INTERPRET (--smoke), which @triton.jit reads
    H, hd = WIDTHS[C][:2]
    N, vocab, n_valid = args.batch_size * args.block_size, V, N_VALID
    if args.smoke:
        C, H, hd = SMOKE_WIDTHS[C]
        vocab, n_valid = 300, 253
    B, T = args.batch_size, N // args.batch_size
    hidden = (8 * C // 3 + 63) // 64 * 64  # model.py's SwiGLU width
    f32, bf16 = torch.float32, torch.bfloat16

    def leaf(*shape, scale=1.0, dt=bf16):
        return lambda: (torch.randn(*shape, device=dev) * scale).to(dt).requires_grad_()

    def tables(rot_dim):
        angles = torch.outer(torch.arange(T, device=dev).float(), torch.rand(rot_dim // 2, device=dev))
        return angles.cos(), angles.sin()

    (cos_p, sin_p), (cos_f, sin_f) = tables(hd // 4), tables(hd)  # Pythia's 25% rotary; full (Llama)
    targets = torch.randint(0, n_valid, (N,), device=dev)
    targets[::97] = -1  # a few ignored positions, as padding or masking would give
    cases = [
        # norms read the residual stream, which stays fp32 under autocast
        ('layer_norm', [leaf(N, C, dt=f32), leaf(C, dt=f32), leaf(C, dt=f32)],
         kernels.layer_norm_torch, lambda x, w, b: kernels.layer_norm(x, w, b, triton=True)),
        ('rms_norm', [leaf(N, C, dt=f32), leaf(C, dt=f32)],
         kernels.rms_norm_torch, lambda x, w: kernels.rms_norm(x, w, triton=True)),
        # q and k as model.py makes them, (B, T, H, hd).transpose(1, 2), both in one call as model.py rotates them
        (f'rotary 25% (q and k, hd {hd})', [leaf(B, T, H, hd), leaf(B, T, H, hd)],
         lambda q, k: kernels.rotary(q.transpose(1, 2), k.transpose(1, 2), cos_p, sin_p),
         lambda q, k: kernels.rotary(q.transpose(1, 2), k.transpose(1, 2), cos_p, sin_p, triton=True)),
        (f'rotary 100% (q and k, hd {hd})', [leaf(B, T, H, hd), leaf(B, T, H, hd)],
         lambda q, k: kernels.rotary(q.transpose(1, 2), k.transpose(1, 2), cos_f, sin_f),
         lambda q, k: kernels.rotary(q.transpose(1, 2), k.transpose(1, 2), cos_f, sin_f, triton=True)),
        ('gelu exact', [leaf(N, 4 * C)],
         lambda x: kernels.gelu_torch(x, 'none'), lambda x: kernels.gelu(x, 'none', triton=True)),
        ('gelu tanh', [leaf(N, 4 * C)],
         lambda x: kernels.gelu_torch(x, 'tanh'), lambda x: kernels.gelu(x, 'tanh', triton=True)),
        ('swiglu', [leaf(N, 2 * hidden)],
         lambda h: kernels.swiglu_torch(*h.chunk(2, -1)), lambda h: kernels.swiglu(*h.chunk(2, -1), triton=True)),
        ('cross_entropy', [leaf(N, vocab, scale=3.0)],
         lambda l: kernels.cross_entropy_torch(l, targets, -1, n_valid),
         lambda l: kernels.cross_entropy(l, targets, -1, n_valid, triton=True)),
        ('linear + cross_entropy', [leaf(N, C), leaf(vocab, C, scale=0.02, dt=f32)],  # bf16 x, fp32 master weight
         lambda x, w: kernels.linear_cross_entropy_torch(x, w, targets, -1, n_valid),
         lambda x, w: kernels.linear_cross_entropy(x, w, targets, -1, n_valid, triton=True)),
    ]
    return cases, dict(N=N, C=C, V=vocab, H=H, hd=hd)


def outputs(out):
    return out if isinstance(out, tuple) else (out,)


def errors(out, grads, ref, ref_grads):
    """Worst (max abs error, max abs error / max |ref|) over the outputs and the grads."""
    worst_abs = worst_rel = 0.0
    for a, b in zip([*out, *grads], [*ref, *ref_grads]):
        err = (a.float() - b).abs().max().item()
        worst_abs, worst_rel = max(worst_abs, err), max(worst_rel, err / max(b.abs().max().item(), 1e-30))
    return worst_abs, worst_rel


def mib(x):
    return '-' if x != x else f"{x:,.0f}"  # NaN: memory is not measured off CUDA


def failure(e):
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0][:160] if msg else ''}"


def run_case(args, dev, make, twin, fused):
    """{variant: (ms, peak MiB, (abs err, rel err))} for one case, or an error string for a variant that failed."""
    inputs = [m() for m in make]
    # the reference: the twin in fp32 on the same (rounded) values, and a fixed random output grad (ones would give
    # LayerNorm a zero dx) that each variant casts to its output's dtype
    ref_inputs = [t.detach().float().requires_grad_() for t in inputs]
    ref = outputs(twin(*ref_inputs))  # a tuple: rotary gives (q, k)
    g = None if ref[0].dim() == 0 else [torch.randn(r.shape, device=dev) for r in ref]
    ref_grads = [r.detach() for r in torch.autograd.grad(ref, ref_inputs, g)]
    ref = [r.detach() for r in ref]
    del ref_inputs

    def amp(f):
        def call(*xs):
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                return f(*xs)
        return call

    g_in = {}  # g in each output dtype, made once: a cast per call would count in every variant's memory

    def fwd_bwd(f):
        out = outputs(f(*inputs))
        if g is not None and out[0].dtype not in g_in:
            g_in[out[0].dtype] = [t.to(out[0].dtype) for t in g]
        return out, torch.autograd.grad(out, inputs, None if g is None else g_in[out[0].dtype])

    # the twin compiled on its own (autocast outside, as around a compiled model), for these shapes only: no dynamic
    # shapes from the previous width's call; smoke: the plumbing, no code generation
    compiled = torch.compile(twin, dynamic=False, **(dict(backend='eager') if args.smoke else {}))
    variants = {'triton': amp(fused), 'twin': amp(twin), 'compiled twin': amp(compiled)}
    res = {}
    for name, f in variants.items():
        try:
            out, grads = fwd_bwd(f)  # the first call compiles
            err = errors(out, grads, ref, ref_grads)
            del out, grads
            ms = time_ms(lambda: fwd_bwd(f), args.iters, dev, args.warmup)
            res[name] = (ms, peak_mib(lambda: fwd_bwd(f), dev), err)
        except Exception as e:  # one variant failing (OOM, a compile error) must not lose the others
            res[name] = failure(e)
        free(dev)
    return res


def row(name, res):
    """One Markdown row of the kernel table (and one line per failed variant)."""
    k, t, c = (res[v] if not isinstance(res[v], str) else None for v in ('triton', 'twin', 'compiled twin'))

    def num(r, i, f):
        return 'failed' if not r else f.format(r[i])

    def ratio(a, b, i):  # '-' where either failed or there is no number (memory off CUDA)
        return f"{a[i] / b[i]:.2f}" if a and b and b[i] > 0 else '-'

    err = [f"{r[2][0]:.1e} / {r[2][1]:.1e}" if r else '-' for r in (k, t)]
    lines = [f"| {name} | {' | '.join(num(r, 0, '{:.3f}') for r in (k, t, c))} "
             f"| {' | '.join(mib(r[1]) if r else 'failed' for r in (k, t, c))} | {ratio(t, k, 0)}x | {ratio(c, k, 0)}x "
             f"| {ratio(k, t, 1)} | {ratio(k, c, 1)} | {err[0]} | {err[1]} |"]
    lines += [f"| | {v} failed: {r} |" for v, r in res.items() if isinstance(r, str)]
    return '\n'.join(lines)


def bench_kernels(args, dev):
    import kernels  # here, not at the top: after main() has set TRITON_INTERPRET (--smoke)
    widths = [int(w) for w in args.widths.split(',')]
    if not set(widths) <= set(WIDTHS):
        raise ValueError(f"--widths={args.widths}: each width must be one of {sorted(WIDTHS)}")
    wanted, skip = ({c.strip() for c in arg.split(',') if c.strip()} for arg in (args.cases, args.skip))
    for C in widths:
        cases, d = kernel_cases(args, dev, C)
        names = [name for name, *_ in cases]
        unknown = {w for w in wanted | skip if not any(name.startswith(w) for name in names)}
        if unknown:
            raise ValueError(f"--cases/--skip: {sorted(unknown)} name no kernel; the kernels are {names}")
        chosen = [name for name in names if not wanted or name.startswith(tuple(wanted))]
        chosen = [name for name in chosen if not (skip and name.startswith(tuple(skip)))]
        cases = [case for case in cases if case[0] in chosen]
        print(f"\n## kernels at n_embd {d['C']} ({WIDTHS[C][2]}), forward + backward, bf16 autocast, "
              f"N={d['N']:,} tokens, V={d['V']:,}, heads {d['H']} x {d['hd']}\n")
        print("| kernel | triton ms | twin ms | compiled ms | triton MiB | twin MiB | compiled MiB "
              "| time: twin / triton | compiled / triton | mem: triton / twin | triton / compiled "
              "| triton err abs / rel | twin err abs / rel |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
        for name, make, twin, fused in cases:
            if name == 'cross_entropy' and C != widths[0]:
                continue  # the same (N, V) logits at every width: measured once
            try:
                res = run_case(args, dev, make, twin, fused)
            except Exception as e:  # the inputs or the fp32 reference did not fit, say
                res = dict.fromkeys(('triton', 'twin', 'compiled twin'), failure(e))
            torch._dynamo.reset()  # each case compiles afresh: no recompile limit reached across cases
            free(dev)
            print(row(name, res), flush=True)
            k, t, c = (res[v] if not isinstance(res[v], str) else None for v in ('triton', 'twin', 'compiled twin'))
            if name == 'linear + cross_entropy' and k and t and dev.type == 'cuda':  # at once: the first answer
                print(f"fused LM head at n_embd {d['C']} (N={d['N']:,}, V={d['V']:,}): {k[1]:,.0f} MiB vs "
                      f"{t[1]:,.0f} MiB eager = {k[1] / t[1]:.2f}x (target <= 0.4x)"
                      + (f", vs {c[1]:,.0f} MiB compiled = {k[1] / c[1]:.2f}x" if c else ''), flush=True)
        print("\ntime: how many times faster the Triton kernel is; mem: its peak as a fraction of the other's; "
              "err: against the twin in fp32 (rel = max abs error / max |ref|).")
    if dev.type == 'cuda':
        path = 'added into the fp32 sum by cuBLAS (addmm out_dtype)' if kernels._fp32_addmm(dev) else \
            "a bf16 V x C product per chunk, then added (this torch's addmm cannot write fp32 from bf16 here)"
        print(f"\nLM-head weight grad under bf16: {path}")


def bench_model(args, dev):
    from model import GPT, config_from  # here: model imports kernels, after TRITON_INTERPRET is set (--smoke)
    B, T = args.batch_size, args.block_size
    over = dict(block_size=T)
    if args.smoke:
        over.update(n_layer=2, n_head=2, n_embd=32, vocab_size=97)
    how = {'block': 'each block compiled on its own', 'model': 'the whole model compiled as one graph'}[args.compile]
    print(f"\n## whole model: {args.model}, training step (forward, backward, AdamW), {B}x{T} tokens, bf16 autocast; "
          f"compiled = {how}\n")
    print("| variant | tokens/s | step peak MiB beyond weights and AdamW state | peak MiB in all |")
    print("|---|---|---|---|", flush=True)
    results = {}
    for use_kernels in (False, True):
        for compiled in (False, True):
            name = f"{'kernels' if use_kernels else 'twins'}{', compiled' if compiled else ''}"
            try:
                torch.manual_seed(0)
                model = GPT(config_from(args.model, use_kernels=use_kernels, **over)).to(dev)
                opt = model.configure_optimizers(0.1, 3e-4, (0.9, 0.95), 1e-8, dev.type)
                if compiled:
                    compile_args = dict(backend='eager') if args.smoke else {}
                    for block in model.transformer.h if args.compile == 'block' else [model]:
                        block.compile(**compile_args)
                V = model.config.vocab_size
                x = torch.randint(0, V, (B, T), device=dev)
                y = torch.randint(0, V, (B, T), device=dev)

                def step():
                    with torch.autocast(dev.type, dtype=torch.bfloat16):
                        _, loss = model(x, y)
                    loss.backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)

                ms = time_ms(step, args.steps, dev, args.warmup)  # the warm-up also creates AdamW's state
                peak = peak_mib(step, dev)
                total = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == 'cuda' else float('nan')
                results[name] = (B * T / ms * 1e3, peak)
                print(f"| {name} | {results[name][0]:,.0f} | {mib(peak)} | {mib(total)} |", flush=True)
            except Exception as e:
                print(f"| {name} | failed: {failure(e)} | | |", flush=True)
            model = opt = None
            torch._dynamo.reset()
            free(dev)
    base = results.get('twins, compiled')
    print()
    for name in ('kernels', 'kernels, compiled'):
        if base and name in results:
            tps, peak = results[name]
            mem = f", {peak / base[1]:.2f}x step peak memory" if dev.type == 'cuda' else ''
            print(f"{name} vs compiled twins: {tps / base[0]:.2f}x tokens/s{mem} (target: >= 1.00x tokens/s, "
                  f"< 1.00x memory)")


def main():
    args = parse()
    if args.smoke:
        os.environ['TRITON_INTERPRET'] = '1'  # before kernels is imported: @triton.jit reads it
        args.batch_size, args.block_size, args.iters, args.steps, args.warmup = 2, 16, 1, 1, 1
    elif not torch.cuda.is_available():
        print("bench_kernels: no CUDA device, skipping (the Triton kernels are benchmarked on a GPU; "
              "on CPU the model runs the torch twins). `--smoke` runs this script on CPU through the interpreter.")
        return 0
    dev = torch.device('cpu' if args.smoke else 'cuda')
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'CPU, Triton interpreter (smoke test)'
    import triton  # here: after TRITON_INTERPRET is set (--smoke)
    print(f"# bench_kernels on {name}; torch {torch.__version__}, triton {triton.__version__}; "
          f"PYTORCH_CUDA_ALLOC_CONF={os.environ.get('PYTORCH_CUDA_ALLOC_CONF', '(unset)')}")
    if args.only in ('kernels', 'all'):
        bench_kernels(args, dev)
    if args.only in ('model', 'all'):
        bench_model(args, dev)
    return 0


if __name__ == '__main__':
    runtime.clean_errors()
    sys.exit(main())
