"""
The data audit: which window of which dataset every sample of a run's steps read, and a summary per dataset: the
samples, the distinct windows, the epochs (or replay passes) they fall in, and how many of those windows an earlier
phase of the run's lineage had read (data.py explains streams and replay). Single-file or sharded checkpoints.

    python -m eval.audit out-demo-cpu/s1/d_replay25 --steps=0:1 | head -3     # `step micro rank index dataset offset`
    python -m eval.audit out-demo-cpu/s1/d_replay25 | tail -2                 # the summary of every step
"""
import argparse
import os
import signal
import sys

if __package__ in (None, ''):  # run as a file (python eval/x.py, the nanoGPT habit): the repo root on the path, as -m
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

import checkpoint
import data as datalib
import runtime


def audit(run, steps='', data_dir=None, out=None):
    """Prints every sample the run's steps A:B read (`step micro rank index dataset window_offset`, the offset in
    tokens into the train bin), then per dataset: samples, distinct windows, the epochs (or replay passes) they
    fall in, and how many of those windows an earlier phase of the lineage had read."""
    out = out or sys.stdout
    meta = checkpoint.load_meta(run)
    if 'data_start' not in meta:
        raise ValueError(f"{run} has no data record (it was trained before streams were recorded): nothing to audit")
    cfg, world = meta['config'], meta['world_size']
    lineage = meta['data_start']
    mixture = datalib.Mixture(data_dir or cfg['data_dir'], cfg['data'], cfg['block_size'], cfg['batch_size'],
                              cfg['gradient_accumulation_steps'] // world, world, cfg['seed'], cfg.get('replay'),
                              lineage, source=run)
    try:
        if ':' in steps:
            a, b = steps.split(':')
            a, b = int(a or 0), int(b) if b else meta['iter_num']
        else:
            a, b = (int(steps), int(steps) + 1) if steps else (0, meta['iter_num'])
    except ValueError:
        raise ValueError(f"--steps={steps!r} must look like A:B, A:, :B or A (steps of the run)") from None
    if not 0 <= a < b <= meta['iter_num']:
        raise ValueError(f"--steps={steps!r}: the run has steps 0..{meta['iter_num'] - 1}")
    read = {n: np.zeros(mixture.windows[n], dtype=bool) for n in mixture.names}
    samples = dict.fromkeys(mixture.names, 0)
    per = mixture.B * world
    print("# step micro rank index dataset window_offset", file=out)
    for step in range(a, b):
        which, offsets = mixture.plan(step)
        rows = []
        for i, (d, o) in enumerate(zip(which, offsets)):
            micro, rest = divmod(i, per)
            rows.append(f"{step} {micro} {rest // mixture.B} {rest % mixture.B} {mixture.names[d]} {o}")
            read[mixture.names[d]][o // mixture.T] = True
            samples[mixture.names[d]] += 1
        print('\n'.join(rows), file=out)
    lo, hi = mixture.drawn(a), mixture.drawn(b)
    for n in mixture.names:
        earlier = datalib.seen_mask(n, lineage[n]) if n in lineage else np.zeros_like(read[n])
        if n in mixture.replayed:
            stream = mixture.replay[n]
            size, unit, first = stream.n, 'replay pass', stream.first
        else:
            size, unit, first = mixture.windows[n], 'epoch', 0
        p0, p1 = mixture.start[n] + lo[n], mixture.start[n] + max(hi[n] - 1, lo[n])  # first and last position
        e0, e1 = first + p0 // size, first + p1 // size
        kind = 'replay' if n in mixture.replayed else 'data'
        print(f"# {n} ({kind}): {samples[n]:,} samples, {int(read[n].sum()):,} distinct windows of "
              f"{mixture.windows[n]:,}"
              f", {unit}{'s' if e1 > e0 else ''} {e0}{f'-{e1}' if e1 > e0 else ''}"
              + (f" over {size:,} seen windows" if n in mixture.replayed else '')
              + f"; {int((read[n] & earlier).sum()):,} of them read by an earlier phase", file=out)


if __name__ == '__main__':
    runtime.clean_errors()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `python -m eval.audit RUN | head` ends quietly
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('run', help="a train.py out_dir (or its checkpoint)")
    p.add_argument('--steps', default='', help="A:B (steps A..B-1), A:, :B or A; default: every step of the run")
    p.add_argument('--data_dir', default=None, help="where the bins are, if not the run's data_dir")
    args = p.parse_args()
    audit(args.run, args.steps, args.data_dir)
