"""
The last step of `make sweep`: where does continual pre-training match re-training? Each cell of the sweep is a
model width and a D0 budget in tokens per non-embedding parameter (a folder wWWW_rRRRR of seeds s1/, s2/, ... with
the finding-3 runs d0, d_replay25, e_union, and b_rewarm when asked). Per cell: the gap between 25% replay and the
union baseline (d's average loss minus the union's, mean over seeds ± its standard error), the model's parameters
with and without embeddings, and the epochs each corpus was read. The figure draws the gap against D0 tokens per
non-embedding parameter, one line per width, with the paper's 405M and 10B points marked.

    python -m eval.sweep out-sweep --d0 en_docs_demo1k --d1 de_man_demo1k   # writes out-sweep/sweep.md, sweep.png
    python -m eval.sweep --tune out-tune --d0 en_docs_demo1k                # make tune's table: η_max per width

Every number comes from the runs' own checkpoints and logs, so the table says what ran, not what was meant to.
"""
import argparse
import json
import math
import os
import re
import statistics

import torch

import checkpoint
import data as datalib
import runtime
from eval.demo_report import Z, collect, compare, stats, summary
from model import GPT, GPTConfig

# the paper's points (docs/paper.md). 405M (Pythia-410M: 405.3M parameters, 302.3M without the 50,304 x 1024 input
# and output embeddings), 300B D0 tokens; Pile -> German with 25% replay and the union both average 1.75. 10B
# (9,638.7M parameters, 9,175.1M without the 50,304 x 4608 embeddings), 300B D0 tokens; Pile -> SlimPajama with 5%
# replay "matches the re-training baseline" (a weak shift; the paper runs no strong shift at 10B).
PAPER = [dict(name='405M', non_embedding=302_311_424, tokens=300e9, gap=0.0, shift='strong, 25% replay'),
         dict(name='10B', non_embedding=9_175_108_608, tokens=300e9, gap=0.0, shift='weak, 5% replay')]
CELL = re.compile(r'w(\d+)_r(\d+)$')


def param_counts(model_args):
    """(all parameters, non-embedding parameters) of a GPT: the second leaves out the token embedding, the learned
    positions and an untied LM head (Kaplan et al. 2020's N: what scales; in these tiny models the embeddings are
    most of the parameters and little of the capacity)."""
    with torch.device('meta'):
        model = GPT(GPTConfig(**model_args))
    n = sum(p.numel() for p in model.parameters())
    emb = model.transformer.wte.weight.numel() + (0 if model.config.tie_embeddings else model.lm_head.weight.numel())
    if model.config.position == 'learned':
        emb += model.transformer.wpe.weight.numel()
    return n, n - emb, model


def epochs(run, data_dir):
    """{dataset: tokens the run read of it (this phase) / its train bin's tokens}."""
    with open(os.path.join(run['dir'], 'final.json')) as f:
        tokens = json.load(f)['tokens']
    return {n: t / datalib.load_meta(data_dir, n)['train_tokens'] for n, t in tokens.items() if t}


def cell_row(folder, d0, d1):
    runs = collect(folder, d0, d1)
    missing = [k for k in ('d0', 'd', 'e') if k not in runs]
    if missing:
        raise FileNotFoundError(f"{folder}: runs {missing} have not finished: run `make sweep` (it resumes)")
    s = summary(runs)
    meta = checkpoint.load_meta(runs['d0']['runs'][0]['dir'])
    n_all, n_ne, model = param_counts(meta['model_args'])
    data_dir = meta['config']['data_dir']
    multi = [v['avg']['sd'] for v in s.values() if v['avg']['sd'] is not None]
    noise = math.sqrt(statistics.fmean([x * x for x in multi])) if multi else 0.0
    gap, se = compare(s, 'e', 'd', 'avg', noise)  # d - union
    read = {}  # the most any run of the cell read of each corpus, in epochs
    for k in ('d0', 'd', 'e'):
        for run in runs[k]['runs']:
            for name, e in epochs(run, data_dir).items():
                read[name] = max(read.get(name, 0.0), e)
    d0_tokens = s['d0']['tokens']['mean']
    return dict(cell=os.path.basename(folder), width=model.config.n_embd, layers=model.config.n_layer,
                vocab=model.config.vocab_size, params=n_all, non_embedding=n_ne, d0_tokens=d0_tokens,
                tokens_per_param=d0_tokens / n_ne, tokens_per_param_all=d0_tokens / n_all,
                union_flops=model.flops_per_token() * s['e']['tokens']['mean'], seeds=s['d']['avg']['n'],
                d=s['d']['avg'], e=s['e']['avg'], b=s['b']['avg'] if 'b' in s else None, gap=gap, se=se,
                d0_loss=s['d0']['d0'], epochs=read,
                forgetting=stats([r['forgetting'] for r in runs['d']['rows']]))


def one_curve(rows):
    """Where widths share a D0 budget (tokens per non-embedding parameter, to 2%), whether their gaps agree: for each
    shared budget, the largest difference between two widths' gaps and its standard error."""
    out, done = [], set()
    for r in sorted(x['tokens_per_param'] for x in rows):
        at = [x for x in rows if abs(x['tokens_per_param'] / r - 1) < 0.02]
        if len({x['width'] for x in at}) < 2 or done & {x['cell'] for x in at}:
            continue  # one width only, or this budget is already compared
        done |= {x['cell'] for x in at}
        r = round(statistics.fmean(x['tokens_per_param'] for x in at), 1)
        lo, hi = min(at, key=lambda x: x['gap']), max(at, key=lambda x: x['gap'])
        out.append(dict(ratio=r, widths=sorted(x['width'] for x in at), diff=hi['gap'] - lo['gap'],
                        se=math.hypot(hi['se'], lo['se']), lo=lo, hi=hi))
    return out


def markdown(rows, d0, d1):
    pm = lambda v: '–' if v is None else f"{v['mean']:.3f}" + (f" ± {v['sd']:.3f}" if v['sd'] is not None else '')
    lines = [f"# make sweep: D0 = {d0}, D1 = {d1}", '',
             "| cell | model | parameters (non-embedding) | D0 tokens | D0 tokens / parameter (non-emb. / all) | "
             "epochs read (most of any run) | union FLOPs | seeds | D0 loss after D0 | b) avg | d) avg | union avg | "
             "gap d − union | verdict |",
             "|:---|:---|---:|---:|---:|:---|---:|---:|---:|---:|---:|---:|---:|:---|"]
    for r in rows:
        verdict = 'matches' if r['gap'] <= Z * r['se'] else 'does not match'
        read = ', '.join(f"{n} {e:.2f}" for n, e in sorted(r['epochs'].items()))
        lines.append(f"| {r['cell']} | {r['layers']} x {r['width']}, vocab {r['vocab']} | {r['params'] / 1e6:.3f}M "
                     f"({r['non_embedding'] / 1e6:.3f}M) | {r['d0_tokens'] / 1e6:.2f}M | {r['tokens_per_param']:.1f} "
                     f"/ {r['tokens_per_param_all']:.1f} | {read} | {r['union_flops']:.2e} | {r['seeds']} | "
                     f"{pm(r['d0_loss'])} | {pm(r['b'])} | {pm(r['d'])} | {pm(r['e'])} | "
                     f"{r['gap']:+.3f} ± {r['se']:.3f} | {verdict} |")
    lines += ['', f"Average of the {d0} and {d1} validation losses (nats per token), mean ± standard deviation over "
                  f"the seeds; the gap's ± is its standard error. d) matches the union when its average is not above "
                  f"the union's by more than {Z:g} standard errors. Epochs: tokens a run read of a corpus over its "
                  f"train split (replay re-reads windows D0 read, so it adds none). The paper: "
                  + '; '.join(f"{p['name']}, {p['tokens'] / p['non_embedding']:.0f} D0 tokens per non-embedding "
                              f"parameter, gap {p['gap']:.2f} ({p['shift']})" for p in PAPER) + '.', '']
    agree = one_curve(rows)
    if agree:
        lines += ['## Do the widths fall onto one curve?', '',
                  'At each D0 budget that several widths share: the largest difference between two widths\' gaps.', '']
        for a in agree:
            same = a['diff'] <= Z * a['se']
            lines.append(f"- {a['ratio']:g} tokens per parameter, widths {a['widths']}: {a['hi']['width']} − "
                         f"{a['lo']['width']} = {a['diff']:+.3f} ± {a['se']:.3f}: "
                         + ('within 2 SE, one curve here' if same else f"{a['diff'] / a['se']:.1f} SE apart: not one "
                                                                        f"curve"))
        lines.append('')
    lines.append('![the gap against D0 tokens per parameter, one line per width](sweep.png)')
    return '\n'.join(lines) + '\n'


def plot(rows, out):
    import matplotlib  # optional here: only the figure needs it, not the table
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    widths = sorted({r['width'] for r in rows})
    colors = {w: plt.cm.viridis(i / max(1, len(widths) - 1)) for i, w in enumerate(widths)}
    for ax, key, label in ((axes[0], 'tokens_per_param', 'D0 tokens per non-embedding parameter'),
                           (axes[1], 'union_flops', "the union baseline's training FLOPs")):
        for w in widths:
            line = sorted((r for r in rows if r['width'] == w), key=lambda r: r[key])
            ax.errorbar([r[key] for r in line], [r['gap'] for r in line], yerr=[r['se'] for r in line],
                        marker='o', capsize=3, lw=1.6, color=colors[w],
                        label=f"{line[0]['layers']} x {w} ({line[0]['non_embedding'] / 1e3:,.0f}k non-embedding)")
        ax.axhline(0, color='gray', lw=1, ls=':')
        ax.set_xscale('log')
        ax.set_xlabel(label + ' (log scale)')
        ax.set_ylabel('average loss, 25% replay minus union (nats)')
        ax.grid(alpha=0.3, which='both')
    for p, marker in zip(PAPER, ('*', 'P')):
        axes[0].scatter([p['tokens'] / p['non_embedding']], [p['gap']], marker=marker, s=200, color='crimson',
                        zorder=3, label=f"the paper, {p['name']}: gap {p['gap']:.2f} ({p['shift']})")
    axes[0].legend(fontsize=8, loc='upper right')
    axes[1].set_title('the same cells against compute', fontsize=10)
    fig.suptitle('Where does continual pre-training (re-warm, re-decay, 25% replay) match re-training?')
    fig.tight_layout()
    fig.savefig(os.path.join(out, 'sweep.png'), dpi=110)
    plt.close(fig)


def cells(root):
    found = sorted(os.path.join(root, d) for d in os.listdir(root) if CELL.match(d)) if os.path.isdir(root) else []
    if not found:
        raise FileNotFoundError(f"{root} holds no cell folders (wWWW_rRRRR): run `make sweep` or `make tune` first")
    return found


def main(sweep, d0, d1):
    rows = [cell_row(f, d0, d1) for f in cells(sweep)]
    rows.sort(key=lambda r: (r['width'], r['tokens_per_param']))
    md = markdown(rows, d0, d1)
    plot(rows, sweep)
    runtime.write_text(os.path.join(sweep, 'sweep.md'), md)
    print(md, end='')
    print(f"\nwrote {os.path.join(sweep, 'sweep.md')} and sweep.png")


def tune(root, d0):
    """make tune's table: per cell (width, D0 budget), the final D0 loss of each η_max's D0 run (seed 1), the best
    marked; a best at the grid's edge says to extend the grid."""
    lines = [f"# make tune: η_max on D0 alone ({d0}), seed 1", '',
             '| cell | η_max | final D0 loss | |', '|:---|---:|---:|:---|']
    for folder in cells(root):
        found = []
        for d in os.listdir(folder):
            final = os.path.join(folder, d, 's1', 'd0', 'final.json')
            if d.startswith('eta') and os.path.exists(final):
                with open(final) as f:
                    found.append((float(d[3:]), json.load(f)['val'][d0]))
        found.sort()
        if not found:
            continue
        best = min(found, key=lambda x: x[1])
        for eta, loss in found:
            note = ''
            if (eta, loss) == best:
                note = '**best**' + (' (at the edge of the grid: extend it)' if eta in (found[0][0], found[-1][0])
                                     and len(found) > 1 else '')
            lines.append(f"| {os.path.basename(folder)} | {eta:g} | {loss:.4f} | {note} |")
    md = '\n'.join(lines) + '\n'
    runtime.write_text(os.path.join(root, 'tune.md'), md)
    print(md, end='')


if __name__ == '__main__':
    runtime.clean_errors()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('sweep', nargs='?', help="the sweep's output folder (e.g. out-sweep)")
    p.add_argument('--tune', metavar='DIR', help="print make tune's table for DIR (e.g. out-tune) instead")
    p.add_argument('--d0', default='en_docs_demo1k')
    p.add_argument('--d1', default='de_man_demo1k')
    args = p.parse_args()
    if args.tune:
        tune(args.tune, args.d0)
    elif args.sweep:
        main(args.sweep, args.d0, args.d1)
    else:
        p.error('give the sweep folder, or --tune DIR')
