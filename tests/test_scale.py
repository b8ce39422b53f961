"""FSDP2, sharded (DCP) checkpoints across world sizes, consolidation, and preemption (SIGTERM), on CPU with gloo."""
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

import checkpoint
import runtime
from prepare.tokenizer import get_tokenizer, tokenizer_hash
from synth import ROOT, TINY, audit, make_bin, metrics, run_train

ONE_THREAD = {'OMP_NUM_THREADS': '1'}  # two processes on two cores


def common(bins, out, *extra):
    return [*TINY, f'--data_dir={bins}', f'--out_dir={out}', '--learning_rate=3e-3', '--min_lr=3e-4',
            "--data={'en': 0.5, 'de': 0.5}", '--gradient_accumulation_steps=2', *extra]


def eval_only(bins, run_dir, nproc, *extra):
    p = run_train(*common(bins, run_dir, '--init_from=resume', '--eval_only=True', *extra), nproc=nproc, env=ONE_THREAD)
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('replicate', [1, 2])
def test_fsdp_and_hsdp_match_one_process(bins, tmp_path, replicate):
    # FSDP initialises its shards on their devices, so both arms start from the same checkpoint
    run_train(*common(bins, tmp_path / 'init', '--max_iters=2', '--eval_interval=2'))
    # 9 windows over 2 ranks in batches of 4: one rank has a batch fewer and must still keep FSDP's forwards in step
    args = ['--max_iters=6', '--eval_interval=3', f"--init_from={tmp_path / 'init'}", '--eval_windows=9']
    run_train(*common(bins, tmp_path / 'one', *args))
    # replicate=1: 2 processes share one sharded copy (1 x 2); replicate=2: HSDP with 2 replicas of 1 shard (2 x 1)
    p = run_train(*common(bins, tmp_path / 'fsdp', *args, '--fsdp=True', f'--replicate={replicate}'), nproc=2,
                  env=ONE_THREAD)
    assert 'x2' in p.stdout
    one, two = metrics(tmp_path / 'one', 'eval'), metrics(tmp_path / 'fsdp', 'eval')
    assert len(one) == len(two) == 3
    for a, b in zip(one, two):
        assert a['val/en'] == pytest.approx(b['val/en'], abs=1e-4) and a['val/de'] == pytest.approx(b['val/de'], abs=1e-4)
    for a, b in zip(metrics(tmp_path / 'one', 'train'), metrics(tmp_path / 'fsdp', 'train')):
        assert a['loss'] == pytest.approx(b['loss'], abs=1e-4)
    assert os.path.isfile(tmp_path / 'fsdp' / 'step_000006' / '.metadata')  # sharded, not a single file


@pytest.mark.parametrize('replicate', [1, 2])
def test_fsdp_from_scratch_starts_from_the_one_process_weights(bins, tmp_path, replicate):
    # a step of 1e-30 without weight decay leaves every fp32 weight as it was: the step-1 checkpoint holds the
    # initial weights. Sharded, every rank's shard must be its part of the one-process model of this seed (random
    # init on the shards drew every rank's from the same RNG state)
    args = ['--max_iters=1', '--eval_interval=1', '--learning_rate=1e-30', '--min_lr=0', '--weight_decay=0',
            '--n_layer=1']
    run_train(*common(bins, tmp_path / 'one', *args))
    run_train(*common(bins, tmp_path / 'fsdp', *args, '--fsdp=True', f'--replicate={replicate}'), nproc=2,
              env=ONE_THREAD)
    one, fsdp = checkpoint.load(tmp_path / 'one')['model'], checkpoint.load(tmp_path / 'fsdp')['model']
    assert set(one) == set(fsdp) and all(torch.equal(one[k], fsdp[k]) for k in one)
    w = fsdp['transformer.h.0.attn.c_attn.weight']
    assert not torch.equal(w[:w.shape[0] // 2], w[w.shape[0] // 2:])


@pytest.mark.slow
def test_the_10b_path_at_a_tiny_size_matches_one_process(bins, tmp_path):
    # what the 10B configs run: FSDP2 per block + torch.compile per block + activation checkpointing + bf16,
    # 2 processes, against one plain eager process in bf16 autocast: equal within bf16 noise
    run_train(*common(bins, tmp_path / 'init', '--max_iters=2', '--eval_interval=2'))
    args = ['--max_iters=4', '--eval_interval=4', f"--init_from={tmp_path / 'init'}", '--dtype=bfloat16']
    run_train(*common(bins, tmp_path / 'one', *args))
    run_train(*common(bins, tmp_path / '10b', *args, '--fsdp=True', '--compile=True', '--activation_checkpointing=True'),
              nproc=2, env={**ONE_THREAD, 'TORCHINDUCTOR_CACHE_DIR': str(tmp_path / 'inductor')})
    one, big = metrics(tmp_path / 'one', 'train'), metrics(tmp_path / '10b', 'train')
    assert len(one) == len(big) == 4
    for a, b in zip(one, big):
        assert a['loss'] == pytest.approx(b['loss'], abs=2e-2), (a['loss'], b['loss'])
    assert metrics(tmp_path / 'one', 'eval')[-1]['val/mean'] == pytest.approx(
        metrics(tmp_path / '10b', 'eval')[-1]['val/mean'], abs=2e-2)


@pytest.mark.parametrize('saved_at,loaded_at', [(2, 1), (1, 2)])
def test_sharded_checkpoint_loads_at_another_world_size(bins, tmp_path, saved_at, loaded_at):
    run_train(*common(bins, tmp_path, '--max_iters=4', '--eval_interval=4', '--fsdp=True'), nproc=saved_at, env=ONE_THREAD)
    final = metrics(tmp_path, 'eval')[-1]
    got = eval_only(bins, tmp_path, loaded_at, '--fsdp=True', '--max_iters=4')
    assert got['mean'] == pytest.approx(final['val/mean'], abs=1e-5)
    # and it keeps training from there at the new world size, optimizer state and all
    run_train(*common(bins, tmp_path, '--max_iters=6', '--eval_interval=2', '--fsdp=True', '--init_from=resume'),
              nproc=loaded_at, env=ONE_THREAD)
    assert checkpoint.load_meta(tmp_path)['iter_num'] == 6


def test_consolidated_checkpoint_is_a_plain_one(bins, tmp_path):
    run_train(*common(bins, tmp_path / 'run', '--max_iters=2', '--eval_interval=2', '--fsdp=True'), nproc=2, env=ONE_THREAD)
    rows, summary = audit(tmp_path / 'run')  # the data audit reads a sharded checkpoint's record as well
    assert len(rows) == 2 * 4 * 2 and {r[2] for r in rows} == {0, 1} and len(summary) == 2
    subprocess.run([sys.executable, 'checkpoint.py', str(tmp_path / 'run')], cwd=ROOT, check=True, capture_output=True)
    ck = torch.load(tmp_path / 'run' / 'step_000002.pt', weights_only=False)
    assert not any(k.startswith(('_orig_mod', 'module')) for k in ck['model'])
    assert ck['iter_num'] == 2 and ck['model_args']['n_embd'] == 32
    # a new phase (plain DDP world) starts from it, and its first eval is the FSDP run's last
    run_train(*common(bins, tmp_path / 'next', '--max_iters=1', '--eval_interval=1',
                      f"--init_from={tmp_path / 'run' / 'step_000002.pt'}"))
    assert metrics(tmp_path / 'next', 'eval')[0]['val/mean'] == pytest.approx(
        metrics(tmp_path / 'run', 'eval')[-1]['val/mean'], abs=1e-5)
    p = run_train(*common(bins, tmp_path / 'next2', '--max_iters=1', '--reset_optimizer=False',
                          f"--init_from={tmp_path / 'run' / 'step_000002.pt'}"), check=False)
    assert p.returncode != 0 and 'no optimizer state' in p.stderr and 'Traceback' not in p.stderr


def test_sigterm_checkpoints_and_resume_is_exact(bins, tmp_path):
    args = ['--max_iters=400', '--eval_interval=1000', '--log_interval=1']
    env = {**os.environ, **ONE_THREAD}
    proc = subprocess.Popen([sys.executable, 'train.py', *common(bins, tmp_path / 'cut', *args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if line.startswith('step 5/'):
            proc.send_signal(signal.SIGTERM)
            break
    out = proc.stdout.read()
    assert proc.wait(timeout=120) == 0, out
    assert 'preempted' in out
    stopped = checkpoint.load_meta(tmp_path / 'cut')['iter_num']
    assert 5 <= stopped < 400
    # resume to a fixed end, and compare with a run that was never interrupted
    end = stopped + 3
    # (the same thread count as the cut run: another one sums in another order)
    run_train(*common(bins, tmp_path / 'cut', *args, '--init_from=resume', f'--stop_at={end}'), env=ONE_THREAD)
    run_train(*common(bins, tmp_path / 'straight', *args, f'--stop_at={end}'), env=ONE_THREAD)
    a, b = metrics(tmp_path / 'straight', 'train'), metrics(tmp_path / 'cut', 'train')
    assert [r['loss'] for r in a] == [r['loss'] for r in b]
    wa, wb = checkpoint.load(tmp_path / 'straight')['model'], checkpoint.load(tmp_path / 'cut')['model']
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_bad_input_under_torchrun_still_says_what_is_wrong(bins, tmp_path):
    # torch.distributed wraps the exception hook after init: the one-line message must still come out
    p = run_train(*common(bins, tmp_path, '--max_iters=2', '--fsdp=True', "--data={'fr': 1.0}"), nproc=2,
                  env=ONE_THREAD, check=False)
    assert p.returncode != 0
    assert "error: dataset 'fr' not found" in p.stderr and 'python -m prepare' in p.stderr


def test_sample_py_reads_a_consolidated_fsdp_checkpoint(tmp_path):
    # bins whose meta names a real tokenizer (gpt2 works offline), so sample.py can decode what it generates
    data = tmp_path / 'data'
    make_bin(data, 'en', vocab_size=50257, tokenizer='gpt2', kind='random')
    meta = json.loads((data / 'en' / 'meta.json').read_text())  # sample.py checks the tokenizer's real hash
    meta['tokenizer_hash'] = tokenizer_hash(get_tokenizer('gpt2'))
    (data / 'en' / 'meta.json').write_text(json.dumps(meta))
    args = [*TINY, f'--data_dir={data}', f'--out_dir={tmp_path / "run"}', "--data={'en': 1.0}", '--max_iters=2',
            '--eval_interval=2', '--fsdp=True', '--gradient_accumulation_steps=2']
    run_train(*args, nproc=2, env=ONE_THREAD)
    subprocess.run([sys.executable, 'checkpoint.py', str(tmp_path / 'run')], cwd=ROOT, check=True, capture_output=True)
    for ckpt in (tmp_path / 'run' / 'step_000002.pt', tmp_path / 'run' / 'step_000002'):  # consolidated, sharded
        p = subprocess.run([sys.executable, 'sample.py', f'--ckpt={ckpt}', '--start=Hello world', '--num_samples=2',
                            '--max_new_tokens=5'], cwd=ROOT, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-2000:]
        assert p.stdout.count('Hello world') == 2 and p.stdout.count('---------------') == 2
    # and eval/ reads it too, with the same loss the run logged last
    p = subprocess.run([sys.executable, '-m', 'eval.loss', str(tmp_path / 'run' / 'step_000002.pt'), '--data', 'en',
                        f'--data_dir={data}', '--json', str(tmp_path / 'loss.json')], cwd=ROOT, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    (got,) = json.loads((tmp_path / 'loss.json').read_text()).values()
    assert got['en'] == pytest.approx(metrics(tmp_path / 'run', 'eval')[-1]['val/en'], abs=1e-5)


@pytest.mark.parametrize('name, peak', [('NVIDIA H100 80GB HBM3', 989e12), ('NVIDIA H100 PCIe', 756e12),
                                        ('NVIDIA H100 NVL', 835e12), ('NVIDIA H200', 989e12),
                                        ('NVIDIA A100-SXM4-80GB', 312e12), ('NVIDIA L4', 0.0)])
def test_peak_flops_tell_the_h100_cards_apart(monkeypatch, name, peak):
    """MFU divides by the card's own dense bf16 peak: the PCIe and NVL H100s are slower than the SXM one."""
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda device=None: name)
    assert runtime.peak_flops('cuda:0') == peak
    assert runtime.peak_flops('cpu') == 0.0


def test_mfu_counts_attention_at_the_run_s_sequence_length():
    from model import GPT, GPTConfig
    with torch.device('meta'):
        m = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=64, block_size=2048, vocab_size=128))
    assert m.flops_per_token() - m.flops_per_token(512) == 12 * 2 * 64 * (2048 - 512)
