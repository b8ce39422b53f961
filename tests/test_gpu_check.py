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


def gpu_check(tmp_path, *args, **limits):
    stubs = tmp_path / 'stubs'
    stubs.mkdir(exist_ok=True)
    for name in NOT_ON_GPU_MACHINE:
        (stubs / f'{name}.py').write_text(f"raise ImportError('{name} is not installed on the GPU machine')\n")
    env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}
    env.update(PYTHON=sys.executable, OUT=str(tmp_path / 'out'), PYTHONPATH=str(stubs), **limits)
    return subprocess.run(['bash', 'bench/gpu_check.sh', *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_smoke_runs_every_stage(tmp_path):
    p = gpu_check(tmp_path, '--smoke')
    out = tmp_path / 'out'
    report = (out / 'report.md').read_text() if (out / 'report.md').exists() else ''
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr[-3000:]}\n{report}"
    stages = [line.split('\t') for line in (out / 'stages.tsv').read_text().splitlines()]
    # the stages in their order of importance: what a short GPU session must not lose comes first
    assert [s[0] for s in stages] == ['env', 'data', 'lm_head', 'kernels', 'train_twins', 'train_kernels',
                                      'train_fsdp', 'train_checkpointing', 'tests']
    assert all(s[1] == 'ok' for s in stages), stages
    assert 'train.py imports: ok' in report
    order = [report.find(f'\n## {s}') for s in ('fused LM head', 'kernels (', 'train.py', 'kernel tests')]
    assert -1 not in order and order == sorted(order), order
    lm = report.split('## fused LM head')[1].split('\n## kernels (')[0]
    assert re.search(r'^\| linear \+ cross_entropy', lm, re.M) and '| layer_norm' not in lm, lm
    tests = report.split('## kernel tests')[1].split('## kernels')[0]
    assert re.search(r'\d+ passed', tests) and 'failed' not in tests, tests
    # every kernel got a row with numbers, none failed
    for kernel in ('layer_norm', 'rms_norm', 'rotary 25%', 'gelu exact', 'swiglu', 'cross_entropy',
                   'linear + cross_entropy'):
        assert re.search(rf'^\| {re.escape(kernel)}[^|]* \| [\d.]+ \| [\d.]+ \| [\d.]+ \|', report, re.M), kernel
    assert 'failed:' not in report
    # train.py ran every arm; with the kernels and without, on the same data from the same init, it trains alike
    losses = dict(re.findall(r'^\| (\w+) \| [\d,]+ \| .* \| ([\d.]+) \|$', report, re.M))
    assert set(losses) == {'kernels', 'twins', 'fsdp', 'checkpointing'}, report
    assert abs(float(losses['kernels']) - float(losses['twins'])) < 0.02, losses
    for log in ('env.log', 'lm_head.log', 'tests.log', 'kernels.log', 'train_kernels.log', 'train_twins.jsonl',
                'train_fsdp.jsonl', 'train_checkpointing.jsonl'):
        assert (out / log).stat().st_size > 0, log


def test_a_stage_that_fails_shows_its_log_and_loses_nothing_else(tmp_path):
    """Stages that run out of time are reported with the tail of their log; the ones before them keep theirs."""
    p = gpu_check(tmp_path, '--smoke', T_LM='1', T_KERNELS='1', T_TRAIN='1', T_TRAIN2='1', T_TESTS='1')
    out = tmp_path / 'out'
    report = (out / 'report.md').read_text()
    assert p.returncode == 1, report
    status = dict(line.split('\t')[:2] for line in (out / 'stages.tsv').read_text().splitlines())
    assert status['env'] == status['data'] == 'ok' and status['lm_head'] == 'timed out after 1 s', status
    assert '## lm_head: timed out after 1 s, the last' in report and '## tests: timed out after 1 s' in report
    assert 'train.py imports: ok' in report  # what env found is still there


def test_unknown_argument_prints_usage(tmp_path):
    p = gpu_check(tmp_path, '--fast')
    assert p.returncode == 2 and 'usage: bash bench/gpu_check.sh [--smoke]' in p.stdout
