"""
The last step of `make sweep`: at what scale does continual pre-training match re-training? For each scale of the
sweep (a folder of seeds s1/, s2/, ... with the finding-3 runs d0, b_rewarm, d_replay25, e_union), the gap
between 25% replay and the union baseline (d's average loss minus the union's, mean over seeds ± its standard
error), against D0 tokens per parameter and against the union's compute, with the paper's own point marked.

    python -m eval.sweep out-sweep --d0 en_docs --d1 de_man      # writes out-sweep/sweep.md and out-sweep/sweep.png

Scales are read in the order their folders sort; each one's model size and budgets come from its runs'
checkpoints, so the table says what ran, not what was meant to.
"""
import argparse
import math
import os
import statistics

import torch

import checkpoint
import runtime
from eval.demo_report import Z, collect, compare, stats, summary
from model import GPT, GPTConfig

# the paper's 405M strong shift (docs/paper.md): D0 = the Pile's 300B tokens on 405,334,016 parameters; the union of
# Pile and German (500B tokens) and Pile -> German with 25% replay reach the same average loss (1.75)
PAPER = dict(tokens_per_param=300e9 / 405_334_016, gap=0.0, union_flops=6 * 405_334_016 * 500e9)


def scale_row(folder, d0, d1):
    runs = collect(folder, d0, d1)
    s = summary(runs)
    meta = checkpoint.load_meta(runs['d0']['runs'][0]['dir'])
    with torch.device('meta'):
        model = GPT(GPTConfig(**meta['model_args']))
    n = model.num_params()
    multi = [v['avg']['sd'] for v in s.values() if v['avg']['sd'] is not None]
    noise = math.sqrt(statistics.fmean([x * x for x in multi])) if multi else 0.0
    gap, se = compare(s, 'e', 'd', 'avg', noise)  # d - union
    forget = stats([r['forgetting'] for r in runs['d']['rows']])
    return dict(scale=os.path.basename(folder), params=n, layers=model.config.n_layer, width=model.config.n_embd,
                d0_tokens=s['d0']['tokens']['mean'], tokens_per_param=s['d0']['tokens']['mean'] / n,
                union_flops=model.flops_per_token() * s['e']['tokens']['mean'], seeds=s['d']['avg']['n'],
                d=s['d']['avg'], e=s['e']['avg'], b=s['b']['avg'] if 'b' in s else None, gap=gap, se=se,
                forgetting=forget, d0_loss=s['d0']['d0'])


def markdown(rows, d0, d1):
    pm = lambda v: '–' if v is None else f"{v['mean']:.3f}" + (f" ± {v['sd']:.3f}" if v['sd'] is not None else '')
    lines = [f"# make sweep: D0 = {d0}, D1 = {d1}", '',
             "| scale | model | parameters | D0 tokens | D0 tokens / parameter | union FLOPs | seeds | D0 loss after "
             "D0 | b) avg | d) avg | union avg | gap d − union | verdict |",
             "|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|"]
    for r in rows:
        verdict = 'matches' if r['gap'] <= Z * r['se'] else 'does not match'
        lines.append(f"| {r['scale']} | {r['layers']} x {r['width']} | {r['params'] / 1e6:.2f}M | "
                     f"{r['d0_tokens'] / 1e6:.2f}M | {r['tokens_per_param']:.2f} | {r['union_flops']:.2e} | "
                     f"{r['seeds']} | {pm(r['d0_loss'])} | {pm(r['b'])} | {pm(r['d'])} | {pm(r['e'])} | "
                     f"{r['gap']:+.3f} ± {r['se']:.3f} | {verdict} |")
    lines += ['', f"Average of the {d0} and {d1} validation losses (nats per token), mean ± standard deviation over "
                  f"the seeds; the gap's ± is its standard error. d) matches the union when its average is not "
                  f"above the union's by more than {Z:g} standard errors. The paper (405M, 300B D0 tokens: "
                  f"{PAPER['tokens_per_param']:.0f} tokens per parameter) has a gap of {PAPER['gap']:.2f}.", '',
              '![the gap against D0 tokens per parameter and against compute](sweep.png)']
    return '\n'.join(lines) + '\n'


def plot(rows, out):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, key, label in ((axes[0], 'tokens_per_param', 'D0 tokens per parameter'),
                           (axes[1], 'union_flops', "the union baseline's training FLOPs")):
        xs, ys, es = [r[key] for r in rows], [r['gap'] for r in rows], [r['se'] for r in rows]
        ax.errorbar(xs, ys, yerr=es, marker='o', capsize=4, lw=1.6, label='this sweep: d) − union (± 1 SE)')
        for r in rows:
            ax.annotate(r['scale'], (r[key], r['gap']), xytext=(6, 6), textcoords='offset points', fontsize=8)
        ax.scatter([PAPER[key]], [PAPER['gap']], marker='*', s=220, color='crimson', zorder=3,
                   label=f"the paper, 405M: {PAPER['tokens_per_param']:.0f} tokens/parameter, gap 0.00")
        ax.axhline(0, color='gray', lw=1, ls=':')
        ax.set_xscale('log')
        ax.set_xlabel(label + ' (log scale)')
        ax.set_ylabel('average loss, 25% replay minus union (nats)')
        ax.grid(alpha=0.3, which='both')
    axes[0].legend(fontsize=8, loc='upper right')
    fig.suptitle('At what scale does continual pre-training (re-warm, re-decay, 25% replay) match re-training?')
    fig.tight_layout()
    fig.savefig(os.path.join(out, 'sweep.png'), dpi=110)
    plt.close(fig)


def main(sweep, d0, d1):
    folders = sorted(os.path.join(sweep, d) for d in os.listdir(sweep) if os.path.isdir(os.path.join(sweep, d)))
    if not folders:
        raise FileNotFoundError(f"{sweep} holds no scale folders: run `make sweep` first")
    rows = [scale_row(f, d0, d1) for f in folders]
    rows.sort(key=lambda r: r['tokens_per_param'])
    md = markdown(rows, d0, d1)
    plot(rows, sweep)
    runtime.write_text(os.path.join(sweep, 'sweep.md'), md)
    print(md, end='')
    print(f"\nwrote {os.path.join(sweep, 'sweep.md')} and sweep.png")


if __name__ == '__main__':
    runtime.clean_errors()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('sweep', help="the sweep's output folder (e.g. out-sweep)")
    p.add_argument('--d0', default='en_docs')
    p.add_argument('--d1', default='de_man')
    args = p.parse_args()
    main(args.sweep, args.d0, args.d1)
