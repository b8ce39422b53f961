"""
SlimPajama-627B: the paper's weak-shift D1 (300B tokens), {"text", "meta": {"redpajama_set_name"}}, streamed.
With --max_tokens the budget is split over SlimPajama's 7 domains in their published token proportions, and
each domain stops taking documents once it has its share, so a small budget keeps the mixture of the full set:

    python -m prepare.slimpajama --max_tokens 300e9
    python -m prepare.slimpajama --input slimpajama/chunk1/*.jsonl.zst --max_tokens 1e9   # local shards

Use the tokenizer D0 was prepared with (--tokenizer).
"""
from prepare import text

# share of SlimPajama's tokens per domain (SlimPajama paper / dataset card, Table 1)
DOMAINS = {'RedPajamaCommonCrawl': 0.522, 'RedPajamaC4': 0.267, 'RedPajamaGithub': 0.052, 'RedPajamaBook': 0.042,
           'RedPajamaArXiv': 0.046, 'RedPajamaWikipedia': 0.038, 'RedPajamaStackExchange': 0.033}
DEFAULTS = dict(name='slimpajama', hf_dataset='cerebras/SlimPajama-627B', text_field='text',
                group_field='meta.redpajama_set_name', tokenizer='gpt2', val_fraction=0.0005)


def domain_budget(args):
    """{domain: train tokens}: --max_tokens shared out in SlimPajama's proportions (None: take the whole stream)."""
    return None if args.max_tokens is None else {d: int(p * args.max_tokens) for d, p in DOMAINS.items()}


def main(argv=None):
    return text.main(argv, __doc__, budget=domain_budget, **DEFAULTS)


if __name__ == '__main__':
    main()
