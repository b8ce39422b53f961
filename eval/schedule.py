"""
The learning-rate schedule a train.py config would run, plotted over its steps, with the LR at its first, middle
and last step printed: the config read exactly as train.py reads it (its defaults, the file, then --key=value).

    python -m eval.schedule config/cpt_en_de.py --max_iters=5000 --out=cpt.png

`python schedules.py` draws every schedule of schedules.py in one figure instead.
"""
import os
import sys

if __package__ in (None, ''):  # run as a file (python eval/x.py, the nanoGPT habit): the repo root on the path, as -m
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import matplotlib

matplotlib.use('Agg')  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402

import runtime  # noqa: E402
from configurator import load_config, train_defaults  # noqa: E402
from schedules import make_schedule  # noqa: E402


def from_config(cfg):
    """The get_lr a train.py config dict would build."""
    return make_schedule(cfg['lr_schedule'], max_lr=cfg['learning_rate'], min_lr=cfg['min_lr'],
                         warmup_iters=cfg['warmup_iters'], max_iters=cfg['max_iters'], **cfg['schedule_args'])


def plot_config(cfg, title, out):
    """The schedule one config would run, over its steps 0..max_iters."""
    get_lr = from_config(cfg)
    steps = range(cfg['max_iters'] + 1)
    lrs = [get_lr(s) for s in steps]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(steps, lrs, lw=1.6)
    ax.axhline(cfg['min_lr'], color='0.6', lw=0.8, ls=':')
    ax.set_title(f"{title}: lr_schedule={cfg['lr_schedule']!r} schedule_args={cfg['schedule_args']}\n"
                 f"learning_rate={cfg['learning_rate']:g} min_lr={cfg['min_lr']:g} "
                 f"warmup_iters={cfg['warmup_iters']} max_iters={cfg['max_iters']}", fontsize=9)
    ax.set_xlabel('step (of this run; a continued schedule starts at its offset)')
    ax.set_ylabel('learning rate')
    ax.yaxis.set_major_formatter(lambda v, _: f'{v:.1e}' if v else '0')
    ax.set_ylim(0, max(lrs) * 1.08)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    for s in sorted({0, cfg['max_iters'] // 2, cfg['max_iters']}):
        print(f"step {s}: lr {get_lr(s):.4g}")


def main(argv):
    out = next((a.split('=', 1)[1] for a in argv if a.startswith('--out=')), 'schedule.png')
    argv = [a for a in argv if not a.startswith('--out=')]
    cfg, _ = load_config(train_defaults(), argv)
    config_file = next((a for a in argv if not a.startswith('--')), 'defaults')
    plot_config(cfg, config_file, out)
    print(f"wrote {out}")


if __name__ == '__main__':
    runtime.clean_errors()
    main(sys.argv[1:])
