"""The paper's continual recipes run end to end through train.py, checked on the LRs the runs actually logged:
(a) re-warm + re-decay from a checkpoint, (b) an infinite schedule carried across datasets with no re-warm,
(c) an anneal branch off the constant phase that leaves the main line untouched; and what data each phase reads
(data.py's audit of the runs)."""
import hashlib

import pytest

import checkpoint
import torch
from synth import TINY, audit, metrics, run_train, windows


def train(bins, out, *extra):
    run_train(*TINY, f'--data_dir={bins}', f'--out_dir={out}', '--learning_rate=1e-3', '--min_lr=1e-4',
              "--val_data=['en', 'de']", *extra)
    # LR of steps 0..N-1 from the per-step log, and of step N from the final eval
    return [r['lr'] for r in metrics(out, 'train')] + [metrics(out, 'eval')[-1]['lr']]


def test_a_rewarm_and_redecay(bins, tmp_path):
    train(bins, tmp_path / 'd0', '--max_iters=8', '--eval_interval=8', "--data={'en': 1.0}")
    lrs = train(bins, tmp_path / 'd1', '--max_iters=10', '--eval_interval=10', "--data={'de': 0.75, 'en': 0.25}",
                '--warmup_iters=2', f"--init_from={tmp_path / 'd0'}")
    assert lrs[:3] == pytest.approx([0.0, 5e-4, 1e-3])      # re-warm from 0 to η_max over 2 steps
    assert lrs[-1] == pytest.approx(1e-4)                     # re-decayed to η_min at the phase's end
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))      # cosine: monotone down after warmup


INF = ['--lr_schedule=infinite', '--warmup_iters=2',
       "--schedule_args={'anneal': 'none', 'total_iters': 10, 'cooldown': 'linear'}"]


def test_b_infinite_schedule_across_datasets_and_c_anneal_branch(bins, tmp_path):
    a = train(bins, tmp_path / 'A', *INF, '--max_iters=10', '--eval_interval=10', "--data={'en': 1.0}")
    assert a == pytest.approx([0, 5e-4, 1e-3, 9.25e-4, 8.5e-4, 7.75e-4, 7e-4, 6.25e-4, 5.5e-4, 5.5e-4, 5.5e-4])
    b = train(bins, tmp_path / 'B', *INF, '--max_iters=20', '--eval_interval=20', "--data={'de': 0.75, 'en': 0.25}",
              f"--init_from={tmp_path / 'A'}", '--continue_schedule=True', '--reset_optimizer=False')
    assert b == pytest.approx([5.5e-4] * 21)  # constant phase: no re-warm, no jump
    ck = checkpoint.load(tmp_path / 'B')
    assert ck['schedule_offset'] == 10
    assert all(s['step'].item() == 30 for s in ck['optimizer']['state'].values())  # optimizer state carried on
    # (c): a short branch from B's constant phase anneals to η_min; B's checkpoint is left as it was
    before = hashlib.sha256((tmp_path / 'B' / 'step_000020.pt').read_bytes()).hexdigest()
    c = train(bins, tmp_path / 'C', '--lr_schedule=anneal', "--schedule_args={'start_lr': 5.5e-4}",
              '--max_iters=4', '--eval_interval=4', '--reset_optimizer=False', "--data={'de': 0.75, 'en': 0.25}",
              f"--init_from={tmp_path / 'B'}")
    assert c == pytest.approx([5.5e-4, 3.591468131490858e-4, 2.345207879911715e-4, 1.5314071568043932e-4, 1e-4])
    assert hashlib.sha256((tmp_path / 'B' / 'step_000020.pt').read_bytes()).hexdigest() == before
    # the annealed model is a finished one: its loss on the new data is no worse than the main line's
    assert metrics(tmp_path / 'C', 'eval')[-1]['val/de'] <= metrics(tmp_path / 'B', 'eval')[-1]['val/de'] + 0.05


def test_each_phase_reads_what_the_paper_says(bins, tmp_path):
    train(bins, tmp_path / 'A', '--max_iters=20', '--eval_interval=20', "--data={'en': 1.0}")
    main_line = set(windows(audit(tmp_path / 'A')[0], 'en'))      # 80 of en's 624 windows
    assert len(main_line) == 80
    # an anneal branch (or any continued run) reads on: only windows its main line did not read
    train(bins, tmp_path / 'B', '--max_iters=10', '--eval_interval=10', "--data={'en': 1.0}", '--lr_schedule=anneal',
          '--reset_optimizer=False', f"--init_from={tmp_path / 'A'}")
    rows, summary = audit(tmp_path / 'B')
    assert len(rows) == 40 and not set(windows(rows, 'en')) & main_line
    assert summary == ['# en (data): 40 samples, 40 distinct windows of 624, epoch 0; '
                       '0 of them read by an earlier phase']
    # replay reads only what the lineage read, and a resumed replay phase reads exactly what an unbroken one does
    mix = ["--data={'de': 0.75}", "--replay={'en': 0.25}", f"--init_from={tmp_path / 'A'}", '--eval_interval=6']
    train(bins, tmp_path / 'C', '--max_iters=12', *mix)
    train(bins, tmp_path / 'C2', '--max_iters=12', *mix, '--stop_at=6')
    train(bins, tmp_path / 'C2', '--max_iters=12', *mix[:2], '--init_from=resume', '--eval_interval=6')
    rows, summary = audit(tmp_path / 'C')
    assert rows == audit(tmp_path / 'C2')[0]
    assert set(windows(rows, 'en')) <= main_line and len(windows(rows, 'en')) == 12
    assert summary[1].endswith('replay pass 0 over 80 seen windows; 12 of them read by an earlier phase')
    wc, wc2 = checkpoint.load(tmp_path / 'C')['model'], checkpoint.load(tmp_path / 'C2')['model']
    assert all(torch.equal(wc[k], wc2[k]) for k in wc)
    # the next phase continues both streams: other German windows, other replayed English ones
    train(bins, tmp_path / 'D', '--max_iters=12', *mix[:2], f"--init_from={tmp_path / 'C'}", '--eval_interval=12')
    later = audit(tmp_path / 'D')[0]
    assert set(windows(later, 'en')) <= main_line and not set(windows(later, 'en')) & set(windows(rows, 'en'))
    assert not set(windows(later, 'de')) & set(windows(rows, 'de'))


def test_three_seeds_of_a_replay_phase_branch_from_one_d0_and_a_requeued_phase_is_exact(bins, tmp_path):
    train(bins, tmp_path / 'A', '--max_iters=20', '--eval_interval=20', "--data={'en': 1.0}")
    main_line = set(windows(audit(tmp_path / 'A')[0], 'en'))
    mix = ["--data={'de': 0.75}", "--replay={'en': 0.25}", f"--init_from={tmp_path / 'A'}", '--max_iters=6',
           '--eval_interval=6']
    runs = {}
    for seed in (1, 2, 3):  # no new_streams: the lineage's record stays, so replay still reads only what A read
        train(bins, tmp_path / f's{seed}', *mix, f'--seed={seed}')
        runs[seed] = audit(tmp_path / f's{seed}')[0]
        assert set(windows(runs[seed], 'en')) <= main_line and len(windows(runs[seed], 'en')) == 6
    assert len({tuple(windows(r, 'en')) for r in runs.values()}) == 3  # each seed its own replay order ...
    assert len({tuple(windows(r, 'de')) for r in runs.values()}) == 3  # ... and its own D1 stream
    state = checkpoint.load_meta(tmp_path / 's2')['data_state']
    assert state['en']['seed'] == 1337 and state['en']['replay']['seed'] == 2 and state['de']['seed'] == 2
    # a requeued job of a new phase (auto_resume) resumes its own checkpoint, the recipe checked, and reads exactly
    # what the unbroken run read
    requeue = [*mix, '--seed=1', '--auto_resume=True', '--eval_interval=3']
    train(bins, tmp_path / 'q1', *requeue, '--stop_at=3')
    train(bins, tmp_path / 'q1', *requeue)
    assert audit(tmp_path / 'q1')[0] == runs[1]
