"""
prepare/: text in, token bins out.

    tokenizer.py   get_tokenizer(name) and tokenizer_hash(); trains a custom byte-level BPE (.tiktoken file)
    writer.py      documents -> DATA_DIR/<name>/{train,val}.bin + meta.json + CARD.md (the bin format)
    text.py        the command line for any source: local txt/jsonl/parquet or a Hugging Face dataset
    demo.py        the offline demo corpora en, de, en2 (Debian packages) and the demo8k tokenizer
    extract.py     HTML / man page -> plain text, boilerplate removal (used by demo.py)
    pile.py, slimpajama.py, german.py   the paper's datasets (streamed from the hub)
    replay.py      a D0 replay bin: a prefix of the D0 train bin, i.e. data pre-training saw
"""
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_data_dir():
    """Where bins, tokenizers and the demo's package cache live: $NANOCPT_DATA if set, else the repo's data/.
    Read at call time, so a test or a caller can point it elsewhere."""
    return os.environ.get('NANOCPT_DATA') or os.path.join(REPO_ROOT, 'data')
