"""
What a CPU can know about the Triton kernels on an H100: compile each one for sm_90 (Triton's bundled ptxas, no GPU
and no driver needed) with the launch settings kernels.py picks at the 405M's and the 10B's shapes, under bf16
autocast, and print per kernel the registers per thread, spills, the cold compile time on this machine, and how
many programs fit on one SM (65,536 registers, 64 warps). What it cannot give is anything about speed.

    python bench/ptxas_report.py        # ~8 s on a 2-core CPU; the numbers in docs/kernels.md come from it
"""
import inspect
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.pop('TRITON_INTERPRET', None)  # compile, do not interpret (read when kernels' @triton.jit run)
os.environ['TRITON_CACHE_DIR'] = tempfile.mkdtemp()  # cold compiles: no earlier run's cache
os.environ.setdefault('TRITON_DEFAULT_FP_FUSION', '1')  # Triton 3.9's default, stated to silence its warning
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

import kernels  # noqa: E402

PTXAS = Path(triton.__file__).parent / 'backends/nvidia/bin/ptxas-blackwell'  # the one that reads Triton's PTX
F32, BF16 = '*fp32', '*bf16'
NORM_BWD = dict(DY=BF16, X=F32, W=F32, MEAN=F32, RSTD=F32, DX=F32, DW=F32, DB=F32)
NORM_FWD = dict(X=F32, W=F32, B=F32, Y=BF16, MEAN=F32, RSTD=F32)  # fp32 residual stream in, autocast dtype out
ROTARY = dict(Q=BF16, K=BF16, COS=F32, SIN=F32, YQ=BF16, YK=BF16)
CE = dict(LOGITS=BF16, TARGETS='*i64', LOSS=F32, LSE=F32, GRAD=BF16, SCALE=F32)
GELU, SWIGLU = dict(X=BF16, DY=BF16, Y=BF16), dict(G=BF16, U=BF16, DY=BF16, OUT=BF16, DU=BF16)
W1024, W8192, CE_W = kernels._warps(1024), kernels._warps(8192), kernels._warps(kernels._ce_block(50304))
LN, RMS = dict(RMS=False, HAS_BIAS=True), dict(RMS=True, HAS_BIAS=False)
K = kernels  # short, for the table below
# (what, kernel, pointer dtypes, constexprs, warps): the settings the launches in kernels.py pick at these shapes
CASES = [
    ('layer_norm fwd, n_embd 1024', K._norm_fwd_kernel, NORM_FWD, dict(LN, BLOCK=1024), W1024),
    ('layer_norm bwd, n_embd 1024', K._norm_bwd_kernel, NORM_BWD, dict(LN, BLOCK=1024), W1024),
    ('layer_norm fwd, n_embd 4608', K._norm_fwd_kernel, NORM_FWD, dict(LN, BLOCK=8192), W8192),
    ('layer_norm bwd, n_embd 4608', K._norm_bwd_kernel, NORM_BWD, dict(LN, BLOCK=8192), W8192),
    ('layer_norm bwd, n_embd 4608, half the warps', K._norm_bwd_kernel, NORM_BWD, dict(LN, BLOCK=8192), W8192 // 2),
    ('rms_norm bwd, n_embd 4608', K._norm_bwd_kernel, NORM_BWD, dict(RMS, BLOCK=8192), W8192),
    ('rotary q+k, head_dim 64', K._rotary_kernel, ROTARY, dict(INVERSE=False, BLOCK_T=32, BLOCK_D=64), 4),
    ('rotary q+k, head_dim 128', K._rotary_kernel, ROTARY, dict(INVERSE=False, BLOCK_T=16, BLOCK_D=128), 4),
    ('gelu bwd', K._gelu_kernel, GELU, dict(TANH=False, BACKWARD=True, BLOCK=1024), 4),
    ('swiglu bwd', K._swiglu_kernel, SWIGLU, dict(BACKWARD=True, BLOCK=1024), 4),
    ('cross_entropy fwd (+grad), V 50304', K._cross_entropy_fwd_kernel, CE, dict(WRITE_GRAD=True, BLOCK=4096), CE_W),
    ('cross_entropy bwd, V 50304', K._cross_entropy_bwd_kernel, CE, dict(BLOCK=4096), CE_W),
]

print("| kernel | warps | registers / thread | spill stores, loads (bytes) | programs per SM | cold compile s |")
print("|---|---|---|---|---|---|")
for what, kernel, ptrs, consts, warps in CASES:
    names = inspect.signature(kernel.fn).parameters
    sig = {n: ptrs.get(n) or ('constexpr' if n in consts else 'fp32' if n == 'eps' else 'i32') for n in names}
    t0 = time.time()
    compiled = triton.compile(ASTSource(fn=kernel, signature=sig, constexprs=consts),
                              target=GPUTarget('cuda', 90, 32), options={'num_warps': warps})
    seconds = time.time() - t0
    ptx = Path(os.environ['TRITON_CACHE_DIR']) / 'kernel.ptx'
    ptx.write_text(compiled.asm['ptx'])
    log = subprocess.run([PTXAS, '-v', '--gpu-name=sm_90a', ptx, '-o', ptx.with_suffix('.o')], capture_output=True,
                         text=True, check=True).stderr
    regs = int(re.search(r'Used (\d+) registers', log)[1])
    spills = ', '.join(re.search(r'(\d+) bytes spill stores, (\d+) bytes spill loads', log).groups())
    # registers are given out per warp in steps of 256 (8 a thread); an SM holds 65,536 of them and 64 warps
    per_sm = min(64 // warps, 65536 // (-(-regs // 8) * 8 * 32 * warps))
    print(f"| {what} | {warps} | {regs} | {spills} | {per_sm} | {seconds:.2f} |", flush=True)
