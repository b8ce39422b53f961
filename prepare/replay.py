"""
A D0 replay bin that holds only data pre-training saw.

The paper replays D0 data the model was trained on, never unseen D0 data. Here that holds by construction:
 - replay draws from D0's train.bin, the very bin pre-training sampled from; D0's val split is disjoint from it
   (documents are split by hash), so validation text is never replayed;
 - when pre-training used a token budget smaller than the bin, prepare D0 with --max_tokens equal to that budget,
   so the bin is exactly the pre-training data, or cut a replay bin from its start with this script:

    python -m prepare.replay --src pile --name pile_replay --max_tokens 15e9

The new bin's train.bin is the first --max_tokens tokens of <src>/train.bin, cut at a document boundary (every
token of it is D0 training data), its val.bin a copy of <src>'s, its meta.json the same tokenizer and hash.
"""
import argparse
import datetime
import json
import os
import sys

import numpy as np

from prepare import default_data_dir
from prepare.text import cli, report
from prepare.writer import output_dir, write_card, write_json

CHUNK = 1 << 24  # tokens copied per step: memory stays flat for any bin size


def copy_tokens(src, dst, n, eot):
    """Copies the first n tokens of a memmap to a file, a chunk at a time; returns how many documents end in them."""
    docs = 0
    with open(dst, 'wb') as f:
        for start in range(0, n, CHUNK):
            chunk = np.asarray(src[start:min(n, start + CHUNK)])
            chunk.tofile(f)
            docs += int(np.count_nonzero(chunk == eot))
    return docs


def make_replay(src, name, max_tokens, data_dir=None, overwrite=False):
    data_dir = data_dir or default_data_dir()
    src_dir = os.path.join(data_dir, src)
    if not os.path.exists(os.path.join(src_dir, 'meta.json')):
        raise FileNotFoundError(f"no prepared dataset {src!r} in {data_dir} (meta.json missing)")
    out = output_dir(name, data_dir, overwrite)
    with open(os.path.join(src_dir, 'meta.json')) as f:
        meta = json.load(f)
    train = np.memmap(os.path.join(src_dir, 'train.bin'), dtype=meta['dtype'], mode='r')
    # end on a document boundary: the first EOT at or after max_tokens (searched in chunks, not the whole bin)
    n = len(train)
    for start in range(min(int(max_tokens), len(train)) - 1, len(train), CHUNK):
        hits = np.flatnonzero(train[max(start, 0):start + CHUNK] == meta['eot_id'])
        if len(hits):
            n = max(start, 0) + int(hits[0]) + 1
            break
    os.makedirs(out, exist_ok=True)
    if os.path.exists(os.path.join(out, 'meta.json')):
        os.remove(os.path.join(out, 'meta.json'))  # the old replay bin stops looking complete before we touch it
    val = np.memmap(os.path.join(src_dir, 'val.bin'), dtype=meta['dtype'], mode='r')
    docs = {}
    for split, data, count in (('train', train, n), ('val', val, len(val))):
        docs[split] = copy_tokens(data, os.path.join(out, f'{split}.bin.tmp'), count, meta['eot_id'])
        os.replace(os.path.join(out, f'{split}.bin.tmp'), os.path.join(out, f'{split}.bin'))
    fresh = dict(created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                 command=' '.join([os.path.basename(sys.argv[0])] + sys.argv[1:]))
    new = dict(meta, **fresh, name=name, train_tokens=n, train_docs=docs['train'], train_bytes=None, groups=None,
               max_tokens=int(max_tokens),
               replay_of=src, source=f"replay subset of {src}: the first {n:,} tokens of its train.bin (data its "
                                     f"pre-training saw); val.bin is {src}'s. {src}: {meta['source']}")
    write_card(out, new)
    write_json(os.path.join(out, 'meta.json'), new)
    return new


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--src', required=True, help='the D0 dataset pre-training used')
    p.add_argument('--name', required=True)
    p.add_argument('--max_tokens', type=float, required=True)
    p.add_argument('--data_dir', default=None)
    p.add_argument('--overwrite', action='store_true')
    args = p.parse_args(argv)
    meta = cli(lambda: make_replay(args.src, args.name, args.max_tokens, args.data_dir, args.overwrite))
    report(meta, args.data_dir)
    return meta


if __name__ == '__main__':
    main()
