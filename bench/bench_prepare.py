"""
Prepare throughput and memory: a jsonl corpus and one 10x larger, each tokenized by `python -m prepare.text` in
its own process, side by side. Peak RSS must not grow with the corpus (the writer streams to disk).

    python bench/bench_prepare.py                 # 10 MB and 100 MB, gpt2, all cores
    python bench/bench_prepare.py --mb 2 --tokenizer demo8k --num_proc 1

The text is the demo corpora's extracted documents when they are built (python -m prepare.demo), repeated to
size; otherwise synthetic Zipf-distributed words. Wall time includes the fixed cost of a run (imports, among
them torch, which `datasets` loads when installed; worker start): measured on a ~10 kB corpus and shown apart,
and the rates are given with and without it.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from prepare import default_data_dir  # noqa: E402

# The child: runs the real command line and reports its own peak RSS and its tokenizer workers'. A worker's peak is
# its VmHWM, sampled while it lives (getrusage would count the parent's pages a child maps between fork and exec).
CHILD = """
import json, os, resource, sys, threading, time
from prepare import text

def hwm_kb(pid):
    with open(f'/proc/{pid}/status') as f:
        return int(next(l for l in f if l.startswith('VmHWM')).split()[1])

workers = {}
def sample():
    me = str(os.getpid())
    while True:
        for pid in filter(str.isdigit, os.listdir('/proc')):
            try:
                if open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1] == me:
                    workers[pid] = max(workers.get(pid, 0), hwm_kb(pid))
            except (OSError, IndexError, StopIteration):
                pass
        time.sleep(0.2)
threading.Thread(target=sample, daemon=True).start()
t0 = time.time()
meta = text.main(sys.argv[1:])
print('BENCH ' + json.dumps(dict(tokens=meta['train_tokens'] + meta['val_tokens'], bytes=meta['train_bytes'] + meta['val_bytes'],
                                 docs=meta['train_docs'] + meta['val_docs'], rss_main=hwm_kb('self'),
                                 rss_workers=max(workers.values(), default=0))))
"""


def source_docs():
    folder = os.path.join(default_data_dir(), 'demo', 'text')
    docs = []
    for name in ('en', 'de', 'en2'):
        path = os.path.join(folder, f'{name}.jsonl')
        if os.path.exists(path):
            with open(path) as f:
                docs += [json.loads(line)['text'] for line in f]
    if docs:
        return docs, 'the demo corpora (en, de, en2) repeated'
    rng = np.random.default_rng(0)
    words = [''.join(rng.choice(list('etaoinshrdlucmfwypvbgkjqxz'), rng.integers(2, 10))) for _ in range(20000)]
    p = 1 / np.arange(1, len(words) + 1)
    p /= p.sum()
    docs = [' '.join(rng.choice(words, int(rng.integers(100, 2000)), p=p)) + '.' for _ in range(2000)]
    return docs, 'synthetic Zipf-distributed words'


def write_corpus(path, docs, mb):
    """Documents repeated until the file holds `mb` MB; each copy is numbered, so copies are distinct documents."""
    size, i = 0, 0
    with open(path, 'w') as f:
        while size < mb * 1e6:
            line = json.dumps({'text': f"[{i // len(docs)}] {docs[i % len(docs)]}"}, ensure_ascii=False) + '\n'
            f.write(line)
            size += len(line.encode())
            i += 1
    return size


def run(path, tokenizer, num_proc, work, val_fraction=0.005):
    args = ['--name', 'bench', '--input', path, '--tokenizer', tokenizer, '--data_dir', work, '--overwrite',
            '--val_fraction', str(val_fraction)]
    if num_proc:
        args += ['--num_proc', str(num_proc)]
    t0 = time.time()
    r = subprocess.run([sys.executable, '-c', CHILD, *args], cwd=ROOT, capture_output=True, text=True)
    wall = time.time() - t0
    if r.returncode != 0:
        raise SystemExit(f"prepare failed:\n{r.stderr[-2000:]}")
    out = json.loads(next(line for line in r.stdout.splitlines() if line.startswith('BENCH '))[6:])
    return dict(out, wall=wall)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--mb', type=float, default=10, help='size of the small corpus; the large one is 10x')
    p.add_argument('--tokenizer', default='gpt2')
    p.add_argument('--num_proc', type=int, default=None, help='tokenizer processes (default: all cores)')
    args = p.parse_args()
    cores = args.num_proc or os.cpu_count()
    custom = os.path.join(default_data_dir(), 'tokenizers', f'{args.tokenizer}.tiktoken')
    tokenizer = custom if os.path.exists(custom) else args.tokenizer  # the bins go to a temp DATA_DIR
    docs, what = source_docs()
    print(f"prepare bench: text = {what}; tokenizer {args.tokenizer}; {cores} tokenizer process(es) on "
          f"{os.cpu_count()} cores; allocator: glibc malloc, MALLOC_* = "
          f"{ {k: v for k, v in os.environ.items() if k.startswith('MALLOC_')} or 'defaults'}")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, 'tiny.jsonl')
        write_corpus(path, docs[:3], 0.01)
        fixed = run(path, tokenizer, args.num_proc, work, val_fraction=0)['wall']
        for mb in (args.mb, 10 * args.mb):
            path = os.path.join(work, f'corpus_{mb:g}MB.jsonl')
            write_corpus(path, docs, mb)
            r = run(path, tokenizer, args.num_proc, work)
            rows.append((f"{mb:g} MB", r))
    cols = [('documents', lambda r: f"{r['docs']:,}"), ('tokens', lambda r: f"{r['tokens']:,}"),
            ('wall s', lambda r: f"{r['wall']:.1f}"), ('MB/s', lambda r: f"{r['bytes'] / 1e6 / r['wall']:.2f}"),
            ('tokens/s/core', lambda r: f"{r['tokens'] / r['wall'] / cores:,.0f}"),
            ('MB/s, fixed cost out', lambda r: f"{r['bytes'] / 1e6 / max(r['wall'] - fixed, 1e-3):.2f}"),
            ('tokens/s/core, fixed out', lambda r: f"{r['tokens'] / max(r['wall'] - fixed, 1e-3) / cores:,.0f}"),
            ('peak RSS main MB', lambda r: f"{r['rss_main'] / 1024:.0f}"),
            ('peak RSS worker MB', lambda r: f"{r['rss_workers'] / 1024:.0f}")]
    width = max(len(c) for c, _ in cols) + 2
    print(f"fixed cost of a run (a ~10 kB corpus): {fixed:.1f} s")
    print(''.ljust(width) + ''.join(name.rjust(14) for name, _ in rows))
    for c, fmt in cols:
        print(c.ljust(width) + ''.join(fmt(r).rjust(14) for _, r in rows))
    growth = rows[1][1]['rss_main'] / rows[0][1]['rss_main']
    print(f"peak RSS (main) of the 10x corpus / the 1x corpus: {growth:.2f}  ({'flat' if growth < 1.3 else 'GROWS'})")


if __name__ == '__main__':
    main()
