"""
Reading text: local files (txt, jsonl/json, parquet; files, folders or globs) and Hugging Face datasets, streamed
through `datasets` (nothing is copied or cached), with one-line errors that say which file is wrong. Used by
prepare.text (the bins) and prepare.tokenizer (training a BPE).
"""
import codecs
import glob
import itertools
import os

FORMATS = {'.txt': 'text', '.text': 'text', '.md': 'text', '.jsonl': 'json', '.json': 'json', '.parquet': 'parquet'}
COMPRESSED = ('.gz', '.zst', '.bz2', '.xz')  # datasets reads these inside json/text (zst needs `zstandard`)


def file_format(path):
    stem = path[:-len(path.rsplit('.', 1)[-1]) - 1] if path.endswith(COMPRESSED) else path
    return FORMATS.get(os.path.splitext(stem)[1].lower())


def expand_inputs(inputs):
    """Files, folders (searched recursively for known formats) and globs -> sorted list of files."""
    files = []
    for item in inputs:
        if os.path.isdir(item):
            found = [os.path.join(d, f) for d, _, fs in os.walk(item) for f in fs]
            files += sorted(f for f in found if file_format(f))
        elif os.path.exists(item):
            files.append(item)
        else:
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise FileNotFoundError(f"input {item!r}: no such file, folder or glob match")
            files += matches
    if not files:
        raise ValueError(f"no input files of a known format ({', '.join(sorted(FORMATS))}) in {inputs}")
    for f in files:
        if file_format(f) is None:
            raise ValueError(f"{f}: unknown format; use one of {', '.join(sorted(FORMATS))} (optionally {'/'.join(COMPRESSED)})")
    return files


def check_utf8(path, chunk=1 << 22):
    """Raises a clear error naming the file and byte offset if a plain text/json file is not UTF-8 (datasets
    would fail mid-stream without saying which file)."""
    decoder = codecs.getincrementaldecoder('utf-8')()
    offset = 0
    with open(path, 'rb') as f:
        while True:
            data = f.read(chunk)
            try:
                decoder.decode(data, final=not data)
            except UnicodeDecodeError as e:
                raise ValueError(f"{path} is not valid UTF-8 (byte {offset + e.start}: {data[e.start:e.start + 8]!r}); "
                                 f"convert it first, e.g. iconv -f latin1 -t utf-8") from None
            if not data:
                return
            offset += len(data)


def _guard(rows, where):
    """Turns a decoding error deep inside datasets into one line that says where."""
    try:
        yield from rows
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: input is not valid UTF-8 ({e})") from None


def read_documents(inputs, text_field='text', sample_by='document'):
    """Rows (dicts) from local files, streamed through `datasets`: nothing is copied or cached."""
    import datasets  # optional here: only reading documents needs it (seconds to import)
    os.environ.setdefault('HF_DATASETS_OFFLINE', '1')  # local files need no hub; don't wait for one
    files = expand_inputs(inputs)
    files = [f for f in files if os.path.getsize(f) > 0]  # datasets cannot even open an empty json file
    if not files:
        raise ValueError(f"no text to prepare: the input is empty ({' '.join(map(str, inputs))})")
    streams = []
    for fmt, group in itertools.groupby(files, key=file_format):  # consecutive files of one format, in order
        group = list(group)
        if fmt in ('text', 'json'):
            for f in group:
                if not f.endswith(COMPRESSED):
                    check_utf8(f)
        kwargs = {'sample_by': sample_by} if fmt == 'text' else {}
        ds = datasets.load_dataset(fmt, data_files=group, split='train', streaming=True, **kwargs)
        streams.append(_guard(ds, ', '.join(group[:3]) + (' ...' if len(group) > 3 else '')))
    return itertools.chain.from_iterable(streams)


def read_hub(dataset, config=None, split='train'):
    """Rows of a Hugging Face dataset (a hub id, or a local folder laid out like a hub repo), streamed."""
    import datasets  # optional here: only reading documents needs it (seconds to import)
    try:
        ds = datasets.load_dataset(dataset, config, split=split, streaming=True)
    except (ConnectionError, OSError) as e:  # OSError: the hub client's offline and HTTP errors derive from it
        raise RuntimeError(f"could not open {dataset!r} ({e}). Without the hub, download its shards elsewhere "
                           f"and pass them with --input (same schema)") from None
    return _guard(ds, dataset)
