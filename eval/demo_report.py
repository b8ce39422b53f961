"""
The last step of `make demo`: the paper's two tables for the demo's runs over every seed (mean ± standard
deviation), the strong shift's and the weak one's, their figures, and for each of the paper's qualitative findings
(docs/paper.md, 1-5) a plain statement of whether these numbers show it; beside the strong shift's verdict, the
re-warm's η_max at ½x and 2x D0's; and the machine, torch and CPU paths that made the numbers.

    python -m eval.demo_report out-demo-cpu --d0 en_docs_demo1k --d1 de_man_demo1k --d1_weak en2_demo1k
        # writes out-demo-cpu/report.md and its figures; --shift strong|weak for one table only

The demo dir holds one folder per seed (s1/, s2/, ...) with the runs below. Every verdict compares a difference of
means with its standard error (SE, from the seeds' spread): a difference under 2 SE is a tie, never a finding. The
criteria are fixed in advance and reported as they come out, never tuned until a finding shows.
"""
import argparse
import json
import math
import os
import re
import statistics

import torch

import kernels
import runtime
from eval.report import fmt_tokens, load_run, plot, table

# (key, label in the table, run folder), in the order of the paper's tables, for each shift. The keys mean the same
# in both: b no replay, c the smaller replay, d the paper's replay for that shift (finding 3), e the union
RUNS = [
    ('d0', 'D0: pre-training, cosine', 'd0'),
    ('a', 'a) constant η_min, no re-warm', 'a_const'),
    ('b', 'b) re-warm + re-decay, 0% replay', 'b_rewarm'),
    ('c', 'c) re-warm + re-decay, 5% replay', 'c_replay5'),
    ('d', 'd) re-warm + re-decay, 25% replay', 'd_replay25'),
    ('e', 'e) union: scratch on D0 + D1', 'e_union'),
    ('f0', 'f) infinite schedule, D0 phase', 'f_inf_d0'),
    ('f', 'f) infinite schedule, D1 phase (annealed)', 'f_inf_d1'),
]
WEAK_RUNS = [
    ('d0', 'D0: pre-training, cosine', 'd0'),
    ('b', 'b) re-warm + re-decay, 0% replay', 'weak_b_rewarm'),
    ('c', 'c) re-warm + re-decay, 1% replay', 'weak_c_replay1'),
    ('d', 'd) re-warm + re-decay, 5% replay', 'weak_d_replay5'),
    ('e', 'e) union: scratch on D0 + D1', 'weak_e_union'),
]
# the strong shift's b) and d) with the continual phase's η_max at ½x and 2x D0's (first seed only)
ETA_RUNS = [
    ('b_half', 'b) at ½x η_max', 'b_rewarm_eta0.5x'), ('b_double', 'b) at 2x η_max', 'b_rewarm_eta2x'),
    ('d_half', 'd) at ½x η_max', 'd_replay25_eta0.5x'), ('d_double', 'd) at 2x η_max', 'd_replay25_eta2x'),
]
SHIFTS = {
    'strong': dict(runs=RUNS, replay='25%', title='The strong shift', paper=(
        "The paper's table (405M, Pile → German, validation loss Pile / German / avg): 0% replay 3.56 / 1.11 / 2.34; "
        "1% 2.83 / 1.12 / 1.97; 5% 2.57 / 1.12 / 1.85; 25% 2.33 / 1.16 / 1.75; 50% 2.24 / 1.22 / 1.73; union (500B) "
        "2.26 / 1.25 / 1.75.")),
    'weak': dict(runs=WEAK_RUNS, replay='5%', title='The weak shift', paper=(
        "The paper's table (405M, Pile → SlimPajama, validation loss Pile / SlimPajama / avg): 0% replay 2.44 / "
        "2.50 / 2.47; 1% 2.26 / 2.50 / 2.38; 5% 2.23 / 2.51 / 2.37; 50% 2.16 / 2.54 / 2.35; union (600B) 2.17 / "
        "2.53 / 2.35.")),
}
CONTINUAL = ('a', 'b', 'c', 'd')
Z = 2.0  # a difference counts when it exceeds Z standard errors


def seeds(demo):
    found = sorted((int(m.group(1)), os.path.join(demo, d)) for d in os.listdir(demo) if (m := re.match(r's(\d+)$', d)))
    if not found:
        raise FileNotFoundError(f"{demo} holds no seed folders (s1/, s2/, ...): run `make demo` first")
    return found


def collect(demo, d0, d1, kinds=RUNS):
    """{key: {'runs': [run per seed], 'rows': [table row per seed]}} for every run kind of `kinds` found finished."""
    out = {}
    for seed, folder in seeds(demo):
        runs = {k: load_run(f"{label}={os.path.join(folder, sub)}") for k, label, sub in kinds
                if os.path.exists(os.path.join(folder, sub, 'final.json'))}
        if 'd0' not in runs:
            raise FileNotFoundError(f"{folder}/d0 has not finished (no final.json): run `make demo` (it resumes)")
        rows = table(list(runs.values()), d0, d1, adapted=runs['b']['label'] if 'b' in runs else None)
        for (k, run), row in zip(runs.items(), rows):
            out.setdefault(k, {'runs': [], 'rows': [], 'seeds': []})
            out[k]['runs'].append(run)
            out[k]['rows'].append(row)
            out[k]['seeds'].append(seed)
    return out


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    sd = statistics.stdev(values) if len(values) > 1 else None
    return dict(mean=statistics.fmean(values), sd=sd, n=len(values))


def summary(runs):
    """{key: {metric: stats}} over the seeds."""
    return {k: {m: stats([r[m] for r in v['rows']]) for m in ('d0', 'd1', 'avg', 'forgetting', 'adaptation_gap',
                                                               'tokens')} for k, v in runs.items()}


def compare(s, x, y, metric, noise):
    """mean(y) - mean(x) and its standard error. A run with one seed borrows `noise`, the pooled seed standard
    deviation of the multi-seed runs, as its own."""
    a, b = s[x][metric], s[y][metric]
    var = sum((v['sd'] if v['sd'] is not None else noise) ** 2 / v['n'] for v in (a, b))
    return b['mean'] - a['mean'], math.sqrt(var)


def less(s, x, y, metric, noise):
    """Whether x's mean is below y's by more than Z standard errors, and the numbers that say so."""
    diff, se = compare(s, x, y, metric, noise)
    name = lambda k: 'union' if k == 'e' else f"{k})"
    return diff > Z * se, (f"{name(x)} {s[x][metric]['mean']:.3f}, {name(y)} {s[y][metric]['mean']:.3f}: "
                           f"{name(y)} − {name(x)} = {diff:+.3f} ± {se:.3f}")


def findings(s, noise, ratio, replay='25%'):
    """[(finding, verdict: 'shows' | 'does NOT show', the numbers behind it)] for docs/paper.md's findings 1-5 (4 and
    5 where a) and f) ran). `replay`: d)'s share, the one finding 3 is judged on."""
    out = []
    cont = [k for k in CONTINUAL if k in s and k != 'b']
    # 1: b's D1 loss is the lowest (no other continual run beats it beyond 2 SE) and its forgetting the highest
    adapt = [less(s, k, 'b', 'd1', noise) for k in cont]       # another run's D1 below b's: b does not adapt best
    forget = [less(s, k, 'b', 'forgetting', noise) for k in cont]
    shown = not any(ok for ok, _ in adapt) and all(ok for ok, _ in forget)
    out.append(("1. Re-warm + re-decay with no replay adapts best to D1 but forgets D0 most", shown,
                "D1 loss " + '; '.join(t for _, t in adapt) + ". Forgetting " + '; '.join(t for _, t in forget)))
    # 2: forgetting falls with more replay (b > c > d, each beyond 2 SE), at a D1 cost below the forgetting removed
    steps = [less(s, 'c', 'b', 'forgetting', noise), less(s, 'd', 'c', 'forgetting', noise)]
    cost = s['d']['d1']['mean'] - s['b']['d1']['mean']
    removed = s['b']['forgetting']['mean'] - s['d']['forgetting']['mean']
    out.append(("2. Replay cuts forgetting, more replay less forgetting, at a small cost on D1",
                all(ok for ok, _ in steps) and cost < removed,
                "forgetting " + '; '.join(t for _, t in steps) + f"; D1 cost of {replay} replay {cost:+.3f} vs "
                f"forgetting removed {removed:.3f}"))
    # 3: d's average is not worse than the union's beyond 2 SE, at about half the union's compute (or less)
    worse, text = less(s, 'e', 'd', 'avg', noise)
    out.append((f"3. Re-warm + re-decay + {replay} replay matches the union baseline's average loss at about half the "
                "compute", not worse and ratio <= 0.6,
                f"avg {text}; the continual phase costs {ratio:.2f} of the union's compute "
                f"(given D0)"))
    if 'a' in s:  # 4: a forgets less than b and adapts worse, each beyond 2 SE
        f_ok, f_text = less(s, 'a', 'b', 'forgetting', noise)
        d_ok, d_text = less(s, 'b', 'a', 'd1', noise)
        out.append(("4. Constant η_min (no re-warm) forgets less but adapts worse than re-warming", f_ok and d_ok,
                    f"forgetting {f_text}; D1 loss {d_text}"))
    if 'f' in s:  # 5: the infinite schedule's average is not worse than b's beyond 2 SE
        worse, text = less(s, 'b', 'f', 'avg', noise)
        out.append(("5. An infinite schedule, with no re-warm between datasets, reaches the cosine schedule's "
                    "final loss", not worse, f"avg {text}"))
    return out


def fmt(v, sign=''):
    if v is None:
        return '–'
    return f"{v['mean']:{sign}.3f}" + (f" ± {v['sd']:.3f}" if v['sd'] is not None else '')


def markdown(s, labels, d0, d1, noise):
    lines = [f"| Run | seeds | D0 loss ({d0}) | D1 loss ({d1}) | Avg | Forgetting ({d0}) | Adaptation gap ({d1}) "
             f"| Tokens |", "|:---|---:|---:|---:|---:|---:|---:|---:|"]
    for k, v in s.items():
        tokens = v['tokens']['mean']
        lines.append(f"| {labels[k]} | {v['avg']['n']} | {fmt(v['d0'])} | {fmt(v['d1'])} | {fmt(v['avg'])} "
                     f"| {fmt(v['forgetting'], '+')} | {fmt(v['adaptation_gap'], '+')} | {fmt_tokens(tokens)} |")
    lines += ['', f"Mean ± standard deviation over the seeds, validation loss in nats per token at each run's last "
                  f"evaluation; Avg is the mean of the {d0} and {d1} losses. Forgetting: final {d0} loss minus the "
                  f"{d0} loss at the start of the continual phase. Adaptation gap: final {d1} loss minus b)'s, seed "
                  f"by seed. Tokens: all tokens trained on, D0's included. Runs with one seed are judged with the "
                  f"pooled seed standard deviation of the others ({noise:.3f})."]
    return lines


def continual_plot(runs, d0, d1, out):
    """The continual phase zoomed in: the change of the D0 loss, and the average loss, against the phase's tokens;
    each run's mean over seeds with the seeds' range as a band, the union's final value as a reference line."""
    import matplotlib  # optional here: only the figures need it, not the tables
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    colors = {k: plt.cm.tab10(i) for i, k in enumerate(('a', 'b', 'c', 'd', 'e', 'f'))}
    union_d0 = [e['d0'] - p['d0'] for e, p in zip(runs['e']['rows'], runs['d0']['rows'])]  # seed by seed
    panels = ((axes[0], lambda e, start: e[f'val/{d0}'] - start, union_d0,
               f"D0 ({d0}) loss minus its value when the phase began"),
              (axes[1], lambda e, start: (e[f'val/{d0}'] + e[f'val/{d1}']) / 2, [r['avg'] for r in runs['e']['rows']],
               f"average of the {d0} and {d1} losses"))
    for ax, y_of, union, title in panels:
        tail = list(union)  # what the y-axis must show: the union's values and the last 60% of every curve
        for k in ('a', 'b', 'c', 'd', 'f'):
            if k not in runs:
                continue
            curves = [[(e['tokens'], y_of(e, run['evals'][0][f'val/{d0}'])) for e in run['evals']]
                      for run in runs[k]['runs']]
            n = min(map(len, curves))
            xs = [curves[0][i][0] for i in range(n)]
            ys = [[c[i][1] for c in curves] for i in range(n)]
            ax.plot(xs, [statistics.fmean(v) for v in ys], lw=1.8, color=colors[k],
                    label=f"{runs[k]['runs'][0]['label']} (n={len(curves)})")
            if len(curves) > 1:
                ax.fill_between(xs, [min(v) for v in ys], [max(v) for v in ys], color=colors[k], alpha=0.18, lw=0)
            tail += [y for x, v in zip(xs, ys) if x >= 0.4 * xs[-1] for y in v]
        ax.axhline(statistics.fmean(union), color=colors['e'], ls='--', lw=1.5,
                   label=f"e) union, its final value (n={len(union)})")
        if len(union) > 1:
            ax.axhspan(min(union), max(union), color=colors['e'], alpha=0.12, lw=0)
        lo, hi = min(tail), max(tail)
        ax.set_ylim(lo - (0.1 * (hi - lo) or 0.05), hi + (0.1 * (hi - lo) or 0.05))
        ax.set_title(title)
        ax.set_xlabel('tokens trained in the continual phase')
        ax.xaxis.set_major_formatter(EngFormatter(sep=''))
        ax.set_ylabel('nats per token')
        ax.grid(alpha=0.3)
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc='lower center', ncol=3, frameon=False)
    fig.suptitle("The continual phase, zoomed: mean over seeds (band: the seeds' range)")
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    fig.savefig(os.path.join(out, 'continual.png'), dpi=110, bbox_inches='tight')
    plt.close(fig)
    return 'continual.png', 'the continual phase zoomed: D0 loss change and average loss against its tokens'


def machine(demo):
    """What made these numbers: the CPU (or GPU), torch, and the precision and calls the runs took (the CPU paths
    each run measured and recorded in its config). Losses move between machines (bf16 rounding, each library's
    kernels): compare runs of one machine only."""
    with open(os.path.join(seeds(demo)[0][1], 'd0', 'config.json')) as f:
        cfg = json.load(f)
    paths = 'bf16 autocast' if cfg['dtype'] == 'bfloat16' else cfg['dtype']
    paths += ', torch.compile' if cfg['compile'] else ', eager'
    if cfg['device'] == 'cpu':
        paths += f"; CPU paths {cfg.get('cpu_paths', 'not recorded')}"
    where = torch.cuda.get_device_name(0) if cfg['device'].startswith('cuda') else \
        f"{kernels.cpu_name()}, {os.cpu_count()} cores"
    return f"Machine: {where}; torch {torch.__version__}; {paths}."


def shift_section(demo, shift, d0, d1):
    """The table, figures and findings of one shift, as Markdown lines."""
    spec = SHIFTS[shift]
    runs = collect(demo, d0, d1, spec['runs'])
    missing = [k for k, *_ in spec['runs'] if k in ('d0', 'b', 'c', 'd', 'e') and k not in runs]
    if missing:
        raise FileNotFoundError(f"{demo}: the {shift} shift's runs {missing} have not finished: run `make demo` (it "
                                f"resumes)")
    s = summary(runs)
    multi = [v['avg']['sd'] for v in s.values() if v['avg']['sd'] is not None]
    noise = math.sqrt(statistics.fmean([x * x for x in multi])) if multi else 0.0
    labels = {k: label for k, label, _ in spec['runs']}
    # the continual phase's compute as a share of the union's (same model, same tokens per step): D1 tokens / all
    ratio = (s['b']['tokens']['mean'] - s['d0']['tokens']['mean']) / s['e']['tokens']['mean']
    sub = '' if shift == 'strong' else shift  # the weak shift's figures go into their own folder
    figdir = os.path.join(demo, sub)
    os.makedirs(figdir, exist_ok=True)
    link = lambda name: f"{sub}/{name}" if sub else name
    first = [run for k in labels if k in runs for run in runs[k]['runs'][:1]]  # one seed's runs for the curves
    figures = plot(first, d0, d1, figdir)
    lines = [f"## {spec['title']}: D0 = {d0}, D1 = {d1}, seeds {sorted(set(runs['d0']['seeds']))}", '']
    lines += markdown(s, labels, d0, d1, noise)
    lines += ['', spec['paper']]
    name, caption = continual_plot(runs, d0, d1, figdir)
    lines += ['', f"![{caption}]({link(name)})"]
    lines += [f"![{caption} (seed {runs['b']['seeds'][0]})]({link(name)})" for name, caption in figures]
    lines += ['', f"### Findings ({shift} shift)", '', f"Each finding of the paper (docs/paper.md), judged on the "
              f"means above: a difference counts when it exceeds {Z:g} standard errors (± SE below), smaller ones "
              f"are ties.", '']
    for text, shown, numbers in findings(s, noise, ratio, spec['replay']):
        lines.append(f"- **{'shows' if shown else 'does NOT show'}** — {text}: {numbers}.")
    if shift == 'strong':
        lines += eta_section(demo, d0, d1, runs, s, noise)
    return lines


def eta_section(demo, d0, d1, runs, s, noise):
    """b) and d) with the continual phase's η_max at ½x, 1x and 2x D0's, on the first seed, beside the verdict
    (which stays judged at 1x, the paper's protocol): more η_max, more adaptation and more forgetting."""
    arms = collect(demo, d0, d1, [('d0', 'D0', 'd0')] + ETA_RUNS)
    if not all(k in arms for k, *_ in ETA_RUNS):
        return []
    seed = arms['d0']['seeds'][0]
    pick = lambda src, k: src[k]['rows'][src[k]['seeds'].index(seed)]
    union = s['e']['avg']
    se = math.sqrt(noise ** 2 + (union['sd'] if union['sd'] is not None else noise) ** 2 / union['n'])
    lines = ['', f"### The re-warm's η_max (seed {seed}; the verdict above stays judged at 1x)", '',
             f"| run | η_max | D0 loss ({d0}) | D1 loss ({d1}) | Avg | Forgetting | Avg − union |",
             "|:---|---:|---:|---:|---:|---:|---:|"]
    for kind in ('b', 'd'):
        for factor, r in (('½x', pick(arms, f'{kind}_half')), ('1x', pick(runs, kind)),
                          ('2x', pick(arms, f'{kind}_double'))):
            lines.append(f"| {kind}) | {factor} | {r['d0']:.3f} | {r['d1']:.3f} | {r['avg']:.3f} | "
                         f"{r['forgetting']:+.3f} | {r['avg'] - union['mean']:+.3f} ± {se:.3f} |")
    lines += ['', "One seed each: the ± borrows the pooled seed spread of the table above. The paper's no-replay "
                  "sweep (405M, Pile / German): η_max 1.5e-4 3.47 / 1.13, 3e-4 3.56 / 1.11, 6e-4 3.63 / 1.11."]
    return lines


def main(demo, d0, d1, d1_weak=None, shift='both'):
    todo = {'strong': [('strong', d1)], 'weak': [('weak', d1_weak)],
            'both': [('strong', d1), ('weak', d1_weak)]}[shift]
    lines = [f"# make demo: {demo}", '', machine(demo), '']
    for name, target in todo:
        if target is None:
            raise ValueError(f"the {name} shift needs its D1: pass --d1_weak")
        lines += shift_section(demo, name, d0, target) + ['']
    md = '\n'.join(lines).rstrip() + '\n'
    runtime.write_text(os.path.join(demo, 'report.md'), md)
    print(md, end='')
    print(f"\nwrote {os.path.join(demo, 'report.md')} and its figures")


if __name__ == '__main__':
    runtime.clean_errors()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('demo', help="the demo's output folder (e.g. out-demo-cpu)")
    p.add_argument('--d0', default='en_docs_demo1k', help="the D0 dataset's name (its val/<name> loss)")
    p.add_argument('--d1', default='de_man_demo1k', help="the strong shift's D1")
    p.add_argument('--d1_weak', default='en2_demo1k', help="the weak shift's D1")
    p.add_argument('--shift', default='both', choices=('strong', 'weak', 'both'))
    args = p.parse_args()
    main(args.demo, args.d0, args.d1, args.d1_weak, args.shift)
