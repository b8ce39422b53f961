"""
bench/gpu_check.sh, the script for a GPU machine, checked where there is none: `--smoke` runs every stage on CPU
(Triton interpreter, tiny shapes) as the GPU machine would, with only what that machine has. Its python lacks
datasets, wandb, lm-eval and matplotlib, so they are made unimportable here: a stage that needs one fails.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOT_ON_GPU_MACHINE = ('datasets', 'wandb', 'lm_eval', 'matplotlib')


def gpu_check(tmp_path, *args):
    stubs = tmp_path / 'stubs'
    stubs.mkdir(exist_ok=True)
    for name in NOT_ON_GPU_MACHINE:
        (stubs / f'{name}.py').write_text(f"raise ImportError('{name} is not installed on the GPU machine')\n")
    env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}
    env.update(PYTHON=sys.executable, OUT=str(tmp_path / 'out'), PYTHONPATH=str(stubs))
    return subprocess.run(['bash', 'bench/gpu_check.sh', *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_smoke_runs_every_stage(tmp_path):
    p = gpu_check(tmp_path, '--smoke')
    out = tmp_path / 'out'
    report = (out / 'report.md').read_text() if (out / 'report.md').exists() else ''
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr[-3000:]}\n{report}"
    stages = [line.split('\t') for line in (out / 'stages.tsv').read_text().splitlines()]
    assert [s[0] for s in stages] == ['env', 'data', 'tests', 'kernels', 'train_kernels', 'train_twins']
    assert all(s[1] == 'ok' for s in stages), stages
    assert 'train.py imports: ok' in report
    tests = report.split('## kernel tests')[1].split('## kernels')[0]
    assert re.search(r'\d+ passed', tests) and 'failed' not in tests, tests
    # every kernel got a row with numbers, none failed
    for kernel in ('layer_norm', 'rms_norm', 'rotary 25%', 'gelu exact', 'swiglu', 'cross_entropy',
                   'linear + cross_entropy'):
        assert re.search(rf'^\| {re.escape(kernel)}[^|]* \| [\d.]+ \| [\d.]+ \| [\d.]+ \|', report, re.M), kernel
    assert 'failed:' not in report
    # train.py ran both ways on the same data from the same init: the kernels train like the twins
    losses = dict(re.findall(r'^\| (kernels|twins) \| [\d,]+ \| .* \| ([\d.]+) \|$', report, re.M))
    assert set(losses) == {'kernels', 'twins'}, report
    assert abs(float(losses['kernels']) - float(losses['twins'])) < 0.02, losses
    for log in ('env.log', 'tests.log', 'kernels.log', 'train_kernels.log', 'train_twins.jsonl'):
        assert (out / log).stat().st_size > 0, log


def test_unknown_argument_prints_usage(tmp_path):
    p = gpu_check(tmp_path, '--fast')
    assert p.returncode == 2 and 'usage: bash bench/gpu_check.sh [--smoke]' in p.stdout
