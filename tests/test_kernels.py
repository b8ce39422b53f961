"""
Every Triton kernel in kernels.py against its torch twin: forward, input grads and weight grads.

Without a GPU the kernels run in Triton's CPU interpreter (tests/conftest.py sets TRITON_INTERPRET=1 before kernels
is imported), which is slow: shapes stay small, but odd (widths and row counts that are not powers of two, a vocab
that is not a multiple of the kernel's block, vocab padding, ignored targets). Every test runs in fp32 at tight
tolerance and in bf16 at bf16 tolerance (the kernels use no tl.dot, so bf16 is exact in the interpreter too).
torch.compile is checked with aot_eager everywhere (one graph, our ops inside) and with inductor on CUDA.
The launch paths of real shapes are covered too: norm backward programs that loop over many rows (the program count
is patched down: a GPU launches 2 per SM), LayerNorm/RMSNorm at n_embd 4608 (the 10B), rotary at head_dim 128, and
cross-entropy and the fused LM head with the default vocab block over V = 50304.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import kernels

ROOT = Path(__file__).resolve().parents[1]
CUDA = torch.cuda.is_available()
DEV = 'cuda' if CUDA else 'cpu'
needs_cuda = pytest.mark.skipif(not CUDA, reason="inductor-compiled Triton kernels need a CUDA device")
DTYPES = [torch.float32, torch.bfloat16]
# (atol, rtol) of the kernel in `dtype` against the twin run in fp32 on the same (rounded) inputs
TOL = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (3e-2, 3e-2)}


@pytest.fixture
def launches():
    """The launch counter, emptied: a test reads it to prove the Triton path ran (no silent fallback)."""
    kernels.LAUNCHES.clear()
    return kernels.LAUNCHES


def leaf(*shape, dtype=torch.float32, scale=1.0):
    return (torch.randn(*shape, device=DEV) * scale).to(dtype).requires_grad_()


def check(fn, inputs, dtype, grad_out=None):
    """Run fn(*inputs, triton=True) in dtype and the twin in fp32 on the same values; compare output(s) and grads."""
    torch.manual_seed(1)
    ref_inputs = [t.detach().float().requires_grad_(t.requires_grad) if torch.is_tensor(t) and t.is_floating_point()
                  else t for t in inputs]
    outs, refs = fn(*inputs, triton=True), fn(*ref_inputs, triton=False)
    outs, refs = (o if isinstance(o, tuple) else (o,) for o in (outs, refs))  # rotary gives (q, k)
    atol, rtol = TOL[dtype]
    for out, ref in zip(outs, refs, strict=True):
        assert out.dtype == (torch.float32 if out.dim() == 0 else dtype)
        torch.testing.assert_close(out.float(), ref, atol=atol, rtol=rtol)
    gs = [torch.randn_like(ref) for ref in refs] if grad_out is None else [grad_out]
    wrt = [t for t in inputs if torch.is_tensor(t) and t.requires_grad]
    ref_wrt = [t for t in ref_inputs if torch.is_tensor(t) and t.requires_grad]
    grads = torch.autograd.grad(outs, wrt, [g.to(out.dtype) for g, out in zip(gs, outs)])
    ref_grads = torch.autograd.grad(refs, ref_wrt, gs)
    for name, a, b in zip(range(len(grads)), grads, ref_grads):
        assert a.dtype == wrt[name].dtype and a.shape == wrt[name].shape
        torch.testing.assert_close(a.float(), b, atol=atol * 4, rtol=rtol, msg=lambda m: f"grad of input {name}: {m}")
    return grads


# ----------------------------------------------------------------------------------------------------------------
# norms


@pytest.fixture
def grids(monkeypatch):
    """Three backward programs for the norms whatever the device (a GPU's count, 2 per SM, exceeds any test's
    rows), so every program walks several rows; returns the (kernel, grid) of each launch to prove it."""
    monkeypatch.setattr(kernels, '_n_programs', lambda device: 3)
    seen, launch = [], kernels._launch

    def spy(name, kernel, grid, *args, **meta):
        seen.append((name, grid))
        return launch(name, kernel, grid, *args, **meta)

    monkeypatch.setattr(kernels, '_launch', spy)
    return seen


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('shape', [(3, 5, 37), (6, 64), (11, 4608)])  # 4608: the 10B's n_embd, an 8192 block
@pytest.mark.parametrize('kind', ['layernorm', 'layernorm-nobias', 'rmsnorm'])
def test_norms(kind, shape, dtype, launches, grids):
    C = shape[-1]
    x = leaf(*shape, dtype=dtype, scale=3.0)
    w = (1 + 0.1 * torch.randn(C, device=DEV)).requires_grad_()
    if kind == 'rmsnorm':
        check(lambda x, w, triton: kernels.rms_norm(x, w, 1e-5, triton=triton), [x, w], dtype)
        assert launches['rms_norm_fwd'] == 1 and launches['rms_norm_bwd'] == 1
    else:
        b = (0.1 * torch.randn(C, device=DEV)).requires_grad_() if kind == 'layernorm' else None
        inputs = [x, w] + ([b] if b is not None else [])
        if dtype != torch.float32:  # F.layer_norm (the twin) wants one dtype; the kernel takes bf16 x, fp32 weights
            inputs = [x] + [t.detach().to(dtype).requires_grad_() for t in inputs[1:]]
        check(lambda x, w, b=None, triton=False: kernels.layer_norm(x, w, b, 1e-5, triton=triton), inputs, dtype)
        assert launches['layer_norm_fwd'] == 1 and launches['layer_norm_bwd'] == 1
    rows = x.numel() // C
    assert [g for n, g in grids if n.endswith('_bwd')] == [(3,)] and rows > 3  # each program looped over rows


def test_norm_rows_split_over_programs(grids):
    # a row count that does not divide evenly among the programs: 8, 8 and 7 rows
    x, w, b = leaf(23, 40), leaf(40), leaf(40)
    check(lambda x, w, b, triton: kernels.layer_norm(x, w, b, 1e-5, triton=triton), [x, w, b], torch.float32)
    assert ('layer_norm_bwd', (3,)) in grids


@pytest.mark.parametrize('kind', ['layernorm', 'rmsnorm'])
def test_norm_writes_the_autocast_dtype(kind, launches):
    """Under autocast the norm writes the autocast dtype itself: its readers are matmuls that would cast an fp32
    output anyway, and inductor cannot fuse that cast into our op (issue 23). Statistics stay fp32, dx keeps x's
    fp32, the weight grads their fp32; the values are the twin's in fp32, rounded once."""
    C = 37
    x = leaf(5, 3, C, scale=3.0)  # the residual stream: fp32 under autocast
    w = (1 + 0.1 * torch.randn(C, device=DEV)).requires_grad_()
    b = (0.1 * torch.randn(C, device=DEV)).requires_grad_() if kind == 'layernorm' else None
    params = [w] + ([b] if b is not None else [])

    def norm(x, *p, triton):
        return (kernels.rms_norm(x, *p, 1e-5, triton=triton) if kind == 'rmsnorm' else
                kernels.layer_norm(x, *p, 1e-5, triton=triton))

    with torch.autocast(DEV, dtype=torch.bfloat16):
        y = norm(x, *params, triton=True)
        y_twin = norm(x, *params, triton=False)  # the twin leaves the cast to the next op
    assert y.dtype == torch.bfloat16 and y_twin.dtype == torch.float32
    torch.testing.assert_close(y.float(), y_twin, **dict(zip(('atol', 'rtol'), TOL[torch.bfloat16])))
    # the bf16 grad a matmul hands back; the twin gets the same values in fp32 (what autocast's cast passes on)
    g = torch.randn(y.shape, device=DEV).to(torch.bfloat16)
    grads = torch.autograd.grad(y, [x, *params], g)
    ref_grads = torch.autograd.grad(y_twin, [x, *params], g.float())
    for a, r in zip(grads, ref_grads):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, r, atol=1e-4, rtol=1e-4)
    name = 'rms_norm' if kind == 'rmsnorm' else 'layer_norm'
    assert launches[f'{name}_fwd'] == 1 and launches[f'{name}_bwd'] == 1
    with torch.autocast(DEV, dtype=torch.bfloat16, enabled=False):  # outside autocast: x's dtype, as before
        assert norm(x, *params, triton=True).dtype == torch.float32


@pytest.mark.parametrize('bias', [True, False])
def test_norm_fake_agrees_with_the_kernel(bias):
    # the output dtype is picked outside the op and passed in, so the fake implementation (what torch.compile
    # traces) gives the dtype the kernel writes; opcheck compares them, and the autograd formula
    x, w = leaf(4, 40), leaf(40)
    b, rms = (leaf(40), False) if bias else (None, True)
    torch.library.opcheck(kernels._norm_fwd, (x, w, b, 1e-5, rms, torch.bfloat16))


# ----------------------------------------------------------------------------------------------------------------
# rotary


def qk_views(qkv, H, hd):
    """q and k as model.py makes them: slices of the qkv matmul's output, (B, T, H, hd) transposed, not contiguous."""
    B, T, _ = qkv.shape
    q, k, _ = qkv.split(H * hd, dim=2)
    return (t.view(B, T, H, hd).transpose(1, 2) for t in (q, k))


def tables(T, rot_dim):
    angles = torch.outer(torch.arange(T, device=DEV).float(), torch.rand(rot_dim // 2, device=DEV) * 2)
    return angles.cos(), angles.sin()


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('head_dim,rot_dim', [(16, 16), (20, 10), (24, 6)])  # full; partial with odd halves (25%)
def test_rotary(head_dim, rot_dim, dtype, launches):
    B, T, H = 2, 7, 3
    qkv = leaf(B, T, 3 * H * head_dim, dtype=dtype)
    cos, sin = tables(T, rot_dim)
    check(lambda qkv, triton: kernels.rotary(*qk_views(qkv, H, head_dim), cos, sin, triton=triton), [qkv], dtype)
    assert launches['rotary'] == 2  # q and k in one launch forward, and one inverse rotation for the backward


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('rot_dim', [128, 32])  # the 10B's head_dim 128: Llama-style full rotary; Pythia's 25%
def test_rotary_head_dim_128(rot_dim, dtype, launches):
    B, T, H, hd = 2, 37, 3, 128  # 128-wide rows take 16-row tiles of T: three tiles, the last one ragged
    qkv = leaf(B, T, 3 * H * hd, dtype=dtype)
    cos, sin = tables(T, rot_dim)
    check(lambda qkv, triton: kernels.rotary(*qk_views(qkv, H, hd), cos, sin, triton=triton), [qkv], dtype)
    assert launches['rotary'] == 2


def test_rotary_q_and_k_with_their_own_head_counts(launches):
    # the grid walks q's heads, then k's: with 3 and 1 heads (the model has no GQA, the kernel does not care) a
    # program that took the wrong tensor or head count would write the wrong place
    B, T, hd = 2, 5, 12
    q, k = leaf(B, T, 3, hd), leaf(B, T, 1, hd)
    cos, sin = tables(T, 6)
    check(lambda q, k, triton: kernels.rotary(q.transpose(1, 2), k.transpose(1, 2), cos, sin, triton=triton),
          [q, k], torch.float32)
    assert launches['rotary'] == 2
    torch.library.opcheck(kernels._rotary_op, (q.transpose(1, 2), k.transpose(1, 2), cos, sin, False))
    with pytest.raises(ValueError, match=r"rotary: q \(2, 3, 5, 12\) torch.float32 and k \(2, 1, 4, 12\)"):
        kernels.rotary(q.transpose(1, 2), k[:, :4].transpose(1, 2), cos, sin, triton=True)


def test_rotary_one_launch_per_attention(launches):
    """model.py rotates q and k with one launch per attention forward and one in its backward (two each before
    issue 23: a launch per tensor)."""
    from model import GPT, GPTConfig
    cfg = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=97, use_kernels='rotary',
                    **MODELS['pythia'])
    idx = torch.randint(0, 97, (2, 16), device=DEV)
    _, loss = GPT(cfg).to(DEV)(idx, idx)
    assert launches['rotary'] == 2  # one per layer
    loss.backward()
    assert launches['rotary'] == 4


def test_rotary_matches_complex_multiplication():
    # an independent oracle for the twin: NeoX rotary is multiplication by e^{i theta} of (x1 + i x2)
    x = torch.randn(2, 3, 5, 8, device=DEV)
    theta = torch.rand(5, 4, device=DEV) * 6
    z = torch.complex(x[..., :4], x[..., 4:]) * torch.polar(torch.ones_like(theta), theta)
    yq, yk = kernels.rotary(x, 2 * x, theta.cos(), theta.sin(), triton=True)
    torch.testing.assert_close(yq, torch.cat([z.real, z.imag], -1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(yk, 2 * yq, atol=1e-5, rtol=1e-5)  # linear: k's rotation is q's, twice


# ----------------------------------------------------------------------------------------------------------------
# MLP activations


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('approximate', ['tanh', 'none'])
def test_gelu(approximate, dtype, launches):
    x = leaf(5, 3, 211, dtype=dtype, scale=3.0)  # 3165 elements: several 1024-blocks and a ragged end
    check(lambda x, triton: kernels.gelu(x, approximate, triton=triton), [x], dtype)
    assert launches['gelu_fwd'] == 1 and launches['gelu_bwd'] == 1


@pytest.mark.parametrize('dtype', DTYPES)
def test_swiglu(dtype, launches):
    h = leaf(3, 5, 2 * 45, dtype=dtype, scale=2.0)
    # gate and up as model.py makes them: two halves of one matmul output, strided views
    check(lambda h, triton: kernels.swiglu(*h.chunk(2, dim=-1), triton=triton), [h], dtype)
    assert launches['swiglu_fwd'] == 1 and launches['swiglu_bwd'] == 1


# ----------------------------------------------------------------------------------------------------------------
# cross-entropy and the fused LM head


@pytest.fixture
def small_ce_block(monkeypatch):
    monkeypatch.setattr(kernels, 'CE_BLOCK', 64)  # V=300 takes 5 steps of the row loop, the last one ragged


def targets_for(N, n_valid, ignore_index, n_ignored=3):
    t = torch.randint(0, n_valid, (N,), device=DEV)
    t[torch.randperm(N, device=DEV)[:n_ignored]] = ignore_index
    return t


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('n_valid,ignore_index', [(300, -1), (253, -100)])
def test_cross_entropy(n_valid, ignore_index, dtype, small_ce_block, launches):
    N, V = 19, 300
    logits = leaf(N, V, dtype=dtype, scale=4.0)
    targets = targets_for(N, n_valid, ignore_index)
    (dlogits,) = check(lambda l, triton: kernels.cross_entropy(l, targets, ignore_index, n_valid, triton=triton),
                       [logits], dtype, grad_out=torch.tensor(0.7, device=DEV))
    assert launches['cross_entropy_fwd'] == 1 and launches['cross_entropy_bwd'] == 1
    assert (dlogits[:, n_valid:] == 0).all(), "vocab padding must get no gradient"
    assert (dlogits[targets == ignore_index] == 0).all(), "ignored rows must get no gradient"


def test_cross_entropy_padding_never_wins(small_ce_block):
    # huge logits in the padding columns must not change the loss
    logits = torch.randn(4, 100, device=DEV)
    targets = torch.tensor([0, 5, 17, 99], device=DEV)
    padded = torch.cat([logits, torch.full((4, 28), 1e4, device=DEV)], dim=1)
    torch.testing.assert_close(kernels.cross_entropy(padded, targets, n_valid=100, triton=True),
                               kernels.cross_entropy(logits, targets, triton=False))


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('chunk', [0, 8])  # the automatic chunk size; 8 tokens: five chunks, the last ragged
def test_linear_cross_entropy(chunk, dtype, small_ce_block, launches):
    N, C, V, n_valid = 37, 24, 300, 253
    x = leaf(N, C, dtype=dtype)
    w = leaf(V, C, dtype=dtype, scale=0.3)
    targets = targets_for(N, n_valid, -1)

    def fn(x, w, triton):
        if triton:
            return kernels._linear_cross_entropy_triton(x, w, targets, -1, n_valid, chunk=chunk)
        return kernels.linear_cross_entropy(x, w, targets, -1, n_valid, triton=False)

    check(fn, [x, w], dtype, grad_out=torch.tensor(1.3, device=DEV))
    assert launches['cross_entropy_fwd'] > 0
    if chunk:
        assert launches['cross_entropy_fwd'] == -(-N // chunk)  # one launch per chunk


V_REAL, N_VALID_REAL = 50304, 50277  # the GPT-NeoX tokenizer's 50277 tokens padded to a multiple of 64


@pytest.mark.parametrize('dtype', DTYPES)
def test_cross_entropy_real_vocab(dtype, launches):
    # the default block (4096) over V = 50304: 13 steps of the row loop, the last one ragged and partly padding;
    # targets in the first block, on both sides of a block edge, the last real token, and one ignored row
    assert kernels._ce_block(V_REAL) == 4096 and kernels.CE_BLOCK == 4096
    logits = leaf(6, V_REAL, dtype=dtype, scale=4.0)
    targets = torch.tensor([0, 4095, 4096, N_VALID_REAL - 1, -1, 31337], device=DEV)
    (dlogits,) = check(lambda l, triton: kernels.cross_entropy(l, targets, -1, N_VALID_REAL, triton=triton),
                       [logits], dtype, grad_out=torch.tensor(0.7, device=DEV))
    assert launches['cross_entropy_fwd'] == 1 and launches['cross_entropy_bwd'] == 1
    assert (dlogits[:, N_VALID_REAL:] == 0).all() and (dlogits[4] == 0).all()


@pytest.mark.parametrize('x_dtype,w_dtype', [(torch.float32, torch.float32), (torch.bfloat16, torch.bfloat16),
                                             (torch.bfloat16, torch.float32)])  # last: autocast's fp32 master weight
def test_linear_cross_entropy_real_shape(x_dtype, w_dtype, launches, monkeypatch):
    # the 405M's LM head (n_embd 1024, V = 50304) with the automatic chunk size and the default CE block: 8 tokens
    # in 8 chunks (a memory budget of one token's logits), each chunk's logits overwritten by their gradient in
    # place, the weight grad summed over the chunks (each chunk touches all of dw: 200 MB on CPU)
    monkeypatch.setattr(kernels, 'LCE_MEMORY_FRACTION', 1e-9)
    N, C = 8, 1024
    x = leaf(N, C, dtype=x_dtype)
    w = leaf(V_REAL, C, dtype=w_dtype, scale=0.05)
    targets = targets_for(N, N_VALID_REAL, -1)
    assert kernels._lce_chunk(N, V_REAL, x.element_size(), x.device) == 1
    check(lambda x, w, triton: kernels.linear_cross_entropy(x, w, targets, -1, N_VALID_REAL, triton=triton),
          [x, w], x_dtype, grad_out=torch.tensor(1.3, device=DEV))
    assert launches['cross_entropy_fwd'] == N


@needs_cuda
def test_linear_cross_entropy_weight_grad_without_temporary():
    # the weight grad goes into its fp32 sum inside cuBLAS: during the forward (where the grads are made) the op holds
    # the bf16 copy of the weight, the fp32 sum, dx and a chunk of logits; a bf16 V x C product per chunk (the
    # fallback) would add 98 MiB here, more than the 32 MiB of slack
    if not kernels._fp32_addmm(torch.device(DEV)):  # the fallback works, with a V x C bf16 temporary per chunk
        pytest.skip("this torch's cuBLAS cannot add a bf16 matmul into an fp32 tensor (addmm out_dtype)")
    N, C = 4096, 1024
    x = torch.randn(N, C, device=DEV, dtype=torch.bfloat16, requires_grad=True)
    w = (torch.randn(V_REAL, C, device=DEV) * 0.02).requires_grad_()  # fp32 master weight, as under autocast
    targets = targets_for(N, N_VALID_REAL, -1)
    kernels.linear_cross_entropy(x, w, targets, -1, N_VALID_REAL, triton=True)  # compiles; the cuBLAS workspace
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    loss = kernels.linear_cross_entropy(x, w, targets, -1, N_VALID_REAL, triton=True)
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - base
    chunk = kernels._lce_chunk(N, V_REAL, x.element_size(), x.device)
    # w in bf16, dw in fp32, dx, two chunks of logits (the next made before the last is freed) and their fp32 stats
    held = V_REAL * C * (2 + 4) + N * C * 2 + chunk * V_REAL * (2 + 4)
    assert extra < held + 32 * 2**20, f"{extra / 2**20:.0f} MiB held, expected <= {held / 2**20:.0f} + 32 MiB"
    torch.testing.assert_close(loss, kernels.linear_cross_entropy(x.float(), w, targets, -1, N_VALID_REAL),
                               atol=2e-2, rtol=2e-2)


def test_linear_cross_entropy_frozen_and_no_grad(small_ce_block):
    x, w = leaf(10, 16), torch.randn(70, 16, device=DEV)  # a frozen head: only x gets a grad
    targets = targets_for(10, 70, -1, n_ignored=2)
    ref = kernels.linear_cross_entropy(x, w, targets, triton=False)
    loss = kernels.linear_cross_entropy(x, w, targets, triton=True)
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(torch.autograd.grad(loss, x)[0], torch.autograd.grad(ref, x)[0])
    with torch.no_grad():  # evaluation: loss only
        torch.testing.assert_close(kernels.linear_cross_entropy(x, w, targets, triton=True), ref.detach())


@pytest.mark.parametrize('bad', [70, -2, 65])
def test_a_target_out_of_range_stops_the_kernels(bad, small_ce_block):
    """A target the kernel would read past its row for (>= n_valid, or negative and not ignore_index) stops with
    one line, as F.cross_entropy does, instead of reading out of bounds."""
    x, w = leaf(10, 16), torch.randn(70, 16, device=DEV)
    targets = targets_for(10, 65, -1)
    targets[4] = bad
    with pytest.raises(RuntimeError, match=r"a target is outside \[0, 65\) and is not ignore_index=-1"):
        kernels.linear_cross_entropy(x, w, targets, -1, 65, triton=True)
    with pytest.raises(RuntimeError, match=r"outside \[0, 65\)"):
        kernels.cross_entropy(x @ w.t(), targets, -1, 65, triton=True)


def test_linear_cross_entropy_backward_scales_in_place_once(small_ce_block):
    x, w = leaf(10, 16), leaf(70, 16)
    targets = targets_for(10, 70, -1)
    ref = kernels.linear_cross_entropy(x, w, targets, triton=False)
    loss = kernels.linear_cross_entropy(x, w, targets, triton=True)
    ref_grads = torch.autograd.grad(ref * (1 / 3), (x, w))
    grads = torch.autograd.grad(loss * (1 / 3), (x, w), retain_graph=True)  # dloss 1/3: inexact in bf16, fine here
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-5)
    with pytest.raises(RuntimeError, match='second backward'):  # it would scale the grads twice: it stops instead
        torch.autograd.grad(loss, (x, w))


def test_linear_cross_entropy_scales_by_the_unrounded_loss_grad(small_ce_block):
    # the grads made for a loss grad of 1 are scaled by the fp32 dloss itself, not by dloss rounded to x's bf16 first
    # (1/3 is 0.333984 in bf16: a third of dx's elements would land one bf16 step off); dw stays fp32 throughout
    x, w = leaf(12, 16, dtype=torch.bfloat16), leaf(70, 16)  # bf16 activations, fp32 master weight: autocast's case
    targets = targets_for(12, 70, -1)
    dx1, dw1 = torch.autograd.grad(kernels.linear_cross_entropy(x, w, targets, triton=True), (x, w))
    dx3, dw3 = torch.autograd.grad(kernels.linear_cross_entropy(x, w, targets, triton=True) * (1 / 3), (x, w))
    assert dx3.dtype == torch.bfloat16 and dw3.dtype == torch.float32
    assert torch.equal(dx3, (dx1.float() * (1 / 3)).to(torch.bfloat16))
    assert torch.equal(dw3, dw1 * (1 / 3))


def test_linear_cross_entropy_chunks_by_memory(monkeypatch):
    """The LM head's chunk follows the device's memory, not Liger's N*C/V (512 tokens at the 405M): >= 4096
    tokens of 50304 bf16 logits on an 80 GB card, so the fp32 weight grad is read and written a few times a step."""
    class Props:
        total_memory = 80 * 2**30
    monkeypatch.setattr(torch.cuda, 'get_device_properties', lambda device: Props)
    assert kernels._lce_chunk(16384, 50304, 2, torch.device('cuda')) == 8192
    assert kernels._lce_chunk(1000, 50304, 2, torch.device('cuda')) == 1024  # never more than the tokens need
    assert kernels._lce_chunk(16384, 50304, 4, torch.device('cpu')) == 1024  # fp32 on a 16 GiB device (assumed)


# ----------------------------------------------------------------------------------------------------------------
# a whole model: kernels vs twins


MODELS = {
    'gpt2': dict(norm='layernorm', mlp='gelu', gelu_approximate='tanh', position='learned', tie_embeddings=True),
    'pythia': dict(norm='layernorm', mlp='gelu', gelu_approximate='none', position='rotary', rotary_pct=0.25,
                   parallel_residual=True, tie_embeddings=False),
    'llama': dict(norm='rmsnorm', mlp='swiglu', position='rotary', rotary_pct=1.0, bias=False, tie_embeddings=False),
}


def model_pair(shape):
    from model import GPT, GPTConfig
    cfg = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=97, dropout=0.0, **MODELS[shape])
    torch.manual_seed(0)
    twin = GPT(GPTConfig(**cfg, use_kernels=False)).to(DEV)
    fused = GPT(GPTConfig(**cfg, use_kernels=True)).to(DEV)
    fused.load_state_dict(twin.state_dict())
    return twin, fused


def loss_and_grads(model, idx, targets, dtype, call=None):
    model.zero_grad(set_to_none=True)
    with torch.autocast(DEV, dtype=dtype, enabled=dtype != torch.float32):
        _, loss = (model if call is None else call)(idx, targets)
    loss.backward()
    return loss, {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('shape', list(MODELS))
def test_model_kernels_match_twins(shape, dtype, launches):
    twin, fused = model_pair(shape)
    idx = torch.randint(0, 97, (2, 16), device=DEV)
    targets = torch.randint(0, 97, (2, 16), device=DEV)
    targets[0, :3] = -1
    loss_t, grads_t = loss_and_grads(twin, idx, targets, dtype)
    loss_k, grads_k = loss_and_grads(fused, idx, targets, dtype)
    atol, rtol = (1e-5, 1e-4) if dtype == torch.float32 else (2e-2, 5e-2)
    torch.testing.assert_close(loss_k, loss_t, atol=atol, rtol=rtol)
    for name, g in grads_t.items():
        torch.testing.assert_close(grads_k[name], g, atol=atol, rtol=rtol, msg=lambda m: f"{name}: {m}")
    # no silent fallback: every kernel this shape uses ran, forward and backward
    used = {'gpt2': ['layer_norm', 'gelu'], 'pythia': ['layer_norm', 'gelu'], 'llama': ['rms_norm', 'swiglu']}[shape]
    names = [f'{k}_{d}' for k in used for d in ('fwd', 'bwd')] + ['cross_entropy_fwd']
    names += ['rotary'] if MODELS[shape]['position'] == 'rotary' else []
    assert all(launches[n] > 0 for n in names), dict(launches)
    # the logits path (sampling) goes through the same kernels
    with torch.no_grad():
        torch.testing.assert_close(fused(idx)[0], twin(idx)[0], atol=atol, rtol=rtol)


@pytest.mark.parametrize('chosen', ['norm', 'lm_head', 'rotary, mlp'])
def test_use_kernels_picks_each_kernel(chosen, launches):
    """use_kernels='norm' runs the Triton norm and every other layer's torch twin: kernels go on one at a time, as
    bench/gpu_check.sh measures them."""
    from model import GPT, GPTConfig
    cfg = GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, vocab_size=97, use_kernels=chosen,
                    **MODELS['pythia'])
    idx = torch.randint(0, 97, (2, 16), device=DEV)
    _, loss = GPT(cfg).to(DEV)(idx, idx)
    loss.backward()
    ran = {'norm': 'layer_norm_fwd', 'rotary': 'rotary', 'mlp': 'gelu_fwd', 'lm_head': 'cross_entropy_fwd'}
    assert {k for k, name in ran.items() if launches[name]} == {k.strip() for k in chosen.split(',')}


def test_use_kernels_names_and_defaults():
    from model import KERNELS, GPTConfig, default_kernels
    assert all(GPTConfig(use_kernels=True).uses(k) for k in KERNELS)
    assert not any(GPTConfig(use_kernels=False).uses(k) or GPTConfig(use_kernels='').uses(k) for k in KERNELS)
    with pytest.raises(ValueError, match=r"unknown kernel\(s\) \['attention'\]; name some of norm,rotary,mlp,lm_head"):
        GPTConfig(use_kernels='norm,attention')
    # off by default everywhere until a GPU has measured a kernel faster than its compiled twin (gpu_check)
    assert default_kernels('cpu') is False and default_kernels('cuda:0') == ''


# ----------------------------------------------------------------------------------------------------------------
# torch.compile: one graph, kernels inside


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('backend', ['aot_eager', 'inductor'])  # inductor on CPU: C++ around the custom ops
def test_compile_keeps_kernels(backend, dtype, launches):
    # fullgraph=True: a graph break would raise. aot_eager traces forward and backward through the custom ops'
    # fake implementations without generating code (cheap on CPU); inductor is what train.py uses on a GPU.
    twin, fused = model_pair('pythia')
    idx = torch.randint(0, 97, (2, 16), device=DEV)
    targets = torch.randint(0, 97, (2, 16), device=DEV)
    compiled = torch.compile(fused, backend=backend, fullgraph=True)
    loss_t, grads_t = loss_and_grads(twin, idx, targets, dtype)
    kernels.LAUNCHES.clear()
    loss_c, grads_c = loss_and_grads(fused, idx, targets, dtype, call=compiled)
    assert launches['cross_entropy_fwd'] > 0 and launches['layer_norm_bwd'] > 0 and launches['rotary'] > 0
    atol, rtol = (1e-5, 1e-4) if dtype == torch.float32 else (2e-2, 5e-2)
    torch.testing.assert_close(loss_c, loss_t, atol=atol, rtol=rtol)
    for name, g in grads_t.items():
        torch.testing.assert_close(grads_c[name], g, atol=atol, rtol=rtol, msg=lambda m: f"{name}: {m}")


# ----------------------------------------------------------------------------------------------------------------
# asking for kernels where they cannot run


def run_without_kernels_support(prelude, env_update):
    """Ask for a kernel in a fresh interpreter set up by prelude/env; return what it printed."""
    env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}
    env.update(env_update)
    code = (f"{prelude}\nimport torch, kernels\n"
            "x = torch.randn(2, 8)\n"
            "assert kernels.layer_norm(x, torch.ones(8), None).shape == x.shape  # the twin still works\n"
            "try:\n"
            "    kernels.layer_norm(x, torch.ones(8), None, triton=True)\n"
            "except RuntimeError as e:\n"
            "    print('RuntimeError:', e)\n")
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'RuntimeError:' in out.stdout, out.stdout
    return out.stdout


def test_clear_error_without_driver_or_interpreter():
    msg = run_without_kernels_support('', {'CUDA_VISIBLE_DEVICES': ''})  # hide any GPU: no driver, no interpreter
    assert 'use_kernels=False' in msg and 'TRITON_INTERPRET=1' in msg, msg


def test_clear_error_without_triton_package():
    msg = run_without_kernels_support("import sys; sys.modules['triton'] = None  # import triton fails", {})
    assert 'pip install triton' in msg and 'use_kernels=False' in msg, msg


def test_twins_run_without_triton_asked():
    # the CPU path never touches Triton
    kernels.LAUNCHES.clear()
    x = torch.randn(4, 8)
    kernels.layer_norm(x, torch.ones(8), torch.zeros(8))
    kernels.linear_cross_entropy(x, torch.randn(11, 8), torch.tensor([1, 2, -1, 3]))
    assert sum(kernels.LAUNCHES.values()) == 0
