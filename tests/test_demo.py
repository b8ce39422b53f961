"""`make demo`'s and `make sweep`'s pipelines end to end at toy size: the same Makefile targets (every run, then the
report), on synthetic stand-ins for the English and German bins, with models small enough to train in seconds."""
import os
import re
import subprocess

from synth import ROOT, make_bin, metrics

TOY = "EXTRA=--n_layer=1 --n_head=2 --n_embd=16 --block_size=16 --batch_size=4 --compile=False --dtype=float32 " \
      "--eval_windows=8 --eval_interval=4 --log_interval=4"


def make(*args, env):
    return subprocess.run(['make', *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def corpora(data):
    make_bin(data, 'mine', seed=1)
    make_bin(data, 'theirs', seed=2, kind='random')
    make_bin(data, 'near', seed=3)


def test_demo_pipeline_runs_both_shifts_resumes_and_reports_on_any_corpus_pair(tmp_path):
    # D0 and the two D1s under names of the user's own, in a DATA_DIR of their own, as `make demo D0=... D1=...`
    corpora(tmp_path / 'data')
    env = {**os.environ, 'NANOCPT_DATA': str(tmp_path / 'nowhere')}  # DATA_DIR= must be what is used
    demo = tmp_path / 'demo'
    args = ['-j2', 'demo-report', f'DEMO={demo}', 'P_ITERS=8', 'D_ITERS=8', 'SEEDS=1 2', 'D0=mine', 'D1=theirs',
            'D1_WEAK=near', f"DATA_DIR={tmp_path / 'data'}", TOY]
    p = make(*args, env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    report = (demo / 'report.md').read_text()
    assert re.search(r'^Machine: .+; torch [\d.]+.*; float32, eager', report, re.M), report[:500]
    strong, weak = report.split('## The weak shift')
    assert 'D0 = mine, D1 = theirs, seeds [1, 2]' in strong and 'D0 loss (mine)' in strong
    for run in ('a) constant', 'b) re-warm', 'c) re-warm + re-decay, 5%', 'd) re-warm + re-decay, 25%', 'e) union',
                'f) infinite'):
        assert run in strong
    assert '| b) re-warm + re-decay, 0% replay | 2 |' in strong and ' ± ' in strong  # two seeds: mean ± sd
    assert strong.count('- **') == 5 and 'standard errors' in strong and 'Pile → German' in strong
    # the re-warm's η_max beside the verdict: b) and d) at ½x, 1x and 2x, seed 1
    eta = strong.split("### The re-warm's η_max")[1]
    assert len(re.findall(r'^\| [bd]\) \| (½x|1x|2x) \|', eta, re.M)) == 6
    # the weak shift: the same D0 runs, 0/1/5% replay and its own union, findings 1-3
    assert 'D0 = mine, D1 = near, seeds [1, 2]' in weak and 'Pile → SlimPajama' in weak
    for run in ('b) re-warm + re-decay, 0%', 'c) re-warm + re-decay, 1%', 'd) re-warm + re-decay, 5%', 'e) union'):
        assert f'| {run}' in weak
    assert weak.count('- **') == 3 and '3. Re-warm + re-decay + 5% replay' in weak
    for png in ('loss_curves.png', 'tradeoff.png', 'lr_schedules.png', 'continual.png', 'weak/continual.png',
                'weak/loss_curves.png'):
        assert (demo / png).stat().st_size > 10_000
    # the seeds are different runs; a), f) and the η arms only on the first seed
    assert metrics(demo / 's1' / 'd0', 'train')[0]['loss'] != metrics(demo / 's2' / 'd0', 'train')[0]['loss']
    assert not (demo / 's2' / 'a_const').exists() and not (demo / 's2' / 'b_rewarm_eta2x').exists()
    # the η arms ran the continual phase at ½x and 2x D0's η_max, warmup then cosine to a tenth of it
    eta_max = lambda run: max(r['lr'] for r in metrics(demo / 's1' / run, 'eval'))
    assert abs(eta_max('b_rewarm_eta2x') - 4 * eta_max('b_rewarm_eta0.5x')) < 1e-12 and eta_max('b_rewarm_eta2x') > 0
    # the infinite schedule did not re-warm: its D1 phase starts at the LR its D0 phase ended at
    d0_end = metrics(demo / 's1' / 'f_inf_d0', 'eval')[-1]['lr']
    d1_start = metrics(demo / 's1' / 'f_inf_d1', 'eval')[0]['lr']
    assert d1_start == d0_end
    # a second `make` finds every run finished and redoes nothing but the report, which comes out the same
    p2 = make(*args, env=env)
    assert p2.returncode == 0 and 'train.py' not in p2.stdout
    assert (demo / 'report.md').read_text() == report
    # an interrupted run (its final.json missing, its checkpoint kept) is resumed, not redone
    os.remove(demo / 's2' / 'weak_b_rewarm' / 'final.json')
    p3 = make(*args, env=env)
    assert p3.returncode == 0 and 'init_from=resume at step 8' in p3.stdout, p3.stdout[-2000:]
    assert (demo / 'report.md').read_text() == report
    # one shift alone: its runs only, its table only
    weak_only = tmp_path / 'weak'
    p4 = make(*[a.replace(f'DEMO={demo}', f'DEMO={weak_only}') for a in args], 'SHIFT=weak', 'SEEDS=1', env=env)
    assert p4.returncode == 0, p4.stdout[-3000:] + p4.stderr[-3000:]
    assert sorted(os.listdir(weak_only / 's1')) == ['d0', 'weak_b_rewarm', 'weak_c_replay1', 'weak_d_replay5',
                                                    'weak_e_union']
    assert '## The strong shift' not in (weak_only / 'report.md').read_text()
    p5 = make('demo', 'SHIFT=sideways', env=env)
    assert p5.returncode != 0 and 'SHIFT=sideways: use strong, weak or both' in p5.stdout


def test_sweep_runs_every_width_and_budget_and_plots_the_gap(tmp_path):
    corpora(tmp_path / 'data')
    sweep = tmp_path / 'sweep'
    # the real shapes of the rule (1 x 32 and 2 x 64) on toy sequences: 64 tokens a step instead of 4,096
    toy = ("EXTRA=--block_size=16 --batch_size=4 --compile=False --dtype=float32 --eval_windows=8 "
           "--log_interval=4")
    common = [f"DATA_DIR={tmp_path / 'data'}", 'D0=mine', 'D1=theirs', toy]
    p = make('sweep-report', f'SWEEP_DIR={sweep}', 'SWEEP_GRID=32:8,16 64:8', 'SWEEP_SEEDS=1 2', *common,
             env=dict(os.environ))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert sorted(os.listdir(sweep)) == ['sweep.md', 'sweep.png', 'w032_r0008', 'w032_r0016', 'w064_r0008']
    assert sorted(os.listdir(sweep / 'w032_r0008' / 's2')) == ['d0', 'd_replay25', 'e_union']  # b) only when asked
    # D0 steps: TPP tokens per non-embedding parameter at 4,096 tokens a step (12 L C^2 + (2 L + 1) C parameters)
    steps = lambda cell: metrics(sweep / cell / 's1' / 'd0', 'train')[-1]['iter']
    assert steps('w032_r0008') == round(8 * (12 * 32 ** 2 + 3 * 32) / 4096) == 24
    assert steps('w064_r0008') == round(8 * (12 * 2 * 64 ** 2 + 5 * 64) / 4096) == 193
    assert metrics(sweep / 'w032_r0016' / 's1' / 'e_union', 'train')[-1]['iter'] == 48 + 32  # D1: 2/3 of D0's
    # every cell evaluates 9 times in D0, whatever its length
    assert [r['iter'] for r in metrics(sweep / 'w032_r0016' / 's1' / 'd0', 'eval')] == list(range(0, 49, 5)) + [48]
    table = (sweep / 'sweep.md').read_text()
    rows = {line.split(' | ')[0][2:]: line for line in table.splitlines() if line.startswith('| w0')}
    assert list(rows) == ['w032_r0008', 'w032_r0016', 'w064_r0008'] and all(' ± ' in r for r in rows.values())
    # parameters with and without embeddings (vocab 64, untied: 2 x 64 x C of them, 16,480 in all), the epochs of each corpus
    assert '| 1 x 32, vocab 64 | 0.016M (0.012M) |' in rows['w032_r0008']
    assert re.search(r'\| mine [\d.]+, theirs [\d.]+ \|', rows['w064_r0008'])
    # widths that share a budget are compared: do they fall onto one curve?
    assert re.search(r'^- [\d.]+ tokens per parameter, widths \[32, 64\]: ', table, re.M)
    assert (sweep / 'sweep.png').stat().st_size > 10_000
    # make tune: D0 alone at each η_max of the grid, the best marked
    tune = tmp_path / 'tune'
    p = make('tune-1e-3', 'tune-1e-2', f'TUNE_DIR={tune}', 'WIDTH=32', 'TUNE_TPP=8', *common, env=dict(os.environ))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    p = subprocess.run([os.path.join(ROOT, '.venv/bin/python'), '-m', 'eval.sweep', '--tune', str(tune), '--d0',
                        'mine'], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert len(re.findall(r'^\| w032_r0008 \| (0\.001|0\.01) \| [\d.]+ \|', p.stdout, re.M)) == 2
    assert p.stdout.count('**best**') == 1 and (tune / 'tune.md').exists()
