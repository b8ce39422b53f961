"""The CPU fast path trains the same model as the plain one: kernels.py's CPU paths (oneDNN fp32 linears, the bf16
attention) against the torch calls they replace, and train.py's default (torch.compile, bf16 autocast, fused AdamW)
against plain fp32 eager PyTorch over the first steps of training, with a tolerance that a wrong gradient breaks."""
import math

import pytest
import torch
import torch.nn.functional as F

import data as datalib
import kernels
from model import GPT, GPTConfig


@pytest.mark.parametrize('bias', [True, False])
def test_onednn_linear_matches_f_linear(bias):
    torch.manual_seed(0)
    x = torch.randn(3, 17, 48, requires_grad=True)
    w = torch.randn(40, 48, requires_grad=True)
    b = torch.randn(40, requires_grad=True) if bias else None
    dy = torch.randn(3, 17, 40)
    ins = [t for t in (x, w, b) if t is not None]
    y = kernels._onednn_linear(x, w, b)
    grads = torch.autograd.grad(y, ins, dy)
    y_ref = F.linear(x, w, b)
    grads_ref = torch.autograd.grad(y_ref, ins, dy)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-5)
    # kernels.linear takes that path for fp32 on CPU, and leaves autocast to F.linear (bf16 matmuls)
    assert torch.equal(kernels.linear(x, w, b), y) == kernels._ONEDNN
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert kernels.linear(x, w, b).dtype == torch.bfloat16


def test_onednn_linear_compiles():
    x, w = torch.randn(8, 16, requires_grad=True), torch.randn(12, 16, requires_grad=True)
    f = torch.compile(lambda x, w: kernels.linear(x, w).square().sum(), fullgraph=True)
    gx, gw = torch.autograd.grad(f(x, w), (x, w))
    gx_ref, gw_ref = torch.autograd.grad(F.linear(x, w).square().sum(), (x, w))
    torch.testing.assert_close(gx, gx_ref)
    torch.testing.assert_close(gw, gw_ref)


def test_cpu_bf16_attention_matches_sdpa():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 40, 16, requires_grad=True) for _ in range(3))
    dy = torch.randn(2, 3, 40, 16)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    grads_ref = torch.autograd.grad(ref, (q, k, v), dy)
    qb, kb, vb = (t.detach().bfloat16().requires_grad_() for t in (q, k, v))
    out = kernels.causal_attention(qb, kb, vb)
    grads = torch.autograd.grad(out, (qb, kb, vb), dy.bfloat16())
    assert out.dtype == torch.bfloat16
    tol = dict(rtol=0.02, atol=0.03)  # bf16 inputs and matmuls: ~3 significant digits
    torch.testing.assert_close(out.float(), ref, **tol)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g.float(), g_ref, **tol)
    # the tolerance is tight enough to see a wrong mask: attention that also looks ahead fails it
    ahead = F.scaled_dot_product_attention(q, k, v)
    assert not torch.allclose(out.float(), ahead, **tol)


SHAPES = {
    'gpt2': dict(),
    'pythia': dict(position='rotary', rotary_pct=0.25, parallel_residual=True, tie_embeddings=False,
                   gelu_approximate='none'),
}


def train_losses(bins, shape, path, steps=30, lr=3e-3):
    """Losses of the first steps of train.py's loop (same data, seed, AdamW, clipping) on a small model.
    path: 'default' (compiled, bf16 autocast, configure_optimizers: train.py's CPU default), 'eager fp32' (ours,
    fp32 eager), 'plain' (plain PyTorch: F.linear through MKL, SDPA, torch's for-loop AdamW)."""
    mixture = datalib.Mixture(bins, {'en': 1.0}, 32, 8, 1, 1, 1337)
    torch.manual_seed(1337)
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=64, block_size=32, vocab_size=64, bias=False, dropout=0.0,
                          **SHAPES[shape]))
    if path == 'plain':
        groups = [{'params': [p for p in model.parameters() if p.dim() >= 2], 'weight_decay': 0.1},
                  {'params': [p for p in model.parameters() if p.dim() < 2], 'weight_decay': 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    else:
        optimizer = model.configure_optimizers(0.1, lr, (0.9, 0.95), 1e-8, 'cpu')
    if path == 'default':
        model.compile()
    autocast = torch.autocast('cpu', dtype=torch.bfloat16, enabled=path == 'default')
    losses = []
    for it in range(steps):
        x, y = mixture.get_batch(it, 0, 0)
        with autocast:
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return torch.tensor(losses)


# bf16 autocast moves these losses by ~1e-3 (measured: at most 0.001 over 30 steps, both shapes); a gradient that
# loses the MLP's input path moves them by 0.07 (the last test)
TOL = 0.01


@pytest.fixture(scope='module')
def plain_losses(bins):
    return {shape: train_losses(bins, shape, 'plain') for shape in SHAPES}


@pytest.mark.parametrize('shape', list(SHAPES))
def test_fast_default_path_trains_the_same_model(bins, plain_losses, shape):
    plain = plain_losses[shape]
    assert plain[-1] < plain[0] - 2.0  # it learns the pattern: the comparison is over real training, not noise
    eager = train_losses(bins, shape, 'eager fp32')
    assert (eager - plain).abs().max() < 1e-4  # fp32 both: only the order of float sums differs
    default = train_losses(bins, shape, 'default')
    assert (default - plain).abs().max() < TOL, f"default path diverged from plain fp32: {default - plain}"


def test_a_wrong_gradient_breaks_the_tolerance(bins, plain_losses, monkeypatch):
    # a stray detach() in the MLP's activation (no gradient into c_fc and through the MLP): the kind of bug a fast
    # path can bring. The same comparison as above must fail for it.
    def gelu_detached(x, approximate='tanh', triton=False):
        return F.gelu(x.detach(), approximate=approximate)
    monkeypatch.setattr(kernels, 'gelu', gelu_detached)
    broken = train_losses(bins, 'pythia', 'default')
    assert (broken - plain_losses['pythia']).abs().max() > TOL  # measured: 0.07
    assert math.isfinite(broken[-1])
