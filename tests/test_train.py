"""train.py end to end on synthetic bins: learning, exact resume, new phases, DDP, and every bad input's message."""
import os

import numpy as np
import pytest
import torch

import checkpoint
from synth import TINY, audit, make_bin, metrics, run_train


def common(bins, out, *extra):
    return [*TINY, f'--data_dir={bins}', f'--out_dir={out}', '--learning_rate=3e-3', '--min_lr=3e-4', *extra]


def test_tiny_model_learns_the_pattern(bins, tmp_path):
    run_train(*common(bins, tmp_path, '--max_iters=150', '--eval_interval=150', "--data={'en': 1.0}"))
    first, last = metrics(tmp_path, 'eval')
    # start: log(64) = 4.16; the pattern's entropy is log(8)/7 = 0.30 nats per token; 1.0 needs real learning
    assert first['val/en'] > 4.0 and last['val/en'] < 1.0, (first, last)


def test_eval_interval_zero_evaluates_and_saves_only_at_the_end(bins, tmp_path):
    run_train(*common(bins, tmp_path, '--max_iters=6', '--eval_interval=0', "--data={'en': 1.0}"))
    assert [r['iter'] for r in metrics(tmp_path, 'eval')] == [6]  # no step-0 evaluation (bench/gpu_check.sh)
    assert [os.path.basename(p) for _, p in checkpoint.checkpoints(tmp_path)] == ['step_000006.pt']


def test_resume_is_exact(bins, tmp_path):
    args = ['--max_iters=20', '--eval_interval=5', "--data={'en': 0.7, 'de': 0.3}", '--dropout=0.1']
    run_train(*common(bins, tmp_path / 'straight', *args))
    run_train(*common(bins, tmp_path / 'split', *args, '--stop_at=10'))
    assert checkpoint.load(tmp_path / 'split')['iter_num'] == 10
    with open(tmp_path / 'split' / 'metrics.jsonl', 'a') as f:
        f.write('{"kind": "train", "it')  # the job was killed mid-append: the requeue drops the torn line
    p = run_train(*common(bins, tmp_path / 'split', *args, '--init_from=resume'))
    assert 'ends in a torn line' in p.stderr
    a, b = metrics(tmp_path / 'straight', 'train'), metrics(tmp_path / 'split', 'train')
    assert [r['loss'] for r in a] == [r['loss'] for r in b] and [r['lr'] for r in a] == [r['lr'] for r in b]
    assert metrics(tmp_path / 'straight', 'eval') == metrics(tmp_path / 'split', 'eval')
    wa, wb = checkpoint.load(tmp_path / 'straight')['model'], checkpoint.load(tmp_path / 'split')['model']
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_new_phase_from_a_checkpoint(bins, tmp_path):
    run_train(*common(bins, tmp_path / 'd0', '--max_iters=20', '--eval_interval=20', "--data={'en': 1.0}",
                      "--val_data=['en', 'de']"))
    run_train(*common(bins, tmp_path / 'd1', '--max_iters=10', '--eval_interval=10', "--data={'de': 0.75, 'en': 0.25}",
                      f"--init_from={tmp_path / 'd0' / 'step_000020.pt'}", "--val_data=['en', 'de']", '--warmup_iters=2'))
    src_final, new_first = metrics(tmp_path / 'd0', 'eval')[-1], metrics(tmp_path / 'd1', 'eval')[0]
    assert new_first['iter'] == 0
    assert new_first['val/en'] == pytest.approx(src_final['val/en'], abs=1e-6)
    assert new_first['val/de'] == pytest.approx(src_final['val/de'], abs=1e-6)
    ck = checkpoint.load(tmp_path / 'd1')
    # the optimizer was reset: AdamW has taken 10 steps, not 20 + 10; the schedule restarted (re-warm from 0)
    assert ck['iter_num'] == 10 and ck['schedule_offset'] == 0
    assert all(s['step'].item() == 10 for s in ck['optimizer']['state'].values())
    assert metrics(tmp_path / 'd1', 'train')[0]['lr'] < 3e-3
    assert ck['tokens_before']['en'] == 20 * 4 * 32 and ck['tokens']['de'] + ck['tokens']['en'] == 10 * 4 * 32


def test_new_phase_can_keep_the_optimizer(bins, tmp_path):
    run_train(*common(bins, tmp_path / 'd0', '--max_iters=6', '--eval_interval=6'))
    # the state carries on; the hyperparameters are this run's (the source's were 0.1, (0.9, 0.95), 1e-8)
    hyper = ['--weight_decay=0.0', '--beta2=0.99', '--eps=1e-6']
    run_train(*common(bins, tmp_path / 'd1', '--max_iters=4', '--eval_interval=4', '--reset_optimizer=False',
                      f"--init_from={tmp_path / 'd0'}", *hyper, '--stop_at=2'))
    run_train(*common(bins, tmp_path / 'd1', '--max_iters=4', '--eval_interval=4', '--init_from=resume', *hyper))
    ck = checkpoint.load(tmp_path / 'd1')
    assert all(s['step'].item() == 10 for s in ck['optimizer']['state'].values())
    decayed, rest = ck['optimizer']['param_groups']
    assert decayed['weight_decay'] == 0.0 and rest['weight_decay'] == 0.0
    assert all(tuple(g['betas']) == (0.9, 0.99) and g['eps'] == 1e-6 for g in (decayed, rest))
    assert ck['config']['beta2'] == 0.99


def test_ddp_matches_one_process(bins, tmp_path):
    args = ['--max_iters=6', '--eval_interval=3', "--data={'en': 0.5, 'de': 0.5}", '--gradient_accumulation_steps=2']
    run_train(*common(bins, tmp_path / 'one', *args))
    p = run_train(*common(bins, tmp_path / 'two', *args), nproc=2, env={'OMP_NUM_THREADS': '1'})
    one, two = metrics(tmp_path / 'one', 'eval'), metrics(tmp_path / 'two', 'eval')
    assert len(one) == len(two) == 3
    for a, b in zip(one, two):
        assert a['val/mean'] == pytest.approx(b['val/mean'], abs=1e-4)
    for a, b in zip(metrics(tmp_path / 'one', 'train'), metrics(tmp_path / 'two', 'train')):
        assert a['loss'] == pytest.approx(b['loss'], abs=1e-4)
    assert 'x2' in p.stdout
    # ranks read disjoint windows, and together exactly the windows the one-process run read
    rows_one, rows_two = audit(tmp_path / 'one')[0], audit(tmp_path / 'two')[0]
    assert {r[2] for r in rows_two} == {0, 1}
    for step in range(6):
        keys = [(r[4], r[5]) for r in rows_two if r[0] == step]
        assert len(keys) == len(set(keys)) == 8
        assert sorted(keys) == sorted((r[4], r[5]) for r in rows_one if r[0] == step)


def test_wandb_offline_logs_the_run(bins, tmp_path):
    run_train(*common(bins, tmp_path, '--max_iters=2', '--eval_interval=2', '--wandb_log=True'),
              env={'WANDB_MODE': 'offline', 'WANDB_SILENT': 'true'})
    assert any(n.startswith('offline-run') for n in os.listdir(tmp_path / 'wandb'))


def bad(bins, out, *args):
    p = run_train(*common(bins, out, '--max_iters=2', *args), check=False)
    assert p.returncode != 0
    assert 'Traceback' not in p.stderr, p.stderr[-2000:]
    return p.stderr


def test_bad_inputs_stop_with_one_clear_message(bins, tmp_path):
    assert 'python -m prepare' in bad(bins, tmp_path, "--data={'fr': 1.0}")
    assert "valid keys" in bad(bins, tmp_path, '--learnin_rate=1e-3')
    assert "must be a int" in bad(bins, tmp_path, '--max_iters=ten')
    assert "non-negative" in bad(bins, tmp_path, "--data={'en': -0.5}")
    assert "sum to zero" in bad(bins, tmp_path, "--data={'en': 0}")
    assert "does not exist" in bad(bins, tmp_path, '--init_from=nowhere/ckpt.pt')
    assert "vocab_size" in bad(bins, tmp_path, '--vocab_size=32')
    assert "loss scaling" in bad(bins, tmp_path, '--dtype=float16')
    make_bin(bins, 'gpt2data', tokenizer='gpt2')
    assert "different tokenizers" in bad(bins, tmp_path, "--data={'en': 1, 'gpt2data': 1}")
    run_train(*common(bins, tmp_path / 'small', '--max_iters=1', '--eval_interval=1'))
    assert "unknown model preset 'pythia'" in bad(bins, tmp_path, '--preset=pythia')
    for arg in ('--batch_size=0', '--gradient_accumulation_steps=0'):
        assert 'must be at least 1' in bad(bins, tmp_path, arg)
    assert 'learning_rate=-1 must not be negative' in bad(bins, tmp_path, '--learning_rate=-1')
    assert 'set fsdp=True' in bad(bins, tmp_path, '--replicate=2')
    assert 'must divide the number of processes' in bad(bins, tmp_path, '--replicate=2', '--fsdp=True')
    cut = tmp_path / 'cut.pt'
    cut.write_bytes((tmp_path / 'small' / 'step_000001.pt').read_bytes()[:5000])  # a checkpoint cut short
    err = bad(bins, tmp_path / 'next', f'--init_from={cut}')
    assert 'unreadable, truncated or corrupt' in err and len(err.strip().splitlines()) == 1
    err = bad(bins, tmp_path / 'small', '--init_from=resume', '--n_layer=3')
    assert 'different model shape' in err and 'n_layer=3' in err
    for arg, msg in (('--n_head=0', 'n_head=0 must be at least 1'), ('--n_layer=0', 'n_layer=0 must be at least 1'),
                     ('--n_embd=0', 'n_embd=0 must be at least 1'), ('--n_hidden=-4', 'n_hidden=-4'),
                     ('--dropout=1.5', 'dropout=1.5 must be in [0, 1)'), ('--seed=-1', 'seed=-1 must not be negative'),
                     ('--n_embd=33', 'n_embd=33 must be divisible by n_head=2')):
        err = bad(bins, tmp_path / 'sizes', arg)
        assert msg in err and len(err.strip().splitlines()) == 1, (arg, err)
    run_train(*common(bins, tmp_path / 'next', '--max_iters=1', f"--init_from={tmp_path / 'small'}", '--seed=1',
                      '--new_streams=True'))
    assert "never read 'de'" in bad(bins, tmp_path / 'next2', f"--init_from={tmp_path / 'small'}",
                                    "--replay={'de': 0.5}")


def test_resume_refuses_a_changed_recipe_with_one_line(bins, tmp_path):
    run = tmp_path / 'run'
    args = ['--max_iters=4', '--eval_interval=2', "--data={'en': 0.5, 'de': 0.5}"]
    run_train(*common(bins, run, *args, '--stop_at=2'))
    for change, key in (('--seed=7', 'seed=7'), ('--block_size=16', 'block_size=16'),
                        ("--data={'en': 0.75, 'de': 0.25}", "data={'en': 0.75, 'de': 0.25}"),
                        ("--data={'de': 0.5}", "data={'de': 1.0}"),
                        ('--batch_size=2', 'batch_size x gradient_accumulation_steps=2,'),
                        ('--gradient_accumulation_steps=2', 'batch_size x gradient_accumulation_steps=8,')):
        err = bad(bins, run, *args, change, '--init_from=resume')  # (the last --key=value wins)
        assert key in err and len(err.strip().splitlines()) == 1, (change, err)
        assert 'new phase' in err or 'different model shape' in err  # (block_size is the model's too)
    err = bad(bins, run, "--data={'de': 0.5}", "--replay={'en': 0.5}", '--max_iters=4', '--init_from=resume')
    assert "replay=['en']" in err  # the same weights, but en replayed instead of read on
    # the same recipe split otherwise over micro-steps is the same run: 4 x 1 sequences = 2 x 2
    run_train(*common(bins, run, *args, '--init_from=resume', '--batch_size=2', '--gradient_accumulation_steps=2',
                      '--stop_at=3'))
    # another tokenizer, or other tokens in a bin of the same size, are not the data it read
    other = tmp_path / 'other'
    make_bin(other, 'en', seed=1, tokenizer='gpt2')
    make_bin(other, 'de', seed=2, tokenizer='gpt2')
    assert 'tokenizer' in bad(bins, run, *args, f'--data_dir={other}', '--init_from=resume')
    make_bin(other, 'en', seed=1)
    make_bin(other, 'de', seed=5)
    err = bad(bins, run, *args, f'--data_dir={other}', '--init_from=resume')
    assert "dataset 'de' is not the bin" in err and 'its tokens' in err


def test_a_fresh_run_never_mixes_with_another_runs_checkpoints(bins, tmp_path):
    run = tmp_path / 'run'
    run_train(*common(bins, run, '--max_iters=6', '--eval_interval=2', '--keep_last=2'))
    before = sorted(os.listdir(run))
    err = bad(bins, run, '--max_iters=3', '--eval_interval=1')
    assert 'holds another run' in err and '--init_from=resume' in err and '--overwrite=True' in err
    assert sorted(os.listdir(run)) == before  # nothing deleted, nothing added
    err = bad(bins, run, '--max_iters=3', f"--init_from={run / 'step_000004'}", '--overwrite=True')
    assert 'the checkpoint this run starts from' in err
    p = run_train(*common(bins, run, '--max_iters=3', '--eval_interval=1', '--keep_last=2', '--overwrite=True'))
    assert 'overwrite: deleted 2 checkpoint(s)' in p.stdout
    assert [s for s, _ in checkpoint.checkpoints(run)] == [3, 2]  # its own, none of the old run's
    assert [r['iter'] for r in metrics(run, 'eval')] == [0, 1, 2, 3]
    assert checkpoint.load_meta(run)['config']['max_iters'] == 3


def test_checkpoints_are_step_addressed_kept_by_rule_and_requeue_safe(bins, tmp_path):
    run = tmp_path / 'run'
    args = common(bins, run, '--max_iters=12', '--eval_interval=2', '--keep_last=2', '--keep_every=4',
                  '--auto_resume=True')
    run_train(*args, '--stop_at=6')
    assert [s for s, _ in checkpoint.checkpoints(run)] == [6, 4]  # the last 2 (4, 6); 4 is also a keep_every step
    # a requeued job runs the same command: it resumes its own newest checkpoint and keeps its log
    run_train(*args)
    assert [s for s, _ in checkpoint.checkpoints(run)] == [12, 10, 8, 4]
    assert [r['iter'] for r in metrics(run, 'eval')] == [0, 2, 4, 6, 8, 10, 12]
    # any kept step starts a branch; a run dir means its newest readable checkpoint, and an unreadable newest one
    # is passed over with a line that says so
    run_train(*common(bins, tmp_path / 'branch', '--max_iters=1', f"--init_from={run / 'step_000004'}"))
    (run / 'step_000012.pt').write_bytes(b'not a checkpoint')
    p = run_train(*args, '--max_iters=14')
    assert 'step_000012.pt is unreadable' in p.stderr and 'init_from=resume at step 10' in p.stdout
    assert metrics(run, 'eval')[-1]['iter'] == 14 and checkpoint.load_meta(run)['iter_num'] == 14


def test_a_non_finite_gradient_never_reaches_the_weights(tmp_path):
    # token 63 never occurs in a pattern bin; put it in a few windows, and a NaN in its (untied) embedding row:
    # exactly the steps that read it get a NaN loss and gradient
    make_bin(tmp_path, 'en', seed=1)
    tokens = np.memmap(tmp_path / 'en' / 'train.bin', dtype=np.uint16, mode='r+')
    tokens[::1500] = 63
    tokens.flush()
    base = [*TINY, f'--data_dir={tmp_path}', "--data={'en': 1.0}", '--tie_embeddings=False', '--eval_interval=20']
    run_train(*base, f"--out_dir={tmp_path / 'src'}", '--max_iters=1')
    ck = torch.load(tmp_path / 'src' / 'step_000001.pt', weights_only=False)
    ck['model']['transformer.wte.weight'][63] = float('nan')
    checkpoint.save(ck, str(tmp_path / 'nan.pt'))
    p = run_train(*base, f"--out_dir={tmp_path / 'run'}", '--max_iters=20', f"--init_from={tmp_path / 'nan.pt'}",
                  '--log_interval=20')
    rows = audit(tmp_path / 'run')[0]
    data = np.fromfile(tmp_path / 'en' / 'train.bin', dtype=np.uint16)
    bad_steps = sorted({r[0] for r in rows if 63 in data[r[5]:r[5] + 32]})
    assert 0 < len(bad_steps) < 20
    assert [int(line.split()[1][:-1]) for line in p.stdout.splitlines() if 'not finite' in line] == bad_steps
    w = checkpoint.load(tmp_path / 'run')['model']
    assert all(torch.isfinite(v).all() for k, v in w.items() if k != 'transformer.wte.weight')
    assert torch.isfinite(w['transformer.wte.weight'][:63]).all()  # only the poisoned row is not finite
    (row,) = metrics(tmp_path / 'run', 'train')  # one logging window of 20 steps: its mean skips the bad ones
    assert row['skipped'] == len(bad_steps) and np.isfinite(row['loss'])
    assert f"| {len(bad_steps)} non-finite step(s) skipped, not in the loss" in p.stdout
    # max_bad_steps=3: the third bad step in a row stops (here every window holds token 63)
    make_bin(tmp_path, 'all63', seed=2)
    tokens = np.memmap(tmp_path / 'all63' / 'train.bin', dtype=np.uint16, mode='r+')
    tokens[::16] = 63
    tokens.flush()
    p = run_train(*base, f"--out_dir={tmp_path / 'row'}", '--max_iters=20', f"--init_from={tmp_path / 'nan.pt'}",
                  "--data={'all63': 1.0}", "--val_data=['en']", '--max_bad_steps=3', check=False)
    assert p.returncode != 0 and '3 steps in a row' in p.stderr
    assert sum('not finite' in line for line in p.stdout.splitlines()) == 3
    # max_bad_steps=0: the first bad step stops the run, and nothing is saved after it
    p = run_train(*base, f"--out_dir={tmp_path / 'stop'}", '--max_iters=20', f"--init_from={tmp_path / 'nan.pt'}",
                  '--max_bad_steps=0', check=False)
    assert p.returncode != 0 and 'stopping without saving' in p.stderr and 'Traceback' not in p.stderr
    assert checkpoint.checkpoints(tmp_path / 'stop') == []


def test_a_failed_save_keeps_the_last_good_checkpoint(tmp_path):
    path = str(tmp_path / 'ckpt.pt')
    checkpoint.save({'iter_num': 1, 'w': torch.ones(1000)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")  # dies halfway through writing: the big tensor is already out

    with pytest.raises(RuntimeError, match='disk full'):
        checkpoint.save({'iter_num': 2, 'w': torch.zeros(100_000), 'x': Unpicklable()}, path)
    assert checkpoint.load(path)['iter_num'] == 1
    assert os.listdir(tmp_path) == ['ckpt.pt']  # no temp file left behind


def test_help_lists_every_key_with_its_default_and_meaning():
    import subprocess
    import sys

    from synth import ROOT
    for script, key, meaning in (('train.py', '--replay={}', "the paper's replay of D0"),
                                 ('sample.py', '--top_p=1.0', 'holding this much of the probability')):
        p = subprocess.run([sys.executable, script, '--help'], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0 and p.stdout.startswith(f'usage: python {script}'), p.stderr[-2000:]
        line = next(line for line in p.stdout.splitlines() if line.strip().startswith(key))
        assert meaning in line


def test_train_defaults_mirror_the_model_config():
    # train.py lists GPTConfig's fields as its own keys, for readers; they must not drift apart
    from dataclasses import fields

    from configurator import train_defaults
    from model import GPTConfig
    defaults = train_defaults()
    for f in fields(GPTConfig):
        assert f.name in defaults, f.name
        if f.name not in ('vocab_size', 'use_kernels'):  # 0 there: follow the data; None: on CUDA only
            assert defaults[f.name] == f.default, f.name
