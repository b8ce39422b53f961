"""
A set of runs -> the paper's table (Markdown) and figures (PNG), from each run folder's metrics.jsonl.

    python -m eval.report out-demo-cpu/s1/d0 "no replay=out-demo-cpu/s1/b_rewarm" \
        "25% replay=out-demo-cpu/s1/d_replay25" "union=out-demo-cpu/s1/e_union" --d0 en_docs --d1 de_man --out report

A run is a folder train.py wrote (out_dir), named by its folder or given a label as label=folder. The table has,
per run, the final validation loss on D0 and on D1 (its last eval), their average (the paper's AVG), and:
  forgetting      D0 loss at the end minus D0 loss before the continual phase. "Before" is the run's own first
                  evaluation when it started from another run's checkpoint (train.py evaluates step 0 before any
                  update), or the final D0 loss of the run named by --before. Runs from scratch get none.
  adaptation gap  D1 loss minus the reference D1 loss: the run named by --adapted, else the best (lowest) D1 loss
                  among the runs given (the re-warmed, re-decayed, no-replay run in the paper's tables).
  tokens          all tokens the model has trained on, earlier phases included.
Figures: validation loss on D0 and on D1 against tokens (one figure, two panels), the final D0-vs-D1 trade-off,
and the learning-rate schedules that were run. From a script: rows, markdown = report(specs, 'en', 'de', out=...).
"""
import argparse
import json
import os

import runtime


def load_run(spec):
    """'folder' or 'label=folder' -> {'label', 'dir', 'evals', 'trains', 'offset'} from the folder's metrics.jsonl."""
    label, path = os.path.basename(os.path.normpath(spec)), spec
    if '=' in spec and not os.path.isdir(spec):
        label, path = spec.split('=', 1)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"run {label!r}: folder {path} does not exist (give run folders, or label=folder)")
    metrics = os.path.join(path, 'metrics.jsonl')
    if not os.path.exists(metrics):
        raise FileNotFoundError(f"run {label!r}: {metrics} does not exist; train.py writes it into out_dir "
                                f"(is {path} a run folder, and has the run started?)")
    with open(metrics) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    evals = [r for r in rows if r['kind'] == 'eval']
    if not evals:
        raise ValueError(f"run {label!r}: {metrics} has no evaluation yet (train.py evaluates every eval_interval)")
    # tokens trained before this run (earlier phases), so every row can be placed on one token axis
    offset = evals[0]['tokens_total'] - evals[0]['tokens']
    return dict(label=label, dir=path, evals=evals, trains=[r for r in rows if r['kind'] == 'train'], offset=offset)


def table(runs, d0, d1, before=None, adapted=None):
    """One row per run: {'run', 'd0', 'd1', 'avg', 'forgetting', 'adaptation_gap', 'tokens'}; None where a number
    does not apply. `before` / `adapted`: a label of one of the runs (see the module docstring)."""
    by_label = {r['label']: r for r in runs}
    if len(by_label) < len(runs):
        raise ValueError(f"two runs share a label ({[r['label'] for r in runs]}): name them with label=folder")
    for key in (d0, d1):
        if not any(f'val/{key}' in r['evals'][-1] for r in runs):
            have = sorted({k[4:] for r in runs for k in r['evals'][-1] if k.startswith('val/') and k != 'val/mean'})
            raise ValueError(f"no run was evaluated on {key!r}; the runs have validation losses for {have}")
    for flag, name in (('--before', before), ('--adapted', adapted)):
        if name is not None and name not in by_label:
            raise ValueError(f"{flag} {name!r} is not one of the runs {list(by_label)}")
    final = lambda run, key: run['evals'][-1].get(f'val/{key}')
    d1_ref = final(by_label[adapted], d1) if adapted else min(
        (final(r, d1) for r in runs if final(r, d1) is not None), default=None)
    rows = []
    for run in runs:
        first = run['evals'][0]
        if before is not None:
            start = final(by_label[before], d0)
        elif run['offset'] > 0 and first['iter'] == 0:  # a new phase: its step-0 eval is the loaded checkpoint
            start = first.get(f'val/{d0}')
        else:
            start = None
        l0, l1 = final(run, d0), final(run, d1)
        rows.append(dict(
            run=run['label'], d0=l0, d1=l1,
            avg=(l0 + l1) / 2 if l0 is not None and l1 is not None else None,
            forgetting=l0 - start if l0 is not None and start is not None else None,
            adaptation_gap=l1 - d1_ref if l1 is not None and d1_ref is not None else None,
            tokens=run['evals'][-1]['tokens_total']))
    return rows


def fmt_tokens(n):
    for unit, scale in (('B', 1e9), ('M', 1e6), ('k', 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def markdown(rows, d0, d1, before=None, adapted=None, figures=()):
    """The table as Markdown, with a legend that says what each column measures. Same rows -> same bytes."""
    num = lambda v, sign='': '–' if v is None else f"{v:{sign}.3f}"
    lines = [f"| Run | D0 loss ({d0}) | D1 loss ({d1}) | Avg | Forgetting ({d0}) | Adaptation gap ({d1}) | Tokens |",
             "|:---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['run'].replace('|', '/')} | {num(r['d0'])} | {num(r['d1'])} | {num(r['avg'])} | {num(r['forgetting'], '+')} "
                     f"| {num(r['adaptation_gap'], '+')} | {fmt_tokens(r['tokens'])} |")
    best = min((r for r in rows if r['d1'] is not None), key=lambda r: r['d1'], default=None)
    ref = f"{adapted}'s" if adapted else f"the lowest among these runs ({best['run'] if best else '–'}'s)"
    start = f"{before}'s final {d0} loss" if before else \
        f"the {d0} loss at the start of its continual phase (runs from scratch: –)"
    lines += ['',
              f"Validation loss in nats per token at each run's last evaluation; Avg is the mean of the {d0} and "
              f"{d1} losses (lower is better).",
              f"Forgetting: final {d0} loss minus {start}.",
              f"Adaptation gap: final {d1} loss minus {ref}.",
              "Tokens: all tokens trained on, earlier phases included."]
    for name, caption in figures:
        lines += ['', f"![{caption}]({name})"]
    return '\n'.join(lines) + '\n'


def plot(runs, d0, d1, out):
    """Writes the three figures into `out`; returns [(file name, caption)]."""
    import matplotlib  # optional here: only the figures need it, not the tables
    matplotlib.use('Agg')  # files only, no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter, FuncFormatter, MaxNLocator

    colors = {r['label']: plt.cm.tab10(i % 10) for i, r in enumerate(runs)}
    tokens_axis = lambda ax: (ax.xaxis.set_major_formatter(EngFormatter(sep='')),
                              ax.set_xlabel('tokens trained (all phases)'), ax.grid(alpha=0.3))
    figures = []

    # 1. validation loss curves. Early pre-training losses are far above everything after; the y-axis shows the
    # part of training where the runs differ (from 10% of the longest run's tokens on).
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    t_max = max(r['evals'][-1]['tokens_total'] for r in runs)
    for ax, key, role in ((axes[0], d0, 'D0'), (axes[1], d1, 'D1')):
        shown = []
        for run in runs:
            pts = [(e['tokens_total'], e[f'val/{key}']) for e in run['evals'] if f'val/{key}' in e]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker='o', ms=3, lw=1.6, color=colors[run['label']], label=run['label'])
                shown += [y for x, y in pts if x >= 0.1 * t_max]
        if shown:
            lo, hi = min(shown), max(shown)
            pad = 0.08 * (hi - lo) or 0.05
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_title(f"Validation loss on {role} ({key})")
        ax.set_ylabel('validation loss (nats/token)')
        tokens_axis(ax)
    handles, labels = axes[0].get_legend_handles_labels()
    extra = [(h, l) for h, l in zip(*axes[1].get_legend_handles_labels()) if l not in labels]
    handles, labels = handles + [h for h, _ in extra], labels + [l for _, l in extra]
    ncol = min(len(labels), 3 if max(map(len, labels)) > 24 else 6)  # long labels: fewer columns, more rows
    rows = -(-len(labels) // ncol)
    fig.legend(handles, labels, loc='lower center', ncol=ncol, frameon=False)
    fig.suptitle('Validation loss during training (continual phases start where their D0 run ended)')
    fig.tight_layout(rect=(0, 0.02 + 0.05 * rows, 1, 1))
    fig.savefig(os.path.join(out, 'loss_curves.png'), dpi=110, bbox_inches='tight')
    plt.close(fig)
    figures.append(('loss_curves.png', f'validation loss on {d0} and {d1} against tokens'))

    # 2. the trade-off: final D0 loss (forgetting) against final D1 loss (adaptation), with lines of equal average.
    # Only runs that trained on D1: a D0-only run sits far above the others and would squeeze them into a corner.
    trained_d1 = lambda r: any(t.get(f'tokens/{d1}', 0) > 0 for t in r['trains'])
    pts = [(r, r['evals'][-1].get(f'val/{d0}'), r['evals'][-1].get(f'val/{d1}'))
           for r in (r for r in runs if trained_d1(r) or not any(map(trained_d1, runs)))]
    pts = [(r, x, y) for r, x, y in pts if x is not None and y is not None]
    fig, ax = plt.subplots(figsize=(7, 7))
    if pts:
        xs, ys = [x for _, x, _ in pts], [y for _, _, y in pts]
        # the same range on both axes, so a unit of forgetting and a unit of adaptation look the same size
        half = 0.65 * max(max(xs) - min(xs), max(ys) - min(ys), 0.1)
        cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
        x0, x1, y0, y1 = max(cx - half, 0), cx + half, max(cy - half, 0), cy + half  # a loss is never negative
        for avg in MaxNLocator(6).tick_values((x0 + y0) / 2, (x1 + y1) / 2):
            ax.plot([x0, x1], [2 * avg - x0, 2 * avg - x1], ls=':', lw=0.9, color='gray', zorder=1)
            lx = max(x0, 2 * avg - y1)  # label where the line enters the box (left or top edge)
            if lx < x1 and 2 * avg - lx > y0:
                ax.annotate(f"avg {avg:g}", (lx, 2 * avg - lx), xytext=(4, -12), textcoords='offset points',
                            fontsize=7, color='gray')
        for i, (run, x, y) in enumerate(pts):
            ax.scatter([x], [y], s=70, color=colors[run['label']], marker='osD^v<>ph*'[i % 10], zorder=3,
                       label=f"{run['label']}  ({x:.3f}, {y:.3f})")
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.legend(fontsize=8, loc='best', title='run (D0 loss, D1 loss)', title_fontsize=8)
    ax.set_xlabel(f"final D0 ({d0}) validation loss  (right = more forgetting)")
    ax.set_ylabel(f"final D1 ({d1}) validation loss  (up = less adaptation)")
    ax.set_title('Forgetting vs adaptation: runs that trained on D1\n(lower left is better; dotted: equal average loss)')
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, 'tradeoff.png'), dpi=110)
    plt.close(fig)
    figures.append(('tradeoff.png', f'final {d0} loss against final {d1} loss'))

    # 3. the learning-rate schedules, on the same token axis (train rows count tokens of this run only)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for i, run in enumerate(runs):
        pts = [(run['evals'][0]['tokens_total'], run['evals'][0]['lr'])]
        pts += [(run['offset'] + sum(v for k, v in t.items() if k.startswith('tokens/')), t['lr']) for t in run['trains']]
        xs, ys = zip(*sorted(pts))
        # runs often share a schedule (replay fractions): later lines are thinner and dashed, so a line drawn
        # over another leaves it visible
        ax.plot(xs, ys, lw=max(1.0, 3.5 - 0.4 * i), ls=['-', '--', '-.', ':'][i % 4], color=colors[run['label']],
                label=run['label'])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.1e}" if v else '0'))
    ax.set_ylabel('learning rate')
    ax.set_title('Learning-rate schedules that were run')
    tokens_axis(ax)
    ax.legend(fontsize=8, loc='center left', bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(os.path.join(out, 'lr_schedules.png'), dpi=110)
    plt.close(fig)
    figures.append(('lr_schedules.png', 'learning rate against tokens'))
    return figures


def report(specs, d0, d1, out=None, before=None, adapted=None):
    """The whole report for run specs ('folder' or 'label=folder'): returns (rows, markdown); with `out`, also
    writes out/report.md and the figures beside it."""
    runs = [load_run(s) for s in specs]
    rows = table(runs, d0, d1, before, adapted)
    figures = ()
    if out:
        os.makedirs(out, exist_ok=True)
        figures = plot(runs, d0, d1, out)
    md = markdown(rows, d0, d1, before, adapted, figures)
    if out:
        with open(os.path.join(out, 'report.md'), 'w') as f:
            f.write(md)
    return rows, md


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('runs', nargs='+', help='run folders (out_dir), each optionally as label=folder')
    p.add_argument('--d0', required=True, help='the pre-training dataset (its val/<name> loss), e.g. en')
    p.add_argument('--d1', required=True, help='the continual-phase dataset, e.g. de')
    p.add_argument('--before', default=None, help="label of the run whose final D0 loss is 'before' for every run's "
                   "forgetting (default: each continual run's own loss at its start)")
    p.add_argument('--adapted', default=None, help='label of the run whose final D1 loss is the adaptation reference '
                   '(default: the lowest D1 loss among the runs)')
    p.add_argument('--out', default=None, help='folder for report.md and the PNG figures (default: print only)')
    args = p.parse_args(argv)
    rows, md = report(args.runs, args.d0, args.d1, args.out, args.before, args.adapted)
    print(md, end='')
    if args.out:
        print(f"\nwrote {os.path.join(args.out, 'report.md')} and its figures")
    return rows


if __name__ == '__main__':
    runtime.clean_errors()
    main()
