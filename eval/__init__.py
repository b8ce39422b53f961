"""
eval/: what a trained checkpoint is worth, and the paper's tables and figures for a set of runs.

    loss.py       validation loss of checkpoints per dataset, on the same fixed windows as train.py's eval
    audit.py      which window of which dataset every sample of a run's steps read
    schedule.py   the learning-rate schedule a config would run, plotted
    harness.py    lm-evaluation-harness on a checkpoint (an lm_eval LM subclass + the paper's task sets)
    report.py     run folders -> the paper's table (Markdown) and figures (PNG)
    export_hf.py  a checkpoint -> a Hugging Face transformers folder (GPT-2 or GPT-NeoX, safetensors)
    common.py     what they share: loading a checkpoint into a GPT, its tokenizer, the tokenizer check

Each is a script, run from the repo root as `python eval/<name>.py ...` (or `python -m eval.<name>`).
"""
