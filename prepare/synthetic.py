"""
Synthetic token bins in prepare/'s format (docs/design.md): the tests and benchmarks train on these, so they need
no tokenizer, corpus or network. Not for real training: the text is a few repeating phrases, or noise.
"""
import json
import os

import numpy as np


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
