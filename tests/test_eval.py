"""eval/: the loss script, the lm-evaluation-harness adapter, the report and the Hugging Face export, on tiny runs
that train.py trains here (a real GPT-2 tokenizer over template sentences, so the harness has text to read)."""
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import checkpoint
import data as datalib
from eval import export_hf, harness, report
from model import GPT, config_from
from prepare.tokenizer import eot_id, get_tokenizer, tokenizer_hash
from synth import ROOT, TINY, make_bin, metrics, run_train

NAMES = ['Anna', 'Ben', 'Clara', 'David', 'Emma', 'Felix']
LANGS = {
    'en': dict(verbs=['eats', 'likes', 'buys', 'cooks'], objs=['apples', 'bread', 'soup', 'cheese', 'rice'],
               places=['kitchen', 'garden', 'market', 'city'], fmt="{n} {v} {o} in the {p}."),
    'de': dict(verbs=['isst', 'mag', 'kauft', 'kocht'], objs=['Äpfel', 'Brot', 'Suppe', 'Käse', 'Reis'],
               places=['Küche', 'Garten', 'Markt', 'Stadt'], fmt="{n} {v} {o} in der {p}."),
}


def make_text_bin(data_dir, name, n_docs, seed):
    """A dataset in prepare/'s format from template sentences, tokenized with the real GPT-2 tokenizer."""
    lang, enc = LANGS[name], get_tokenizer('gpt2')
    counts = {}
    os.makedirs(os.path.join(data_dir, name), exist_ok=True)
    for split, n in (('train', n_docs), ('val', n_docs // 10)):
        rng = np.random.default_rng([seed, split == 'val'])
        ids = []
        for _ in range(n):
            doc = ' '.join(lang['fmt'].format(n=rng.choice(NAMES), v=rng.choice(lang['verbs']), o=rng.choice(lang['objs']),
                                              p=rng.choice(lang['places'])) for _ in range(rng.integers(2, 6)))
            ids += enc.encode_ordinary(doc) + [eot_id(enc)]
        np.array(ids, dtype=np.uint16).tofile(os.path.join(data_dir, name, f'{split}.bin'))
        counts[f'{split}_tokens'] = len(ids)
    meta = dict(tokenizer='gpt2', tokenizer_hash=tokenizer_hash(enc), vocab_size=enc.n_vocab, dtype='uint16',
                eot_id=eot_id(enc), source='test_eval templates', **counts)
    with open(os.path.join(data_dir, name, 'meta.json'), 'w') as f:
        json.dump(meta, f)


@pytest.fixture(autouse=True)
def torch_one_thread():
    """Every model here is tiny: threads gain nothing, and lose many times over when the cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_args(data_dir, out, *extra):
    return [*TINY, f'--data_dir={data_dir}', f'--out_dir={out}', '--learning_rate=1e-2', '--min_lr=1e-3',
            "--val_data=['en', 'de']", *extra]


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Pre-training on en, then a continual phase on de with 25% replay: the paper's setting in miniature."""
    root = tmp_path_factory.mktemp('eval')
    data_dir = root / 'data'
    make_text_bin(data_dir, 'en', 1200, seed=1)
    make_text_bin(data_dir, 'de', 1200, seed=2)
    one_thread = {'OMP_NUM_THREADS': '1'}  # a model this small gains nothing from threads, and loses when cores are busy
    run_train(*train_args(data_dir, root / 'd0', '--max_iters=80', '--eval_interval=40', "--data={'en': 1.0}"),
              env=one_thread)
    run_train(*train_args(data_dir, root / 'd1', '--max_iters=30', '--eval_interval=10', '--warmup_iters=3',
                          "--data={'de': 0.75}", "--replay={'en': 0.25}", f"--init_from={root / 'd0'}"), env=one_thread)
    return dict(root=root, data=str(data_dir), d0=str(root / 'd0'), d1=str(root / 'd1'))


def run_script(script, *args, check=True):
    env = {**os.environ, 'HF_DATASETS_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}
    p = subprocess.run([sys.executable, '-m', f'eval.{script}', *map(str, args)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"python -m eval.{script} failed (rc {p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def one_line_error(p):
    assert p.returncode != 0 and 'Traceback' not in p.stderr, p.stderr[-2000:]
    return p.stderr


# ---------------------------------------------------------------------------------------------------------------
# loss: train-time eval == eval/loss.py == the harness's rolling loglikelihood on the same windows

def test_same_windows_same_loss_in_train_eval_loss_script_and_harness(runs, tmp_path):
    final = metrics(runs['d1'], 'eval')[-1]
    out = tmp_path / 'loss.json'
    p = run_script('loss', runs['d1'], '--json', out, '--batch_size', 3)  # another batching than train.py's
    script = json.loads(out.read_text())[runs['d1']]
    assert 'mean' in p.stdout and 'en' in p.stdout
    lm = harness.NanoCPTLM(runs['d1'], 'cpu', batch_size=5)
    cfg = checkpoint.load(runs['d1'])['config']
    for name in ('en', 'de'):
        # each window w (block_size + 1 tokens) as a rolling-loglikelihood document: w[1:] conditioned on w[0]
        # is exactly one model window, scoring the same block_size targets train.py's eval scores
        val = datalib.open_bin(runs['data'], name, 'val')
        offsets = datalib.val_offsets(len(val), cfg['block_size'], cfg['eval_windows'])
        pairs = [p for o in offsets for p in lm.rolling_windows(val[o + 1:o + cfg['block_size'] + 1].tolist(), int(val[o]))]
        assert len(pairs) == len(offsets)
        rolling = -sum(s for s, _ in lm.score(pairs)) / (len(offsets) * cfg['block_size'])
        print(f"{name}: train-time {final[f'val/{name}']:.7f}, loss.py {script[name]:.7f}, harness {rolling:.7f}")
        assert script[name] == pytest.approx(final[f'val/{name}'], abs=1e-4)
        assert rolling == pytest.approx(final[f'val/{name}'], abs=1e-4)
    assert script['mean'] == pytest.approx(final['val/mean'], abs=1e-4)


def test_loss_script_bad_inputs_stop_with_one_clear_line(runs, tmp_path):
    make_bin(tmp_path, 'syn')  # the synthetic tokenizer: same vocab size class, different ids
    err = one_line_error(run_script('loss', runs['d0'], '--data_dir', tmp_path, '--data', 'syn', check=False))
    assert "trained with tokenizer 'gpt2'" in err and "'synthetic'" in err
    err = one_line_error(run_script('loss', tmp_path / 'no_such_run', check=False))
    assert 'no_such_run' in err
    err = one_line_error(run_script('loss', runs['d0'], '--data', 'fr', check=False))
    assert "'fr' not found" in err


# ---------------------------------------------------------------------------------------------------------------
# harness

TASKS = {
    # multiple choice (loglikelihood): which word fits the template
    'tiny_mc': ("output_type: multiple_choice\ndoc_to_text: query\ndoc_to_choice: choices\ndoc_to_target: gold\n"
                "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n",
                [{'query': f"{n} eats", 'choices': ['apples', 'garden', 'the'], 'gold': 0} for n in NAMES]
                + [{'query': f"{n} likes bread in the", 'choices': ['eats', 'kitchen', 'Anna'], 'gold': 1} for n in NAMES]),
    # perplexity (loglikelihood_rolling) over whole texts
    'tiny_ppl': ("output_type: loglikelihood_rolling\ndoc_to_text: ''\ndoc_to_target: text\n"
                 "metric_list:\n  - metric: word_perplexity\n    aggregation: weighted_perplexity\n    higher_is_better: false\n"
                 "  - metric: bits_per_byte\n    aggregation: bits_per_byte\n    higher_is_better: false\n",
                 [{'text': f"{n} cooks soup in the market. {n} buys rice in the city."} for n in NAMES]),
    # generation (generate_until): prompts of many lengths, so batches are left-padded, and some longer than
    # block_size - max_gen_toks (32 - 6 tokens), so they are left-truncated
    'tiny_gen': ("output_type: generate_until\ndoc_to_text: query\ndoc_to_target: answer\n"
                 "generation_kwargs:\n  until: ['.']\n  max_gen_toks: 6\n"
                 "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n",
                 [{'query': f"{n} cooks soup in", 'answer': ' the kitchen'} for n in NAMES]
                 + [{'query': ' '.join(f"{m} eats bread in the garden." for m in NAMES[:k]) + f" {NAMES[-k]} likes",
                     'answer': ' rice in the city'} for k in range(1, 7)]),
    # another set of generation kwargs (its own batches): an alias of max_gen_toks, a stop string inside the text
    'tiny_gen_alias': ("output_type: generate_until\ndoc_to_text: query\ndoc_to_target: answer\n"
                       "generation_kwargs:\n  until: [' in', '\\n']\n  max_new_tokens: 4\n  do_sample: false\n"
                       "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n",
                       [{'query': f"{n} buys", 'answer': ' bread'} for n in NAMES]
                       + [{'query': f"Anna isst Brot in der Küche. {n}", 'answer': ' kocht Suppe'}
                          for n in NAMES[:3]]),
    # a generation kwarg NanoCPTLM cannot honour: refused, not ignored
    'tiny_gen_beams': ("output_type: generate_until\ndoc_to_text: query\ndoc_to_target: answer\n"
                       "generation_kwargs:\n  until: ['.']\n  num_beams: 4\n"
                       "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n",
                       [{'query': 'Anna eats', 'answer': ' rice'}]),
}


@pytest.fixture(scope='module')
def task_dir(tmp_path_factory):
    """Local lm_eval tasks: a YAML over a local JSON-lines file each (the hub is not needed)."""
    d = tmp_path_factory.mktemp('tasks')
    for name, (spec, docs) in TASKS.items():
        (d / f'{name}.jsonl').write_text(''.join(json.dumps(doc) + '\n' for doc in docs))
        (d / f'{name}.yaml').write_text(f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
                                        f"    test: {d / f'{name}.jsonl'}\ntest_split: test\n{spec}")
    return d


def test_lm_eval_runs_local_tasks_end_to_end(runs, task_dir):
    lm = harness.NanoCPTLM(runs['d1'], 'cpu', batch_size=4)
    res = harness.run(lm, {'tiny_mc': 0, 'tiny_ppl': 0, 'tiny_gen': 0}, include_path=str(task_dir),
                      bootstrap_iters=0)['results']
    acc = res['tiny_mc']['acc,none']
    assert 0.0 <= acc <= 1.0
    assert acc > 0.5, res['tiny_mc']  # chance is 1/3; the templates make these easy for a model that read them
    assert 0.0 <= res['tiny_gen']['exact_match,none'] <= 1.0
    assert math.isfinite(res['tiny_ppl']['word_perplexity,none']) and res['tiny_ppl']['bits_per_byte,none'] > 0
    # the evaluator's numbers are the model's: the rolling loglikelihood of a text equals scoring it directly
    text = TASKS['tiny_ppl'][1][0]['text']
    ids = lm.tok_encode(text)
    with torch.no_grad():
        logits, _ = lm.model(torch.tensor([[lm.eot_token_id] + ids[:-1]]))
    direct = torch.log_softmax(logits[0], -1).gather(-1, torch.tensor(ids)[:, None]).sum().item()

    class Request:
        args = (text,)
    assert lm.loglikelihood_rolling([Request()])[0] == pytest.approx(direct, abs=1e-3)


def test_harness_scores_as_lm_eval_hflm_does_on_the_export(runs, task_dir, tmp_path, monkeypatch):
    """The same local tasks through lm_eval's own HF model (HFLM) on the exported folder and through NanoCPTLM on
    the checkpoint, both fp32: every loglikelihood equal to 1e-4, every greedy generation identical."""
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')  # a local folder: nothing to fetch
    from lm_eval.models.huggingface import HFLM
    export_hf.export(runs['d1'], str(tmp_path / 'hf'))
    tasks = {'tiny_mc': 0, 'tiny_ppl': 0, 'tiny_gen': 0, 'tiny_gen_alias': 0}
    lms = {'hflm': HFLM(pretrained=str(tmp_path / 'hf'), dtype='float32', device='cpu', batch_size=4),
           'ours': harness.NanoCPTLM(runs['d1'], 'cpu', batch_size=4)}
    resps = {}
    for name, lm in lms.items():
        samples = harness.run(lm, tasks, include_path=str(task_dir), bootstrap_iters=0, log_samples=True)['samples']
        resps[name] = {t: [s['resps'] for s in sorted(samples[t], key=lambda s: s['doc_id'])] for t in tasks}
    theirs, ours = resps['hflm'], resps['ours']
    mc = lambda r: [choice[0] for doc in r['tiny_mc'] for choice in doc]  # (loglikelihood, is greedy) per choice
    assert len(mc(ours)) == 3 * len(TASKS['tiny_mc'][1])
    for (a, greedy_a), (b, greedy_b) in zip(mc(theirs), mc(ours)):
        assert a == pytest.approx(b, abs=1e-4) and greedy_a == greedy_b
    ppl = lambda r: [doc[0][0] for doc in r['tiny_ppl']]
    assert ppl(ours) == pytest.approx(ppl(theirs), abs=1e-4)
    for task in ('tiny_gen', 'tiny_gen_alias'):
        gens = [doc[0][0] for doc in ours[task]]
        assert gens == [doc[0][0] for doc in theirs[task]], task
        # real continuations (the model may stop at once on some prompts, as HFLM's does): not all empty, not one string
        assert sum(map(bool, gens)) > len(gens) / 2 and len(set(gens)) > 1, gens
    # what the generation tasks exercise: contexts of many lengths in one batch, some cut to 32 - 6 tokens
    lengths = [len(lms['ours'].tok_encode(d['query'])) for d in TASKS['tiny_gen'][1]]
    assert len(set(lengths[:4])) > 1 and max(lengths) > 32 - 6, lengths


def test_harness_script_writes_results(runs, task_dir, tmp_path):
    out = tmp_path / 'results.json'
    p = run_script('harness', runs['d0'], '--tasks', 'tiny_mc', '--include_path', task_dir, '--limit', 4,
                   '--batch_size', 2, '--output', out, '--device', 'cpu')
    res = json.loads(out.read_text())
    assert 'acc,none' in res['results']['tiny_mc'] and res['config']['limit'] == 4
    assert 'tiny_mc' in p.stdout


class Request:
    def __init__(self, *args):
        self.args = args


def test_generate_until_reads_generation_kwargs_as_hflm_and_refuses_what_it_cannot_do(runs):
    lm = harness.NanoCPTLM(runs['d1'], 'cpu', batch_size=3)
    prompts = ["Ben likes", "Clara buys rice in the city. Emma", "Felix"]
    gen = lambda **kw: lm.generate_until([Request(p, kw) for p in prompts])
    greedy = gen(until=['.'], max_gen_toks=8)
    assert all(greedy) and all('.' not in g for g in greedy), greedy
    assert greedy == [lm.generate_until([Request(p, {'until': ['.'], 'max_gen_toks': 8})])[0] for p in prompts]
    # '' is in every text: ignored (lm_eval's HFLM cuts nothing at '' either, but its stopping rule halts every
    # row after one token)
    assert gen(until=['', '.'], max_gen_toks=8) == greedy
    # the aliases of max_gen_toks, in lm_eval's priority (max_gen_toks first)
    short = gen(until=['.'], max_gen_toks=2)
    assert short != greedy and all(len(lm.tok_encode(s)) <= 2 for s in short)
    assert gen(until=['.'], max_new_tokens=2) == short and gen(until='.', max_gen_toks=2, max_tokens=8) == short
    # a context keeps its last block_size - max_gen_toks tokens
    ids = lm.tok_encode(' '.join(f"{n} eats bread in the garden." for n in NAMES))
    assert len(ids) > 32 - 8
    kw = {'until': ['.'], 'max_gen_toks': 8}
    assert lm.generate_until([Request(lm.tok_decode(ids), kw)]) == lm.generate_until(
        [Request(lm.tok_decode(ids[-(32 - 8):]), kw)])
    # sampling: among the single likeliest token it is greedy; hot and over the whole vocabulary (top_k 0) it is not
    assert gen(until=['.'], max_gen_toks=8, do_sample=True, temperature=1.0, top_k=1) == greedy
    torch.manual_seed(0)
    assert gen(until=['.'], max_gen_toks=8, do_sample=True, temperature=5.0, top_k=0) != greedy
    for bad, message in (({'do_sample': True, 'temperature': 0.0}, 'temperature > 0'),
                         ({'num_beams': 2}, 'beam search'), ({'max_length': 20}, 'give max_gen_toks'),
                         ({'repetition_penalty': 1.2}, "['repetition_penalty']"),
                         ({'max_gen_toks': 32}, 'block_size 32')):
        with pytest.raises(ValueError, match=re.escape(message)):
            gen(until=['.'], **bad)


def test_harness_script_refuses_unsupported_generation_kwargs_in_one_line(runs, task_dir):
    err = one_line_error(run_script('harness', runs['d0'], '--tasks', 'tiny_gen_beams', '--include_path', task_dir,
                                    '--device', 'cpu', check=False))
    assert 'num_beams' in err and 'beam search' in err


def test_paper_presets_name_tasks_lm_eval_registers():
    tasks = harness.expand_tasks('paper_en,paper_de,paper_en_full')
    assert tasks['mmlu'] == 5 and tasks['hellaswag'] == 0 and tasks['m_mmlu_de'] == 5
    assert harness.expand_tasks('paper_en', num_fewshot=3)['hellaswag'] == 3
    # every preset task is known to the installed lm_eval; only the made-up name is reported
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['no_such_task'\]"):
        harness.task_manager({**tasks, 'no_such_task': 0})


# ---------------------------------------------------------------------------------------------------------------
# report

def write_run(path, d0_losses, d1_losses, lrs, tokens_before=0, mix=None, tokens_per_eval=1000):
    """A metrics.jsonl like train.py's: an eval row per loss pair (step 0 first) and a train row between them."""
    os.makedirs(path, exist_ok=True)
    mix = mix or {'en': 1.0}
    rows = []
    for i, (a, b, lr) in enumerate(zip(d0_losses, d1_losses, lrs)):
        if i:
            rows.append({'kind': 'train', 'iter': 10 * i, 'loss': b, 'lr': lr, 'tokens_per_s': 1.0,
                         **{f'tokens/{k}': int(w * tokens_per_eval * i) for k, w in mix.items()}})
        rows.append({'kind': 'eval', 'iter': 10 * i, 'lr': lr, 'tokens': tokens_per_eval * i,
                     'tokens_total': tokens_before + tokens_per_eval * i, 'val/en': a, 'val/de': b,
                     'val/mean': (a + b) / 2})
    with open(os.path.join(path, 'metrics.jsonl'), 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in rows)


@pytest.fixture
def fake_runs(tmp_path):
    """The demo's runs a)-f) in miniature, with losses chosen by hand so the table can be checked exactly."""
    cos = [0.0, 3e-4, 2e-4, 1e-4, 3e-5]
    write_run(tmp_path / 'd0', [10.0, 4.0, 3.0, 2.6, 2.5], [10.0, 8.0, 7.0, 6.5, 6.0], cos)
    cont = dict(tokens_before=4000, mix={'de': 1.0})
    write_run(tmp_path / 'const', [2.5, 2.6, 2.7, 2.7, 2.7], [6.0, 3.0, 2.2, 2.0, 1.9], [3e-5] * 5, **cont)
    write_run(tmp_path / 'rewarm', [2.5, 4.0, 3.8, 3.7, 3.6], [6.0, 2.5, 1.9, 1.7, 1.6], cos, **cont)
    write_run(tmp_path / 'replay5', [2.5, 3.3, 3.1, 3.0, 3.0], [6.0, 2.6, 2.0, 1.7, 1.65], cos, 4000, {'de': .95, 'en': .05})
    write_run(tmp_path / 'replay25', [2.5, 2.9, 2.7, 2.6, 2.6], [6.0, 2.7, 2.0, 1.8, 1.75], cos, 4000, {'de': .75, 'en': .25})
    write_run(tmp_path / 'union', [10.0, 5.0, 3.0, 2.7, 2.62], [10.0, 5.0, 2.5, 1.9, 1.78], cos, 0, {'en': .5, 'de': .5}, 2000)
    write_run(tmp_path / 'inf_d0', [10.0, 4.0, 3.0, 2.7, 2.55], [10.0, 8.0, 7.0, 6.5, 6.1], [0, 3e-4, 2e-4, 1.65e-4, 1.65e-4])
    write_run(tmp_path / 'infinite', [2.55, 2.9, 2.8, 2.75, 2.74], [6.1, 2.6, 2.0, 1.8, 1.74],
              [1.65e-4, 1.65e-4, 1.65e-4, 1e-4, 3e-5], 4000, {'de': .75, 'en': .25})
    return tmp_path


SPECS = ['D0=d0', 'a) const min lr=const', 'b) re-warm 0%=rewarm', 'c) 5% replay=replay5', 'd) 25% replay=replay25',
         'e) union=union', 'f) infinite=infinite']


def test_report_table_numbers_and_deterministic_markdown(fake_runs):
    specs = [s.split('=')[0] + '=' + str(fake_runs / s.split('=')[1]) for s in SPECS]
    rows, md = report.report(specs, 'en', 'de', out=str(fake_runs / 'r1'))
    by = {r['run']: r for r in rows}
    assert by['b) re-warm 0%']['d0'] == 3.6 and by['b) re-warm 0%']['avg'] == pytest.approx(2.6)
    assert by['b) re-warm 0%']['forgetting'] == pytest.approx(1.1)       # 3.6 at the end - 2.5 at its start
    assert by['f) infinite']['forgetting'] == pytest.approx(2.74 - 2.55)  # against its own D0 phase
    assert by['D0']['forgetting'] is None and by['e) union']['forgetting'] is None  # from scratch: nothing before
    assert by['b) re-warm 0%']['adaptation_gap'] == 0.0                  # the best D1 loss is the reference
    assert by['d) 25% replay']['adaptation_gap'] == pytest.approx(0.15)
    assert by['e) union']['tokens'] == 8000 and by['c) 5% replay']['tokens'] == 8000
    assert '| b) re-warm 0% | 3.600 | 1.600 | 2.600 | +1.100 | +0.000 | 8.00k |' in md
    # the same inputs give byte-identical Markdown, wherever the output goes
    report.report(specs, 'en', 'de', out=str(fake_runs / 'r2'))
    assert (fake_runs / 'r1' / 'report.md').read_bytes() == (fake_runs / 'r2' / 'report.md').read_bytes()
    for png in ('loss_curves.png', 'tradeoff.png', 'lr_schedules.png'):
        assert (fake_runs / 'r1' / png).stat().st_size > 10_000, png
        assert f"]({png})" in md
    # explicit references: forgetting against the D0 run, adaptation against the union run
    rows, md = report.report(specs, 'en', 'de', before='D0', adapted='e) union')
    by = {r['run']: r for r in rows}
    assert by['e) union']['forgetting'] == pytest.approx(0.12) and by['e) union']['adaptation_gap'] == 0.0
    assert by['b) re-warm 0%']['adaptation_gap'] == pytest.approx(-0.18)
    assert "minus D0's final en loss" in md and "minus e) union's" in md


def test_report_script_on_real_runs(runs, tmp_path):
    p = run_script('report', runs['d0'], f"replay 25%={runs['d1']}", '--d0', 'en', '--d1', 'de', '--out', tmp_path)
    first, last = metrics(runs['d1'], 'eval')[0], metrics(runs['d1'], 'eval')[-1]
    row = next(line for line in p.stdout.splitlines() if line.startswith('| replay 25%'))
    assert f"{last['val/en']:.3f}" in row and f"{last['val/de']:.3f}" in row
    assert f"{last['val/en'] - first['val/en']:+.3f}" in row  # forgetting, from the phase's own step-0 eval
    assert (tmp_path / 'report.md').read_text() in p.stdout
    assert all((tmp_path / f).stat().st_size > 10_000 for f in ('loss_curves.png', 'tradeoff.png', 'lr_schedules.png'))


def test_report_bad_inputs_name_the_run(fake_runs):
    err = one_line_error(run_script('report', fake_runs / 'd0', 'gone=' + str(fake_runs / 'nowhere'),
                                    '--d0', 'en', '--d1', 'de', check=False))
    assert "run 'gone'" in err and 'nowhere' in err
    (fake_runs / 'empty').mkdir()
    assert 'metrics.jsonl' in one_line_error(run_script('report', fake_runs / 'empty', '--d0', 'en', '--d1', 'de',
                                                        check=False))
    err = one_line_error(run_script('report', fake_runs / 'd0', '--d0', 'en', '--d1', 'fr', check=False))
    assert "'fr'" in err and "['de', 'en']" in err
    assert 'not one of the runs' in one_line_error(run_script('report', fake_runs / 'd0', '--d0', 'en', '--d1', 'de',
                                                              '--adapted', 'x', check=False))


# ---------------------------------------------------------------------------------------------------------------
# Hugging Face export

def random_model(**shape):
    """A small GPT with every parameter random (biases and norms too, so each one's mapping counts)."""
    c = config_from('', n_layer=2, n_head=4, n_embd=32, block_size=24, vocab_size=100, **shape)
    torch.manual_seed(0)
    model = GPT(c)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1.0 + 0.1 * torch.randn_like(p) if 'ln' in name else 0.2 * torch.randn_like(p))
    return model


def random_checkpoint(path, **shape):
    model = random_model(**shape)
    c = model.config
    checkpoint.save({'model': model.state_dict(), 'model_args': asdict(c), 'config': {'data_dir': str(path)},
                     'tokenizer': {'tokenizer': 'synthetic', 'tokenizer_hash': 'hash-of-synthetic', 'vocab_size': 100,
                                   'eot_id': 99}}, path)
    return model


SHAPES = {
    'gpt2': dict(position='learned', parallel_residual=False, gelu_approximate='tanh', tie_embeddings=True),
    'pythia': dict(position='rotary', rotary_pct=0.25, parallel_residual=True, gelu_approximate='none',
                   tie_embeddings=False),
    'neox_sequential_tied_nobias': dict(position='rotary', rotary_pct=1.0, parallel_residual=False, bias=False,
                                        gelu_approximate='tanh', tie_embeddings=True, n_hidden=48, norm_eps=1e-6),
    'gpt2_untied_nobias': dict(position='learned', tie_embeddings=False, bias=False, gelu_approximate='none'),
}


@pytest.mark.parametrize('shape', SHAPES)
def test_export_matches_our_logits_in_transformers(shape, tmp_path):
    from transformers import AutoModelForCausalLM
    model = random_checkpoint(tmp_path / 'ckpt.pt', **SHAPES[shape]).eval()
    arch = export_hf.export(str(tmp_path / 'ckpt.pt'), str(tmp_path / 'hf'))
    assert arch == ('gpt2' if SHAPES[shape]['position'] == 'learned' else 'gpt_neox')
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / 'hf', dtype=torch.float32).eval()
    x = torch.randint(0, 100, (3, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(x)[0], hf(x).logits
    assert theirs.shape == ours.shape == (3, 24, 100)  # the padded vocab rows are not exported
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)


def test_export_of_a_trained_run_brings_its_tokenizer(runs, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    run_script('export_hf', runs['d0'], tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    text = "Anna isst Äpfel   in der Küche.\n\n 123 don't , Ben 's ."
    assert tok(text)['input_ids'] == get_tokenizer('gpt2').encode_ordinary(text)
    assert tok.decode(tok(text)['input_ids']) == text  # no "clean-up" of ' .' or " 's": generations decode alike
    hf = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    lm = harness.NanoCPTLM(runs['d0'], 'cpu')
    x = torch.tensor([lm.tok_encode("Ben likes bread in the garden.")])
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, lm.model(x)[0], atol=1e-4, rtol=1e-4)


def test_export_refuses_shapes_transformers_lacks(tmp_path):
    random_checkpoint(tmp_path / 'rms.pt', norm='rmsnorm', mlp='swiglu', position='rotary')
    err = one_line_error(run_script('export_hf', tmp_path / 'rms.pt', tmp_path / 'out', check=False))
    assert "norm='rmsnorm'" in err and "mlp='swiglu'" in err and 'neither' in err
    assert not (tmp_path / 'out').exists()


# ---------------------------------------------------------------------------------------------------------------
# generation: model.generate's KV cache (sample.py and the harness) against recomputing every step

@pytest.mark.parametrize('shape', [*SHAPES, 'rmsnorm_swiglu'])
def test_kv_cache_generates_what_recomputing_does(shape):
    kw = SHAPES.get(shape, dict(norm='rmsnorm', mlp='swiglu', position='rotary', rotary_pct=0.5))
    model = random_model(**kw).eval()
    x = torch.randint(0, 100, (3, 7), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # the cached forward's last logits are forward's
        kv = [[torch.empty(3, 4, 7, 8) for _ in 'kv'] for _ in model.transformer.h]
        causal = torch.ones(7, 7, dtype=torch.bool).tril()[None, None]
        cached = model.forward_cached(x, torch.arange(7).expand(3, 7), kv, 0, causal)
        torch.testing.assert_close(cached, model(x)[0][:, -1], atol=1e-5, rtol=1e-5)
    # greedy, 7 + 30 tokens: the cache until block_size (24), then the sliding window, both ways
    cached, recomputed = (model.generate(x, 30, temperature=0, use_cache=c) for c in (True, False))
    assert cached.shape == (3, 37) and torch.equal(cached, recomputed)
    # prompts of 7, 4 and 2 tokens left-padded into one batch: each row as if alone
    lens = [7, 4, 2]
    padded = torch.stack([torch.cat([torch.full((7 - n,), 99), x[i, :n]]) for i, n in enumerate(lens)])
    out = model.generate(padded, 10, temperature=0, left_pad=torch.tensor([7 - n for n in lens]))
    for i, n in enumerate(lens):
        assert torch.equal(out[i, 7:], model.generate(x[i:i + 1, :n], 10, temperature=0, use_cache=False)[0, n:])


def test_generate_sampling_stops_and_padding():
    model = random_model().eval()
    x = torch.randint(0, 100, (4, 5), generator=torch.Generator().manual_seed(2))
    greedy = model.generate(x, 12, temperature=0)
    assert torch.equal(greedy[:, 5], model(x)[0][:, -1].argmax(-1))
    # top_k=1 and a tiny top_p leave one token to sample: the greedy one, whatever the temperature
    assert torch.equal(model.generate(x, 12, temperature=2.0, top_k=1), greedy)
    assert torch.equal(model.generate(x, 12, temperature=2.0, top_p=1e-6), greedy)
    torch.manual_seed(3)
    hot = model.generate(x, 12, temperature=2.0)
    torch.manual_seed(3)
    assert torch.equal(model.generate(x, 12, temperature=2.0), hot) and not torch.equal(hot, greedy)
    # top-k and top-p keep the sampled tokens among the likeliest: never outside the first step's top 3 / nucleus
    first = model(x)[0][:, -1].float()
    for kw in (dict(top_k=3), dict(top_p=0.5)):
        picks = torch.stack([model.generate(x, 1, temperature=1.5, **kw)[:, -1] for _ in range(20)], 1)
        if 'top_k' in kw:
            allowed = first.topk(3).indices
        else:
            p, order = torch.sort(F.softmax(first / 1.5, -1), descending=True)
            allowed = [o[:int((pr.cumsum(0) < 0.5).sum()) + 1] for pr, o in zip(p, order)]
        assert all(set(row.tolist()) <= set(a.tolist()) for row, a in zip(picks, allowed))
    # a row is done at eot_id or when stop() says so; done rows are padded with eot_id, and all done ends it
    eot = int(greedy[1, 8])  # the token row 1 produces at its 4th step
    for stop, steps in ((None, 12), (lambda new: len(new) >= 2, 2)):
        out = model.generate(x, 12, temperature=0, eot_id=eot, stop=stop)
        ends = [min(ref.index(eot) + 1 if eot in ref else 12, steps) for ref in greedy[:, 5:].tolist()]
        assert out.shape == (4, 5 + max(ends)) and min(ends) < max(ends)
        for row, ref, n in zip(out[:, 5:].tolist(), greedy[:, 5:].tolist(), ends):
            assert row[:n] == ref[:n] and set(row[n:]) <= {eot}, (row, ref)
    with pytest.raises(ValueError, match='left-truncate'):
        model.generate(x, 20, temperature=0, left_pad=torch.zeros(4, dtype=torch.long))


def test_eval_scripts_run_as_files_too():
    # `python eval/loss.py ...`, the nanoGPT habit, as well as `python -m eval.loss ...`
    for script in ('eval/loss.py', 'eval/export_hf.py'):
        p = subprocess.run([sys.executable, script, '--help'], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0 and p.stdout.startswith('usage:'), p.stderr[-2000:]
