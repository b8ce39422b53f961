"""
Validation loss of checkpoints, per dataset, over the same fixed windows train.py evaluates (data.val_offsets):
a checkpoint's number here is its last `val/<name>` in metrics.jsonl, and any checkpoint can be scored on any
dataset prepared with its tokenizer (e.g. a German-only run on the English val set, to measure forgetting).

    python -m eval.loss out-demo-cpu/s1/d0 out-demo-cpu/s1/d_replay25 --data en_docs de_man
    python -m eval.loss out/cpt/step_088457.pt --windows 0 --json losses.json     # the whole val bin

Defaults come from each checkpoint's own training config: its val_data, data_dir, block_size and eval_windows.
The printed table has a row per checkpoint, a column per dataset, and their plain mean (the paper's AVG).
"""
import argparse
import json
import os
import sys

if __package__ in (None, ''):  # run as a file (python eval/x.py, the nanoGPT habit): the repo root on the path, as -m
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import data as datalib
import runtime
from eval.common import check_tokenizer, load_model


def evaluate(path, data=None, data_dir=None, windows=None, block_size=None, batch_size=8, device='cpu',
             dtype='auto'):
    """{dataset: loss, ..., 'mean': plain mean} for one checkpoint (a run folder or a step_N.pt).
    None means: what the checkpoint's run used (val_data, data_dir, eval_windows, block_size)."""
    model, ckpt = load_model(path, device)
    cfg = ckpt['config']
    names = list(data or cfg.get('val_data') or list(datalib.normalise_weights(cfg['data'])))
    data_dir = data_dir or cfg['data_dir']
    windows = cfg.get('eval_windows', 0) if windows is None else windows
    block_size = block_size or cfg['block_size']
    if block_size > model.config.block_size:
        raise ValueError(f"block_size={block_size} is longer than {path}'s context of {model.config.block_size}")
    for name in names:  # check every dataset before spending time on any
        check_tokenizer(path, ckpt, data_dir, name, datalib.load_meta(data_dir, name))
    amp = runtime.autocast(device, dtype, training=False)
    return datalib.evaluate(model, data_dir, names, block_size, batch_size, windows, amp, device)  # as train.py's


def table(results):
    """Markdown-style table: a row per checkpoint, a column per dataset (union, in first-seen order), then the mean."""
    cols = list(dict.fromkeys(k for r in results.values() for k in r if k != 'mean')) + ['mean']
    width = max(len('checkpoint'), *(len(c) for c in results))
    lines = [f"| {'checkpoint':<{width}} | " + ' | '.join(f"{c:>7}" for c in cols) + ' |',
             f"|{'-' * (width + 2)}|" + '|'.join('-' * 9 for _ in cols) + '|']
    for ckpt, r in results.items():
        cells = [f"{r[c]:7.4f}" if c in r else f"{'-':>7}" for c in cols]
        lines.append(f"| {ckpt:<{width}} | " + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('checkpoints', nargs='+', help='run folders or checkpoints (step_N.pt, step_N/)')
    p.add_argument('--data', nargs='+', default=None, help="datasets to score (default: each run's val_data)")
    p.add_argument('--data_dir', default=None, help="where the datasets live (default: each run's data_dir)")
    p.add_argument('--windows', type=int, default=None,
                   help="validation windows per dataset; 0 = the whole val bin (default: the run's eval_windows)")
    p.add_argument('--block_size', type=int, default=None, help="window length (default: the run's block_size)")
    p.add_argument('--batch_size', type=int, default=8)
    p.add_argument('--device', default=runtime.default_device())
    p.add_argument('--dtype', default='auto', help="'auto' (bf16 on CUDA, fp32 on CPU) | float32 | bfloat16")
    p.add_argument('--json', default=None, help='also write {checkpoint: {dataset: loss, mean: ...}} here')
    args = p.parse_args(argv)
    results = {}
    for path in args.checkpoints:
        results[path] = evaluate(path, args.data, args.data_dir, args.windows, args.block_size, args.batch_size,
                                 args.device, args.dtype)
    print(table(results))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == '__main__':
    runtime.clean_errors()
    main()
