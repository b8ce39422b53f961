"""
Generate text from a checkpoint, with the tokenizer of the bins it was trained on. model.generate keeps a KV cache
(each new token costs one token's forward) until the text outgrows block_size, then slides the window as nanoGPT.

    python sample.py --ckpt=out-demo-cpu/s1/d0 --start="The function" --num_samples=3 --max_new_tokens=100
    python sample.py --ckpt=out-demo-cpu/s1/b_rewarm --start=FILE:prompt.txt
"""
import sys

import torch

import runtime
from configurator import config_keys, load_config
from eval.common import load_model, load_tokenizer

ckpt = 'out'              # a run dir (its newest checkpoint), a step_N.pt, or an FSDP step_N/ folder
start = '\n'              # the prompt, or FILE:path to read it from a file
num_samples = 3
max_new_tokens = 200
temperature = 0.8         # < 1 sharpens the distribution, > 1 flattens it; 0 = greedy (always the likeliest)
top_k = 200               # sample only among the k likeliest tokens (0 = all)
top_p = 1.0               # ... and only among the likeliest holding this much of the probability (1 = all)
seed = 1337
device = runtime.default_device()
dtype = 'auto'            # 'auto' = bf16 on CUDA, fp32 on CPU | 'bfloat16' | 'float32'
compile = False

runtime.clean_errors()
cfg, _ = load_config(config_keys(globals()), sys.argv[1:], script=__file__)
globals().update(cfg)

torch.manual_seed(seed)
model, ck = load_model(ckpt, device)  # the same loading as eval/: any checkpoint form, eval mode, no dropout
if compile:
    model.compile()
enc = load_tokenizer(ckpt, ck)  # the run's tokenizer, checked against the hash it recorded
eot = ck['tokenizer']['eot_id']

if start.startswith('FILE:'):
    with open(start[5:], encoding='utf-8') as f:
        start = f.read()
ids = enc.encode(start, allowed_special='all') or [eot]  # an empty prompt starts a fresh document
x = torch.tensor(ids, dtype=torch.long, device=device)[None, :]
with torch.no_grad(), runtime.autocast(device, dtype, training=False):
    for _ in range(num_samples):
        y = model.generate(x, max_new_tokens, temperature=temperature, top_k=top_k or None, top_p=top_p, eot_id=eot)
        print(enc.decode(y[0].tolist()))
        print('---------------')
