"""`make demo`'s pipeline end to end at toy size: the same Makefile targets (every run, then the report), on
synthetic stand-ins for the English and German bins, with a model small enough to train in seconds."""
import os
import subprocess

from synth import ROOT, make_bin, metrics

TOY = "EXTRA=--n_layer=1 --n_head=2 --n_embd=16 --block_size=16 --batch_size=4 --compile=False --dtype=float32 " \
      "--eval_windows=8 --eval_interval=4 --log_interval=4"


def make(*args, env):
    return subprocess.run(['make', *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def test_demo_pipeline_runs_resumes_and_reports_on_any_corpus_pair(tmp_path):
    # D0 and D1 under names of the user's own, in a DATA_DIR of their own, as `make demo D0=... D1=... DATA_DIR=...`
    make_bin(tmp_path / 'data', 'mine', seed=1)
    make_bin(tmp_path / 'data', 'theirs', seed=2, kind='random')
    env = {**os.environ, 'NANOCPT_DATA': str(tmp_path / 'nowhere')}  # DATA_DIR= must be what is used
    demo = tmp_path / 'demo'
    args = ['-j2', 'demo-report', f'DEMO={demo}', 'P_ITERS=8', 'D_ITERS=8', 'SEEDS=1 2', 'D0=mine', 'D1=theirs',
            f"DATA_DIR={tmp_path / 'data'}", TOY]
    p = make(*args, env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    report = (demo / 'report.md').read_text()
    assert 'D0 = mine, D1 = theirs, seeds [1, 2]' in report and 'D0 loss (mine)' in report
    for run in ('a) constant', 'b) re-warm', 'c) re-warm', 'd) re-warm', 'e) union', 'f) infinite'):
        assert run in report
    assert '| b) re-warm + re-decay, 0% replay | 2 |' in report and ' ± ' in report  # two seeds: mean ± sd
    assert '## Findings' in report and report.count('- **') == 5 and 'standard errors' in report
    for png in ('loss_curves.png', 'tradeoff.png', 'lr_schedules.png', 'continual.png'):
        assert (demo / png).stat().st_size > 10_000
    # the seeds are different runs; a) and f) only on the first seed
    assert metrics(demo / 's1' / 'd0', 'train')[0]['loss'] != metrics(demo / 's2' / 'd0', 'train')[0]['loss']
    assert not (demo / 's2' / 'a_const').exists()
    # the infinite schedule did not re-warm: its D1 phase starts at the LR its D0 phase ended at
    d0_end = metrics(demo / 's1' / 'f_inf_d0', 'eval')[-1]['lr']
    d1_start = metrics(demo / 's1' / 'f_inf_d1', 'eval')[0]['lr']
    assert d1_start == d0_end and d1_start < 3e-3
    # a second `make` finds every run finished and redoes nothing but the report, which comes out the same
    p2 = make(*args, env=env)
    assert p2.returncode == 0 and 'train.py' not in p2.stdout
    assert (demo / 'report.md').read_text() == report
    # an interrupted run (its final.json missing, its checkpoint kept) is resumed, not redone
    os.remove(demo / 's2' / 'b_rewarm' / 'final.json')
    p3 = make(*args, env=env)
    assert p3.returncode == 0 and 'init_from=resume at step 8' in p3.stdout, p3.stdout[-2000:]
    assert (demo / 'report.md').read_text() == report


def test_sweep_runs_every_scale_and_plots_the_gap(tmp_path):
    make_bin(tmp_path / 'data', 'mine', seed=1)
    make_bin(tmp_path / 'data', 'theirs', seed=2, kind='random')
    sweep = tmp_path / 'sweep'
    toy = TOY.replace(' --eval_interval=4', '')  # the sweep sets it per scale
    p = make('sweep-report', f'SWEEP_DIR={sweep}', 'SWEEP_STEPS=9 18', 'SWEEP_SEEDS=1 2', 'D0=mine', 'D1=theirs',
             f"DATA_DIR={tmp_path / 'data'}", toy, env=dict(os.environ))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert sorted(os.listdir(sweep / 'p00009' / 's2')) == ['d0', 'd_replay25', 'e_union']  # b) only when asked
    table = (sweep / 'sweep.md').read_text()
    rows = [line for line in table.splitlines() if line.startswith('| p000')]
    assert [r.split(' | ')[0] for r in rows] == ['| p00009', '| p00018'] and all(' ± ' in r for r in rows)
    assert metrics(sweep / 'p00018' / 's1' / 'e_union', 'train')[-1]['iter'] == 18 + 12  # D1 steps: 2/3 of D0's
    # every scale evaluates 9 times in D0 (and as often per step after it), whatever its length
    assert [r['iter'] for r in metrics(sweep / 'p00018' / 's1' / 'd0', 'eval')] == list(range(0, 19, 2))
    assert [r['iter'] for r in metrics(sweep / 'p00009' / 's2' / 'd_replay25', 'eval')] == list(range(0, 7))
    assert (sweep / 'sweep.png').stat().st_size > 10_000
