"""
Fused kernels for the GPT in model.py, each beside its pure-torch twin.

The twin is the CPU path and the test oracle: every public function below takes `triton=` and runs the
Triton kernel when it is True, the twin otherwise. Shapes follow model.py:
  x        (..., C) activations        weight/bias (C,)
  q, k     (B, H, T, hd) with cos/sin (T, rot_dim // 2): rotary on the first rot_dim dims of each head,
           q and k together (one launch)
  logits   (N, V) and targets (N,) with ignore_index; only the first n_valid columns are real tokens

How the Triton path is wired, and why:
- Each kernel launch sits inside a torch.library.custom_op. torch.compile sees one opaque op per kernel (with a
  fake implementation for shapes), so compiled graphs keep the kernels instead of breaking or falling back, and
  AOT autograd traces our backward ops the same way. Inputs and outputs are plain tensors: DDP and FSDP need no help.
  An op whose outputs or backward change gets a new name: torch.compile's on-disk cache keys an op by its name, not
  its code, and would replay the old backward (pytorch#144344; seen here as 16x gradients from a warm cache).
- Backward passes are kernels too (register_autograd). Norm weight/bias grads are reduced in two steps: each
  program sums its block of rows into one row of a small fp32 buffer, torch sums that buffer (deterministic).
- Cross-entropy never holds softmax: the forward kernel keeps one logsumexp per row, the backward kernel writes
  (softmax - onehot) * grad / n. The fused LM head + loss (Liger-Kernel's idea) goes over the tokens in chunks:
  logits of one chunk, the CE kernel writes their gradient in place, two matmuls turn it into grad_x and grad_w,
  so full (N, V) logits never exist; the grads are made in the forward and scaled by the loss's grad in backward.
- All math is fp32 in registers whatever the storage dtype. `LAUNCHES` counts launches per kernel, so tests can
  prove the Triton path ran (no silent fallback).
- On CPU, TRITON_INTERPRET=1 (set before this module is imported) runs the same kernels in Triton's interpreter.
"""

import collections
import fcntl
import functools
import json
import math
import os
import platform
import statistics
import time
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

import runtime

try:
    import triton
    import triton.language as tl
except ImportError:  # a CPU-only torch comes without triton: the twins still work, triton=True explains itself
    triton = None

    class tl:  # just enough for the @triton.jit signatures below to be defined
        constexpr = None

    def _jit(fn):
        return fn

# TRITON_INTERPRET is read by @triton.jit when the decorators run (at import), so that is the moment that counts
_INTERPRET = os.environ.get('TRITON_INTERPRET', '0') == '1'
LAUNCHES = collections.Counter()  # kernel name -> number of launches from Python (tests use it)
jit = triton.jit if triton is not None else _jit


def _require_triton(x):
    """One clear error, naming the fix, instead of Triton's '0 active drivers' from deep inside a launch."""
    if triton is None:
        raise RuntimeError("kernels: Triton kernels were asked for (use_kernels=True) but the triton package is not "
                           "installed: pip install triton, or set use_kernels=False to use the torch twins")
    if _INTERPRET:
        return
    if not torch.cuda.is_available():
        raise RuntimeError("kernels: Triton kernels were asked for (use_kernels=True) but there is no CUDA driver and "
                           "the Triton interpreter is off. Set use_kernels=False to run the torch twins on this "
                           "machine, or, for testing, set TRITON_INTERPRET=1 before importing kernels.")
    if x.device.type != 'cuda':
        raise RuntimeError(f"kernels: Triton kernels need CUDA tensors, got a tensor on {x.device}; move the model "
                           "to the GPU or set use_kernels=False")


def _launch(name, kernel, grid, *args, **meta):
    LAUNCHES[name] += 1
    dev = next(a.device for a in args if isinstance(a, Tensor))
    if dev.type == 'cuda':  # Triton launches on the current device; make it the tensors' one
        with torch.cuda.device(dev):
            kernel[grid](*args, **meta)
    else:
        kernel[grid](*args, **meta)


@functools.lru_cache(maxsize=None)
def _n_programs(device):
    """Programs for the row-reduction backward kernels: a couple per SM on a GPU, a few in the interpreter."""
    if device.type == 'cuda':
        return 2 * torch.cuda.get_device_properties(device).multi_processor_count
    return 4


def _warps(block):
    """Warps for a program that keeps a block of one row in registers (Liger's calculate_settings rule).
    The block is spread over 32 * warps threads, so each thread holds block / (32 * warps) values of every
    row-sized tensor; the norm backward keeps ~7 of them live (x, dy, w, xhat, dx and the dw, db sums). At 8192
    (LayerNorm at n_embd 4608, the 10B) ptxas gives the backward 128 registers a thread at 16 warps and 251 of the
    255 at 8 (no spills either way, bench/ptxas_report.py): both fill an SM's registers with one program, so 16 warps
    put twice the threads on each SM."""
    return 32 if block >= 32768 else 16 if block >= 8192 else 8 if block >= 2048 else 4


# ----------------------------------------------------------------------------------------------------------------
# LayerNorm and RMSNorm: one kernel pair for both (RMS is LayerNorm without the mean and the bias)


def layer_norm_torch(x, weight, bias, eps=1e-5):
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def rms_norm_torch(x, weight, eps=1e-5):
    # normalise in fp32 whatever the input dtype: bf16 sums of squares lose too much
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (y * weight.float()).to(x.dtype)


@jit
def _norm_fwd_kernel(X, W, B, Y, MEAN, RSTD, stride_x, stride_y, n_cols, eps,
                     RMS: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK: tl.constexpr):
    # one program per row; the whole row fits in one block (n_embd is at most a few thousand)
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(X + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    if RMS:
        xc = x
    else:
        mean = tl.sum(x, axis=0) / n_cols
        xc = tl.where(mask, x - mean, 0.0)
        tl.store(MEAN + row, mean)
    rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, axis=0) / n_cols + eps)
    y = xc * rstd * tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        y += tl.load(B + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(Y + row * stride_y + cols, y.to(Y.dtype.element_ty), mask=mask)
    tl.store(RSTD + row, rstd)


@jit
def _norm_bwd_kernel(DY, X, W, MEAN, RSTD, DX, DW, DB, stride_dy, stride_x, stride_dx, n_rows, n_cols, rows_per_prog,
                     RMS: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK: tl.constexpr):
    # each program walks a contiguous block of rows: dx per row, and its share of dw/db summed in registers
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK], dtype=tl.float32)
    db = tl.zeros([BLOCK], dtype=tl.float32)
    row_start = pid.to(tl.int64) * rows_per_prog  # int64 row offsets: rows * stride can pass 2**31
    row_end = tl.minimum(row_start + rows_per_prog, n_rows)
    for r in range(row_start, row_end):
        x = tl.load(X + r * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + r * stride_dy + cols, mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(RSTD + r)
        if RMS:
            xhat = x * rstd
        else:
            xhat = (x - tl.load(MEAN + r)) * rstd
        wdy = w * dy
        # d/dx of (x - mean) * rstd: remove the components along xhat (and, for LayerNorm, along the mean)
        c1 = tl.sum(xhat * wdy, axis=0) / n_cols
        if RMS:
            dx = (wdy - xhat * c1) * rstd
        else:
            dx = (wdy - xhat * c1 - tl.sum(wdy, axis=0) / n_cols) * rstd
        tl.store(DX + r * stride_dx + cols, dx.to(DX.dtype.element_ty), mask=mask)
        dw += dy * xhat
        db += dy
    tl.store(DW + pid * n_cols + cols, dw, mask=mask)
    if HAS_BIAS:
        tl.store(DB + pid * n_cols + cols, db, mask=mask)


@torch.library.custom_op('nanocpt::norm_fwd', mutates_args=())
def _norm_fwd(x: Tensor, weight: Tensor, bias: Optional[Tensor], eps: float, rms: bool,
              out_dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    N, C = x.shape
    y = torch.empty(N, C, dtype=out_dtype, device=x.device)
    mean = torch.empty(0 if rms else N, dtype=torch.float32, device=x.device)  # RMSNorm has no mean
    rstd = torch.empty(N, dtype=torch.float32, device=x.device)
    block = triton.next_power_of_2(C)
    _launch('rms_norm_fwd' if rms else 'layer_norm_fwd', _norm_fwd_kernel, (N,),
            x, weight, weight if bias is None else bias, y, rstd if rms else mean, rstd, x.stride(0), y.stride(0), C, eps,
            RMS=rms, HAS_BIAS=bias is not None, BLOCK=block, num_warps=_warps(block))
    return y, mean, rstd


@_norm_fwd.register_fake
def _(x, weight, bias, eps, rms, out_dtype):
    rstd = x.new_empty(x.shape[0], dtype=torch.float32)
    return x.new_empty(x.shape, dtype=out_dtype), rstd.new_empty(0 if rms else x.shape[0]), rstd


@torch.library.custom_op('nanocpt::norm_bwd', mutates_args=())
def _norm_bwd(dy: Tensor, x: Tensor, weight: Tensor, mean: Tensor, rstd: Tensor, has_bias: bool,
              rms: bool) -> tuple[Tensor, Tensor, Tensor]:
    N, C = x.shape
    dx = torch.empty_like(x)
    n_prog = max(1, min(N, _n_programs(x.device)))
    dw = torch.zeros(n_prog, C, dtype=torch.float32, device=x.device)
    db = torch.zeros(n_prog, C, dtype=torch.float32, device=x.device) if has_bias else dw
    block = triton.next_power_of_2(C)
    _launch('rms_norm_bwd' if rms else 'layer_norm_bwd', _norm_bwd_kernel, (n_prog,),
            dy, x, weight, rstd if rms else mean, rstd, dx, dw, db, dy.stride(0), x.stride(0), dx.stride(0), N, C,
            triton.cdiv(N, n_prog), RMS=rms, HAS_BIAS=has_bias, BLOCK=block, num_warps=_warps(block))
    db = db.sum(0).to(weight.dtype) if has_bias else weight.new_empty(0)
    return dx, dw.sum(0).to(weight.dtype), db


@_norm_bwd.register_fake
def _(dy, x, weight, mean, rstd, has_bias, rms):
    return torch.empty_like(x), torch.empty_like(weight), torch.empty_like(weight) if has_bias else weight.new_empty(0)


def _norm_setup(ctx, inputs, output):
    x, weight, bias, eps, rms, out_dtype = inputs
    ctx.save_for_backward(x, weight, output[1], output[2])
    ctx.has_bias, ctx.rms = bias is not None, rms


def _norm_backward(ctx, dy, dmean, drstd):
    x, weight, mean, rstd = ctx.saved_tensors
    dx, dw, db = _norm_bwd(dy.contiguous(), x, weight, mean, rstd, ctx.has_bias, ctx.rms)  # dx in x's dtype
    return dx, dw, (db if ctx.has_bias else None), None, None, None


_norm_fwd.register_autograd(_norm_backward, setup_context=_norm_setup)


def _norm_triton(x, weight, bias, eps, rms):
    _require_triton(x)
    # Under autocast the norm writes the autocast dtype: in model.py its readers are matmuls, which would cast an
    # fp32 output anyway (a separate kernel, and an fp32 round trip through memory, that inductor cannot fuse into
    # our opaque op). Picked here, outside the op, so its fake implementation (torch.compile's view) agrees.
    dev = x.device.type
    out_dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype
    y, _, _ = _norm_fwd(x.contiguous().view(-1, x.shape[-1]), weight, bias, float(eps), rms, out_dtype)
    return y.view(x.shape)


# ----------------------------------------------------------------------------------------------------------------
# rotary embedding (GPT-NeoX half split, optionally on only the first rot_dim dims of each head)


def rotary_torch(x, cos, sin):
    """GPT-NeoX rotary: the first rot_dim dims are two halves (x1, x2) rotated as (x1 cos - x2 sin, x2 cos + x1 sin)."""
    half = cos.shape[-1]
    x1, x2, rest = x[..., :half], x[..., half:2 * half], x[..., 2 * half:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], dim=-1)


@jit
def _rotary_tile(X, Y, COS, SIN, b, h, n_heads, T, sx_b, sx_h, sx_t, s_cos, s_sin, half, head_dim,
                 INVERSE: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr):
    # a (BLOCK_T, head_dim) tile of one (batch, head) of X, written to the contiguous (B, n_heads, T, head_dim) Y.
    # Each dim d < 2*half reads its partner in the other half:
    #   out[d] = x[d] cos[f] + x[partner] sin'[f], sin' = -sin on the first half, +sin on the second.
    # Dims past 2*half pass through (cos 1, sin 0). The inverse rotation (the backward) flips the sign of sin.
    t = (tl.program_id(1) * BLOCK_T + tl.arange(0, BLOCK_T))[:, None]
    d = tl.arange(0, BLOCK_D)[None, :]
    row_ok = t < T
    first = d < half
    rotates = row_ok & (d < 2 * half)
    partner = tl.where(first, d + half, d - half)
    f = tl.where(first, d, d - half)
    xb = X + b * sx_b + h * sx_h + t * sx_t
    x = tl.load(xb + d, mask=row_ok & (d < head_dim), other=0.0).to(tl.float32)
    xp = tl.load(xb + partner, mask=rotates, other=0.0).to(tl.float32)
    c = tl.load(COS + t * s_cos + f, mask=rotates, other=1.0).to(tl.float32)
    s = tl.load(SIN + t * s_sin + f, mask=rotates, other=0.0).to(tl.float32)
    s = tl.where(first, -s, s)
    if INVERSE:
        s = -s
    y = x * c + xp * s
    tl.store(Y + ((b * n_heads + h) * T + t) * head_dim + d, y.to(Y.dtype.element_ty), mask=row_ok & (d < head_dim))


@jit
def _rotary_kernel(Q, K, COS, SIN, YQ, YK, n_q, n_k, T, sq_b, sq_h, sq_t, sk_b, sk_h, sk_t, s_cos, s_sin, half,
                   head_dim, INVERSE: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr):
    # q and k in one launch: axis 0 walks the n_q heads of q, then the n_k heads of k, of each batch row; every
    # program takes one branch, so the two tensors cost one launch and no program does both
    pid = tl.program_id(0)
    b = (pid // (n_q + n_k)).to(tl.int64)
    h = (pid % (n_q + n_k)).to(tl.int64)
    if h < n_q:
        _rotary_tile(Q, YQ, COS, SIN, b, h, n_q, T, sq_b, sq_h, sq_t, s_cos, s_sin, half, head_dim,
                     INVERSE, BLOCK_T, BLOCK_D)
    else:
        _rotary_tile(K, YK, COS, SIN, b, h - n_q, n_k, T, sk_b, sk_h, sk_t, s_cos, s_sin, half, head_dim,
                     INVERSE, BLOCK_T, BLOCK_D)


@torch.library.custom_op('nanocpt::rotary', mutates_args=())
def _rotary_op(q: Tensor, k: Tensor, cos: Tensor, sin: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
    """q (B, Hq, T, hd) and k (B, Hk, T, hd), any strides but the last, rotated by one kernel launch."""
    B, Hq, T, hd = q.shape
    if k.shape[0] != B or k.shape[2:] != q.shape[2:] or k.dtype != q.dtype:
        raise ValueError(f"rotary: q {tuple(q.shape)} {q.dtype} and k {tuple(k.shape)} {k.dtype} must share batch, "
                         "sequence, head_dim and dtype")
    q, k = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k))
    yq, yk = torch.empty(q.shape, dtype=q.dtype, device=q.device), torch.empty(k.shape, dtype=k.dtype, device=k.device)
    Hk = k.shape[1]
    block_d = triton.next_power_of_2(hd)
    block_t = min(triton.next_power_of_2(T), max(1, 2048 // block_d))
    _launch('rotary', _rotary_kernel, (B * (Hq + Hk), triton.cdiv(T, block_t)),
            q, k, cos, sin, yq, yk, Hq, Hk, T, *q.stride()[:3], *k.stride()[:3], cos.stride(0), sin.stride(0),
            cos.shape[-1], hd, INVERSE=inverse, BLOCK_T=block_t, BLOCK_D=block_d)
    return yq, yk


@_rotary_op.register_fake
def _(q, k, cos, sin, inverse):
    return q.new_empty(q.shape), k.new_empty(k.shape)


def _rotary_setup(ctx, inputs, output):
    q, k, cos, sin, inverse = inputs
    ctx.save_for_backward(cos, sin)
    ctx.inverse = inverse


def _rotary_backward(ctx, dq, dk):
    cos, sin = ctx.saved_tensors  # a rotation's gradient is the inverse rotation; cos/sin are tables, no grad
    return *_rotary_op(dq, dk, cos, sin, not ctx.inverse), None, None, None


_rotary_op.register_autograd(_rotary_backward, setup_context=_rotary_setup)


# ----------------------------------------------------------------------------------------------------------------
# MLP activations: GELU (tanh or exact) and SwiGLU. Backward recomputes from the saved input (no extra buffer).


def gelu_torch(x, approximate='tanh'):
    return F.gelu(x, approximate=approximate)


def swiglu_torch(gate, up):
    return F.silu(gate) * up


@jit
def _gelu_kernel(X, DY, Y, n, TANH: tl.constexpr, BACKWARD: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
    if TANH:  # 0.5 x (1 + tanh(k (x + 0.044715 x^3))), tanh from exp so the interpreter and every GPU agree
        k = 0.7978845608028654
        u = k * (x + 0.044715 * x * x * x)
        e = tl.exp(-2.0 * tl.abs(u))
        t = (1.0 - e) / (1.0 + e)
        t = tl.where(u < 0, -t, t)
        if BACKWARD:
            y = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x)
        else:
            y = 0.5 * x * (1.0 + t)
    else:  # 0.5 x (1 + erf(x / sqrt 2)); derivative Phi(x) + x phi(x)
        cdf = 0.5 * (1.0 + tl.math.erf(x * 0.7071067811865476))
        if BACKWARD:
            y = cdf + x * tl.exp(-0.5 * x * x) * 0.3989422804014327
        else:
            y = x * cdf
    if BACKWARD:
        y = y * tl.load(DY + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(Y + offs, y.to(Y.dtype.element_ty), mask=mask)


def _gelu_launch(x, dy, approximate):
    y = torch.empty_like(x)
    n = x.numel()
    backward = dy is not None
    _launch('gelu_bwd' if backward else 'gelu_fwd', _gelu_kernel, (triton.cdiv(n, 1024),),
            x, dy if backward else x, y, n, TANH=approximate == 'tanh', BACKWARD=backward, BLOCK=1024)
    return y


@torch.library.custom_op('nanocpt::gelu', mutates_args=())
def _gelu_op(x: Tensor, approximate: str) -> Tensor:
    return _gelu_launch(x, None, approximate)


@torch.library.custom_op('nanocpt::gelu_bwd', mutates_args=())
def _gelu_bwd_op(dy: Tensor, x: Tensor, approximate: str) -> Tensor:
    return _gelu_launch(x, dy, approximate)


_gelu_op.register_fake(lambda x, approximate: torch.empty_like(x))
_gelu_bwd_op.register_fake(lambda dy, x, approximate: torch.empty_like(x))


def _gelu_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])
    ctx.approximate = inputs[1]


def _gelu_backward(ctx, dy):
    return _gelu_bwd_op(dy.contiguous(), ctx.saved_tensors[0], ctx.approximate), None


_gelu_op.register_autograd(_gelu_backward, setup_context=_gelu_setup)


@jit
def _swiglu_kernel(G, U, DY, OUT, DU, n_cols, s_g, s_u, s_dy, BACKWARD: tl.constexpr, BLOCK: tl.constexpr):
    # gate and up are (rows, n_cols) with their own row strides: model.py's chunk() views are read without a copy.
    # Forward writes silu(g) u to OUT; backward writes dgate to OUT and dup to DU (both contiguous).
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < n_cols
    g = tl.load(G + row * s_g + cols, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(U + row * s_u + cols, mask=mask, other=0.0).to(tl.float32)
    sig = tl.sigmoid(g)
    if BACKWARD:
        dy = tl.load(DY + row * s_dy + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(OUT + row * n_cols + cols, (dy * u * sig * (1.0 + g * (1.0 - sig))).to(OUT.dtype.element_ty), mask=mask)
        tl.store(DU + row * n_cols + cols, (dy * g * sig).to(DU.dtype.element_ty), mask=mask)
    else:
        tl.store(OUT + row * n_cols + cols, (g * sig * u).to(OUT.dtype.element_ty), mask=mask)


def _swiglu_launch(gate, up, dy):
    N, C = gate.shape
    out = torch.empty(N, C, dtype=gate.dtype, device=gate.device)
    du = torch.empty_like(out) if dy is not None else out
    block = min(1024, triton.next_power_of_2(C))
    _launch('swiglu_bwd' if dy is not None else 'swiglu_fwd', _swiglu_kernel, (N, triton.cdiv(C, block)),
            gate, up, gate if dy is None else dy, out, du, C, gate.stride(0), up.stride(0),
            0 if dy is None else dy.stride(0), BACKWARD=dy is not None, BLOCK=block)
    return out, du


@torch.library.custom_op('nanocpt::swiglu', mutates_args=())
def _swiglu_op(gate: Tensor, up: Tensor) -> Tensor:
    return _swiglu_launch(gate, up, None)[0]


@torch.library.custom_op('nanocpt::swiglu_bwd', mutates_args=())
def _swiglu_bwd_op(dy: Tensor, gate: Tensor, up: Tensor) -> tuple[Tensor, Tensor]:
    return _swiglu_launch(gate, up, dy)


_swiglu_op.register_fake(lambda gate, up: gate.new_empty(gate.shape))
_swiglu_bwd_op.register_fake(lambda dy, gate, up: (gate.new_empty(gate.shape), gate.new_empty(gate.shape)))
_swiglu_op.register_autograd(
    lambda ctx, dy: _swiglu_bwd_op(dy.contiguous(), *ctx.saved_tensors),
    setup_context=lambda ctx, inputs, output: ctx.save_for_backward(*inputs))


def _rows(t):
    """(..., C) -> (rows, C) without a copy when the last dim is contiguous and the rest flatten (chunk views do)."""
    if t.stride(-1) != 1:
        t = t.contiguous()
    return t.reshape(-1, t.shape[-1])


# ----------------------------------------------------------------------------------------------------------------
# cross-entropy, and the LM head fused with it


def cross_entropy_torch(logits, targets, ignore_index=-1, n_valid=None):
    """Mean cross-entropy over targets != ignore_index; columns >= n_valid (vocab padding) never count."""
    logits = logits.float()
    if n_valid is not None and n_valid < logits.shape[-1]:
        logits = logits[..., :n_valid]
    return F.cross_entropy(logits, targets, ignore_index=ignore_index)


def linear_cross_entropy_torch(x, weight, targets, ignore_index=-1, n_valid=None):
    """cross_entropy(x @ weight.T): the LM head and the loss in one call (the fused kernel never holds the logits)."""
    return cross_entropy_torch(linear(x, weight), targets, ignore_index, n_valid)


CE_BLOCK = 4096  # vocab columns per step of the row loop (tests lower it to exercise several steps)


@jit
def _softmax_grad_row(logits, grad, lse, target, scale, n_cols, n_valid, BLOCK: tl.constexpr):
    # grad = (softmax - onehot(target)) * scale; padding columns (>= n_valid) get exactly 0.
    # grad may be the logits row itself: each block is read before it is written.
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        x = tl.load(logits + cols, mask=cols < n_valid, other=float('-inf')).to(tl.float32)
        g = (tl.exp(x - lse) - tl.where(cols == target, 1.0, 0.0)) * scale
        tl.store(grad + cols, g.to(grad.dtype.element_ty), mask=cols < n_cols)


@jit
def _cross_entropy_fwd_kernel(LOGITS, stride_l, TARGETS, LOSS, LSE, GRAD, stride_g, SCALE, n_cols, n_valid,
                              ignore_index, WRITE_GRAD: tl.constexpr, BLOCK: tl.constexpr):
    # one program per row: an online logsumexp over the valid columns (running max m, running sum d of exp(x - m)),
    # then loss = lse - x[target]; ignored rows lose 0. With WRITE_GRAD (the fused LM head) the gradient follows.
    row = tl.program_id(0).to(tl.int64)
    logits = LOGITS + row * stride_l
    target = tl.load(TARGETS + row)
    ignored = target == ignore_index
    m = float('-inf')
    d = 0.0
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        x = tl.load(logits + cols, mask=cols < n_valid, other=float('-inf')).to(tl.float32)
        m_new = tl.maximum(m, tl.max(x, axis=0))
        d = d * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
        m = m_new
    lse = m + tl.log(d)
    x_target = tl.load(logits + tl.where(ignored, 0, target)).to(tl.float32)
    tl.store(LOSS + row, tl.where(ignored, 0.0, lse - x_target))
    tl.store(LSE + row, lse)
    if WRITE_GRAD:
        # GRAD may be this very row: every thread must have read x[target] before any thread overwrites the block
        # that holds it (the interpreter runs one program at a time and cannot show this race)
        tl.debug_barrier()
        scale = tl.where(ignored, 0.0, tl.load(SCALE))
        _softmax_grad_row(logits, GRAD + row * stride_g, lse, target, scale, n_cols, n_valid, BLOCK)


@jit
def _cross_entropy_bwd_kernel(LOGITS, stride_l, TARGETS, LSE, GRAD, stride_g, SCALE, n_cols, n_valid, ignore_index,
                              BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    target = tl.load(TARGETS + row)
    scale = tl.where(target == ignore_index, 0.0, tl.load(SCALE))
    _softmax_grad_row(LOGITS + row * stride_l, GRAD + row * stride_g, tl.load(LSE + row), target, scale,
                      n_cols, n_valid, BLOCK)


def _ce_block(V):
    return min(CE_BLOCK, triton.next_power_of_2(V))


def _ce_forward(logits, targets, ignore_index, n_valid, grad=None, scale=None):
    """Per-row loss and logsumexp of logits (N, V); with grad (may be logits itself), also the scaled gradient."""
    N, V = logits.shape
    loss = torch.empty(N, dtype=torch.float32, device=logits.device)
    lse = torch.empty_like(loss)
    block = _ce_block(V)
    _launch('cross_entropy_fwd', _cross_entropy_fwd_kernel, (N,),
            logits, logits.stride(0), targets, loss, lse, logits if grad is None else grad,
            0 if grad is None else grad.stride(0), loss if scale is None else scale, V, n_valid, ignore_index,
            WRITE_GRAD=grad is not None, BLOCK=block, num_warps=_warps(block))
    return loss, lse


def _check_targets(targets, ignore_index, n_valid):
    """A target outside [0, n_valid) other than ignore_index would make the kernels read past their row: stop, as
    F.cross_entropy does, without a host sync (on CUDA a device-side assert, on CPU at once). Inside the custom ops,
    whose bodies run as they are under torch.compile too."""
    ok = ((targets >= 0) & (targets < n_valid)) | (targets == ignore_index)
    torch._assert_async(ok.all(), f"cross_entropy: a target is outside [0, {n_valid}) and is not "
                                  f"ignore_index={ignore_index}: the data's token ids exceed the model's vocab")


@torch.library.custom_op('nanocpt::cross_entropy', mutates_args=())
def _cross_entropy_op(logits: Tensor, targets: Tensor, ignore_index: int, n_valid: int) -> tuple[Tensor, Tensor]:
    _check_targets(targets, ignore_index, n_valid)
    loss, lse = _ce_forward(logits, targets, ignore_index, n_valid)
    return loss.sum() / (targets != ignore_index).sum(), lse  # all rows ignored: 0/0 = nan, as F.cross_entropy


@torch.library.custom_op('nanocpt::cross_entropy_bwd', mutates_args=())
def _cross_entropy_bwd_op(dloss: Tensor, logits: Tensor, targets: Tensor, lse: Tensor, ignore_index: int,
                          n_valid: int) -> Tensor:
    N, V = logits.shape
    grad = torch.empty_like(logits)
    scale = (dloss.float() / (targets != ignore_index).sum().clamp(min=1)).reshape(1)  # on device: no sync
    block = _ce_block(V)
    _launch('cross_entropy_bwd', _cross_entropy_bwd_kernel, (N,),
            logits, logits.stride(0), targets, lse, grad, grad.stride(0), scale, V, n_valid, ignore_index,
            BLOCK=block, num_warps=_warps(block))
    return grad


_cross_entropy_op.register_fake(
    lambda logits, targets, ignore_index, n_valid: (logits.new_empty((), dtype=torch.float32),
                                                    logits.new_empty(logits.shape[0], dtype=torch.float32)))
_cross_entropy_bwd_op.register_fake(lambda dloss, logits, targets, lse, ignore_index, n_valid: torch.empty_like(logits))


def _ce_setup(ctx, inputs, output):
    logits, targets, ignore_index, n_valid = inputs
    ctx.save_for_backward(logits, targets, output[1])
    ctx.ignore_index, ctx.n_valid = ignore_index, n_valid


def _ce_backward(ctx, dloss, dlse):
    logits, targets, lse = ctx.saved_tensors
    return _cross_entropy_bwd_op(dloss, logits, targets, lse, ctx.ignore_index, ctx.n_valid), None, None, None


_cross_entropy_op.register_autograd(_ce_backward, setup_context=_ce_setup)


@functools.lru_cache(maxsize=None)
def _fp32_addmm(device):
    """Whether torch.addmm here takes bf16 matrices, an fp32 `self` and out_dtype=float32 (CUDA, in a torch that
    has pytorch#167931, late 2025; never the CPU). Tried once per device on small integers (exact in any precision,
    and no random draw to shift anyone's seed), so an older torch falls back to a per-chunk temporary instead of
    failing. gpu_check.sh reports which path ran."""
    if device.type != 'cuda':
        return False
    a = (torch.arange(64 * 32, device=device) % 7 - 3).view(64, 32).to(torch.bfloat16)
    b = (torch.arange(32 * 48, device=device) % 5 - 2).view(32, 48).to(torch.bfloat16)
    acc = torch.full((64, 48), 0.5, device=device)
    try:
        torch.addmm(acc, a, b, out_dtype=torch.float32, out=acc)
    except (RuntimeError, TypeError):  # NotImplementedError is a RuntimeError
        return False
    return bool(torch.allclose(acc, 0.5 + a.float() @ b.float()))


LCE_MEMORY_FRACTION = 1 / 64  # of the device's memory, for one chunk's logits in the fused LM head


def _lce_chunk(N, V, itemsize, device):
    """Tokens per chunk of the fused LM head: the most whose logits (chunk x V, x's dtype) fit in
    LCE_MEMORY_FRACTION of the device's memory (1.2 GB of an 80 GB card: 8192 tokens at V 50304 in bf16), a power of
    two, no more than N needs. Fewer chunks move less: each one reads and writes the fp32 weight grad (206 MB at the
    405M), so Liger-Kernel's ~N*C/V tokens (512 at the 405M: 32 chunks) moved ~13 GB a micro-step. Without CUDA
    (the interpreter) a 16 GiB device is assumed."""
    total = torch.cuda.get_device_properties(device).total_memory if device.type == 'cuda' else 16 * 2**30
    fits = max(1, int(total * LCE_MEMORY_FRACTION) // (V * itemsize))
    return min(triton.next_power_of_2(N), 1 << (fits.bit_length() - 1))


@torch.library.custom_op('nanocpt::linear_cross_entropy', mutates_args=())
def _linear_cross_entropy_op(x: Tensor, weight: Tensor, targets: Tensor, ignore_index: int, n_valid: int,
                             need_dx: bool, need_dw: bool, chunk: int) -> tuple[Tensor, Tensor, Tensor]:
    """Mean loss and, when asked, its gradients for x and weight (for a loss grad of 1), chunk tokens at a time.
    The matmuls run in x's dtype; weight's grad is summed over the chunks in fp32 and returned in weight's dtype."""
    N, C = x.shape
    _check_targets(targets, ignore_index, n_valid)
    w = weight.to(x.dtype)  # under autocast: fp32 master weights, bf16 matmuls (as F.linear would do)
    chunk = chunk or _lce_chunk(N, weight.shape[0], x.element_size(), x.device)
    n_tokens = (targets != ignore_index).sum()
    scale = (1.0 / n_tokens.clamp(min=1).float()).reshape(1)
    losses = torch.empty(N, dtype=torch.float32, device=x.device)
    dx = torch.empty_like(x) if need_dx else x.new_empty(0)
    dw = torch.zeros(weight.shape, dtype=torch.float32, device=x.device) if need_dw else x.new_empty(0)
    for s in range(0, N, chunk):
        xc, tc = x[s:s + chunk], targets[s:s + chunk]
        logits = xc @ w.t()  # (chunk, V); the only logits ever held
        write_grad = need_dx or need_dw
        losses[s:s + chunk] = _ce_forward(logits, tc, ignore_index, n_valid,
                                          grad=logits if write_grad else None, scale=scale)[0]
        # logits now holds dloss/dlogits for this chunk
        if need_dx:
            torch.mm(logits, w, out=dx[s:s + chunk])
        if need_dw:
            if logits.dtype == torch.float32:
                dw.addmm_(logits.t(), xc)
            elif _fp32_addmm(x.device):  # the bf16 matmul adds into the fp32 sum in cuBLAS: no V x C temporary
                torch.addmm(dw, logits.t(), xc, out_dtype=torch.float32, out=dw)
            else:  # a bf16 V x C product per chunk, then added into the fp32 sum (the in-place add converts)
                dw += logits.t() @ xc
    return losses.sum() / n_tokens, dx, (dw.to(weight.dtype) if need_dw else dw)


@_linear_cross_entropy_op.register_fake
def _(x, weight, targets, ignore_index, n_valid, need_dx, need_dw, chunk):
    return (x.new_empty((), dtype=torch.float32), torch.empty_like(x) if need_dx else x.new_empty(0),
            torch.empty_like(weight) if need_dw else x.new_empty(0))


def _lce_setup(ctx, inputs, output):
    ctx.need_dx, ctx.need_dw = inputs[5], inputs[6]
    ctx.save_for_backward(output[1], output[2])
    ctx.set_materialize_grads(False)  # the unused dx and dw outputs get None as their grads, not zero-filled copies
    ctx.scaled = False


def _lce_backward(ctx, dloss, _ddx, _ddw):
    """The forward made the gradients for a loss grad of 1; scale them by dloss in place (no second 206 MB weight
    grad at the 405M), dw in fp32 (dloss is not rounded to bf16 first). In place means once: a second backward
    through the same graph (retain_graph=True) would scale them twice, so it stops instead."""
    if ctx.scaled:
        raise RuntimeError("linear_cross_entropy: a second backward through one forward (retain_graph=True) is not "
                           "supported: its gradients are scaled in place; run the forward again")
    ctx.scaled = True
    dx, dw = ctx.saved_tensors
    if dloss is None:  # the loss itself was not used
        return None, None, None, None, None, None, None, None
    dx = dx.mul_(dloss) if ctx.need_dx else None
    dw = dw.mul_(dloss) if ctx.need_dw else None
    return dx, dw, None, None, None, None, None, None


_linear_cross_entropy_op.register_autograd(_lce_backward, setup_context=_lce_setup)


def _linear_cross_entropy_triton(x, weight, targets, ignore_index=-1, n_valid=None, chunk=0):
    _require_triton(x)
    dev = x.device.type
    if torch.is_autocast_enabled(dev):  # F.linear would multiply in the autocast dtype: the op follows x's dtype
        x = x.to(torch.get_autocast_dtype(dev))
    grad = torch.is_grad_enabled()  # make grads in the forward only when a backward can come
    loss, _, _ = _linear_cross_entropy_op(
        x.contiguous(), weight.contiguous(), targets.contiguous(), ignore_index,
        weight.shape[0] if n_valid is None else min(n_valid, weight.shape[0]), grad and x.requires_grad,
        grad and weight.requires_grad, chunk)
    return loss


# ----------------------------------------------------------------------------------------------------------------
# CPU: the matmuls, the attention and the loss, each by the faster of two calls on the CPU at hand (measured)

# Neither choice is a rule of thumb: CPUs disagree. fp32 matmuls: torch sends them to MKL's sgemm, which on AMD's
# Zen 5 took a generic path (~100 GFLOP/s per core, where oneDNN's fp32 matmul, the library torch already uses for
# bf16, reached ~240, with the same IEEE fp32 arithmetic), on a Zen 3 without AVX-512 runs level with oneDNN, and on
# Intel is MKL's home ground. bf16 attention: SDPA's CPU flash kernel ran 2-4x slower on the Zen 5 (forward +
# backward, T 128-256) than the plain formula with bf16 matmuls and an fp32 softmax; with Intel's AMX it need not.
# So choose_cpu_paths() times both calls of a pair on the run's own shapes, once per CPU, torch version, thread
# count, dtype and shape, and keeps the answer in .cache/cpu_paths.json (docs/performance.md). Until it has run
# (tests, a model used outside train.py) the plain calls run: F.linear, SDPA and F.cross_entropy.
CPU_PATHS = {'linear': 'torch', 'attention': 'sdpa', 'loss': 'torch'}  # the plain call of each pair first
CPU_CHOICES = {'linear': ('torch', 'onednn'), 'attention': ('sdpa', 'matmul'), 'loss': ('torch', 'fused')}
PROBE_MARGIN = 1.1   # a fast path replaces the plain call only when it measures at least 10% faster
PROBE_REPS = 5       # timed calls per candidate, alternating, after one untimed call each; the median counts
CPU_PATHS_CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), '.cache', 'cpu_paths.json')
# oneDNN's linear op (torch.ops.mkldnn), in every CPU build of torch that has oneDNN
_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, '_linear_pointwise')


# A custom op keeps the call opaque to torch.compile (inductor has no lowering for oneDNN's op outside inference
# graphs).
@torch.library.custom_op('nanocpt::onednn_mm_t', mutates_args=())
def _onednn_mm_t(a: Tensor, b: Tensor, bias: Optional[Tensor]) -> Tensor:
    """a (M, K) @ b (N, K).T (+ bias), strided inputs read without a copy."""
    return torch.ops.mkldnn._linear_pointwise(a, b, bias, 'none', [], '')


_onednn_mm_t.register_fake(lambda a, b, bias: a.new_empty(a.shape[0], b.shape[0]))


@torch.library.custom_op('nanocpt::onednn_linear', mutates_args=())
def _onednn_linear(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    return _onednn_mm_t(x.reshape(-1, x.shape[-1]), weight, bias).view(*x.shape[:-1], weight.shape[0])


_onednn_linear.register_fake(lambda x, weight, bias: x.new_empty(*x.shape[:-1], weight.shape[0]))


def _onednn_linear_setup(ctx, inputs, output):
    x, weight, bias = inputs
    ctx.save_for_backward(x, weight)
    ctx.has_bias = bias is not None


def _onednn_weight_grad(dy, x):
    """dy.T @ x for dy (M, N), x (M, K). oneDNN's op copies its first operand to a contiguous one, here a
    transposed (N, M) activation: when that is the bigger copy, make x.T @ dy instead and transpose the result."""
    (M, N), K = dy.shape, x.shape[1]
    if N * M <= K * M + N * K:
        return _onednn_mm_t(dy.t(), x.t(), None)
    return _onednn_mm_t(x.t(), dy.t(), None).t().contiguous()


def _onednn_linear_backward(ctx, dy):
    x, weight = ctx.saved_tensors
    dy2, x2 = dy.reshape(-1, dy.shape[-1]), x.reshape(-1, x.shape[-1])
    dx = _onednn_mm_t(dy2, weight.t(), None).view(x.shape) if ctx.needs_input_grad[0] else None  # dy @ W
    dw = _onednn_weight_grad(dy2, x2) if ctx.needs_input_grad[1] else None                       # dy.T @ x
    return dx, dw, (dy2.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None)


_onednn_linear.register_autograd(_onednn_linear_backward, setup_context=_onednn_linear_setup)


def linear(x, weight, bias=None):
    """F.linear; on CPU in fp32 through oneDNN (above) where choose_cpu_paths() measured it faster. Under autocast
    F.linear multiplies in bf16 with oneDNN already, and on other devices it is the right call as it is."""
    if (CPU_PATHS['linear'] == 'onednn' and x.device.type == 'cpu' and x.dtype == weight.dtype == torch.float32
            and not torch.is_autocast_enabled('cpu')):
        return _onednn_linear(x, weight, bias)
    return F.linear(x, weight, bias)


def attention_matmul(q, k, v, dropout_p=0.0):
    """Causal attention as its formula: matmuls (bf16 ones under autocast) and an fp32 softmax. Slower than SDPA's
    flash kernel on a GPU; on a CPU, at short sequences, inductor fuses its scale, mask and softmax and it can win."""
    T = q.shape[-2]
    mask = torch.full((T, T), float('-inf'), device=q.device).triu(1)
    att = (q @ k.transpose(-2, -1)).float() * (1.0 / math.sqrt(q.shape[-1])) + mask
    att = torch.softmax(att, dim=-1).to(q.dtype)
    if dropout_p:
        att = F.dropout(att, dropout_p)
    return att @ v


def causal_attention(q, k, v, dropout_p=0.0):
    """softmax(q k^T / sqrt(hd), causal) v for q, k, v (B, H, T, hd): F.scaled_dot_product_attention, or on a CPU
    where choose_cpu_paths() measured it faster, attention_matmul."""
    if q.device.type == 'cpu' and CPU_PATHS['attention'] == 'matmul':
        return attention_matmul(q, k, v, dropout_p)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)


# The loss: F.cross_entropy computes log_softmax in the forward (an exp per logit) and its gradient in the
# backward (another exp per logit, after zero-filling a one-hot). On a CPU the exp is most of the loss's time
# (AVX2: ~1 ns a logit; the demo's 4096 x 1024 logits are 4M of them), so the fused call makes the gradient in the
# forward from one softmax (ATen's kernel: max, exp and sum in one vectorised pass) and keeps it for the backward,
# where F.cross_entropy keeps the log-probabilities (fp32, 4096 x 1024, one thread, AVX2-only EPYC: 1.5-2x). Past
# the softmax it touches only one logit a row: the loss is -log p[target], and the gradient's 1/n and the loss's
# grad are applied in the backward's one pass over the logits, which the backward makes anyway.
@torch.library.custom_op('nanocpt::softmax_cross_entropy_cpu', mutates_args=())
def _cross_entropy_cpu(logits: Tensor, targets: Tensor, ignore_index: int, n_valid: int
                       ) -> tuple[Tensor, Tensor, Tensor]:
    """The mean cross-entropy of fp32 logits (N, V) over targets != ignore_index, columns >= n_valid left out; and
    for the backward, softmax - onehot (N, n_valid) and each row's weight in the mean (1/n, 0 where ignored)."""
    N, V = logits.shape
    x = logits[:, :n_valid]
    p = torch.softmax(x, 1)
    keep = targets != ignore_index
    rows, t = torch.arange(N, device=logits.device), torch.where(keep, targets, 0)
    weight = keep / keep.sum()
    p_t = p[rows, t]
    nll = -p_t.log()
    tiny = p_t < 1e-30  # an underflowed softmax (a target hundreds of nats down): those rows' exact logsumexp
    if tiny.any():
        r = tiny.nonzero().squeeze(1)
        nll[r] = torch.logsumexp(x[r], 1) - x[r, t[r]]
    p[rows, t] -= 1
    return (nll * weight).sum(), p, weight


_cross_entropy_cpu.register_fake(lambda logits, targets, ignore_index, n_valid: (
    logits.new_empty(()), logits.new_empty(logits.shape[0], n_valid), logits.new_empty(logits.shape[0])))


def _cross_entropy_cpu_setup(ctx, inputs, output):
    ctx.V = inputs[0].shape[1]
    ctx.save_for_backward(output[1], output[2])


def _cross_entropy_cpu_backward(ctx, dloss, dgrad, dweight):
    grad, weight = ctx.saved_tensors
    grad = grad * (weight * dloss)[:, None]
    if grad.shape[1] < ctx.V:
        grad = F.pad(grad, (0, ctx.V - grad.shape[1]))  # the vocab's padding columns: no gradient
    return grad, None, None, None


_cross_entropy_cpu.register_autograd(_cross_entropy_cpu_backward, setup_context=_cross_entropy_cpu_setup)


def format_cpu_paths(paths):
    return ','.join(f"{k}={v}" for k, v in paths.items())


def parse_cpu_paths(spec):
    """'linear=onednn,attention=matmul' -> {'linear': 'onednn', 'attention': 'matmul'}; pairs left out keep the
    plain call. A wrong name stops with one line that lists the right ones."""
    paths = {k: v[0] for k, v in CPU_CHOICES.items()}
    for item in filter(None, (i.strip() for i in spec.split(','))):
        k, _, v = item.partition('=')
        if k not in CPU_CHOICES or v not in CPU_CHOICES[k]:
            raise ValueError(f"cpu_paths={spec!r}: {item!r} is not one of "
                             + ', '.join(f"{k}={c}" for k, cs in CPU_CHOICES.items() for c in cs)
                             + " ('auto': measure them on this CPU)")
        paths[k] = v
    if paths['linear'] == 'onednn' and not _ONEDNN:
        raise ValueError(f"cpu_paths={spec!r}: this torch has no oneDNN linear; use linear=torch")
    return paths


def cpu_name():
    """The CPU's model and the instruction sets torch's kernels use on it (under a hypervisor one model name, 'AMD
    EPYC', covers a Zen 3 with AVX2 and a Zen 5 with AVX-512 BF16), e.g. 'AMD EPYC (AVX2)'."""
    info = {}
    if os.path.exists('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            for line in iter(f.readline, '\n'):  # the first processor's block
                k, _, v = line.partition(':')
                info[k.strip()] = v.strip()
    model = info.get('model name') or platform.processor() or platform.machine()
    flags = set(info.get('flags', '').split())
    isa = torch.backends.cpu.get_cpu_capability() + ''.join(f"+{f}" for f in ('avx512_bf16', 'amx_bf16')
                                                             if f in flags)
    return f"{model} ({isa})"


def _median_times(candidates, reps=PROBE_REPS):
    """{name: median seconds} of each call, alternating between them so a slow spell hits every one alike. The
    seconds are this process's CPU time, not the wall clock's: another process on the machine (the other run of
    `make demo`, a compiler) takes the core away without adding to it."""
    for fn in candidates.values():
        fn()  # untimed: compilation, first-call allocations, oneDNN's primitive cache
    times = {name: [] for name in candidates}
    for _ in range(reps):
        for name, fn in candidates.items():
            t0 = time.process_time()
            fn()
            times[name].append(time.process_time() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def _probe(pair, shape, dtype, compiled):
    """Median seconds of each call of a pair, forward and backward, on the run's shape: linear, a list of (tokens,
    in, out) in fp32; loss, the LM head's fp32 logits (tokens, vocab); attention, (B, H, T, head_dim) in the run's
    dtype. compiled: each call through torch.compile, as the run will make it (inductor fuses the plain calls'
    neighbours differently; the custom ops it leaves alone)."""
    gen = torch.Generator().manual_seed(0)

    def rand(*size, dt=torch.float32):
        return torch.randn(*size, generator=gen).to(dt)
    if pair == 'linear':
        args = [(rand(m, k).requires_grad_(), rand(n, k).requires_grad_()) for m, k, n in shape]
        grads = [rand(m, n) for m, k, n in shape]
        calls = {'torch': F.linear, 'onednn': lambda x, w: _onednn_linear(x, w, None)}
        compiled = False  # inductor leaves both to their library (MKL, oneDNN): as fast eager
    elif pair == 'loss':
        args = [(rand(*shape).requires_grad_(), torch.randint(0, shape[1], shape[:1], generator=gen))]
        calls = {'torch': cross_entropy_torch, 'fused': lambda x, t: _cross_entropy_cpu(x, t, -1, x.shape[1])[0]}
        grads = [None]
    else:
        dt = getattr(torch, dtype)
        args = [tuple(rand(*shape, dt=dt).requires_grad_() for _ in range(3))]
        calls = {'sdpa': lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                 'matmul': attention_matmul}
        grads = [rand(*shape, dt=dt)]

    def step(fn):
        for a, dy in zip(args, grads):
            torch.autograd.backward(fn(*a), dy)
    return _median_times({name: functools.partial(step, torch.compile(fn, dynamic=False) if compiled else fn)
                          for name, fn in calls.items()})


def choose_cpu_paths(spec, dtype, compiled, shapes):
    """Sets CPU_PATHS and returns them as a string: spec itself ('linear=onednn,loss=fused'), or with spec='auto'
    the faster call of each pair this run uses, measured on shapes ({pair: shape}, see _probe) as the run will
    call it (compiled or not): the linears in fp32 (autocast sends them to oneDNN in bf16 anyway), the attention
    and the loss always. A choice is measured once (_probe: well under a second eager, a few seconds of compiling)
    per cpu_name(), torch version, thread count, dtype, compilation and shape, then read from CPU_PATHS_CACHE; the
    new call must win by PROBE_MARGIN, so a near tie keeps the plain one."""
    if spec != 'auto':
        CPU_PATHS.update(parse_cpu_paths(spec))
        return format_cpu_paths(CPU_PATHS)
    paths = parse_cpu_paths('')  # the plain calls, for the pairs this run does not use
    pairs = ['attention', 'loss'] + (['linear'] if dtype == 'float32' and _ONEDNN else [])
    os.makedirs(os.path.dirname(CPU_PATHS_CACHE), exist_ok=True)
    with open(CPU_PATHS_CACHE + '.lock', 'w') as lock:
        # runs that start together (make demo's two lanes) measure one at a time: the first measures on a quiet
        # machine, the others wait and read its answer, so they all take the same calls
        fcntl.flock(lock, fcntl.LOCK_EX)
        cache = {}
        if os.path.exists(CPU_PATHS_CACHE):
            try:
                with open(CPU_PATHS_CACHE) as f:
                    cache = json.load(f)
            except (OSError, ValueError):
                cache = {}  # unreadable: measure again and write it anew
        machine = f"{cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
        for pair in pairs:
            key = f"{machine} | {dtype}{', compiled' if compiled else ''} | {pair} {shapes[pair]}"
            if key not in cache:
                times = _probe(pair, shapes[pair], dtype, compiled)
                plain, new = CPU_CHOICES[pair]
                cache[key] = {'choice': new if times[plain] >= PROBE_MARGIN * times[new] else plain,
                              'ms': {k: round(1e3 * t, 3) for k, t in times.items()}}
                runtime.write_json(CPU_PATHS_CACHE, cache)
            paths[pair] = cache[key]['choice']
    CPU_PATHS.update(paths)
    return format_cpu_paths(CPU_PATHS)


# ----------------------------------------------------------------------------------------------------------------
# dispatch: model.py calls these


def layer_norm(x, weight, bias, eps=1e-5, triton=False):
    return _norm_triton(x, weight, bias, eps, rms=False) if triton else layer_norm_torch(x, weight, bias, eps)


def rms_norm(x, weight, eps=1e-5, triton=False):
    return _norm_triton(x, weight, None, eps, rms=True) if triton else rms_norm_torch(x, weight, eps)


def rotary(q, k, cos, sin, triton=False):
    """q and k rotated by the same tables: (q', k'). The kernel takes both in one launch (and one in backward)."""
    if not triton:
        return rotary_torch(q, cos, sin), rotary_torch(k, cos, sin)
    _require_triton(q)
    return _rotary_op(q, k, cos.contiguous(), sin.contiguous(), False)  # cos/sin are tables: they get no grad


def gelu(x, approximate='tanh', triton=False):
    if not triton:
        return gelu_torch(x, approximate)
    _require_triton(x)
    return _gelu_op(x.contiguous(), approximate)


def swiglu(gate, up, triton=False):
    if not triton:
        return swiglu_torch(gate, up)
    _require_triton(gate)
    return _swiglu_op(_rows(gate), _rows(up)).view(gate.shape)


def cross_entropy(logits, targets, ignore_index=-1, n_valid=None, triton=False):
    # on a CPU, in training, the fused loss (one exp a logit, not two); evaluation needs no gradient
    fused = CPU_PATHS['loss'] == 'fused' and logits.device.type == 'cpu' and torch.is_grad_enabled()
    if not triton and not fused:
        return cross_entropy_torch(logits, targets, ignore_index, n_valid)
    V = logits.shape[-1]
    n_valid = V if n_valid is None else min(n_valid, V)
    if not triton:
        return _cross_entropy_cpu(_rows(logits.float()), targets.reshape(-1), ignore_index, n_valid)[0]
    _require_triton(logits)
    loss, _ = _cross_entropy_op(_rows(logits), targets.reshape(-1).contiguous(), ignore_index, n_valid)
    return loss


def linear_cross_entropy(x, weight, targets, ignore_index=-1, n_valid=None, triton=False):
    if triton:
        return _linear_cross_entropy_triton(x, weight, targets, ignore_index, n_valid)
    return cross_entropy(linear(x, weight), targets, ignore_index, n_valid)  # the twin, or the CPU's fused loss
