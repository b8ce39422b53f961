"""schedules.py: the formulas at the points that matter, boundaries, properties over random draws,
every bad input's message, and the plotting command."""
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

import schedules
from schedules import make_schedule

ROOT = Path(__file__).resolve().parents[1]
HI, LO = 3e-4, 3e-5  # the paper's 405M η_max, η_min
MID = (HI + LO) / 2  # η_const, 1.65e-4
approx = lambda x: pytest.approx(x, rel=1e-9, abs=1e-15)


def mk(name, warmup_iters=10, max_iters=1000, max_lr=HI, min_lr=LO, **kw):
    return make_schedule(name, max_lr=max_lr, min_lr=min_lr, warmup_iters=warmup_iters, max_iters=max_iters, **kw)


# -----------------------------------------------------------------------------
# values at the points that matter

def test_cosine_points():
    f = mk('cosine')  # T_w = 10, T = 1000
    assert f(0) == 0.0
    assert f(5) == approx(HI / 2)
    assert f(9) < HI and f(10) == approx(HI)  # warmup ends exactly at step T_w
    assert f(10 + 495) == approx(MID)  # half-way through the decay
    n = 300
    assert f(10 + n) == approx(LO + 0.5 * (HI - LO) * (1 + math.cos(math.pi * n / 990)))
    assert f(999) > LO and f(1000) == approx(LO)  # the last step is η_min, not one step early
    assert f(1001) == approx(LO) and f(10**6) == approx(LO)


def test_cosine_warmup_from_min_and_fraction():
    f = mk('cosine', warmup_iters=0.01, warmup_from_min=True)  # 1% of 1000 = 10 steps
    assert f(0) == approx(LO)
    assert f(5) == approx(LO + (HI - LO) / 2)
    assert f(10) == approx(HI)
    assert mk('cosine', warmup_iters=0.01)(10) == approx(HI)
    g = mk('cosine', warmup_iters=0)
    assert g(0) == approx(HI) and g(1000) == approx(LO)


def test_linear_and_linear_warmup_and_constant():
    f = mk('linear')
    assert f(0) == 0 and f(10) == approx(HI) and f(505) == approx(MID) and f(1000) == approx(LO)
    g = mk('linear_warmup', warmup_iters=100)
    assert g(0) == 0 and g(50) == approx(HI / 2) and g(99) < HI and g(100) == approx(HI) and g(10**6) == approx(HI)
    assert mk('linear_warmup', warmup_iters=100, warmup_from_min=True)(0) == approx(LO)
    c = mk('constant', warmup_iters=0.5)  # warmup_iters is ignored
    assert all(c(t) == HI for t in (0, 1, 500, 1000, 5000))


def test_inv_sqrt_points():
    f = mk('inv_sqrt', warmup_iters=100)
    assert f(0) == 0 and f(100) == approx(HI)
    assert f(400) == approx(HI * math.sqrt(100 / 400))  # default τ = T_w: Vaswani's η_max sqrt(T_w/t)
    assert f(10**7) == approx(LO)  # clamped at η_min
    g = mk('inv_sqrt', warmup_iters=0, timescale=50)
    assert g(0) == approx(HI) and g(150) == approx(HI / 2)


@pytest.mark.parametrize('shape, frac_left', [('1-sqrt', 0.5), ('linear', 0.75),
                                              ('cosine', 0.5 * (1 + math.cos(math.pi / 4))), ('exponential', None)])
def test_wsd_points(shape, frac_left):
    f = mk('wsd', decay_frac=0.2, decay_shape=shape)  # decay over steps 800..1000
    assert f(0) == 0 and f(10) == approx(HI)
    assert f(500) == approx(HI) and f(800) == approx(HI) and f(801) < HI  # the decay starts at step 800
    expected = LO * (HI / LO) ** 0.75 if shape == 'exponential' else LO + (HI - LO) * frac_left
    assert f(850) == approx(expected)  # x = 0.25 of the way
    assert f(999) > LO and f(1000) == approx(LO) and f(2000) == approx(LO)


def h(x, alpha=10.0):
    return 1 / math.sqrt(1 + alpha * x) - 1


def test_infinite_points():
    # T = 1000, T_w = 10: cooldown n in [0, 600) (t 10..610), constant to n = 850 (t = 860), anneal to t = 1000
    f = mk('infinite', warmup_iters=0.01)
    assert f(0) == 0 and f(5) == approx(HI / 2) and f(10) == approx(HI)
    assert f(10 + 300) == approx(HI + (MID - HI) * h(0.5) / h(1))  # inv-sqrt cooldown, paper's formula
    assert f(609) > MID and f(610) == approx(MID)  # end of cooldown = η_const
    assert f(700) == approx(MID) and f(860) == approx(MID) and f(861) < MID
    assert f(860 + 70) == approx(math.sqrt(MID * LO))  # exponential: geometric mean half-way
    assert f(999) > LO and f(1000) == approx(LO) and f(5000) == approx(LO)  # end of annealing = η_min


@pytest.mark.parametrize('cooldown, mid', [('cosine', (HI + MID) / 2), ('linear', (HI + MID) / 2),
                                           ('inv_sqrt', HI + (MID - HI) * h(0.5, 4.0) / h(1, 4.0))])
def test_infinite_cooldowns(cooldown, mid):
    f = mk('infinite', cooldown=cooldown, alpha=4.0)
    assert f(10) == approx(HI) and f(310) == approx(mid) and f(610) == approx(MID)


@pytest.mark.parametrize('anneal, mid', [('linear', (MID + LO) / 2), ('cosine', (MID + LO) / 2),
                                         ('1-sqrt', LO + (MID - LO) * (1 - math.sqrt(0.5)))])
def test_infinite_anneals(anneal, mid):
    f = mk('infinite', anneal=anneal)
    assert f(860) == approx(MID) and f(930) == approx(mid) and f(1000) == approx(LO)


def test_infinite_params():
    f = mk('infinite', cooldown_frac=0.3, constant_frac=0.5, const_lr=1e-4, warmup_iters=0)
    assert f(0) == approx(HI) and f(300) == approx(1e-4) and f(500) == approx(1e-4) and f(1000) == approx(LO)
    g = mk('infinite', anneal='none')  # the main line: constant forever after the cooldown
    assert g(610) == approx(MID) and g(10**7) == approx(MID)
    k = mk('infinite', max_iters=50, total_iters=1000, warmup_iters=0.01)  # T and the warmup follow total_iters
    assert k(10) == approx(HI) and k(610) == approx(MID) and k(1000) == approx(LO)


def test_repeated_cosine_points():
    f = mk('repeated_cosine', warmup_iters=0.01, max_iters=3000, n_tasks=3)  # 1% of each 1000-step task
    for start in (0, 1000, 2000):
        assert f(start + 10) == approx(HI)  # each task warms up over 10 steps
        assert f(start + 505) == approx(MID)
        assert f(start + 999) > LO
    assert f(0) == 0  # the first task warms up from 0, like 'cosine'
    assert f(1000) == approx(LO) and f(2000) == approx(LO)  # later tasks re-warm from η_min
    assert f(1005) == approx((LO + HI) / 2)
    assert f(3000) == approx(LO) and f(4000) == approx(LO)
    g = mk('repeated_cosine', warmup_iters=0.01, max_iters=10, task_iters=[1000, 2000], rewarm_from_min=False)
    assert g(1000) == 0 and g(1010) == approx(HI / 2) and g(1020) == approx(HI)  # 1% of a 2000-step task: 20
    assert g(1020 + 990) == approx(MID)
    assert g(3000) == approx(LO)  # task_iters sets the length; max_iters is only the run's


def test_anneal_points():
    f = mk('anneal', warmup_iters=0.01, max_iters=100)  # warmup_iters is ignored: no warmup in a branch
    assert f(0) == approx(MID) and f(50) == approx(math.sqrt(MID * LO)) and f(99) > LO and f(100) == approx(LO)
    assert f(150) == approx(LO)
    g = mk('anneal', max_iters=100, start_lr=2e-4, shape='linear')
    assert g(0) == approx(2e-4) and g(50) == approx((2e-4 + LO) / 2) and g(100) == approx(LO)


def test_continual_sequences():
    # (b) an infinite main line over two datasets: run A (steps 0..A) then run B continued at offset A:
    # no re-warm, same η_const; (c) an anneal branch from a constant-phase checkpoint ends at η_min.
    A, B = 400, 200
    args = dict(anneal='none', total_iters=A)
    run_a = mk('infinite', warmup_iters=0.01, max_iters=A, **args)
    run_b = mk('infinite', warmup_iters=0.01, max_iters=B, **args)
    assert [run_b(A + i) for i in range(B + 1)] == [approx(MID)] * (B + 1)
    assert run_b(A) == approx(run_a(A))
    branch = mk('anneal', warmup_iters=0.01, max_iters=50)
    assert branch(0) == approx(run_a(A)) and branch(50) == approx(LO)
    lrs = [branch(i) for i in range(51)]
    assert lrs == [approx(MID * (LO / MID) ** (i / 50)) for i in range(51)]


def test_pure_and_resumable():
    # a resumed run asks for steps again, out of order: same answers
    for name, kw in [('cosine', {}), ('wsd', {}), ('infinite', {}), ('repeated_cosine', dict(n_tasks=2))]:
        f, g = mk(name, **kw), mk(name, **kw)
        steps = list(range(1001))
        first = [f(t) for t in steps]
        random.Random(0).shuffle(steps)
        assert all(g(t) == first[t] for t in steps)


# -----------------------------------------------------------------------------
# boundaries: continuous everywhere except a re-warm (steps may be fractional: the formulas are continuous in t)

EPS = 1e-10  # small: 1-sqrt leaves η_max with an infinite slope


@pytest.mark.parametrize('name, kw, boundaries', [
    ('cosine', {}, [10, 1000]),
    ('cosine', dict(warmup_from_min=True), [10, 1000]),
    ('linear', {}, [10, 1000]),
    ('linear_warmup', {}, [10]),
    ('inv_sqrt', {}, [10]),
    ('inv_sqrt', dict(timescale=3), [10, 307]),  # 307: where the clamp at η_min starts
    ('wsd', {}, [10, 800, 1000]),
    ('wsd', dict(decay_shape='exponential', decay_frac=0.5), [10, 500, 1000]),
    ('infinite', {}, [10, 610, 860, 1000]),
    ('infinite', dict(cooldown='cosine', anneal='cosine'), [10, 610, 860, 1000]),
    ('infinite', dict(cooldown='linear', anneal='linear'), [10, 610, 860, 1000]),
    ('infinite', dict(anneal='none'), [10, 610, 860, 1000]),
    ('repeated_cosine', dict(n_tasks=4), [10, 250, 260, 500, 510, 750, 760, 1000]),
    ('anneal', {}, [1000]),
])
def test_continuous_at_boundaries(name, kw, boundaries):
    f = mk(name, **kw)
    for b in boundaries:
        assert f(b - EPS) == pytest.approx(f(b), rel=1e-5), (name, b)
        assert f(b + EPS) == pytest.approx(f(b), rel=1e-5), (name, b)


def test_rewarm_from_zero_is_the_only_jump():
    f = mk('repeated_cosine', n_tasks=4, rewarm_from_min=False)
    assert f(250 - EPS) == pytest.approx(LO, rel=1e-5) and f(250) == 0  # re-warm from 0: a jump down, by design


# -----------------------------------------------------------------------------
# properties over random parameter draws

def random_draw(rng, name):
    max_lr = 10 ** rng.uniform(-5, -2)
    min_lr = max_lr * rng.choice([0.0, 0.01, 0.1, 0.5, 1.0, rng.random()])
    T = rng.randint(20, 400)
    warmup = rng.choice([0, rng.randint(0, T // 10), rng.choice([0.0, 0.01, 0.05, 0.1])])
    kw = {}
    exp_ok = min_lr > 0  # exponential decays need η_min > 0
    shapes = [s for s in schedules.SHAPES if exp_ok or s != 'exponential']
    if name in ('cosine', 'linear', 'linear_warmup'):
        kw = dict(warmup_from_min=rng.random() < 0.5)
    elif name == 'inv_sqrt':
        kw = dict(timescale=rng.uniform(1, T))
    elif name == 'wsd':
        kw = dict(decay_frac=rng.uniform(0.05, 0.8), decay_shape=rng.choice(shapes))
        warmup = min(schedules._steps(warmup, T), int(T - kw['decay_frac'] * T))
    elif name == 'infinite':
        cd = rng.uniform(0.05, 0.8)
        kw = dict(cooldown=rng.choice(schedules.COOLDOWNS), cooldown_frac=cd, constant_frac=rng.uniform(cd, 0.89),
                  alpha=rng.uniform(0.5, 30), const_lr=rng.uniform(min_lr, max_lr),
                  anneal=rng.choice(shapes + ['none']))
        warmup = rng.randint(0, T // 10)
    elif name == 'repeated_cosine':
        n = rng.randint(1, 4)
        kw = dict(task_iters=[rng.randint(20, 100) for _ in range(n)], rewarm_from_min=True,
                  warmup_from_min=rng.random() < 0.5)
        warmup = rng.choice([0, 1, 0.01, 0.1])
    elif name == 'anneal':
        kw = dict(start_lr=rng.uniform(min_lr, max_lr), shape=rng.choice(shapes))
    return dict(max_lr=max_lr, min_lr=min_lr, warmup_iters=warmup, max_iters=T, **kw)


MONOTONE_AFTER_WARMUP = ('cosine', 'linear', 'linear_warmup', 'inv_sqrt', 'wsd', 'infinite', 'anneal', 'constant')


@pytest.mark.parametrize('name', list(schedules.SCHEDULES))
def test_properties_random(name):
    rng = random.Random(1234)
    for _ in range(60):
        a = random_draw(rng, name)
        f = make_schedule(name, **a)
        T, hi, lo = a['max_iters'], a['max_lr'], a['min_lr']
        if name == 'repeated_cosine':
            T = sum(a['task_iters'])
        lrs = [f(t) for t in range(T + 20)]
        tol = 1e-12 * hi
        assert all(-tol <= x <= hi + tol for x in lrs), a  # never above η_max, never negative
        w = 0 if name in ('constant', 'anneal') else schedules._steps(a['warmup_iters'], T)
        if name == 'repeated_cosine':
            w = schedules._steps(a['warmup_iters'], a['task_iters'][0])
        assert all(lo - tol <= x for x in lrs[w:]), a  # after the warmup: inside [η_min, η_max]
        assert all(x <= y + tol for x, y in zip(lrs[:w], lrs[1:w + 1])), a  # warmup rises
        if w and name != 'constant':
            assert lrs[w] == pytest.approx(hi), a  # and reaches η_max exactly at step T_w
        if name in MONOTONE_AFTER_WARMUP:
            assert all(y <= x + tol for x, y in zip(lrs[w:], lrs[w + 1:])), a  # then never rises
        if name in ('cosine', 'linear', 'wsd', 'anneal') or (name == 'infinite' and a['anneal'] != 'none'):
            assert lrs[T] == pytest.approx(lo, abs=tol) and lrs[-1] == pytest.approx(lo, abs=tol), a
        if name == 'repeated_cosine':  # within each task: warmup rises, decay falls, ends at η_min
            start = 0
            for task in a['task_iters']:
                wk = schedules._steps(a['warmup_iters'], task)
                seg = lrs[start + wk:start + task]
                assert all(y <= x + tol for x, y in zip(seg, seg[1:])), a
                assert lrs[start + wk] == pytest.approx(hi), a
                # the decay reaches η_min at the task's end, which is the next task's first step
                assert f(start + task - EPS) == pytest.approx(lo, abs=1e-6 * hi), a
                start += task


# -----------------------------------------------------------------------------
# bad input: one ValueError whose message names the fix

@pytest.mark.parametrize('call, match', [
    (lambda: mk('cosin'), r"unknown lr_schedule 'cosin'; valid: constant, linear_warmup, cosine, .*anneal"),
    (lambda: mk('cosine', decay_frac=0.2), r"unknown schedule_args \['decay_frac'\] for lr_schedule='cosine'; "
                                           r"valid: warmup_from_min"),
    (lambda: mk('constant', alpha=1), r"valid: none \(use schedule_args=\{\}\)"),
    (lambda: mk('cosine', min_lr=1e-3, max_lr=1e-4), r"need 0 <= min_lr <= learning_rate"),
    (lambda: mk('cosine', max_lr=0, min_lr=0), r"learning_rate > 0"),
    (lambda: mk('cosine', warmup_iters=1000), r"warmup_iters=1000 is 1000 steps, not shorter than the phase \(1000"),
    (lambda: mk('linear', warmup_iters=5000), r"not shorter than the phase"),
    (lambda: mk('cosine', warmup_iters=1.5), r"warmup_iters=1.5: give steps as an int >= 0, or a fraction"),
    (lambda: mk('cosine', warmup_iters=-1), r"give steps as an int >= 0"),
    (lambda: mk('cosine', warmup_iters=True), r"give steps as an int >= 0"),
    (lambda: mk('cosine', max_iters=0), r"max_iters must be a positive int"),
    (lambda: mk('cosine', max_iters=100.0), r"max_iters must be a positive int"),
    (lambda: mk('cosine', warmup_from_min='yes'), r"warmup_from_min must be True or False"),
    (lambda: mk('wsd', decay_shape='sqrt'), r"decay_shape='sqrt' for lr_schedule='wsd'; valid: linear, cosine, "),
    (lambda: mk('wsd', decay_frac=0), r"decay_frac must be in \(0, 1\]"),
    (lambda: mk('wsd', decay_frac=0.5, warmup_iters=600), r"fractions out of order: warmup \(600 steps\) overlaps"),
    (lambda: mk('wsd', decay_shape='exponential', min_lr=0), r"needs min_lr > 0"),
    (lambda: mk('infinite', cooldown_frac=0.9, constant_frac=0.85), r"fractions out of order: need 0 < cooldown_frac "
                                                                    r"<= constant_frac < 1"),
    (lambda: mk('infinite', constant_frac=1.0), r"fractions out of order"),
    (lambda: mk('infinite', warmup_iters=0.2), r"fractions out of order: warmup \(200 steps\) \+ constant_frac\*T"),
    (lambda: mk('infinite', warmup_iters=0.5, anneal='none'), r"\+ cooldown_frac\*T \(600\) must end by T=1000"),
    (lambda: mk('infinite', cooldown='exp'), r"cooldown='exp' for lr_schedule='infinite'; valid: inv_sqrt, cosine"),
    (lambda: mk('infinite', anneal='step'), r"valid: linear, cosine, 1-sqrt, exponential, none"),
    (lambda: mk('infinite', min_lr=0), r"anneal='exponential' needs min_lr > 0"),
    (lambda: mk('infinite', const_lr=1e-3), r"const_lr=0.001 must be in \[min_lr, learning_rate\]"),
    (lambda: mk('infinite', alpha=0), r"alpha must be > 0"),
    (lambda: mk('infinite', total_iters=0.5), r"total_iters must be a positive int"),
    (lambda: mk('anneal', start_lr=1e-6), r"start_lr=1e-06 must be in \[min_lr, learning_rate\]"),
    (lambda: mk('anneal', shape='step'), r"shape='step' for lr_schedule='anneal'; valid:"),
    (lambda: mk('inv_sqrt', warmup_iters=0), r"inv_sqrt needs a timescale"),
    (lambda: mk('repeated_cosine'), r"repeated_cosine needs one of schedule_args n_tasks"),
    (lambda: mk('repeated_cosine', n_tasks=2, task_iters=[500, 500]), r"needs one of"),
    (lambda: mk('repeated_cosine', n_tasks=3), r"n_tasks=3 must be an int >= 1 that divides max_iters=1000"),
    (lambda: mk('repeated_cosine', task_iters=[100, 0]), r"task_iters must be a non-empty list of positive ints"),
    (lambda: mk('repeated_cosine', task_iters=[100, 5], warmup_iters=5), r"5 steps, not shorter than a task of 5"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_every_schedule_is_documented():
    for name, fn in schedules.SCHEDULES.items():
        assert fn.__doc__ and len(fn.__doc__) > 80, name
        assert list(schedules.inspect.signature(fn).parameters)[:5] == ['step', 'max_lr', 'min_lr', 'warmup_iters',
                                                                        'max_iters'], name


# -----------------------------------------------------------------------------
# the plotting command

def run(*args, cwd=ROOT, script='schedules.py'):
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, capture_output=True, text=True)


def is_png(path):
    data = Path(path).read_bytes()
    return data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 10_000


def test_plot_all(tmp_path):
    out = tmp_path / 'all.png'
    r = run(f'--out={out}')
    assert r.returncode == 0, r.stderr
    assert is_png(out)
    r = run('config/cpt_en_de.py')  # a config's schedule is eval/schedule.py's: one line says so
    assert r.returncode != 0 and 'python -m eval.schedule config/x.py' in r.stderr


def test_plot_config(tmp_path):
    """eval/schedule.py: the schedule a config would run, read as train.py reads it."""
    cfg = tmp_path / 'x.py'
    cfg.write_text("# a train.py config: plain Python\nbatch_size = 8\nlr_schedule = 'infinite'\n"
                   "learning_rate = 3e-4\nmin_lr = 3e-5\nwarmup_iters = 0.01\nmax_iters = 1000\n"
                   "schedule_args = {'cooldown': 'cosine'}\n")
    out = tmp_path / 'cfg.png'

    def plot(*overrides):
        return run(str(cfg), f'--out={out}', *overrides, script='eval/schedule.py')
    r = plot('--max_iters=2000')
    assert r.returncode == 0, r.stderr
    assert is_png(out)
    assert 'step 2000: lr 3e-05' in r.stdout  # the override reached the schedule: it anneals at 2000
    r = plot('--lr_schedule=wsd', "--schedule_args={'decay_frac': 0.1}")
    assert r.returncode == 0, r.stderr
    r = plot('--lr_schedule=wsd')  # infinite's schedule_args do not fit wsd
    assert r.returncode != 0 and "unknown schedule_args ['cooldown'] for lr_schedule='wsd'" in r.stderr
