"""
Token bins and the replay mixture.

A dataset is a folder DATA_DIR/<name>/ with train.bin and val.bin (flat token ids, np.memmap) and meta.json
(tokenizer name and hash, vocab size, dtype, counts), written by prepare/. A run trains on a weighted mixture
`data = {'de': 0.75, 'en': 0.25}`: a fraction w_i of every batch comes from dataset i, at a random position in
the batch. Each dataset is read in passes (epochs), as the paper's runs read the Pile once: its train bin is cut
into back-to-back windows of block_size tokens (each read with the token after it, the last target), and every
window is drawn once per epoch, in a shuffled order.

What each sample gets is a pure function of (seed, step, micro-step, rank, index): a resumed run sees exactly the
batches it would have seen, ranks and micro-steps never draw the same window, and a new phase with the same seed
that replays D0 re-reads D0's windows in the order pre-training read them: replay is drawn from what the model saw.
"""
import json
import math
import os
import zlib

import numpy as np
import torch

PREPARE_HINT = "build the demo corpora with `python -m prepare.demo`, or your own with `python -m prepare.text` (README: Preparing data)"


def load_meta(data_dir, name):
    path = os.path.join(data_dir, name, 'meta.json')
    if not os.path.exists(path):
        # meta.json is written last by prepare/, so a bin without it is incomplete, not just unannounced
        raise FileNotFoundError(f"dataset {name!r} not found: {path} does not exist; {PREPARE_HINT}")
    with open(path) as f:
        return json.load(f)


def open_bin(data_dir, name, split, meta=None):
    meta = meta or load_meta(data_dir, name)
    path = os.path.join(data_dir, name, f'{split}.bin')
    if not os.path.exists(path):
        raise FileNotFoundError(f"dataset {name!r} has no {split} split: {path} is missing; {PREPARE_HINT}")
    return np.memmap(path, dtype=np.dtype(meta['dtype']), mode='r')


def normalise_weights(data):
    """'en' or {'en': 3, 'de': 1} -> {'en': 0.75, 'de': 0.25}, with a clear error for anything else."""
    if isinstance(data, str):
        data = {data: 1.0}
    if not isinstance(data, dict) or not data:
        raise ValueError(f"data must be a dataset name or a dict {{name: weight}}, got {data!r}")
    for name, w in data.items():
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not np.isfinite(w) or w < 0:
            raise ValueError(f"data weight for {name!r} must be a non-negative number, got {w!r}")
    total = sum(data.values())
    if total <= 0:
        raise ValueError(f"data weights {data} sum to zero: give at least one dataset a positive weight")
    return {name: w / total for name, w in data.items()}


def shared_tokenizer(metas):
    """The tokenizer every dataset was prepared with; refuses a mixture of tokenizers (their ids mean different things)."""
    hashes = {name: m['tokenizer_hash'] for name, m in metas.items()}
    if len(set(hashes.values())) > 1:
        listing = ', '.join(f"{n}: {metas[n]['tokenizer']} ({h[:12]})" for n, h in hashes.items())
        raise ValueError(f"datasets were prepared with different tokenizers ({listing}); "
                         f"re-prepare them with one tokenizer to train or evaluate on them together")
    m = next(iter(metas.values()))
    return {k: m[k] for k in ('tokenizer', 'tokenizer_hash', 'vocab_size', 'eot_id')}


def to_device(x, device):
    if torch.device(device).type == 'cuda':
        # pinned host memory lets the copy run asynchronously, overlapping the previous step's compute
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


class Mixture:
    """Training batches drawn from a weighted mixture of datasets' train bins."""

    def __init__(self, data_dir, data, block_size, batch_size, grad_accum, world_size, seed):
        self.weights = normalise_weights(data)
        self.names = list(self.weights)
        self.metas = {n: load_meta(data_dir, n) for n in self.names}
        self.tokenizer = shared_tokenizer(self.metas)
        self.bins = {n: open_bin(data_dir, n, 'train', self.metas[n]) for n in self.names}
        self.T, self.B, self.accum, self.world, self.seed = block_size, batch_size, grad_accum, world_size, seed
        self.n = batch_size * grad_accum * world_size  # sequences per optimizer step, all ranks and micro-steps
        self.windows = {n: (len(b) - 1) // block_size for n, b in self.bins.items()}  # back-to-back windows
        for n in self.names:
            if self.weights[n] > 0 and self.windows[n] < 1:
                raise ValueError(f"dataset {n!r} has {len(self.bins[n])} train tokens, fewer than one window of "
                                 f"block_size={block_size}; prepare more data or lower block_size")
        # the dataset with the largest weight takes what rounding leaves over in each step (see drawn())
        self.anchor = max(self.names, key=lambda n: self.weights[n])
        if self.n * self.weights[self.anchor] < len(self.names) - 1:
            raise ValueError(f"{self.n} sequences per step are too few to mix {len(self.names)} datasets; "
                             f"raise batch_size or gradient_accumulation_steps")
        self._step, self._plan = None, None

    def drawn(self, step):
        """Windows drawn from each dataset before optimizer step `step`: floor(step * n * w_i), the largest-weight
        dataset taking the rest so every step holds exactly n. A closed form: no run has to count as it goes."""
        out = {n: int(step * self.n * self.weights[n]) for n in self.names if n != self.anchor}
        out[self.anchor] = step * self.n - sum(out.values())
        return out

    def samples_per_dataset(self, step):
        """How many sequences of step `step` (all ranks, all micro-steps) come from each dataset."""
        before, after = self.drawn(step), self.drawn(step + 1)
        return {n: after[n] - before[n] for n in self.names}

    def window(self, name, k):
        """Token offsets of the windows drawn k-th (an array) from dataset `name`. Epoch e = k // W visits all W
        windows once, in the order of a random affine bijection i -> (a i + b) mod W with a coprime to W: every
        window once, consecutive draws far apart in the bin, and O(1) memory however large the dataset."""
        W = self.windows[name]
        out = np.empty(len(k), dtype=np.int64)
        for epoch in np.unique(k // W):
            rng = np.random.default_rng([self.seed, zlib.crc32(name.encode()), int(epoch)])
            a = 1
            while W > 1:
                a = int(rng.integers(1, W))
                if math.gcd(a, W) == 1:
                    break
            b = int(rng.integers(0, W))
            rows = k // W == epoch
            out[rows] = (a * (k[rows] % W) + b) % W * self.T
        return out

    def plan(self, step):
        """(dataset index, offset) for every sample of optimizer step `step`, across all micro-steps and ranks.
        Ranks each compute the whole (cheap) plan and take their slice, so they never need to talk about it."""
        if self._step != step:
            counts, before = self.samples_per_dataset(step), self.drawn(step)
            which = np.repeat(np.arange(len(self.names)), [counts[n] for n in self.names])
            which = np.random.default_rng([self.seed, step]).permutation(which)  # datasets spread over the batch
            offsets = np.empty(self.n, dtype=np.int64)
            for i, name in enumerate(self.names):
                rows = np.flatnonzero(which == i)
                offsets[rows] = self.window(name, before[name] + np.arange(len(rows)))
            self._step, self._plan = step, (which, offsets)
        return self._plan

    def get_batch(self, step, micro_step, rank, device='cpu'):
        which, offsets = self.plan(step)
        start = (micro_step * self.world + rank) * self.B
        xs, ys = [], []
        for i in range(start, start + self.B):
            b, o = self.bins[self.names[which[i]]], offsets[i]
            w = torch.from_numpy(b[o:o + self.T + 1].astype(np.int64))
            xs.append(w[:-1])
            ys.append(w[1:])
        return to_device(torch.stack(xs), device), to_device(torch.stack(ys), device)



def val_offsets(n_tokens, block_size, max_windows):
    """Fixed validation windows: evenly spaced over the whole val bin, independent of seed and run, so curves
    compare across runs and phases. All windows (back to back) when max_windows is 0 or exceeds what fits."""
    n_fit = (n_tokens - 1) // block_size
    if n_fit < 1:
        raise ValueError(f"val split of {n_tokens} tokens is shorter than one window of block_size={block_size}")
    if not max_windows or max_windows >= n_fit:
        return np.arange(n_fit, dtype=np.int64) * block_size
    return np.linspace(0, n_tokens - 1 - block_size, max_windows).astype(np.int64)


def val_batches(data_dir, name, block_size, batch_size, max_windows, rank=0, world_size=1, device='cpu'):
    """Yields (x, y) over this rank's share of the fixed validation windows of dataset `name`."""
    data = open_bin(data_dir, name, 'val')
    offsets = val_offsets(len(data), block_size, max_windows)[rank::world_size]
    for i in range(0, len(offsets), batch_size):
        w = torch.stack([torch.from_numpy(data[o:o + block_size + 1].astype(np.int64)) for o in offsets[i:i + batch_size]])
        yield to_device(w[:, :-1], device), to_device(w[:, 1:], device)
