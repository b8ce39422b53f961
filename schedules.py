"""
Learning-rate schedules, each a pure function of the step.

    lr = f(step, max_lr, min_lr, warmup_iters, max_iters, **params)

Nothing here holds state, so a resumed run gets exactly the LRs an uninterrupted one would, and a
continual phase can pick a schedule up where an earlier run left it (train.py's continue_schedule).
train.py builds one with make_schedule(), which checks the arguments and resolves fractions:

    get_lr = make_schedule('wsd', max_lr=3e-4, min_lr=3e-5, warmup_iters=0.01, max_iters=10_000,
                           decay_frac=0.2, decay_shape='1-sqrt')
    lr = get_lr(step)

Notation (Ibrahim et al. 2024, arXiv 2403.08763): t = step, T = steps of the phase (max_iters),
T_w = warmup steps, n = t - T_w, η_max = max_lr (train.py's learning_rate), η_min = min_lr.
A step past the end of a schedule gets its last value.

    python schedules.py                      # plot every schedule into schedules.png
    python -m eval.schedule config/x.py      # plot the schedule that config would run (--key=value overrides)

This file imports nothing of the project: a fork can take it alone.
"""
import functools
import inspect
import math
import numbers
import sys

# shapes a decay can take, from `start` at x=0 to `end` at x=1 (wsd, infinite's annealing, anneal)
SHAPES = ('linear', 'cosine', '1-sqrt', 'exponential')
COOLDOWNS = ('inv_sqrt', 'cosine', 'linear')  # the infinite schedule's cooldown to η_const


def _interp(shape, start, end, x):
    """From start (x=0) to end (x=1) along `shape`; x is clipped to [0, 1]."""
    x = min(max(x, 0.0), 1.0)
    if shape == 'linear':
        return start + (end - start) * x
    if shape == 'cosine':
        return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * x))
    if shape == '1-sqrt':  # Hägele et al. 2024: better than linear or cosine for short decays
        return end + (start - end) * (1.0 - math.sqrt(x))
    if shape == 'exponential':  # geometric: start * (end/start)^x, the paper's annealing
        return start * (end / start) ** x
    raise ValueError(f"unknown shape {shape!r}; valid: {', '.join(SHAPES)}")


def _steps(warmup_iters, n):
    """warmup_iters as steps: an int is steps, a float in [0, 1) a fraction of n steps."""
    return warmup_iters if isinstance(warmup_iters, numbers.Integral) else round(warmup_iters * n)


def _warmup(step, max_lr, start_lr, warmup_iters):
    """Linear warmup: start_lr + (η_max - start_lr) t / T_w. From 0 (start_lr=0) the paper's
    η_max t/T_w: step 0 has LR 0 and step T_w is the first at η_max."""
    return start_lr + (max_lr - start_lr) * step / warmup_iters


# -----------------------------------------------------------------------------
# the schedules

def constant(step, max_lr, min_lr, warmup_iters, max_iters):
    """η = η_max at every step; no warmup (warmup_iters is ignored).
    The paper's "constant η_min, no re-warm" baseline is this with learning_rate = min_lr."""
    return max_lr


def linear_warmup(step, max_lr, min_lr, warmup_iters, max_iters, warmup_from_min=False):
    """Warmup to η_max, then constant: the paper's "re-warm, no re-decay" baseline.
    η = η_max t/T_w (or η_min + (η_max - η_min) t/T_w with warmup_from_min) for t < T_w, then η_max."""
    if step < warmup_iters:
        return _warmup(step, max_lr, min_lr if warmup_from_min else 0.0, warmup_iters)
    return max_lr


def cosine(step, max_lr, min_lr, warmup_iters, max_iters, warmup_from_min=False):
    """The paper's baseline and its re-warm + re-decay: linear warmup, then
    η = η_min + ½(η_max - η_min)(1 + cos(π (t - T_w)/(T - T_w))), reaching η_min at t = T.
    warmup_from_min: re-warm from η_min instead of 0 (both are in the paper)."""
    if step < warmup_iters:
        return _warmup(step, max_lr, min_lr if warmup_from_min else 0.0, warmup_iters)
    x = (step - warmup_iters) / (max_iters - warmup_iters)
    return _interp('cosine', max_lr, min_lr, x)


def linear(step, max_lr, min_lr, warmup_iters, max_iters, warmup_from_min=False):
    """Linear warmup, then linear decay η = η_max + (η_min - η_max)(t - T_w)/(T - T_w)
    (GPT-NeoX's "linear", to η_min rather than 0)."""
    if step < warmup_iters:
        return _warmup(step, max_lr, min_lr if warmup_from_min else 0.0, warmup_iters)
    x = (step - warmup_iters) / (max_iters - warmup_iters)
    return _interp('linear', max_lr, min_lr, x)


def inv_sqrt(step, max_lr, min_lr, warmup_iters, max_iters, timescale=None):
    """Linear warmup, then η = η_max / sqrt(1 + (t - T_w)/τ), clamped at η_min. Needs no budget.
    τ defaults to T_w, which gives Vaswani et al. 2017's η_max sqrt(T_w/t); Zhai et al. 2022 use a
    separate timescale."""
    if step < warmup_iters:
        return _warmup(step, max_lr, 0.0, warmup_iters)
    tau = warmup_iters if timescale is None else timescale
    return max(max_lr / math.sqrt(1.0 + (step - warmup_iters) / tau), min_lr)


def wsd(step, max_lr, min_lr, warmup_iters, max_iters, decay_frac=0.2, decay_shape='1-sqrt'):
    """Warmup-stable-decay (MiniCPM, Hu et al. 2024; Hägele et al. 2024): linear warmup, constant η_max,
    then the last decay_frac of the run decays to η_min along decay_shape (linear | cosine | 1-sqrt |
    exponential); with x = (t - (T - T_d))/T_d, T_d = decay_frac T, 1-sqrt is
    η = η_min + (η_max - η_min)(1 - sqrt(x)). Any stable-phase checkpoint can be decayed on its own
    (see 'anneal')."""
    if step < warmup_iters:
        return _warmup(step, max_lr, 0.0, warmup_iters)
    decay_iters = decay_frac * max_iters
    x = (step - (max_iters - decay_iters)) / decay_iters
    return max_lr if x <= 0 else _interp(decay_shape, max_lr, min_lr, x)


def infinite(step, max_lr, min_lr, warmup_iters, max_iters, cooldown='inv_sqrt', cooldown_frac=0.6,
             constant_frac=0.85, alpha=10.0, const_lr=None, anneal='exponential', total_iters=None):
    """The paper's infinite schedules (authors' code: gpt-neox fork, branch inf_lr). With n = t - T_w,
    T = total_iters (default max_iters), η_const = const_lr (default (η_max + η_min)/2):
      1. warmup to η_max over T_w;
      2. cooldown to η_const over T_cd = cooldown_frac T, x = n/T_cd:
         inv_sqrt: η = η_max + (η_const - η_max) h(x)/h(1), h(x) = 1/sqrt(1 + αx) - 1
         cosine:   η = η_const + ½(η_max - η_const)(1 + cos(π x))
         linear:   η = η_max + (η_const - η_max) x   (the authors' code has it too)
      3. constant η_const until n = constant_frac T;
      4. annealing to η_min at t = T (exponential: η = η_const (η_min/η_const)^x,
         x = (n - constant_frac T)/(T - T_w - constant_frac T)), clamped at η_min.
    anneal='none' stays at η_const forever: the main line that runs across datasets (train.py's
    continue_schedule), whose constant-phase checkpoints are annealed by short 'anneal' branches.
    total_iters fixes T when the main line spans several runs of other lengths."""
    T = total_iters or max_iters
    const_lr = (max_lr + min_lr) / 2 if const_lr is None else const_lr
    if step < warmup_iters:
        return _warmup(step, max_lr, 0.0, warmup_iters)
    n = step - warmup_iters
    cooldown_iters = cooldown_frac * T
    if n < cooldown_iters:
        x = n / cooldown_iters
        if cooldown == 'inv_sqrt':
            h = lambda x: 1.0 / math.sqrt(1.0 + alpha * x) - 1.0
            return max_lr + (const_lr - max_lr) * h(x) / h(1.0)
        return _interp(cooldown, max_lr, const_lr, x)
    if anneal == 'none' or n < constant_frac * T:
        return const_lr
    x = (n - constant_frac * T) / (T - warmup_iters - constant_frac * T)
    return max(_interp(anneal, const_lr, min_lr, x), min_lr)


def repeated_cosine(step, max_lr, min_lr, warmup_iters, max_iters, n_tasks=None, task_iters=None,
                    warmup_from_min=False, rewarm_from_min=True):
    """Re-warm + re-decay for N datasets: one 'cosine' per task, back to back. Tasks are
    task_iters (a list of steps) or max_iters split into n_tasks equal parts. Warmup is per task:
    warmup_iters steps, or a fraction of each task (the paper: 1% of each task). The first task
    warms up from 0 (η_min with warmup_from_min), later ones re-warm from η_min (the authors' code;
    rewarm_from_min=False: from 0). The paper also resets the optimizer at each boundary: run one
    train.py phase per task (init_from the previous checkpoint) to get that."""
    tasks = task_iters if task_iters is not None else [max_iters // n_tasks] * n_tasks
    start = 0
    for i, task in enumerate(tasks):
        if step < start + task or i == len(tasks) - 1:
            from_min = rewarm_from_min if i > 0 else warmup_from_min
            return cosine(step - start, max_lr, min_lr, _steps(warmup_iters, task), task, warmup_from_min=from_min)
        start += task


def anneal(step, max_lr, min_lr, warmup_iters, max_iters, start_lr=None, shape='exponential'):
    """The anneal branch: "any checkpoint of the constant phase can be annealed to get a finished
    model". From start_lr (default (η_max + η_min)/2, the infinite schedule's η_const) at step 0 to η_min at
    step max_iters along shape; exponential: η = start_lr (η_min/start_lr)^(t/T). No warmup (warmup_iters
    is ignored): the branch starts from a trained model, with its optimizer state (reset_optimizer=False)."""
    start_lr = (max_lr + min_lr) / 2 if start_lr is None else start_lr
    return max(_interp(shape, start_lr, min_lr, step / max_iters), min_lr)


SCHEDULES = {f.__name__: f for f in (constant, linear_warmup, cosine, linear, inv_sqrt, wsd, infinite,
                                     repeated_cosine, anneal)}

# -----------------------------------------------------------------------------
# building one from a config, with every check in one place

def _params(fn):
    """The keyword parameters a schedule takes beyond the five every schedule gets."""
    return list(inspect.signature(fn).parameters)[5:]


def _check(ok, msg):
    if not ok:
        raise ValueError(msg)


def _is_int(x):
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_num(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def make_schedule(name, max_lr, min_lr, warmup_iters, max_iters, **params):
    """Check a schedule's arguments and return get_lr(step) -> lr. Every bad input stops here with one
    ValueError that names the fix; train.py and schedules.py's plots both come through here."""
    _check(name in SCHEDULES, f"unknown lr_schedule {name!r}; valid: {', '.join(SCHEDULES)}")
    fn = SCHEDULES[name]
    valid = _params(fn)
    unknown = sorted(set(params) - set(valid))
    _check(not unknown, f"unknown schedule_args {unknown} for lr_schedule={name!r}; "
                        f"valid: {', '.join(valid) if valid else 'none (use schedule_args={})'}")
    p = {k: v for k, v in inspect.signature(fn).parameters.items() if k in valid}
    p = {k: params.get(k, v.default) for k, v in p.items()}  # the defaults, overridden

    _check(_is_num(max_lr) and _is_num(min_lr) and 0 <= min_lr <= max_lr and max_lr > 0,
           f"need 0 <= min_lr <= learning_rate (max_lr) and learning_rate > 0; got min_lr={min_lr}, "
           f"learning_rate={max_lr}")
    _check(_is_int(max_iters) and max_iters > 0, f"max_iters must be a positive int, got {max_iters!r}")
    _check((_is_int(warmup_iters) and warmup_iters >= 0) or (_is_num(warmup_iters) and 0 <= warmup_iters < 1),
           f"warmup_iters={warmup_iters!r}: give steps as an int >= 0, or a fraction of the phase in [0, 1)")
    for k in ('warmup_from_min', 'rewarm_from_min'):
        if k in p:
            _check(isinstance(p[k], bool), f"schedule_args {k} must be True or False, got {p[k]!r}")

    def check_shape(key, choices):
        _check(p[key] in choices, f"schedule_args {key}={p[key]!r} for lr_schedule={name!r}; "
                                  f"valid: {', '.join(choices)}")
        if p[key] == 'exponential':  # (η_min/start)^x is 0 for every x > 0 when η_min = 0
            _check(min_lr > 0, f"{key}='exponential' needs min_lr > 0; use 'linear', 'cosine' or '1-sqrt'")

    def check_lr(key):  # an LR given as a param must lie between the two ends
        if p[key] is not None:
            _check(_is_num(p[key]) and min_lr <= p[key] <= max_lr,
                   f"schedule_args {key}={p[key]!r} must be in [min_lr, learning_rate] = [{min_lr}, {max_lr}]")

    T = max_iters  # the length a fractional warmup is measured against
    if name == 'infinite':
        check_shape('cooldown', COOLDOWNS)
        check_shape('anneal', SHAPES + ('none',))
        check_lr('const_lr')
        _check(_is_num(p['alpha']) and p['alpha'] > 0, f"schedule_args alpha must be > 0, got {p['alpha']!r}")
        if p['total_iters'] is not None:
            _check(_is_int(p['total_iters']) and p['total_iters'] > 0,
                   f"schedule_args total_iters must be a positive int, got {p['total_iters']!r}")
            T = p['total_iters']
        cd, cf = p['cooldown_frac'], p['constant_frac']
        _check(_is_num(cd) and _is_num(cf) and 0 < cd <= cf < 1,
               f"fractions out of order: need 0 < cooldown_frac <= constant_frac < 1, got "
               f"cooldown_frac={cd!r}, constant_frac={cf!r}")
        w = _steps(warmup_iters, T)
        if p['anneal'] != 'none':  # annealing runs from n = constant_frac T to t = T: it must have room
            _check(w + cf * T < T, f"fractions out of order: warmup ({w} steps) + constant_frac*T ({cf * T:g}) "
                                   f"must end before T={T}; shorten the warmup or lower constant_frac")
        else:
            _check(w + cd * T <= T, f"fractions out of order: warmup ({w} steps) + cooldown_frac*T ({cd * T:g}) "
                                    f"must end by T={T}; shorten the warmup or lower cooldown_frac")
    elif name == 'wsd':
        check_shape('decay_shape', SHAPES)
        df = p['decay_frac']
        _check(_is_num(df) and 0 < df <= 1, f"schedule_args decay_frac must be in (0, 1], got {df!r}")
        w = _steps(warmup_iters, T)
        _check(w <= T - df * T, f"fractions out of order: warmup ({w} steps) overlaps the decay, which starts "
                                f"at step {T - df * T:g} (decay_frac={df}, max_iters={T})")
    elif name == 'anneal':
        check_shape('shape', SHAPES)
        check_lr('start_lr')
    elif name == 'inv_sqrt':
        tau = p['timescale'] if p['timescale'] is not None else _steps(warmup_iters, T)
        _check(_is_num(tau) and tau > 0, "inv_sqrt needs a timescale: set warmup_iters > 0 (the default "
                                         "timescale) or schedule_args={'timescale': steps}")
    elif name == 'repeated_cosine':
        n, tasks = p['n_tasks'], p['task_iters']
        _check((n is None) != (tasks is None), "repeated_cosine needs one of schedule_args n_tasks "
                                               "(split max_iters equally) or task_iters (a list of steps)")
        if n is not None:
            _check(_is_int(n) and n >= 1 and max_iters % n == 0,
                   f"n_tasks={n!r} must be an int >= 1 that divides max_iters={max_iters}; "
                   f"give task_iters (a list of steps) for unequal tasks")
            tasks = [max_iters // n] * n
        else:
            _check(isinstance(tasks, (list, tuple)) and len(tasks) > 0 and all(_is_int(t) and t > 0 for t in tasks),
                   f"task_iters must be a non-empty list of positive ints, got {tasks!r}")
            p['task_iters'] = tuple(tasks)
        for t in tasks:  # warmup is per task
            _check(_steps(warmup_iters, t) < t, f"warmup_iters={warmup_iters!r} is "
                                                f"{_steps(warmup_iters, t)} steps, not shorter than a task of {t}")
        return functools.partial(fn, max_lr=max_lr, min_lr=min_lr, warmup_iters=warmup_iters, max_iters=max_iters, **p)

    warmup = _steps(warmup_iters, T)
    if name not in ('constant', 'anneal'):  # these two have no warmup
        _check(warmup < T, f"warmup_iters={warmup_iters!r} is {warmup} steps, not shorter than the phase "
                           f"({T} steps)")
    return functools.partial(fn, max_lr=max_lr, min_lr=min_lr, warmup_iters=warmup, max_iters=max_iters, **p)


# -----------------------------------------------------------------------------
# python schedules.py [--out=schedules.png]: every schedule in one figure

def plot_all(out):
    """Every schedule on one shared step axis, at the paper's settings (η_max 3e-4, η_min 3e-5, 1% warmup)."""
    import matplotlib.pyplot as plt  # optional: only the plot needs it
    T, hi, lo, wu = 1200, 3e-4, 3e-5, 0.01
    steps = range(T + 1)

    def mk(name, max_lr=hi, warmup_iters=wu, max_iters=T, **kw):
        return make_schedule(name, max_lr=max_lr, min_lr=lo, warmup_iters=warmup_iters, max_iters=max_iters, **kw)

    fig, axes = plt.subplots(4, 1, figsize=(13, 12), sharex=True)
    panels = [
        ("one run: warmup, then decay to η_min at the end", [
            ("cosine  (the paper's baseline)", mk('cosine'), {}),
            ("linear", mk('linear'), {}),
            ("inv_sqrt  (timescale=100)", mk('inv_sqrt', timescale=100), {}),
            ("wsd  decay_shape='1-sqrt', decay_frac=0.2", mk('wsd'), {}),
            ("wsd  decay_shape='linear'", mk('wsd', decay_shape='linear'), dict(ls='--')),
            ("wsd  decay_shape='cosine'", mk('wsd', decay_shape='cosine'), dict(ls=':')),
        ]),
        ("infinite: warmup, cooldown to η_const, constant, anneal (Ibrahim et al. 2024)", [
            ("infinite  cooldown='inv_sqrt' (α=10)", mk('infinite'), {}),
            ("infinite  cooldown='cosine'", mk('infinite', cooldown='cosine'), {}),
            ("infinite  cooldown='linear'", mk('infinite', cooldown='linear'), dict(ls='--')),
            ("infinite  anneal='linear'", mk('infinite', anneal='linear'), dict(ls=':')),
        ]),
        ("three datasets of 400 steps: re-warm + re-decay each, or one infinite main line + anneal branches", [
            ("repeated_cosine  n_tasks=3", mk('repeated_cosine', n_tasks=3), {}),
            ("infinite  anneal='none', total_iters=400 (main line)",
             mk('infinite', anneal='none', total_iters=400), {}),
        ]),
        ("constant baselines of the paper", [
            ("constant  (learning_rate=η_max)", mk('constant'), {}),
            ("constant  (learning_rate=η_min: no re-warm)", mk('constant', max_lr=lo), {}),
            ("linear_warmup  (re-warm, no re-decay), warmup_iters=0.05", mk('linear_warmup', warmup_iters=0.05), {}),
            ("linear_warmup  warmup_from_min=True", mk('linear_warmup', warmup_iters=0.05, warmup_from_min=True),
             dict(ls='--')),
        ]),
    ]
    for ax, (title, lines) in zip(axes, panels):
        for label, get_lr, style in lines:
            ax.plot(steps, [get_lr(s) for s in steps], label=label, lw=1.6, **style)
        ax.set_title(title, fontsize=10, loc='left')
    # anneal branches off the main line's constant phase, each a short run of its own (train.py --lr_schedule=anneal)
    for i, start in enumerate((400, 800, 1200 - 120)):
        branch = mk('anneal', max_iters=120)
        axes[2].plot([start + s for s in range(121)], [branch(s) for s in range(121)], color='C2', lw=1.6,
                     ls='--', label="anneal  (120-step branch from a constant-phase checkpoint)" if i == 0 else None)
    for ax in axes:
        ax.axhline(lo, color='0.6', lw=0.8, ls=':')
        ax.set_ylabel('learning rate')
        ax.yaxis.set_major_formatter(lambda v, _: f'{v:.1e}' if v else '0')
        ax.set_ylim(0, hi * 1.08)
        ax.legend(fontsize=8, loc='center left', bbox_to_anchor=(1.01, 0.5), frameon=False)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel(f'step  (T = {T}, η_max = {hi:g}, η_min = {lo:g} dotted, warmup 1%)')
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv):
    import matplotlib  # here, not at the top: only the plot needs it, the schedules themselves are pure Python
    matplotlib.use('Agg')  # files only: no display needed
    out = next((a.split('=', 1)[1] for a in argv if a.startswith('--out=')), 'schedules.png')
    if [a for a in argv if not a.startswith('--out=')]:
        sys.exit(f"usage: python schedules.py [--out=schedules.png]; the schedule of a config: "
                 f"python -m eval.schedule config/x.py [--key=value ...]")
    plot_all(out)
    print(f"wrote {out}")


if __name__ == '__main__':
    main(sys.argv[1:])
