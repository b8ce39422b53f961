"""
Documents -> token bins. The one place that writes the format train.py and data.py read (docs/design.md):

    DATA_DIR/<name>/train.bin   flat token ids, uint16 when the vocab fits in 16 bits, else uint32 (np.memmap)
    DATA_DIR/<name>/val.bin     the same, for the documents whose hash puts them in validation
    DATA_DIR/<name>/CARD.md     a data card: source, tokenizer, documents / bytes / tokens per split and group
    DATA_DIR/<name>/meta.json   tokenizer name + hash, vocab_size, dtype, eot_id, counts, source; written LAST

Each document is tokenized and followed by <|endoftext|>: doc EOT doc EOT ... A dataset is complete exactly
when meta.json exists: bins are written under temporary names and renamed at the end, and meta.json goes last,
so a prepare that is killed or fails never leaves a bin that looks complete (and an --overwrite that fails
leaves the old dataset as it was).
"""
import collections
import datetime
import hashlib
import json
import multiprocessing
import os
import sys

import numpy as np
from tqdm import tqdm

import runtime
from prepare import default_data_dir
from prepare.tokenizer import eot_id, get_tokenizer, tokenizer_hash

BATCH_BYTES = 1 << 20  # ~1 MB of text per task: big enough to amortise pickling, small enough to bound memory


def is_val(text_bytes, val_fraction):
    """Validation membership from a hash of the document itself: stable across runs, machines, input order and
    number of workers, and the same document (duplicates too) can never be in both splits."""
    h = int.from_bytes(hashlib.blake2b(text_bytes, digest_size=8).digest(), 'little')
    return h < val_fraction * 2**64


def get_field(row, field):
    """row['a']['b'] for field 'a.b' (hub datasets nest metadata, e.g. SlimPajama's meta.redpajama_set_name; some
    copies store that dict as a JSON string). Returns KeyError (the class) when the field is absent."""
    for key in field.split('.'):
        if isinstance(row, str) and row.startswith('{'):
            row = json.loads(row)
        if not isinstance(row, dict) or key not in row:
            return KeyError
        row = row[key]
    return row


def portable_name(tokenizer, data_dir):
    """What meta.json calls the tokenizer, so that get_tokenizer(meta['tokenizer'], data_dir) finds it from anywhere:
    a file in DATA_DIR/tokenizers/ by its bare name (the folder may move), any other file by its absolute path."""
    if not (tokenizer.endswith('.tiktoken') or os.sep in tokenizer):
        return tokenizer
    path = os.path.abspath(tokenizer)
    if os.path.dirname(path) == os.path.abspath(os.path.join(data_dir, 'tokenizers')) and path.endswith('.tiktoken'):
        return os.path.basename(path)[:-len('.tiktoken')]
    return path


def is_complete(out_dir):
    return os.path.exists(os.path.join(out_dir, 'meta.json'))


def output_dir(name, data_dir=None, overwrite=False):
    """DATA_DIR/<name>, refusing to touch a complete dataset unless asked to."""
    out = os.path.join(data_dir or default_data_dir(), name)
    if is_complete(out) and not overwrite:
        raise FileExistsError(f"{out} already holds a prepared dataset (meta.json exists); "
                              f"pass --overwrite to replace it, or choose another --name")
    return out


# -----------------------------------------------------------------------------
# tokenization, run in worker processes

_enc = None


def _init_worker(tokenizer, data_dir):
    global _enc
    _enc = get_tokenizer(tokenizer, data_dir)


def _encode_batch(texts, val_fraction):
    """-> (ids of all documents back to back, each followed by EOT; per-document lengths, bytes, is_val)."""
    eot = eot_id(_enc)
    ids, lengths, nbytes, val = [], [], [], []
    for text in texts:
        try:
            b = text.encode('utf-8')
        except UnicodeEncodeError:  # lone surrogates: text that was decoded from invalid UTF-8 with surrogateescape
            raise ValueError(f"document is not valid UTF-8 text: {text[:60]!r}...") from None
        doc = _enc.encode_ordinary(text)  # ordinary: a literal "<|endoftext|>" in the text is just text
        doc.append(eot)
        ids.extend(doc)
        lengths.append(len(doc))
        nbytes.append(len(b))
        val.append(is_val(b, val_fraction))
    return np.array(ids, dtype=np.uint32), lengths, nbytes, val


def _batches(rows, text_field, group_field, stats):
    """Groups rows into ~BATCH_BYTES lists of (text, group); skips empty texts; checks the fields once."""
    texts, groups, size = [], [], 0
    for i, row in enumerate(rows):
        text = get_field(row, text_field)
        if text is KeyError:
            fields = sorted(row) if isinstance(row, dict) else type(row).__name__
            raise ValueError(f"document {i} has no text field {text_field!r} (its fields: {fields}); "
                             f"choose the field with --text_field")
        if text is None or text == '':
            stats['skipped_empty'] += 1
            continue
        if not isinstance(text, str):
            raise ValueError(f"document {i}: field {text_field!r} holds {type(text).__name__}, not text; "
                             f"choose the text field with --text_field")
        group = get_field(row, group_field) if group_field else None
        texts.append(text)
        groups.append(None if not group_field else '(missing)' if group in (None, KeyError) else str(group))
        size += len(text)
        if size >= BATCH_BYTES:
            yield texts, groups
            texts, groups, size = [], [], 0
    if texts:
        yield texts, groups


def _encoded(batches, tokenizer, data_dir, val_fraction, num_proc):
    """Yields (batch, encoded batch) in input order. At most 2*num_proc batches are in flight, so memory stays
    flat however long the stream (Pool.imap would read the whole input ahead)."""
    if num_proc <= 1:
        _init_worker(tokenizer, data_dir)
        for batch in batches:
            yield batch, _encode_batch(batch[0], val_fraction)
        return
    # spawn, not fork: the reader (datasets, pyarrow) may hold threads and locks that fork would copy mid-use
    with multiprocessing.get_context('spawn').Pool(num_proc, _init_worker, (tokenizer, data_dir)) as pool:
        pending = collections.deque()
        for batch in batches:
            pending.append((batch, pool.apply_async(_encode_batch, (batch[0], val_fraction))))
            if len(pending) >= 2 * num_proc:
                batch, result = pending.popleft()
                yield batch, result.get()
        while pending:
            batch, result = pending.popleft()
            yield batch, result.get()


# -----------------------------------------------------------------------------
# the writer

def write_bins(rows, name, tokenizer='gpt2', data_dir=None, text_field='text', group_field=None,
               val_fraction=0.005, max_tokens=None, group_budget=None, num_proc=None, overwrite=False,
               source='', extra_meta=None, progress=True):
    """Tokenizes an iterable of rows (dicts holding the text) into DATA_DIR/<name>/ and returns its meta.

    max_tokens: stop once train.bin holds this many tokens (whole documents: the last one may pass it).
    group_budget: {group: train tokens}; a document counts against the budget of its `group_field` value and is
    skipped once that group is full (SlimPajama's domains in proportion). Groups not listed are skipped.
    Validation documents are kept only while their group's and the total budget are open, so the val split
    comes from the same part of the stream as the train split."""
    data_dir = data_dir or default_data_dir()
    out = output_dir(name, data_dir, overwrite)
    os.makedirs(out, exist_ok=True)
    enc = get_tokenizer(tokenizer, data_dir)
    dtype = np.uint16 if enc.n_vocab <= 2**16 else np.uint32
    num_proc = num_proc or os.cpu_count() or 1
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")

    split_counts = lambda: dict(docs=0, bytes=0, tokens=0)
    stats = collections.Counter()
    totals = {'train': split_counts(), 'val': split_counts()}
    groups = collections.defaultdict(lambda: {'train': split_counts(), 'val': split_counts()})
    tmp = {split: os.path.join(out, f'{split}.bin.tmp') for split in ('train', 'val')}
    files = {split: open(path, 'wb') for split, path in tmp.items()}
    train_hash = hashlib.sha256()  # the tokens' identity (data.bin_identity), computed as they are written
    budget = max_tokens if group_budget is None else sum(group_budget.values())
    bar = tqdm(total=budget, unit='tok', unit_scale=True, desc=name, disable=not progress)
    try:
        batches = _batches(rows, text_field, group_field, stats)
        for (texts, doc_groups), (ids, lengths, nbytes, val) in _encoded(batches, tokenizer, data_dir, val_fraction, num_proc):
            keep = {'train': [], 'val': []}
            start = 0
            for n, b, v, g in zip(lengths, nbytes, val, doc_groups):
                piece = ids[start:start + n]
                start += n
                if group_budget is not None and groups[g]['train']['tokens'] >= group_budget.get(g, 0):
                    stats['skipped_budget'] += 1
                    continue  # this domain has its share already (or is not one we sample)
                split = 'val' if v else 'train'
                keep[split].append(piece)
                for c in (totals[split], groups[g][split]):
                    c['docs'] += 1
                    c['bytes'] += b
                    c['tokens'] += n
                if split == 'train':
                    bar.update(n)
                if max_tokens is not None and totals['train']['tokens'] >= max_tokens:
                    break
            for split, pieces in keep.items():
                if pieces:
                    tokens = np.concatenate(pieces).astype(dtype)
                    tokens.tofile(files[split])
                    if split == 'train':
                        train_hash.update(tokens.tobytes())
            bar.set_postfix(docs=totals['train']['docs'] + totals['val']['docs'])
            full = max_tokens is not None and totals['train']['tokens'] >= max_tokens
            if group_budget is not None:
                full = full or all(groups[g]['train']['tokens'] >= t for g, t in group_budget.items())
            if full:
                break
        bar.close()
        n_docs = totals['train']['docs'] + totals['val']['docs']
        if n_docs == 0:
            raise ValueError(f"no text to prepare for {name!r}: the input is empty"
                             + (f" ({stats['skipped_empty']} documents had an empty {text_field!r})" if stats['skipped_empty'] else ''))
        if totals['train']['docs'] == 0:
            raise ValueError(f"all {n_docs} documents fell into the validation split: add documents or lower val_fraction")
        if val_fraction > 0 and totals['val']['docs'] == 0:
            raise ValueError(f"none of the {n_docs} documents fell into the validation split "
                             f"(val_fraction {val_fraction}): add documents or raise val_fraction")
        for f in files.values():
            f.flush()
            os.fsync(f.fileno())
            f.close()
        meta = dict(
            name=name, tokenizer=portable_name(tokenizer, data_dir), tokenizer_hash=tokenizer_hash(enc), vocab_size=enc.n_vocab,
            dtype=np.dtype(dtype).name, eot_id=eot_id(enc),
            train_tokens=totals['train']['tokens'], val_tokens=totals['val']['tokens'],
            train_sha256=train_hash.hexdigest(),
            train_docs=totals['train']['docs'], val_docs=totals['val']['docs'],
            train_bytes=totals['train']['bytes'], val_bytes=totals['val']['bytes'],
            val_fraction=val_fraction, max_tokens=max_tokens, source=source,
            skipped_empty_docs=stats['skipped_empty'], skipped_over_budget_docs=stats['skipped_budget'],
            groups=dict(sorted((g, v) for g, v in groups.items() if g is not None)) or None, group_budget=group_budget,
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            command=' '.join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
            **(extra_meta or {}))
        # from here on: old meta.json out first (the old bins stop looking complete), bins in, card, meta.json last
        if os.path.exists(os.path.join(out, 'meta.json')):
            os.remove(os.path.join(out, 'meta.json'))
        for split, path in tmp.items():
            files[split].close()
            runtime.durable_replace(path, os.path.join(out, f'{split}.bin'))
        write_card(out, meta)
        runtime.write_json(os.path.join(out, 'meta.json'), meta)
        return meta
    finally:
        bar.close()
        for split, f in files.items():
            f.close()
            if os.path.exists(tmp[split]):
                os.remove(tmp[split])


def write_card(out, meta):
    """CARD.md: what the dataset is and how big, from the same counts as meta.json."""
    lines = [f"# {meta['name']}", '', meta['source'] or '(no source description)', '',
             f"Tokenizer `{meta['tokenizer']}` (hash {meta['tokenizer_hash']}, vocab {meta['vocab_size']}, "
             f"{meta['dtype']}), documents separated by id {meta['eot_id']}. Prepared {meta['created']}.", '',
             '| split | documents | bytes | tokens | bytes/token |', '|---|---|---|---|---|']
    for split in ('train', 'val'):
        d, b, t = meta[f'{split}_docs'], meta.get(f'{split}_bytes'), meta[f'{split}_tokens']
        ratio = f"{b / t:.2f}" if b and t else '-'
        lines.append(f"| {split} | {d:,} | {'-' if b is None else f'{b:,}'} | {t:,} | {ratio} |")
    if meta.get('groups'):
        lines += ['', '| group | train docs | train bytes | train tokens | val docs | val tokens |', '|---|---|---|---|---|---|']
        for g, c in meta['groups'].items():
            tr, va = c['train'], c['val']
            lines.append(f"| {g} | {tr['docs']:,} | {tr['bytes']:,} | {tr['tokens']:,} | {va['docs']:,} | {va['tokens']:,} |")
    sources = meta.get('sources') or []  # e.g. the Debian packages of the demo corpora: one row each, any columns
    if sources:
        cols = list(sources[0])
        lines += ['', '| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)]
        lines += ['| ' + ' | '.join(f"{s.get(c):,}" if isinstance(s.get(c), int) else str(s.get(c)) for c in cols) + ' |'
                  for s in sources]
    lines += ['', f"Command: `{meta['command']}`", '']
    runtime.write_text(os.path.join(out, 'CARD.md'), '\n'.join(lines))
