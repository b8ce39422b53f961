"""Synthetic token bins in prepare/'s format (docs/design.md), so the core tests need no tokenizer or corpus."""
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_bin(data_dir, name, n_train=20000, n_val=4000, vocab_size=64, seed=0, tokenizer='synthetic',
             kind='pattern'):
    """Writes data_dir/name/{train,val}.bin + meta.json. 'pattern' is a learnable sequence (a few repeating
    phrases); 'random' is uniform noise (loss cannot go below log(vocab))."""
    rng = np.random.default_rng(seed)
    dtype = np.uint16 if vocab_size <= 65536 else np.uint32
    out = os.path.join(data_dir, name)
    os.makedirs(out, exist_ok=True)
    for split, n in (('train', n_train), ('val', n_val)):
        if kind == 'pattern':
            phrases = [np.arange(i, i + 7) % vocab_size for i in range(0, vocab_size, 8)]
            toks = np.concatenate([phrases[j] for j in rng.integers(0, len(phrases), n // 7 + 1)])[:n]
        else:
            toks = rng.integers(0, vocab_size, n)
        toks.astype(dtype).tofile(os.path.join(out, f'{split}.bin'))
    meta = dict(tokenizer=tokenizer, tokenizer_hash=f'hash-of-{tokenizer}', vocab_size=vocab_size,
                dtype=np.dtype(dtype).name, eot_id=vocab_size - 1, train_tokens=n_train, val_tokens=n_val,
                train_docs=1, val_docs=1, source='synthetic')
    with open(os.path.join(out, 'meta.json'), 'w') as f:
        json.dump(meta, f)
    return out


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
    """data.py's audit of a run, parsed: ([(step, micro, rank, index, dataset, offset)], summary lines)."""
    import io

    import data
    out = io.StringIO()
    data.audit(str(run_dir), steps, out=out)
    lines = out.getvalue().splitlines()
    rows = [(int(a), int(b), int(c), int(d), e, int(f)) for a, b, c, d, e, f in
            (line.split() for line in lines if not line.startswith('#'))]
    return rows, [line for line in lines[1:] if line.startswith('#')]


def windows(rows, name):
    return [r[5] for r in rows if r[4] == name]
