"""
German web text: the paper's strong-shift D1 (German Common Crawl, ~200B tokens). FineWeb-2's deu_Latn subset is
today's open equivalent (Common Crawl, deduplicated and filtered; {"text", "id", "url", "language_score", ...}):

    python -m prepare.german --max_tokens 200e9
    python -m prepare.german --hf_dataset oscar-corpus/OSCAR-2301 --hf_config de   # OSCAR instead (gated)
    python -m prepare.german --input fineweb2_deu/*.parquet --max_tokens 1e9        # local shards, same schema

Use the tokenizer D0 was prepared with (--tokenizer): in continual pre-training the vocabulary is D0's.
"""
from prepare import text

DEFAULTS = dict(name='german', hf_dataset='HuggingFaceFW/fineweb-2', hf_config='deu_Latn', text_field='text',
                tokenizer='gpt2', val_fraction=0.0005)


def main(argv=None):
    return text.main(argv, __doc__, **DEFAULTS)


if __name__ == '__main__':
    main()
