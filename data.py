"""
Token bins, the stream each dataset is read in, and the replay mixture.

A dataset is a folder DATA_DIR/<name>/ with train.bin and val.bin (flat token ids, np.memmap) and meta.json
(tokenizer name and hash, vocab size, dtype, counts), written by prepare/.

Streams. A train bin is cut into W back-to-back windows of block_size tokens (each read with the token after it,
the last target), and a dataset is read as an endless stream of windows: position k is window perm_e(k mod W) of
epoch e = k // W, where perm_e is a pseudo-random permutation of the W windows (a Feistel network, O(1) memory at
any W) keyed by (seed, dataset, epoch). Every window is read once per epoch, and the first positions of an epoch
avoid the last windows of the one before, so no step holds a window twice, epoch boundaries included.

A stream continues across phases. A checkpoint records, per dataset, the windows its lineage (this run and the
runs it started from) has drawn, with what defines the order: seed, block_size, the bin's size and its identity
(bin_identity: a hash of its tokens, not of when it was made). A new phase (init_from=<run>) carries each dataset
on from there, in the seed the lineage began it with, so an anneal branch or a continued run reads windows its main
line has not; a dataset new to the lineage starts at position 0 in this phase's seed, which may be another one.

Replay. `replay={'en': 0.25}` reads en only from the windows the lineage has already read (its seen set: the first
K positions of en's stream, all W windows once K >= W), in a fresh order of its own: passes over the seen set, each
a permutation keyed by (seed, dataset, pass), the replay stream continuing across phases too, so two later phases
replay different windows. `data={'en': 0.25}` instead continues en's own stream: new windows, unseen until the
epoch ends. This is how the authors' GPT-NeoX fork replays (docs/paper.md): only samples pre-training drew, reshuffled.

The mixture. A run trains on data and replay together, with weights w_i normalised over both: exactly
floor(s n w_i) windows of source i are drawn before step s (n sequences per step), spread over the batch at random.
What each sample gets is a pure function of (the lineage's record, seed, step, micro-step, rank, index): a resumed
run sees exactly the batches it would have seen, and ranks and micro-steps never draw the same window.
`python -m eval.audit RUN_DIR` lists what every sample of a run read. The validation loss (evaluate, below) is over
fixed windows of each val bin, the same in every run and phase.
"""
import hashlib
import itertools
import json
import math
import os
import zlib

import numpy as np
import torch

import runtime

PREPARE_HINT = ("build the demo corpora with `python -m prepare.demo`, or your own with `python -m prepare.text` "
                "(docs/data.md)")
GUARD = 1 << 14  # an epoch's first windows avoid the previous epoch's last ones: enough for any step's draws
ROUNDS = 6       # Feistel rounds (4 already make a pseudo-random permutation from a good round function)


def load_meta(data_dir, name):
    path = os.path.join(data_dir, name, 'meta.json')
    if not os.path.exists(path):
        # meta.json is written last by prepare/, so a bin without it is incomplete, not just unannounced
        raise FileNotFoundError(f"dataset {name!r} not found: {path} does not exist; {PREPARE_HINT}")
    with open(path) as f:
        return json.load(f)


def prepared_vocab(data_dir, data):
    """The tokenizer vocab of the first dataset of `data` (a name or {name: weight}) if it is prepared, else
    None: a dry run sizes the model from it without needing the bins."""
    name = next(iter(normalise_weights(data)))
    if not os.path.exists(os.path.join(data_dir, name, 'meta.json')):
        return None
    return load_meta(data_dir, name)['vocab_size']


def lineage(source, resume, new_streams, init_from):
    """The data record a run continues, from its source checkpoint's meta: where each dataset's stream stood
    when the run began (a resume: data_start), or where the source left it (a new phase: data_state); none
    for a run from scratch or a new phase with new_streams (every dataset from its start)."""
    if source is None or (new_streams and not resume):
        return {}
    record = source.get('data_start' if resume else 'data_state')
    if record is None:
        raise ValueError(f"{init_from} has no data record (trained before streams were recorded): pass "
                         f"--new_streams=True to read every dataset from its start")
    return record


def meta_hash(data_dir, name):
    """What checkpoints before bin identities recorded: a hash of meta.json (its `created` time included)."""
    with open(os.path.join(data_dir, name, 'meta.json'), 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def bin_identity(data_dir, name, meta=None):
    """A train bin's identity from its content: the tokens' hash, their count and the tokenizer's hash, so a bin
    prepared again from the same documents is the same bin, whenever it was made. prepare/ writes the tokens'
    sha256 into meta.json once (`train_sha256`); for a bin without it (prepared before, or by hand) the hash covers
    64 evenly spaced 64 KiB pieces of train.bin instead of all of it, so it stays cheap at any size."""
    meta = meta or load_meta(data_dir, name)
    path = os.path.join(data_dir, name, 'train.bin')
    size, content = os.path.getsize(path), meta.get('train_sha256')
    if content is None:
        h, last = hashlib.sha256(), max(0, size - (1 << 16))
        with open(path, 'rb') as f:
            for at in sorted({last * i // 63 for i in range(64)}):
                f.seek(at)
                h.update(f.read(1 << 16))
        content = 'sampled:' + h.hexdigest()
    ident = f"{content} {size} {meta['tokenizer_hash']}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


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
    """The tokenizer every dataset was prepared with; refuses a mixture of tokenizers (their ids mean different
    things)."""
    hashes = {name: m['tokenizer_hash'] for name, m in metas.items()}
    if len(set(hashes.values())) > 1:
        listing = ', '.join(f"{n}: {metas[n]['tokenizer']} ({h[:12]})" for n, h in hashes.items())
        raise ValueError(f"datasets were prepared with different tokenizers ({listing}); "
                         f"re-prepare them with one tokenizer to train or evaluate on them together")
    m = next(iter(metas.values()))
    return {k: m[k] for k in ('tokenizer', 'tokenizer_hash', 'vocab_size', 'eot_id')}


def check_tokenizer(data_dir, val_data, tokenizer, source_tokenizer, source, vocab_size):
    """Token ids mean something only under the tokenizer that made them: the validation sets and the checkpoint a
    run starts from must share the training bins' tokenizer, and the model's vocabulary must cover it. Returns
    the model's vocab_size (0 = the tokenizer's)."""
    val = shared_tokenizer({n: load_meta(data_dir, n) for n in val_data})
    if val['tokenizer_hash'] != tokenizer['tokenizer_hash']:
        raise ValueError(f"val_data {val_data} were prepared with tokenizer {val['tokenizer']}, the training data "
                         f"with {tokenizer['tokenizer']}: re-prepare them with one tokenizer")
    if source_tokenizer and source_tokenizer['tokenizer_hash'] != tokenizer['tokenizer_hash']:
        raise ValueError(f"{source} was trained with tokenizer {source_tokenizer['tokenizer']}, but the data uses "
                         f"{tokenizer['tokenizer']}: prepare the new data with the checkpoint's tokenizer")
    vocab_size = vocab_size or tokenizer['vocab_size']
    if tokenizer['vocab_size'] > vocab_size:
        raise ValueError(f"the bins' tokenizer has {tokenizer['vocab_size']} tokens but the model's vocab_size is "
                         f"{vocab_size}: set vocab_size >= {tokenizer['vocab_size']} (or 0 to follow the data)")
    return vocab_size


def to_device(x, device):
    if torch.device(device).type == 'cuda':
        # pinned host memory lets the copy run asynchronously, overlapping the previous step's compute
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


# -----------------------------------------------------------------------------------------------------------------
# streams


def _mix64(z):
    """splitmix64's finaliser: a cheap, well-mixed hash of uint64s (the Feistel round function). Wraps mod 2^64."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def permute(i, n, key):
    """Item i (an int array, values in [0, n)) of the pseudo-random permutation of [0, n) that `key` (ints) picks.
    A balanced Feistel network on the smallest even number of bits that holds n is a bijection of [0, 4^h); cycle
    walking (apply it again while the value is >= n, at most ~4 times on average) makes it one of [0, n)."""
    half = max(1, ((int(n) - 1).bit_length() + 1) // 2)
    shift, mask = np.uint64(half), np.uint64((1 << half) - 1)
    keys = np.random.default_rng([int(k) for k in key]).integers(0, 2**63, ROUNDS, dtype=np.uint64)

    def feistel(x):
        left, right = x >> shift, x & mask
        for k in keys:
            left, right = right, left ^ (_mix64(right ^ k) & mask)
        return (left << shift) | right

    x = feistel(np.asarray(i, dtype=np.uint64).reshape(-1))
    todo = np.flatnonzero(x >= n)
    while len(todo):
        x[todo] = feistel(x[todo])
        todo = todo[x[todo] >= n]
    return x.astype(np.int64)


class Stream:
    """Positions 0, 1, 2, ... over n items: epoch e = k // n visits every item once, in permute(.., key + (e,))
    order. The first 2g positions of each later epoch are rearranged (swaps within them) so that its first g items
    avoid the last g of the epoch before: any g consecutive positions hold g different items. g is GUARD, or more
    for a stream made for steps that take more (its record keeps it)."""

    def __init__(self, n, key, first_epoch=0, guard=GUARD):
        self.n, self.key, self.first = n, tuple(key), first_epoch
        self.guard = min(n // 4, guard)  # <= n/4 keeps the rearranged head clear of the epoch's own tail
        self._heads = {}

    def order(self, epoch, j):
        return permute(j, self.n, self.key + (self.first + epoch,))

    def _head(self, epoch):
        if epoch not in self._heads:
            g = self.guard
            items = self.order(epoch, np.arange(2 * g))
            clash = np.isin(items, self.order(epoch - 1, np.arange(self.n - g, self.n)))
            bad = np.flatnonzero(clash[:g])
            good = g + np.flatnonzero(~clash[g:])[:len(bad)]  # there are always enough: only g items clash
            items[bad], items[good] = items[good], items[bad]
            if len(self._heads) >= 2:  # a step spans at most two epochs: keep two, recompute an older one if asked
                del self._heads[min(self._heads)]
            self._heads[epoch] = items
        return self._heads[epoch]

    def __call__(self, k):
        k = np.asarray(k, dtype=np.int64).reshape(-1)
        epoch, j = k // self.n, k % self.n
        out = np.empty(len(k), dtype=np.int64)
        for e in np.unique(epoch):
            rows = epoch == e
            out[rows] = self.order(e, j[rows])
            if e > 0 and self.guard:
                head = rows & (j < 2 * self.guard)
                out[head] = self._head(e)[j[head]]
        return out


def main_stream(name, rec):
    """A dataset's own stream of window indices, from its record in a lineage (see Mixture.state)."""
    return Stream((rec['train_tokens'] - 1) // rec['block_size'], (rec['seed'], zlib.crc32(name.encode()), 0),
                  guard=rec.get('guard', GUARD))


def seen_mask(name, rec):
    """Boolean mask over the dataset's windows: those its lineage has read (the first K positions of its stream)."""
    stream = main_stream(name, rec)
    seen = np.zeros(stream.n, dtype=bool)
    for start in range(0, min(rec['drawn'], stream.n), 1 << 22):  # in chunks: memory stays flat at any size
        seen[stream.order(0, np.arange(start, min(rec['drawn'], stream.n, start + (1 << 22))))] = True
    return seen


# -----------------------------------------------------------------------------------------------------------------
# the mixture


class Mixture:
    """Training batches drawn from a weighted mixture of datasets' train bins (fresh data and replay).

    lineage: the data record of the run this phase starts from (its checkpoint's `data_state`, or `data_start` to
    resume), {} for a new lineage. source names that run in error messages. resumed: a resume's own data record
    (`data_state`), whose bins must be the ones it read too, the datasets new in that run included."""

    def __init__(self, data_dir, data, block_size, batch_size, grad_accum, world_size, seed, replay=None,
                 lineage=None, source='init_from', resumed=None):
        data = {data: 1.0} if isinstance(data, str) else data
        replay = replay or {}
        if not isinstance(replay, dict):
            raise ValueError(f"replay must be a dict {{name: weight}}, got {replay!r}")
        both = set(data) & set(replay) if isinstance(data, dict) else set()
        if both:
            raise ValueError(f"{sorted(both)} in both data and replay: a dataset is either read on (data) or "
                             f"replayed from what the model has seen (replay), not both")
        self.weights = normalise_weights({**data, **replay}) if isinstance(data, dict) else normalise_weights(data)
        self.names, self.replayed = list(self.weights), set(replay)
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
        self.lineage = lineage = dict(lineage or {})
        self.ident, self.stream, self.start, self.replay = {}, {}, {}, {}
        for n in self.names:
            rec = lineage.get(n)
            most = math.ceil(self.n * self.weights[n]) + (len(self.names) - 1) * (n == self.anchor)
            # a stream the lineage began keeps its seed (and guard): this phase's seed orders only what is new to it
            self.ident[n] = dict(seed=rec['seed'] if rec else seed, block_size=block_size,
                                 train_tokens=len(self.bins[n]), bin=bin_identity(data_dir, n, self.metas[n]))
            if rec is None and most > GUARD:  # steps that take more than GUARD windows need a longer guard
                self.ident[n]['guard'] = most
            if (resumed or {}).get(n) and n not in self.replayed:
                self._check(n, resumed[n], source, data_dir)
            if rec is not None:
                self._check(n, rec, source, data_dir)
                self.ident[n].update({'guard': rec['guard']} if 'guard' in rec else {})
            self.stream[n] = main_stream(n, {**self.ident[n], 'drawn': 0})
            self.start[n] = rec['drawn'] if rec else 0
            if n in self.replayed:
                self._replay_stream(n, rec, source, most)
            stream = self.replay[n] if n in self.replayed else self.stream[n]
            if self.weights[n] > 0 and most > 1 and most > stream.guard:
                what = f"replays from the {stream.n:,} windows its lineage has read" if n in self.replayed else \
                    f"has {stream.n:,} windows of block_size={block_size}"
                if most <= stream.n // 4:  # enough windows, but the lineage's stream guards fewer per step
                    what = f"continues a stream {source} made for at most {stream.guard:,} of its windows per step"
                raise ValueError(f"dataset {n!r} {what}, too few for the up to {most} sequences a step takes from "
                                 f"it without reading a window twice in one step (at most a quarter of them): "
                                 f"prepare more data, or lower batch_size or gradient_accumulation_steps")
        self._step, self._plan = None, None

    def _check(self, n, rec, source, data_dir):
        mine = self.ident[n]
        if rec['block_size'] != mine['block_size']:
            raise ValueError(f"{source} read dataset {n!r} with block_size={rec['block_size']!r}, this run has "
                             f"block_size={mine['block_size']!r}: set --block_size={rec['block_size']!r} to continue "
                             f"its stream (or replay what it read), or --new_streams=True to read every dataset afresh")
        # records from before bin identities hold a hash of meta.json instead ('meta')
        then, now = (rec['bin'], mine['bin']) if 'bin' in rec else (rec['meta'], meta_hash(data_dir, n))
        for k, what, a, b in (('train_tokens', 'its train.bin has another size', rec['train_tokens'],
                               mine['train_tokens']), ('bin', 'its tokens or their tokenizer changed', then, now)):
            if a != b:
                raise ValueError(f"dataset {n!r} is not the bin {source} read ({what}: {a!r} then, {b!r} now): "
                                 f"restore that bin to continue its stream (or replay what it read), or pass "
                                 f"--new_streams=True to read every dataset afresh")

    def _replay_stream(self, n, rec, source, most):
        """Replay of n: passes over the windows the lineage has read, continuing the lineage's replay stream (in
        its seed), or starting one in this run's seed."""
        seen = min(rec['drawn'], self.windows[n]) if rec else 0
        if not seen:
            who = f"{source} has never read {n!r}" if self.lineage else f"this run starts no lineage that read {n!r}"
            raise ValueError(f"replay={{{n!r}: ...}} but {who}: replay draws only windows the model was trained on; "
                             f"init_from a run that read {n!r}, or put {n!r} in data to read it as new data")
        old = rec.get('replay')
        if old and old['seen'] == seen:      # the lineage read no more of n since: carry the replay stream on
            # (records from before replay seeds were kept had the main stream's seed)
            passes, drawn, seed = old['passes'], old['drawn'], old.get('seed', rec['seed'])
            guard = old.get('guard', GUARD)
        elif old:                            # it read more: a new pass over the larger seen set
            passes, drawn, seed, guard = old['passes'] + math.ceil(old['drawn'] / old['seen']), 0, self.seed, most
        else:
            passes, drawn, seed, guard = 0, 0, self.seed, most
        self.replay[n] = Stream(seen, (seed, zlib.crc32(n.encode()), 1), first_epoch=passes, guard=max(GUARD, guard))
        self.start[n] = drawn

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
        """Token offsets of the windows drawn k-th (an array) in this phase from dataset `name`: its own stream
        continued, or (replay) its replay stream, whose items are the lineage's first reads of `name`."""
        k = self.start[name] + np.asarray(k, dtype=np.int64)
        if name in self.replayed:
            return self.stream[name].order(0, self.replay[name](k)) * self.T
        return self.stream[name](k) * self.T

    def state(self, step):
        """The lineage's data record after `step` steps of this phase: per dataset, the windows of its stream drawn
        so far (and, for replay, of its replay stream), with what defines each order. Goes into the checkpoint."""
        out = {n: dict(r) for n, r in self.lineage.items()}
        for n, d in self.drawn(step).items():
            if n in self.replayed:
                stream = self.replay[n]
                out[n]['replay'] = dict(seen=stream.n, passes=stream.first, drawn=self.start[n] + d,
                                        seed=stream.key[0], **({'guard': stream.guard} if stream.guard > GUARD else {}))
            else:
                out[n] = {**self.ident[n], 'drawn': self.start[n] + d,
                          **({'replay': out[n]['replay']} if 'replay' in out.get(n, {}) else {})}
        return out

    def describe(self, step=0):
        """One line per dataset: where its stream stands at step `step` of this phase (for the log)."""
        lines, drawn = [], self.drawn(step)
        for n in self.names:
            at = self.start[n] + drawn[n]
            if n in self.replayed:
                stream = self.replay[n]
                lines.append(f"data: {n} ({self.weights[n]:.1%}) replays the {stream.n:,} windows its lineage read: "
                             f"replay pass {stream.first + at // stream.n}, {at % stream.n:,} of them done")
            else:
                lines.append(f"data: {n} ({self.weights[n]:.1%}) at window {at:,} of its stream: epoch "
                             f"{at // self.windows[n]}, {at % self.windows[n]:,} of {self.windows[n]:,} windows done")
        return lines

    def new_epochs(self, step):
        """A line for each epoch (or replay pass) after the first that step `step` begins, for the log."""
        before, after, out = self.drawn(step), self.drawn(step + 1), []
        for n in self.names:
            size = self.replay[n].n if n in self.replayed else self.windows[n]
            lo, hi = self.start[n] + before[n], self.start[n] + after[n]
            for e in range(max(1, -(-lo // size)), (hi - 1) // size + 1):
                if n in self.replayed:
                    out.append(f"data: replay of {n} starts pass {self.replay[n].first + e} over its {size:,} "
                               f"seen windows at step {step}")
                else:
                    out.append(f"data: {n} starts epoch {e} (every window once more) at step {step}")
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
        w = torch.stack([torch.from_numpy(data[o:o + block_size + 1].astype(np.int64))
                         for o in offsets[i:i + batch_size]])
        yield to_device(w[:, :-1], device), to_device(w[:, 1:], device)


@torch.no_grad()
def evaluate(model, data_dir, names, block_size, batch_size, windows, amp, device='cpu', rank=0, world_size=1,
             sharded=False):
    """{dataset: mean loss over its fixed validation windows (data.val_offsets), ..., 'mean': their plain mean}.
    Ranks split the windows; a sharded (FSDP) model's forward is collective, so every rank then runs as many
    batches as the busiest one. The same numbers as eval/loss.py gives for the checkpoint."""
    was_training = model.training
    model.eval()
    out = {}
    for name in names:
        total = count = 0.0
        batches = val_batches(data_dir, name, block_size, batch_size, windows, rank, world_size, device)
        if sharded:  # windows are split round-robin: the busiest rank has ceil(ceil(n / world) / batch) batches
            n = len(val_offsets(len(open_bin(data_dir, name, 'val')), block_size, windows))
            batches = itertools.islice(itertools.chain(batches, itertools.repeat((None, None))),
                                       math.ceil(math.ceil(n / world_size) / batch_size))
        for x, y in batches:
            with amp:
                if x is None:  # a throwaway forward that keeps this rank in step with the others
                    model(torch.zeros((1, block_size), dtype=torch.long, device=device))
                    continue
                _, loss = model(x, y)  # every window has block_size targets, so window means average exactly
            total += loss.item() * x.shape[0]
            count += x.shape[0]
        total, count = runtime.all_reduce([total, count], device)
        out[name] = total / count
    out['mean'] = sum(out[n] for n in names) / len(names)
    model.train(was_training)
    return out
