"""What the tests share: synthetic bins (prepare/synthetic.py), a tiny model, train.py run as a user would, its logs and
data audit."""
import io
import json
import os
import subprocess
import sys

from prepare.synthetic import make_bin  # noqa: F401 (the tests import it from here)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# a tiny model that trains in seconds on 2 cores
TINY = ['--n_layer=2', '--n_head=2', '--n_embd=32', '--block_size=32', '--batch_size=4', '--compile=False',
        '--dtype=float32', '--log_interval=1', '--eval_windows=16', '--bias=False']


def run_train(*args, env=None, check=True, nproc=1):
    """Runs train.py in a subprocess (as a user would); returns the CompletedProcess."""
    cmd = [sys.executable, 'train.py', *args] if nproc == 1 else \
        [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}', 'train.py', *args]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"train.py failed (rc {p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def metrics(out_dir, kind):
    with open(os.path.join(out_dir, 'metrics.jsonl')) as f:
        return [r for r in map(json.loads, f) if r['kind'] == kind]


def audit(run_dir, steps=''):
    """eval/audit.py's audit of a run, parsed: ([(step, micro, rank, index, dataset, offset)], summary lines)."""
    from eval.audit import audit  # here, not at the top: conftest imports this file before it sets TRITON_INTERPRET
    out = io.StringIO()
    audit(str(run_dir), steps, out=out)
    lines = out.getvalue().splitlines()
    rows = [(int(a), int(b), int(c), int(d), e, int(f)) for a, b, c, d, e, f in
            (line.split() for line in lines if not line.startswith('#'))]
    return rows, [line for line in lines[1:] if line.startswith('#')]


def windows(rows, name):
    return [r[5] for r in rows if r[4] == name]
