"""
A replay bin of exactly the D0 windows a run has read.

train.py replays from what the model has seen without any of this (`replay={'pile': 0.05}`: data.py draws only
windows the run's lineage read). A bin of its own is for the rest: a replay shard cut once and handed to another
codebase or run, read at another block size or seed, or capped at a token budget (the authors' 15B-token shard of
seen Pile data):

    python -m prepare.replay --run out/pile_405m --src pile --name pile_seen [--max_tokens 15e9]

The run's checkpoint records how far its lineage has read `src`'s stream (data.py); its train.bin is the windows
of that record, in bin order, each with the target token after it; where two read windows are not neighbours in
src, an end-of-text token separates them (the model never read that join as text). --max_tokens keeps the windows
read first. Its val.bin is a copy of src's, its meta.json the same tokenizer and hash.
"""
import argparse
import datetime
import os
import sys

import numpy as np

import checkpoint
import data as datalib
from prepare.text import cli, report
import runtime
from prepare.writer import output_dir, write_card

CHUNK = 1 << 18  # windows copied per step: memory stays flat for any bin size


def write_windows(src, seen, T, eot, path):
    """Writes the windows of the memmap `src` (block T) marked in `seen`, each maximal run of neighbours as one
    span with its final target token, runs separated by `eot`. Returns (tokens, documents) written."""
    n_tokens = docs = 0
    with open(path, 'wb') as f:
        for c0 in range(0, len(seen), CHUNK):
            c1 = min(len(seen), c0 + CHUNK)
            m = seen[c0:c1]
            if not m.any():
                continue
            toks = np.asarray(src[c0 * T:c1 * T + 1])
            rows = np.flatnonzero(m)
            after = np.append(m[1:], seen[c1] if c1 < len(seen) else False)[rows]  # is the next window read too?
            ends = np.flatnonzero(~after)                  # a run ends here: its last target, then a separator
            target = toks[(rows[ends] + 1) * T]
            extra = np.stack([target, np.where(target == eot, -1, eot)], axis=1).ravel()
            at = np.repeat((ends + 1) * T, 2)
            keep = extra >= 0                              # no separator after a target that already is one
            out = np.insert(toks[:-1].reshape(-1, T)[rows].ravel(), at[keep], extra[keep].astype(toks.dtype))
            out.tofile(f)
            n_tokens += len(out)
            docs += int(np.count_nonzero(out == eot))
    return n_tokens, docs


def make_replay(run, src, name, max_tokens=0, data_dir=None, overwrite=False):
    meta_run = checkpoint.load_meta(run)
    rec = meta_run.get('data_state', {}).get(src)
    if rec is None:
        raise ValueError(f"{run} has no record of reading {src!r} (it read: {sorted(meta_run.get('data_state', {}))})")
    data_dir = data_dir or meta_run['config']['data_dir']
    meta = datalib.load_meta(data_dir, src)
    train = datalib.open_bin(data_dir, src, 'train', meta)
    same = datalib.bin_identity(data_dir, src, meta) == rec['bin'] if 'bin' in rec else \
        datalib.meta_hash(data_dir, src) == rec['meta']  # a record from before bin identities
    if len(train) != rec['train_tokens'] or not same:
        raise ValueError(f"{os.path.join(data_dir, src)} is not the bin {run} read (its size or tokens changed)")
    T = rec['block_size']
    windows = min(rec['drawn'], (len(train) - 1) // T)
    if max_tokens:
        windows = min(windows, int(max_tokens) // T)  # the first windows the run read
    out = output_dir(name, data_dir, overwrite)
    os.makedirs(out, exist_ok=True)
    if os.path.exists(os.path.join(out, 'meta.json')):
        os.remove(os.path.join(out, 'meta.json'))  # the old replay bin stops looking complete before we touch it
    seen = datalib.seen_mask(src, {**rec, 'drawn': windows})
    n, docs = write_windows(train, seen, T, meta['eot_id'], os.path.join(out, 'train.bin.tmp'))
    runtime.durable_replace(os.path.join(out, 'train.bin.tmp'), os.path.join(out, 'train.bin'))
    val = datalib.open_bin(data_dir, src, 'val', meta)
    runtime.atomic_write(os.path.join(out, 'val.bin'), lambda f: np.asarray(val).tofile(f))
    fresh = dict(created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                 command=' '.join([os.path.basename(sys.argv[0])] + sys.argv[1:]))
    # no train_sha256: the replay bin's identity is sampled from its tokens (data.bin_identity), not src's
    new = dict(meta, **fresh, name=name, train_tokens=n, train_docs=docs, train_bytes=None, groups=None,
               train_sha256=None, max_tokens=int(max_tokens) or None, replay_of=src, replay_run=os.path.abspath(run),
               replay_windows=windows,
               source=f"replay subset of {src}: the {windows:,} windows of {T} tokens that run {run} read "
                      f"(with their targets; end-of-text between windows not adjacent in {src}); val.bin is "
                      f"{src}'s. {src}: {meta['source']}")
    write_card(out, new)
    runtime.write_json(os.path.join(out, 'meta.json'), new)
    return new


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--run', required=True, help="the run (out_dir or checkpoint) whose reads of --src to write")
    p.add_argument('--src', required=True, help="the D0 dataset that run read")
    p.add_argument('--name', required=True, help="the new dataset's name")
    p.add_argument('--max_tokens', type=float, default=0, help="keep only the windows read first, up to this many tokens")
    p.add_argument('--data_dir', default=None, help="default: the run's data_dir")
    p.add_argument('--overwrite', action='store_true')
    args = p.parse_args(argv)
    meta = cli(lambda: make_replay(args.run, args.src, args.name, args.max_tokens, args.data_dir, args.overwrite))
    report(meta, args.data_dir or checkpoint.load_meta(args.run)['config']['data_dir'])
    return meta


if __name__ == '__main__':
    main()
