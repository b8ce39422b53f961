"""The CPU fast path trains the same model as the plain one: kernels.py's CPU paths (oneDNN fp32 linears, the
attention as matmuls, the fused loss) against the torch calls they replace, and train.py's default (torch.compile,
bf16 autocast, fused AdamW) against plain fp32 eager PyTorch over the first steps of training, with a tolerance that a
wrong gradient breaks. Which path runs is measured per CPU (kernels.choose_cpu_paths): its rules are tested here with
the timings replaced, so that the tests never time anything."""
import json
import math
import threading
import time

import pytest
import torch
import torch.nn.functional as F

import data as datalib
import kernels
from model import GPT, GPTConfig, choose_cpu_paths
from synth import TINY, run_train
from test_eval import one_line_error

# every CPU path that is not the plain call: what the tests of the fast path run
FAST = 'linear=onednn,attention=matmul,loss=fused'


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
    # kernels.linear takes that path for fp32 on CPU when it was chosen, and leaves autocast to F.linear (bf16)
    kernels.choose_cpu_paths('linear=onednn', 'float32', False, {})
    try:
        assert torch.equal(kernels.linear(x, w, b), y)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert kernels.linear(x, w, b).dtype == torch.bfloat16
    finally:
        kernels.choose_cpu_paths('linear=torch', 'float32', False, {})
    assert torch.equal(kernels.linear(x, w, b), y_ref)


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
    out = kernels.attention_matmul(qb, kb, vb)
    grads = torch.autograd.grad(out, (qb, kb, vb), dy.bfloat16())
    assert out.dtype == torch.bfloat16
    tol = dict(rtol=0.02, atol=0.03)  # bf16 inputs and matmuls: ~3 significant digits
    torch.testing.assert_close(out.float(), ref, **tol)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g.float(), g_ref, **tol)
    # the tolerance is tight enough to see a wrong mask: attention that also looks ahead fails it
    ahead = F.scaled_dot_product_attention(q, k, v)
    assert not torch.allclose(out.float(), ahead, **tol)
    # in fp32 the formula is SDPA's to fp32 rounding
    out32 = kernels.attention_matmul(q, k, v)
    torch.testing.assert_close(out32, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('n_valid, ignored, scale', [(50, False, 1.0), (41, True, 1.0), (50, True, 60.0)])
def test_fused_cpu_loss_matches_cross_entropy(n_valid, ignored, scale):
    # the padding columns (>= n_valid) get no loss and no gradient; ignored targets neither; logits 60x wider than
    # usual (a gap of hundreds of nats: a softmax that underflows) still give the exact loss
    torch.manual_seed(0)
    logits = (torch.randn(37, 50) * scale).requires_grad_()
    targets = torch.randint(0, n_valid, (37,))
    if ignored:
        targets[::3] = -1
    ref = kernels.cross_entropy_torch(logits, targets, -1, n_valid)
    g_ref, = torch.autograd.grad(ref * 2.5, logits)  # a loss grad other than 1, as (loss / accum).backward() gives
    kernels.choose_cpu_paths('loss=fused', 'float32', False, {})
    try:
        loss = kernels.cross_entropy(logits, targets, -1, n_valid)
        g, = torch.autograd.grad(loss * 2.5, logits)
    finally:
        kernels.choose_cpu_paths('loss=torch', 'float32', False, {})
    assert math.isfinite(loss.item())
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-7)
    assert (g[:, n_valid:] == 0).all() and (g[targets == -1] == 0).all()


def test_fused_cpu_loss_compiles_in_one_graph():
    x, w = torch.randn(16, 8, requires_grad=True), torch.randn(24, 8, requires_grad=True)
    t = torch.randint(0, 24, (16,))
    kernels.choose_cpu_paths('loss=fused', 'float32', False, {})
    try:
        f = torch.compile(lambda x, w: kernels.linear_cross_entropy(x, w, t), fullgraph=True)
        grads = torch.autograd.grad(f(x, w), (x, w))
    finally:
        kernels.choose_cpu_paths('loss=torch', 'float32', False, {})
    for g, g_ref in zip(grads, torch.autograd.grad(F.cross_entropy(x @ w.t(), t), (x, w))):
        torch.testing.assert_close(g, g_ref)


@pytest.fixture
def probe(monkeypatch, tmp_path):
    """choose_cpu_paths with a cache file of its own and _probe replaced by set timings (tests never time):
    returns the timings to give, in ms per pair, and the list of pairs that were measured."""
    timings, measured = {}, []

    def fake_probe(pair, shape, dtype, compiled):
        measured.append(pair)
        return {k: v / 1e3 for k, v in timings[pair].items()}
    monkeypatch.setattr(kernels, '_probe', fake_probe)
    monkeypatch.setattr(kernels, 'CPU_PATHS_CACHE', str(tmp_path / 'cache' / 'cpu_paths.json'))
    monkeypatch.setattr(kernels, 'CPU_PATHS', dict(kernels.CPU_PATHS))
    return timings, measured


SHAPES_OF_A_RUN = {'linear': [(64, 8, 24)], 'attention': (2, 2, 16, 4), 'loss': (64, 24)}


def test_auto_takes_a_new_call_only_when_it_wins_by_the_margin(probe):
    timings, measured = probe
    timings.update(linear={'torch': 10.0, 'onednn': 8.0},    # 1.25x faster: taken
                   loss={'torch': 10.0, 'fused': 9.5},       # 1.05x: a near tie keeps the plain call
                   attention={'sdpa': 10.0, 'matmul': 20.0})
    got = kernels.choose_cpu_paths('auto', 'float32', True, SHAPES_OF_A_RUN)
    assert got == 'linear=onednn,attention=sdpa,loss=torch' and sorted(measured) == ['attention', 'linear', 'loss']
    assert kernels.CPU_PATHS == {'linear': 'onednn', 'attention': 'sdpa', 'loss': 'torch'}
    # bf16 runs never take the fp32 linear (autocast sends matmuls to oneDNN in bf16): not measured, plain
    measured.clear()
    timings.update(attention={'sdpa': 20.0, 'matmul': 10.0})
    assert kernels.choose_cpu_paths('auto', 'bfloat16', True, SHAPES_OF_A_RUN) == \
        'linear=torch,attention=matmul,loss=torch'
    assert sorted(measured) == ['attention', 'loss']


def test_auto_measures_once_per_cpu_dtype_and_shape(probe):
    timings, measured = probe
    timings.update(linear={'torch': 10.0, 'onednn': 5.0}, loss={'torch': 10.0, 'fused': 5.0},
                   attention={'sdpa': 10.0, 'matmul': 5.0})
    first = kernels.choose_cpu_paths('auto', 'float32', False, SHAPES_OF_A_RUN)
    timings.update(linear={'torch': 5.0, 'onednn': 10.0})  # a later probe would disagree: it must not run
    assert kernels.choose_cpu_paths('auto', 'float32', False, SHAPES_OF_A_RUN) == first and len(measured) == 3
    cache = json.load(open(kernels.CPU_PATHS_CACHE))
    assert len(cache) == 3 and all(kernels.cpu_name() in key for key in cache)
    # another shape, or compiled instead of eager, is measured anew
    kernels.choose_cpu_paths('auto', 'float32', False, {**SHAPES_OF_A_RUN, 'loss': (64, 48)})
    kernels.choose_cpu_paths('auto', 'float32', True, SHAPES_OF_A_RUN)
    assert len(measured) == 3 + 1 + 3
    # a cache that is not JSON (a file of something else) is measured again and written anew
    with open(kernels.CPU_PATHS_CACHE, 'w') as f:
        f.write('{"torn')
    assert kernels.choose_cpu_paths('auto', 'float32', False, SHAPES_OF_A_RUN) == \
        'linear=torch,attention=matmul,loss=fused'
    assert len(json.load(open(kernels.CPU_PATHS_CACHE))) == 3


def test_runs_that_start_together_measure_once_and_agree(probe):
    # make demo starts two runs at once: without the lock each measured while the other compiled, and they took
    # different calls (seen: one fused loss, one plain). The first one in measures; the other reads its answer.
    timings, measured = probe
    answers = iter([{'torch': 10.0, 'fused': 5.0}, {'torch': 5.0, 'fused': 10.0}])  # a second probe would disagree

    def slow_probe(pair, shape, dtype, compiled):
        measured.append(pair)
        time.sleep(0.2)  # long enough for the other run to arrive while this one measures
        return {k: v / 1e3 for k, v in (next(answers) if pair == 'loss' else {'sdpa': 1.0, 'matmul': 1.0}).items()}
    kernels._probe = slow_probe  # (the fixture restores it)
    got = []
    runs = [threading.Thread(target=lambda: got.append(kernels.choose_cpu_paths('auto', 'bfloat16', False,
                                                                                  SHAPES_OF_A_RUN)))
            for _ in range(2)]
    for r in runs:
        r.start()
    for r in runs:
        r.join()
    assert got == ['linear=torch,attention=sdpa,loss=fused'] * 2 and sorted(measured) == ['attention', 'loss']


def test_a_given_spec_is_taken_as_it_is_and_a_wrong_one_is_one_line(probe, bins, tmp_path):
    timings, measured = probe
    assert kernels.choose_cpu_paths('loss=fused', 'float32', True, SHAPES_OF_A_RUN) == \
        'linear=torch,attention=sdpa,loss=fused'
    assert measured == []
    for bad in ('loss=fast', 'attn=matmul', 'linear'):
        with pytest.raises(ValueError, match='is not one of linear=torch, linear=onednn'):
            kernels.parse_cpu_paths(bad)
    # off a CPU nothing is measured or changed, but a wrong name is still one line
    with torch.device('meta'):
        gpu_like = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=32))
    assert choose_cpu_paths('loss=fused', gpu_like, 2, 8, 'bfloat16', True, False) == 'loss=fused'
    with pytest.raises(ValueError, match="'loss=fast' is not one of"):
        choose_cpu_paths('loss=fast', gpu_like, 2, 8, 'bfloat16', True, False)
    err = one_line_error(run_train(*TINY, f'--data_dir={bins}', f'--out_dir={tmp_path / "bad"}',
                                   "--data={'en': 1.0}", '--max_iters=1', '--cpu_paths=loss=fast', check=False))
    assert "cpu_paths='loss=fast'" in err and 'loss=fused' in err


def test_train_records_the_paths_it_took(bins, tmp_path):
    run_train(*TINY, f'--data_dir={bins}', f'--out_dir={tmp_path / "run"}', "--data={'en': 1.0}", '--max_iters=2')
    paths = kernels.parse_cpu_paths(json.load(open(tmp_path / 'run' / 'config.json'))['cpu_paths'])
    assert set(paths) == {'linear', 'attention', 'loss'}  # measured on this CPU: which ones, the machine says
    run_train(*TINY, f'--data_dir={bins}', f'--out_dir={tmp_path / "pinned"}', "--data={'en': 1.0}", '--max_iters=2',
              f'--cpu_paths={FAST}')
    assert json.load(open(tmp_path / 'pinned' / 'config.json'))['cpu_paths'] == FAST


SHAPES = {
    'gpt2': dict(),
    'pythia': dict(position='rotary', rotary_pct=0.25, parallel_residual=True, tie_embeddings=False,
                   gelu_approximate='none'),
}


def train_losses(bins, shape, path, steps=30, lr=3e-3):
    """Losses of the first steps of train.py's loop (same data, seed, AdamW, clipping) on a small model.
    path: 'default' (compiled, bf16 autocast, configure_optimizers: train.py's CPU default), 'eager fp32' (ours,
    fp32 eager), 'plain' (plain PyTorch: F.linear through MKL, SDPA, torch's for-loop AdamW). Ours take every
    CPU path that is not the plain call (FAST), whichever this CPU would choose."""
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
    kernels.choose_cpu_paths('linear=torch' if path == 'plain' else FAST, 'float32', False, {})
    losses = []
    try:
        for it in range(steps):
            x, y = mixture.get_batch(it, 0, 0)
            with autocast:
                _, loss = model(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
    finally:
        kernels.choose_cpu_paths('linear=torch', 'float32', False, {})
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
