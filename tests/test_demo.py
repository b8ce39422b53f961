"""`make demo`'s pipeline end to end at toy size: the same Makefile targets (every run, then the report), on
synthetic stand-ins for the English and German bins, with a model small enough to train in seconds."""
import os
import subprocess

from synth import ROOT, make_bin, metrics

TOY = "EXTRA=--n_layer=1 --n_head=2 --n_embd=16 --block_size=16 --batch_size=4 --compile=False --dtype=float32 " \
      "--eval_windows=8 --eval_interval=4 --log_interval=4"


def make(*args, env):
    return subprocess.run(['make', *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def test_demo_pipeline_runs_resumes_and_reports(tmp_path):
    make_bin(tmp_path / 'data', 'en', seed=1)
    make_bin(tmp_path / 'data', 'de', seed=2, kind='random')
    env = {**os.environ, 'NANOCPT_DATA': str(tmp_path / 'data')}
    demo = tmp_path / 'demo'
    args = ['-j2', 'demo-report', f'DEMO={demo}', 'P_ITERS=8', 'D_ITERS=8', TOY]
    p = make(*args, env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    report = (demo / 'report.md').read_text()
    for run in ('a) constant', 'b) re-warm', 'c) re-warm', 'd) re-warm', 'e) union', 'f) infinite'):
        assert run in report
    assert '## Findings' in report and report.count('- **') == 5
    for png in ('loss_curves.png', 'tradeoff.png', 'lr_schedules.png'):
        assert (demo / png).stat().st_size > 10_000
    # the infinite schedule did not re-warm: its German phase starts at the LR its English phase ended at
    en_end = metrics(demo / 'f_inf_en', 'eval')[-1]['lr']
    de_start = metrics(demo / 'f_inf_de', 'eval')[0]['lr']
    assert de_start == en_end and de_start < 3e-3
    # a second `make` finds every run finished and redoes nothing but the report, which comes out the same
    p2 = make(*args, env=env)
    assert p2.returncode == 0 and 'train.py' not in p2.stdout
    assert (demo / 'report.md').read_text() == report
    # an interrupted run (its final.json missing, its checkpoint kept) is resumed, not redone
    os.remove(demo / 'b_rewarm' / 'final.json')
    p3 = make(*args, env=env)
    assert p3.returncode == 0 and 'init_from=resume at step 8' in p3.stdout, p3.stdout[-2000:]
    assert (demo / 'report.md').read_text() == report
