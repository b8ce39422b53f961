"""
lm-evaluation-harness on a nanoCPT checkpoint: the paper's downstream benchmarks.

    python -m eval.harness out/cpt_en_de --tasks paper_en --batch_size 32 --output lm_eval_en.json
    python -m eval.harness out/cpt_en_de --tasks paper_de
    python -m eval.harness out-demo-cpu/s1/d0 --tasks hellaswag,arc_easy --num_fewshot 0 --limit 100
    python -m eval.harness out-demo-cpu/s1/d0 --tasks my_task --include_path my_tasks/    # a local task YAML

--tasks takes lm_eval task names and the presets below, comma-separated. Each preset task carries the paper's
number of few-shot examples; --num_fewshot overrides them all. lm_eval downloads task data from the Hugging Face
hub (or its cache); a local task is a YAML next to local JSON (see tests/test_eval.py for a minimal one).
"""
import argparse
import json

import torch
import torch.nn.functional as F
import lm_eval
from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import Collator, normalize_gen_kwargs
from lm_eval.tasks import TaskManager
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window, make_table

import runtime
from eval.common import load_model, load_tokenizer

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

    def __init__(self, ckpt, device=None, batch_size=8, dtype='float32', data_dir=None, max_gen_toks=256):
        super().__init__()
        self._device = torch.device(device or runtime.default_device())
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
                    raise ValueError(f"cannot score a continuation of {len(cont)} tokens after {len(context)} "
                                     f"context tokens with a model of block_size {self.max_length}")
                rows.append((list(context) + list(cont))[-(self.max_length + 1):-1])  # inputs; targets: shifted by 1
            x = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)  # right padding: causal, never read
            for j, r in enumerate(rows):
                x[j, :len(r)] = torch.tensor(r)
            with runtime.autocast(self._device, self.dtype, training=False):
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

    def generation_args(self, gen_kwargs):
        """A request's generation kwargs read as lm_eval's HFLM reads them (lm_eval's normalize_gen_kwargs: the
        max_gen_toks aliases, do_sample and temperature), as (stop strings, max new tokens, model.generate's
        sampling arguments). Anything else HFLM would pass on to transformers is refused by name."""
        kw = dict(normalize_gen_kwargs(gen_kwargs, self.max_gen_toks))
        until = [u for u in kw.pop('until') if u]  # '' is in every text: lm_eval ignores it when cutting too
        n_new, do_sample, temperature = kw.pop('max_gen_toks'), kw.pop('do_sample'), float(kw.pop('temperature', 0))
        # transformers samples among the 50 likeliest tokens unless told otherwise (top_k 0: all); greedy ignores both
        sampling = dict(temperature=temperature, top_k=kw.pop('top_k', 50) or None, top_p=kw.pop('top_p', 1.0))
        if kw.pop('num_beams', 1) != 1:
            raise ValueError(f"generation kwargs {gen_kwargs}: beam search (num_beams > 1) is not implemented; "
                             f"NanoCPTLM decodes greedily or samples")
        if 'max_length' in kw:
            raise ValueError(f"generation kwargs {gen_kwargs}: max_length (prompt + generation) depends on the "
                             f"batch's padding; give max_gen_toks (or max_new_tokens) instead")
        if kw:
            raise ValueError(f"generation kwargs {sorted(kw)} of {gen_kwargs} are not supported: NanoCPTLM reads "
                             f"until, max_gen_toks (max_new_tokens, ...), do_sample, temperature, top_k, top_p")
        if do_sample and not temperature > 0:
            raise ValueError(f"generation kwargs {gen_kwargs}: do_sample needs a temperature > 0")
        if not 0 < n_new < self.max_length:
            raise ValueError(f"max_gen_toks={n_new} must be between 1 and the model's block_size {self.max_length} "
                             f"(contexts keep their last block_size - max_gen_toks tokens): lower --max_gen_toks or "
                             f"the task's")
        return until, n_new, sampling if do_sample else dict(temperature=0)

    @torch.no_grad()
    def generate_until(self, requests, disable_tqdm=False):
        """HFLM's algorithm: requests grouped by their generation kwargs, longest context first, in batches that
        are left-padded; each context keeps its last block_size - max_gen_toks tokens. A row stops at EOT, at any
        of its `until` strings or after max_gen_toks tokens, and its text is cut before the first stop string.
        Greedy, unless do_sample (temperature, top_k, top_p, as transformers samples)."""
        reqs = Collator([r.args for r in requests], sort_fn=lambda a: (-len(self.tok_encode(a[0])), a[0]),
                        group_by='gen_kwargs', group_fn=lambda a: a[1])
        results = []
        for chunk in reqs.get_batched(n=self.batch_size):
            contexts, all_kwargs = zip(*chunk)
            until, n_new, sampling = self.generation_args(all_kwargs[0])  # a batch shares its kwargs
            ids = [self.tok_encode(c)[-(self.max_length - n_new):] or [self.eot] for c in contexts]
            width = max(map(len, ids))
            x = torch.tensor([[self.eot] * (width - len(r)) + r for r in ids], device=self._device)
            pad = torch.tensor([width - len(r) for r in ids])
            stop = (lambda new: any(u in self.tok_decode(new) for u in until)) if until else None
            with runtime.autocast(self._device, self.dtype, training=False):
                out = self.model.generate(x, n_new, **sampling, eot_id=self.eot, left_pad=pad, stop=stop)
            for context, gen_kwargs, new in zip(contexts, all_kwargs, out[:, width:].tolist()):
                text = self.tok_decode(new[:new.index(self.eot)] if self.eot in new else new)
                for u in until:  # cut before the first stop string, as lm_eval's models do
                    text = text.split(u)[0]
                self.cache_hook.add_partial('generate_until', (context, gen_kwargs), text)
                results.append(text)
        return reqs.get_original(results)


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
    tm = TaskManager(include_path=include_path, include_defaults=False) if include_path else None
    if tm is None or not set(tasks) <= set(tm.all_tasks):
        tm = TaskManager(include_path=include_path)
    unknown = sorted(set(tasks) - set(tm.all_tasks))
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}: use lm_eval task names (`lm_eval ls tasks`), the presets "
                         f"{sorted(PRESETS)}, or a YAML under --include_path")
    return tm


def run(lm, tasks, limit=None, include_path=None, tm=None, bootstrap_iters=100000, log_samples=False):
    """Evaluates `lm` (ours, or any lm_eval model) on {task: few-shot} (None = the task's default) with lm_eval's
    own evaluator. Tasks with different few-shot counts run as separate evaluations; returns their merged results
    (with every request and the model's answer under 'samples' when log_samples)."""
    tm = tm or task_manager(tasks, include_path)
    keys = ('results', 'groups', 'group_subtasks', 'n-shot', 'higher_is_better', 'versions', 'configs')
    merged = {k: {} for k in keys + (('samples',) if log_samples else ())}
    by_shots = {}
    for task, shots in tasks.items():
        by_shots.setdefault(shots, []).append(task)
    for shots, names in by_shots.items():
        res = lm_eval.simple_evaluate(model=lm, tasks=names, num_fewshot=shots, limit=limit, task_manager=tm,
                                      log_samples=log_samples, bootstrap_iters=bootstrap_iters)
        for key in merged:
            merged[key].update(res.get(key, {}))
    return merged


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('checkpoint', help='a run folder (its newest checkpoint) or a step_N.pt / step_N/')
    p.add_argument('--tasks', required=True, help=f"comma-separated lm_eval tasks and presets {sorted(PRESETS)}")
    p.add_argument('--num_fewshot', type=int, default=None, help="few-shot examples for every task (default: "
                   "the preset's, else the task's own)")
    p.add_argument('--limit', type=float, default=None, help='examples per task (a fraction if < 1): for quick looks')
    p.add_argument('--batch_size', type=int, default=8)
    p.add_argument('--device', default=runtime.default_device())
    p.add_argument('--dtype', default='float32', help="float32 (the export's, and HFLM's parity) | bfloat16 | "
                   "'auto' (bf16 autocast on CUDA, fp32 on CPU): weights stay fp32, matmuls run in the dtype")
    p.add_argument('--data_dir', default=None, help="where a custom tokenizer lives (default: the run's data_dir)")
    p.add_argument('--include_path', default=None, help='a folder of extra task YAMLs')
    p.add_argument('--max_gen_toks', type=int, default=256, help="new tokens for generation tasks that set no "
                   "max_gen_toks (HFLM's default)")
    p.add_argument('--output', default=None, help='write the results (JSON) here')
    args = p.parse_args(argv)
    limit = int(args.limit) if args.limit is not None and args.limit >= 1 else args.limit
    tasks = expand_tasks(args.tasks, args.num_fewshot)
    tm = task_manager(tasks, args.include_path)  # before loading the model: a typo costs nothing
    lm = NanoCPTLM(args.checkpoint, args.device, args.batch_size, args.dtype, args.data_dir, args.max_gen_toks)
    results = run(lm, tasks, limit, tm=tm)
    print(make_table(results))
    if results['groups']:  # e.g. mmlu: its subjects above, the aggregate here
        print(make_table(results, 'groups'))
    if args.output:
        results['config'] = {'checkpoint': args.checkpoint, 'tasks': tasks, 'limit': limit, 'dtype': args.dtype}
        with open(args.output, 'w') as f:
            json.dump(results, f, indent=2, default=str)
    return results


if __name__ == '__main__':
    runtime.clean_errors()
    main()
