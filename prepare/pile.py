"""
The Pile: the paper's D0 (300B tokens at 405M and 10B parameters). The original host is gone; the copyright-cleaned
copy on the Hugging Face hub keeps its schema ({"text", "meta": {"pile_set_name"}}), streamed here:

    python -m prepare.pile --max_tokens 300e9                  # DATA_DIR/pile/, counted by Pile subset
    python -m prepare.pile --input pile/*.jsonl.zst --max_tokens 1e9   # local shards, same schema

The paper used the GPT-NeoX-20B tokenizer (50k vocab); gpt2's 50k vocab is the offline stand-in here.
Whatever D0 pre-trains on is what replay draws from later: see prepare/replay.py.
"""
from prepare import text

DEFAULTS = dict(name='pile', hf_dataset='monology/pile-uncopyrighted', text_field='text',
                group_field='meta.pile_set_name', tokenizer='gpt2', val_fraction=0.0005)


def main(argv=None):
    return text.main(argv, __doc__, **DEFAULTS)


if __name__ == '__main__':
    main()
