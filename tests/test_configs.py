"""Every config in config/ parses through train.py and dry-runs (the model is built on the meta device: no data, no
memory); the paper's configs build the paper's model sizes and spend the paper's token budgets."""
import glob
import json
import os
import re
import subprocess
import sys

import pytest

import schedules
from synth import ROOT

# every run config; config/base_*.py are the shared recipes the paper configs exec, not runs
CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, 'config', '*.py'))
                 if not os.path.basename(p).startswith('base_'))

# Reference parameter counts (total, embeddings included, as the papers count them).
# 405M: Pythia-410M, whose shape the paper trains, has 405,334,016 parameters (Biderman et al. 2023): 24 layers,
# d_model 1024, untied 50,304-row embeddings.
P405M = 405_334_016
# "10B": the authors' gpt-neox config for it (github bentherien/gpt-neox, configs/iclr_models/7_1B.yml) is 36 layers,
# d_model 4608, 36 heads, untied embeddings, the GPT-NeoX-20B tokenizer (50,277) padded by gpt-neox to a multiple of
# 128 x model-parallel size 6 = 768, i.e. 50,688 rows. Per layer 12 d^2 + 13 d (qkv, out, 4d MLP with biases, two
# LayerNorms), plus the final LayerNorm: 9,642,249,216. The paper rounds this to "10B"; a literal 10e9 would be 3.6%
# off for the rounding alone, so the check is against the authors' exact architecture.
_d, _V = 4608, 50_688
P10B = 36 * (12 * _d * _d + 13 * _d) + 2 * _d + 2 * _V * _d
# Token budgets (docs/paper.md): Pile 300B, SlimPajama 300B, German ~200B, unions 600B and 500B. The infinite
# schedule's main line runs the first T_w + 0.85 T of a dataset's steps (warmup 1%, constant phase until n = 0.85 T)
# and its anneal branch the last 14%: together, the dataset's budget.
B = 1e9
PAPER = {  # config: (parameters, tokens)
    'pretrain_pile_405m.py': (P405M, 300 * B),
    'cpt_pile_slimpajama.py': (P405M, 300 * B),
    'cpt_en_de.py': (P405M, 200 * B),
    'union_pile_slimpajama.py': (P405M, 600 * B),
    'union_pile_german.py': (P405M, 500 * B),
    'inf_pile_405m.py': (P405M, 0.86 * 300 * B),
    'inf_pile_405m_anneal.py': (P405M, 0.14 * 300 * B),
    'inf_cpt_pile_slimpajama.py': (P405M, 0.86 * 300 * B),
    'inf_cpt_pile_slimpajama_anneal.py': (P405M, 0.14 * 300 * B),
    'pretrain_pile_10b.py': (P10B, 300 * B),
    'cpt_pile_slimpajama_10b.py': (P10B, 300 * B),
    'union_pile_slimpajama_10b.py': (P10B, 600 * B),
}

# Runs train.py once per config in ONE Python process (torch is imported once: ~0.3 s per config instead of ~4 s).
# A continual config's init_from names a checkpoint that does not exist here; --init_from=scratch builds the
# model from the config's own shape instead (the paper configs name their preset for this).
DRIVER = r'''
import contextlib, io, json, runpy, sys, traceback
import torch.distributed as dist
results = {}
for cfg in sys.argv[1:]:
    buf, rc = io.StringIO(), 0
    sys.argv = ['train.py', cfg, '--dry_run=True', '--init_from=scratch']
    try:
        with contextlib.redirect_stdout(buf):
            runpy.run_path('train.py', run_name='__main__')
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            buf.write(str(e.code))
    except BaseException:
        rc = 1
        buf.write(traceback.format_exc())
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()  # an fsdp=True config makes a one-process group even for a dry run
    results[cfg] = {'rc': rc, 'out': buf.getvalue()}
print(json.dumps(results))
'''


@pytest.fixture(scope='module')
def dry_runs():
    p = subprocess.run([sys.executable, '-c', DRIVER, *CONFIGS], cwd=ROOT, capture_output=True, text=True,
                       timeout=600, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def parse(out):
    """(parameters, tokens per step, steps, total tokens) from a dry run's printout."""
    n = re.search(r"model: [\d.]+M parameters \(([\d,]+)\)", out)
    run = re.search(r"run: ([\d,]+) steps x ([\d,]+) tokens", out)
    assert n and run, f"unexpected dry-run output:\n{out}"
    num = lambda s: int(s.replace(',', ''))
    steps, per_step = num(run.group(1)), num(run.group(2))
    return num(n.group(1)), per_step, steps, steps * per_step


def values(cfg):
    """The names a config file assigns (as configurator.py reads them)."""
    scope = {'__file__': os.path.join(ROOT, cfg)}
    with open(os.path.join(ROOT, cfg)) as f:
        exec(compile(f.read(), cfg, 'exec'), scope)
    return {k: v for k, v in scope.items() if not k.startswith('_')}


def test_there_are_configs():
    assert set(PAPER) <= {os.path.basename(c) for c in CONFIGS}, "a paper config is missing from config/"


@pytest.mark.parametrize('cfg', CONFIGS)
def test_config_dry_runs(dry_runs, cfg):
    r = dry_runs[cfg]
    assert r['rc'] == 0, f"python train.py {cfg} --dry_run=True failed:\n{r['out'][-3000:]}"
    n, per_step, steps, total = parse(r['out'])
    assert n > 0 and per_step > 0 and steps > 0
    assert 'GPU-hours' in r['out']


@pytest.mark.parametrize('name', sorted(PAPER))
def test_paper_config_matches_the_paper(dry_runs, name):
    cfg = os.path.join('config', name)
    r = dry_runs[cfg]
    assert r['rc'] == 0, r['out'][-3000:]
    n, per_step, steps, total = parse(r['out'])
    ref_n, ref_tokens = PAPER[name]
    assert abs(n / ref_n - 1) < 0.03, f"{name}: {n:,} parameters, the paper's model has {ref_n:,}"
    assert per_step == 1104 * 2048, f"{name}: {per_step:,} tokens per step, the paper's batch is 1104 x 2048"
    assert abs(total / ref_tokens - 1) < 0.01, f"{name}: {total / 1e9:.2f}B tokens, the paper's budget is " \
                                               f"{ref_tokens / 1e9:.0f}B"
    v = values(cfg)
    # the README's command: 8 GPUs reach 1104 sequences by accumulation, so batch_size x 8 must divide it
    assert v['total_batch_size'] % (v['batch_size'] * 8) == 0
    assert (v['beta1'], v['beta2'], v['weight_decay'], v['grad_clip']) == (0.9, 0.95, 0.1, 1.0)
    assert v['min_lr'] == pytest.approx(0.1 * v['learning_rate'])
    assert v['learning_rate'] == (1.2e-4 if ref_n == P10B else 3e-4)
    # requeue-safe: the same command resumes its own run; the authors' initialisation (the neox presets)
    assert v['auto_resume'] is True and v['keep_last'] >= 2 and v['preset'] in ('pythia-410m', 'neox-10b')
    if ref_n == P10B:
        assert v['fsdp'] is True


def test_every_paper_scale_config_is_checked():
    # a config with the paper's batch is a paper run: it belongs in PAPER above, with its budget from docs/paper.md
    unchecked = [c for c in CONFIGS if values(c).get('total_batch_size') == 1104 and os.path.basename(c) not in PAPER]
    assert not unchecked, f"add these paper-scale configs to PAPER in tests/test_configs.py: {unchecked}"


def test_replay_and_union_mixtures():
    v = lambda name: values(os.path.join('config', name))
    for name, d1, share in (('cpt_pile_slimpajama.py', 'slimpajama', 0.05), ('cpt_en_de.py', 'german', 0.25),
                            ('cpt_pile_slimpajama_10b.py', 'slimpajama', 0.05),
                            ('inf_cpt_pile_slimpajama.py', 'slimpajama', 0.05),
                            ('inf_cpt_pile_slimpajama_anneal.py', 'slimpajama', 0.05)):
        # replay is of the Pile windows pre-training read, not of new Pile data
        assert v(name)['data'] == {d1: 1 - share} and v(name)['replay'] == {'pile': share}, name
    assert v('union_pile_slimpajama.py')['data'] == {'pile': 0.5, 'slimpajama': 0.5}
    assert v('union_pile_german.py')['data'] == {'pile': 0.6, 'german': 0.4}  # 300B : 200B
    for name in ('cpt_pile_slimpajama.py', 'cpt_en_de.py', 'cpt_pile_slimpajama_10b.py'):
        c = v(name)
        assert c['reset_optimizer'] is True and c['lr_schedule'] == 'cosine' and c['warmup_iters'] == 0.01
        assert c['init_from'] not in ('scratch', 'resume')


def lr_fn(c):
    return schedules.make_schedule(c['lr_schedule'], max_lr=c['learning_rate'], min_lr=c['min_lr'],
                                   warmup_iters=c['warmup_iters'], max_iters=c['max_iters'], **c['schedule_args'])


def test_infinite_line_and_its_anneal_branches():
    v = lambda name: values(os.path.join('config', name))
    main, branch = v('inf_pile_405m.py'), v('inf_pile_405m_anneal.py')
    cont, cont_branch = v('inf_cpt_pile_slimpajama.py'), v('inf_cpt_pile_slimpajama_anneal.py')
    T = main['schedule_args']['total_iters']
    assert T == 132_366 and main['max_iters'] + branch['max_iters'] == T  # main line + branch = the Pile's budget
    assert cont['max_iters'] + cont_branch['max_iters'] == T
    lr = lr_fn(main)
    assert lr(0) == 0.0 and lr(round(0.01 * T)) == pytest.approx(3e-4)     # warmup 1% to η_max
    assert lr(main['max_iters'] - 1) == pytest.approx(1.65e-4)              # the main line ends in the constant phase
    # the continuation is the same function from where the main line stopped: constant, no re-warm
    assert cont['continue_schedule'] and not cont['reset_optimizer'] and cont['init_from'] == main['out_dir']
    lr2 = lr_fn(cont)
    assert all(lr2(main['max_iters'] + s) == pytest.approx(1.65e-4) for s in (0, 1, cont['max_iters'] - 1))
    # the branches anneal from η_const to η_min with the source's AdamW state; the Pile branch's LRs are exactly
    # those of the full infinite schedule with exponential annealing
    full = lr_fn({**main, 'max_iters': T, 'schedule_args': {**main['schedule_args'], 'anneal': 'exponential'}})
    for b, src in ((branch, main), (cont_branch, cont)):
        assert b['init_from'] == src['out_dir'] and not b['reset_optimizer'] and not b['continue_schedule']
        f = lr_fn(b)
        assert f(0) == pytest.approx(1.65e-4) and f(b['max_iters']) == pytest.approx(3e-5)
    for s in (0, 100, 5000, branch['max_iters'] - 1):
        assert lr_fn(branch)(s) == pytest.approx(full(main['max_iters'] + s), rel=1e-3)


def test_dry_run_from_the_command_line():
    # exactly as the README says, in its own process
    p = subprocess.run([sys.executable, 'train.py', 'config/pretrain_pile_405m.py', '--dry_run=True'], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    n, per_step, steps, total = parse(p.stdout)
    assert n == P405M and steps == 132_366
    assert re.search(r"cost at 40% MFU on H100 .*: [\d,]+ GPU-hours", p.stdout)
