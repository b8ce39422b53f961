"""
Any text source -> DATA_DIR/<name>/{train,val}.bin + meta.json + CARD.md.

Local files (txt, jsonl/json, parquet; files, folders or globs), read through `datasets` in streaming mode:
    python -m prepare.text --name mydata --input notes/*.txt --tokenizer demo8k
    python -m prepare.text --name web --input dump.jsonl --text_field content --max_tokens 50e6
A Hugging Face dataset, streamed (nothing is downloaded ahead; memory stays flat):
    python -m prepare.text --name wiki --hf_dataset wikimedia/wikipedia --hf_config 20231101.en --max_tokens 1e9

A .txt file is one document (--sample_by paragraph: blank-line separated paragraphs; line: one per line).
Validation: each document goes to val.bin when a hash of its text falls below --val_fraction.
"""
import argparse
import os

from prepare import default_data_dir
from prepare.readers import read_documents, read_hub
from prepare.writer import output_dir, write_bins


# -----------------------------------------------------------------------------
# command line, shared with the paper's dataset scripts (pile.py, slimpajama.py, german.py)

def parser(description=__doc__, **defaults):
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--name', required='name' not in defaults, help='output folder: DATA_DIR/<name>/')
    src = p.add_argument_group('source (one of)')
    src.add_argument('--input', nargs='+', help='local txt/jsonl/parquet files, folders or globs')
    src.add_argument('--hf_dataset', help='Hugging Face dataset id (streamed), or a local folder laid out like one')
    src.add_argument('--hf_config', default=None)
    src.add_argument('--split', default='train', help='which split of the source to read')
    p.add_argument('--text_field', default='text', help="the field holding the text ('a.b' for nested)")
    p.add_argument('--group_field', default=None, help='a field to count documents/tokens by, e.g. a domain')
    p.add_argument('--sample_by', default='document', choices=['document', 'paragraph', 'line'], help='for .txt input')
    p.add_argument('--tokenizer', default='gpt2', help='gpt2 | cl100k_base | o200k_base | <custom name> | <path.tiktoken>')
    p.add_argument('--val_fraction', type=float, default=0.005)
    p.add_argument('--max_tokens', type=float, default=None, help='train-token budget (1e9 works)')
    p.add_argument('--num_proc', type=int, default=None, help='tokenizer processes (default: all cores)')
    p.add_argument('--data_dir', default=None, help='default: $NANOCPT_DATA or the repo\'s data/')
    p.add_argument('--overwrite', action='store_true', help='replace an existing dataset of that name')
    p.set_defaults(**defaults)
    return p


def rows_from_args(args):
    if bool(args.input) == bool(args.hf_dataset):
        raise ValueError("give exactly one source: --input <files> or --hf_dataset <id>")
    if args.input:
        return read_documents(args.input, args.text_field, args.sample_by), f"local files: {' '.join(args.input)}"
    where = ' '.join(x for x in (args.hf_dataset, args.hf_config, f'split {args.split}') if x)
    return read_hub(args.hf_dataset, args.hf_config, args.split), f"Hugging Face dataset {where} (streamed)"


def run(args, group_budget=None, source=None):
    """Everything after argument parsing; returns the meta of the written dataset. A group_budget (per-domain
    token budgets that share out --max_tokens) replaces the overall one."""
    output_dir(args.name, args.data_dir, args.overwrite)  # refuse before reading anything
    rows, where = rows_from_args(args)
    max_tokens = int(args.max_tokens) if args.max_tokens is not None and group_budget is None else None
    return write_bins(rows, args.name, tokenizer=args.tokenizer, data_dir=args.data_dir, text_field=args.text_field,
                      group_field=args.group_field, val_fraction=args.val_fraction, max_tokens=max_tokens,
                      group_budget=group_budget, num_proc=args.num_proc, overwrite=args.overwrite,
                      source=source or where)


def report(meta, data_dir=None):
    out = os.path.join(data_dir or default_data_dir(), meta['name'])
    print(f"{out}: train {meta['train_tokens']:,} tokens in {meta['train_docs']:,} documents, "
          f"val {meta['val_tokens']:,} tokens in {meta['val_docs']:,} ({meta['dtype']}, tokenizer {meta['tokenizer']})")


def cli(fn):
    """Runs fn(); a bad input ends with its one-line message instead of a traceback."""
    try:
        return fn()
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as e:
        raise SystemExit(f"error: {e}") from None


def main(argv=None, description=__doc__, budget=None, **defaults):
    """This command line, and the paper's dataset scripts' (with their defaults and budget rule)."""
    args = parser(description, **defaults).parse_args(argv)
    if args.input and args.hf_dataset == defaults.get('hf_dataset'):
        args.hf_dataset = None  # local shards given: they replace the script's default hub dataset
    meta = cli(lambda: run(args, group_budget=budget(args) if budget else None))
    report(meta, args.data_dir)
    return meta


if __name__ == '__main__':
    main()
