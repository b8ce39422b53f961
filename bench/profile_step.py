"""
Where one CPU training step spends its time: torch.profiler over train.py's step (the same model.py, AdamW from
configure_optimizers, autocast, torch.compile, gradient clipping, zero_grad and data.Mixture batches), split into
matmuls, attention kernels, elementwise kernels (norms, activations, the loss, inductor's fused loops), the
optimizer, gradient clipping, data, and what is left: Python and dispatch (step time not inside any kernel).

    python bench/profile_step.py                         # the bench model (bench_train.py), compiled bf16
    python bench/profile_step.py --model=demo --threads=1
    python bench/profile_step.py --dtype=float32 --compile=False --table=30   # plus the profiler's top ops

Shapes: 'bench' is bench_train.py's CPU model (4 layers, n_embd 256, block 256, batch 8, vocab 8192, GPT-2 style);
'demo' is config/demo_cpu.py's (2 layers, n_embd 64, block 128, batch 32, vocab 1024, rotary 25%, parallel
residual, untied); 'w32', 'w96', 'w128' are the sweep's other widths of the same shape rule (n_layer = n_head =
width / 32).
Run it with the bench's allocator settings (MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000).
"""
import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch._inductor.config as inductor_config
from torch.profiler import ProfilerActivity, profile, record_function

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import data as datalib  # noqa: E402
from model import GPT, GPTConfig, choose_cpu_paths  # noqa: E402
from prepare.synthetic import make_bin  # noqa: E402

# name: (model shape, batch size)
MODELS = {'bench': (dict(n_layer=4, n_head=4, n_embd=256, block_size=256, bias=False, gelu_approximate='none',
                         vocab_size=8192), 8)}
for width in (32, 64, 96, 128):  # the demo's shape rule (Makefile): n_layer = n_head = width / 32, its 1k BPE
    MODELS['demo' if width == 64 else f'w{width}'] = (
        dict(n_layer=width // 32, n_head=width // 32, n_embd=width, block_size=128, bias=False, position='rotary',
             rotary_pct=0.25, parallel_residual=True, tie_embeddings=False, gelu_approximate='none',
             vocab_size=1024), 32)
PHASES = ('data', 'forward', 'backward', 'clip', 'optimizer', 'zero_grad')
MATMUL = {'aten::mm', 'aten::addmm', 'aten::bmm', 'aten::baddbmm', 'mkldnn::_linear_pointwise'}
# ops that only dispatch, reshape or wrap other ops: their self time is overhead, not work
WRAPPERS = {'aten::linear', 'aten::matmul', 'aten::t', 'aten::view', 'aten::transpose', 'aten::as_strided',
            'aten::reshape', 'aten::_unsafe_view', 'aten::expand', 'aten::empty', 'aten::empty_strided',
            'aten::empty_like', 'aten::split', 'aten::split_with_sizes', 'aten::slice', 'aten::select', 'aten::detach',
            'aten::alias', 'aten::unsqueeze', 'aten::squeeze', 'aten::permute', 'aten::to', 'aten::_to_copy',
            'aten::contiguous', 'aten::lift_fresh', 'aten::resolve_conj', 'aten::resolve_neg', 'aten::unbind',
            'aten::chunk', 'aten::dropout', 'aten::result_type', 'aten::scalar_tensor', 'aten::new_empty',
            'aten::new_empty_strided', 'aten::flatten', 'aten::numpy_T', 'aten::item', 'aten::_local_scalar_dense',
            'aten::from_numpy', 'aten::zeros', 'aten::ones', 'aten::full'}


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', choices=sorted(MODELS), default='bench')
    p.add_argument('--dtype', choices=['bfloat16', 'float32'], default='bfloat16')
    p.add_argument('--compile', default='True', choices=['True', 'False'])
    p.add_argument('--threads', type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument('--steps', type=int, default=5, help="profiled steps (after 4 warm-up steps)")
    p.add_argument('--table', type=int, default=0, help="also print the profiler's top N ops by self time")
    p.add_argument('--cpu_paths', default='auto', help="train.py's cpu_paths: 'auto' (measured) or e.g. 'loss=fused'")
    return p.parse_args()


def category(name, phase):
    if phase in ('data', 'clip', 'optimizer', 'zero_grad'):
        return phase
    if name in MATMUL:
        return 'matmul'
    if 'scaled_dot_product' in name:
        return 'attention kernel (SDPA)'
    return 'elementwise and other kernels'


def main():
    args = parse()
    if args.threads:
        torch.set_num_threads(args.threads)
    compiled = args.compile == 'True'
    if compiled:
        inductor_config.cpp.enable_kernel_profile = True  # inductor's C++ kernels show up in the profile by name
    shape, batch = MODELS[args.model]
    tmp = tempfile.mkdtemp(prefix='profile_step_')
    make_bin(tmp, 'synth', n_train=200_000, n_val=5_000, vocab_size=shape['vocab_size'], seed=0)
    mixture = datalib.Mixture(tmp, {'synth': 1.0}, shape['block_size'], batch, 1, 1, 1337)
    torch.manual_seed(1337)
    model = GPT(GPTConfig(dropout=0.0, **shape))
    paths = choose_cpu_paths(args.cpu_paths, model, batch, shape['block_size'], args.dtype, compiled, False)
    optimizer = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), 1e-8, 'cpu')
    if compiled:
        model.compile()
    autocast = torch.autocast('cpu', dtype=torch.bfloat16, enabled=args.dtype == 'bfloat16')
    state = {'it': 0}

    def step():
        it = state['it']
        with record_function('phase: data'):
            x, y = mixture.get_batch(it, 0, 0)
        with record_function('phase: forward'), autocast:
            _, loss = model(x, y)
        with record_function('phase: backward'):
            loss.backward()
        with record_function('phase: clip'):
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        with record_function('phase: optimizer'):
            optimizer.step()
        with record_function('phase: zero_grad'):
            optimizer.zero_grad(set_to_none=True)
        state['it'] += 1
        return loss.item()

    for _ in range(4):  # compile, allocator warm-up
        step()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    wall = (time.perf_counter() - t0) / args.steps * 1e3
    work = collections.Counter()  # ms of kernel self time per category
    phase_ms = collections.Counter()
    for e in prof.events():
        chain, p = [], e
        while p is not None:
            chain.append(p.name)
            p = p.cpu_parent
        phase = next((n[7:] for n in chain if n.startswith('phase: ')), None)
        if phase is None:
            continue
        if e.name.startswith('phase: '):
            phase_ms[phase] += e.cpu_time_total / 1e3 / args.steps
            continue
        if e.name in WRAPPERS or e.name.startswith(('autograd::', 'Optimizer.', 'torch::autograd', 'nanocpt::',
                                                     'GeneratedBackwardFor')) \
                or e.name.startswith(('## Call CompiledFxGraph', 'CompiledFunction', 'Torch-Compiled', 'TorchDynamo')):
            continue  # overhead: counted in "Python and dispatch" below
        work[category(e.name, phase)] += e.self_cpu_time_total / 1e3 / args.steps
    for phase in ('data', 'clip', 'optimizer', 'zero_grad'):  # whole phases, their overhead included
        work[phase] = phase_ms[phase]
    ms = dict(work)
    ms['Python and dispatch (forward, backward)'] = max(0.0, wall - sum(work.values()))
    tokens = batch * shape['block_size']
    print(f"# one training step, {args.model} model, {args.dtype}, {'compiled' if compiled else 'eager'}, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}; {tokens:,} tokens per step; {paths}")
    print(f"{wall:.1f} ms per step under the profiler ({tokens / wall * 1e3:,.0f} tokens/s), mean of {args.steps}; "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| part | ms per step | share |")
    print("|---|---|---|")
    for k, v in sorted(ms.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v:.1f} | {v / wall:.0%} |")
    if args.table:
        print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=args.table, max_name_column_width=70))


if __name__ == '__main__':
    main()
