"""
lm-evaluation-harness on a nanoCPT checkpoint: the paper's downstream benchmarks.

    python eval/harness.py out/cpt_en_de --tasks paper_en --batch_size 32 --output lm_eval_en.json
    python eval/harness.py out/cpt_en_de --tasks paper_de
    python eval/harness.py out-demo-cpu/en --tasks hellaswag,arc_easy --num_fewshot 0 --limit 100
    python eval/harness.py out-demo-cpu/en --tasks my_task --include_path my_tasks/    # a local task YAML

--tasks takes lm_eval task names and the presets below, comma-separated. Each preset task carries the paper's
number of few-shot examples; --num_fewshot overrides them all. lm_eval downloads task data from the Hugging Face
hub (or its cache); a local task is a YAML next to local JSON (see tests/test_eval.py for a minimal one).
"""
import argparse
import json
import os
import sys

if __package__ in (None, ''):  # run as `python eval/harness.py`: import from the repo root, not from eval/
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import torch
import torch.nn.functional as F
from lm_eval.api.model import TemplateLM
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from configurator import clean_errors
from eval.common import autocast, default_device, load_model, load_tokenizer

# The paper's evaluations (Ibrahim et al. 2024, section 5 / appendix): task -> few-shot examples.
# German: the Okapi machine translations (Lai et al. 2023) lm_eval registers as hellaswag_de, arc_de (ARC-Challenge),
# m_mmlu_de and truthfulqa_de_mc1/2.
PRESETS = {
    'paper_en': {'hellaswag': 0, 'arc_easy': 0, 'arc_challenge': 0, 'winogrande': 0, 'piqa': 0, 'openbookqa': 0,
                 'boolq': 0, 'mmlu': 5},
    'paper_en_full': {'hellaswag': 0, 'arc_easy': 0, 'arc_challenge': 0, 'winogrande': 0, 'piqa': 0,
                      'openbookqa': 0, 'boolq': 0, 'mathqa': 0, 'truthfulqa_mc1': 0, 'truthfulqa_mc2': 0,
                      'mmlu': 5, 'nq_open': 5, 'triviaqa': 5},
    'paper_de': {'hellaswag_de': 0, 'arc_de': 0, 'truthfulqa_de_mc1': 0, 'truthfulqa_de_mc2': 0, 'm_mmlu_de': 5},
}


class NanoCPTLM(TemplateLM):
    """An lm_eval model backed by a checkpoint. TemplateLM does the text side (splitting context from continuation,
    the empty-context case); every score comes from one batched token scorer, `score`, which a caller can also
    feed token ids directly (that is how the tests check it against train.py's validation loss)."""

    def __init__(self, ckpt, device=None, batch_size=8, dtype='auto', data_dir=None, max_gen_toks=256):
        super().__init__()
        self._device = torch.device(device or default_device())
        self.model, info = load_model(ckpt, self._device)
        self.enc = load_tokenizer(ckpt, info, data_dir)
        self.eot = info['tokenizer']['eot_id']
        self.max_length = self.model.config.block_size
        self.batch_size = int(batch_size)
        self.dtype = dtype
        self.max_gen_toks = max_gen_toks

    @property
    def eot_token_id(self):
        return self.eot  # also the prefix lm_eval puts before an empty context: documents start after an EOT in a bin

    @property
    def tokenizer_name(self):
        return self.enc.name

    def tok_encode(self, string, add_special_tokens=None, **kwargs):
        return self.enc.encode_ordinary(string)  # benchmark text is text: a literal '<|endoftext|>' is not a special

    def tok_decode(self, tokens):
        return self.enc.decode(tokens)

    @torch.no_grad()
    def score(self, pairs):
        """[(sum of log p(continuation | context), whether every continuation token is the argmax)] for
        (context ids, continuation ids) pairs. Batched, longest first (similar lengths pad little); a context
        longer than the model's block_size keeps its last tokens."""
        out = [(0.0, True) if not cont else None for _, cont in pairs]  # nothing to predict: log 1
        order = sorted((i for i in range(len(pairs)) if out[i] is None), key=lambda i: -sum(map(len, pairs[i])))
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            rows = []
            for i in batch:
                context, cont = pairs[i]
                if not context or len(cont) > self.max_length:
                    raise ValueError(f"cannot score a continuation of {len(cont)} tokens after {len(context)} context "
                                     f"tokens with a model of block_size {self.max_length}")
                rows.append((list(context) + list(cont))[-(self.max_length + 1):-1])  # inputs; targets are shifted by one
            x = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)  # right padding: causal, never attended to
            for j, r in enumerate(rows):
                x[j, :len(r)] = torch.tensor(r)
            with autocast(self._device, self.dtype):
                logits, _ = self.model(x.to(self._device))
            for j, i in enumerate(batch):
                cont = torch.tensor(pairs[i][1], device=self._device)
                n, end = len(cont), len(rows[j])
                logp = F.log_softmax(logits[j, end - n:end].float(), dim=-1)  # the positions that predict `cont`
                out[i] = (logp.gather(-1, cont[:, None]).sum().item(), bool((logp.argmax(-1) == cont).all()))
        return out

    def rolling_windows(self, tokens, prefix):
        """lm_eval's rolling windows over a token list: every token predicted exactly once, each with as much
        context as fits; the first token is conditioned on `prefix`. A list of (context, continuation) pairs."""
        return [make_disjoint_window(w) for w in get_rolling_token_windows(tokens, prefix, self.max_length, 1)]

    def _loglikelihood_tokens(self, requests, disable_tqdm=False, **kwargs):
        results = self.score([(context, cont) for _, context, cont in requests])
        for (key, _, _), r in zip(requests, results):
            self.cache_hook.add_partial('loglikelihood', key, r)
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        # all windows of all documents go through the scorer together, so short documents share batches
        docs = [self.rolling_windows(self.tok_encode(text), self.eot) for (text,) in (r.args for r in requests)]
        scores = iter(self.score([w for windows in docs for w in windows]))
        results = [sum(next(scores)[0] for _ in windows) for windows in docs]
        for r, total in zip(requests, results):
            self.cache_hook.add_partial('loglikelihood_rolling', r.args, total)
        return results

    @torch.no_grad()
    def generate_until(self, requests, disable_tqdm=False):
        """Greedy decoding, one request at a time: the model has no padding mask, so prompts of different lengths
        cannot share a batch. Stops at any of the request's `until` strings, at EOT, or after max_gen_toks."""
        results = []
        for context, gen_kwargs in (r.args for r in requests):
            kwargs = dict(gen_kwargs)
            until = kwargs.get('until') or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = kwargs.get('max_gen_toks', self.max_gen_toks)
            ids = self.tok_encode(context)[-self.max_length:] or [self.eot]
            new = []
            for _ in range(max_new):
                x = torch.tensor([(ids + new)[-self.max_length:]], device=self._device)
                with autocast(self._device, self.dtype):
                    logits, _ = self.model(x)
                nxt = int(logits[0, -1].argmax())
                if nxt == self.eot:
                    break
                new.append(nxt)
                text = self.tok_decode(new)
                if any(u in text for u in until):
                    break
            text = self.tok_decode(new)
            for u in until:  # cut at the first stop string, as lm_eval's own models do
                text = text.split(u)[0]
            self.cache_hook.add_partial('generate_until', (context, gen_kwargs), text)
            results.append(text)
        return results


def expand_tasks(spec, num_fewshot=None):
    """'paper_en,lambada_openai' -> {task: few-shot examples}; --num_fewshot (if given) wins over the presets."""
    tasks = {}
    for name in (t.strip() for t in spec.split(',') if t.strip()):
        for task, shots in PRESETS.get(name, {name: None}).items():
            tasks[task] = shots if num_fewshot is None else num_fewshot
    if not tasks:
        raise ValueError(f"--tasks is empty: name lm_eval tasks or presets {sorted(PRESETS)}")
    return tasks


def task_manager(tasks, include_path=None):
    """lm_eval's TaskManager, indexing only include_path when every task is found there (indexing the ~10k
    built-in tasks takes ~10 s); unknown task names stop here with one message instead of inside lm_eval."""
    from lm_eval.tasks import TaskManager
    tm = TaskManager(include_path=include_path, include_defaults=False) if include_path else None
    if tm is None or not set(tasks) <= set(tm.all_tasks):
        tm = TaskManager(include_path=include_path)
    unknown = sorted(set(tasks) - set(tm.all_tasks))
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}: use lm_eval task names (`lm_eval ls tasks`), the presets "
                         f"{sorted(PRESETS)}, or a YAML under --include_path")
    return tm


def run(lm, tasks, limit=None, include_path=None, tm=None, bootstrap_iters=100000):
    """Evaluates `lm` on {task: few-shot} (None = the task's default) with lm_eval's own evaluator.
    Tasks with different few-shot counts run as separate evaluations; returns their merged results."""
    import lm_eval
    tm = tm or task_manager(tasks, include_path)
    merged = {k: {} for k in ('results', 'groups', 'group_subtasks', 'n-shot', 'higher_is_better', 'versions', 'configs')}
    by_shots = {}
    for task, shots in tasks.items():
        by_shots.setdefault(shots, []).append(task)
    for shots, names in by_shots.items():
        res = lm_eval.simple_evaluate(model=lm, tasks=names, num_fewshot=shots, limit=limit, task_manager=tm,
                                      log_samples=False, bootstrap_iters=bootstrap_iters)
        for key in merged:
            merged[key].update(res.get(key, {}))
    return merged


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('checkpoint', help='a run folder or a ckpt.pt')
    p.add_argument('--tasks', required=True, help=f"comma-separated lm_eval tasks and presets {sorted(PRESETS)}")
    p.add_argument('--num_fewshot', type=int, default=None, help="few-shot examples for every task (default: "
                   "the preset's, else the task's own)")
    p.add_argument('--limit', type=float, default=None, help='examples per task (a fraction if < 1): for quick looks')
    p.add_argument('--batch_size', type=int, default=8)
    p.add_argument('--device', default=default_device())
    p.add_argument('--dtype', default='auto', help="'auto' (bf16 autocast on CUDA, fp32 on CPU) | float32 | bfloat16")
    p.add_argument('--data_dir', default=None, help="where a custom tokenizer lives (default: the run's data_dir)")
    p.add_argument('--include_path', default=None, help='a folder of extra task YAMLs')
    p.add_argument('--max_gen_toks', type=int, default=256, help='token limit for generation tasks')
    p.add_argument('--output', default=None, help='write the results (JSON) here')
    args = p.parse_args(argv)
    limit = int(args.limit) if args.limit is not None and args.limit >= 1 else args.limit
    tasks = expand_tasks(args.tasks, args.num_fewshot)
    tm = task_manager(tasks, args.include_path)  # before loading the model: a typo costs nothing
    lm = NanoCPTLM(args.checkpoint, args.device, args.batch_size, args.dtype, args.data_dir, args.max_gen_toks)
    results = run(lm, tasks, limit, tm=tm)
    from lm_eval.utils import make_table
    print(make_table(results))
    if results['groups']:  # e.g. mmlu: its subjects above, the aggregate here
        print(make_table(results, 'groups'))
    if args.output:
        results['config'] = {'checkpoint': args.checkpoint, 'tasks': tasks, 'limit': limit, 'dtype': args.dtype}
        with open(args.output, 'w') as f:
            json.dump(results, f, indent=2, default=str)
    return results


if __name__ == '__main__':
    clean_errors()
    main()
