"""
Generate text from a checkpoint, with the tokenizer of the bins it was trained on.

    python sample.py --ckpt=out-demo-cpu/en --start="The function" --num_samples=3 --max_new_tokens=100
    python sample.py --ckpt=out-demo-cpu/b_rewarm --start=FILE:prompt.txt
"""
import sys
from contextlib import nullcontext

import torch

import checkpoint
from configurator import clean_errors, load_config
from model import GPT, GPTConfig
from prepare.tokenizer import get_tokenizer

ckpt = 'out'              # a run dir, ckpt.pt, or an FSDP ckpt/ folder
start = '\n'              # the prompt, or FILE:path to read it from a file
num_samples = 3
max_new_tokens = 200
temperature = 0.8         # < 1 sharpens the distribution, > 1 flattens it
top_k = 200               # sample only among the k likeliest tokens (0 = all)
seed = 1337
device = 'cuda' if torch.cuda.is_available() else 'cpu'
dtype = 'bfloat16' if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else 'float32'
compile = False

clean_errors()
cfg, _ = load_config({k: v for k, v in globals().items() if not k.startswith('_') and
                      isinstance(v, (int, float, bool, str))}, sys.argv[1:])
globals().update(cfg)

torch.manual_seed(seed)
ck = checkpoint.load(ckpt)
model = GPT(GPTConfig(**{**ck['model_args'], 'use_kernels': False, 'dropout': 0.0}))
model.load_state_dict(checkpoint.clean_state_dict(ck['model']))
model.eval().to(device)
if compile:
    model.compile()
enc = get_tokenizer(ck['tokenizer']['tokenizer'], ck['config'].get('data_dir'))
eot = ck['tokenizer']['eot_id']

if start.startswith('FILE:'):
    with open(start[5:], encoding='utf-8') as f:
        start = f.read()
ids = enc.encode(start, allowed_special='all') or [eot]  # an empty prompt starts a fresh document
x = torch.tensor(ids, dtype=torch.long, device=device)[None, :]
device_type = 'cuda' if 'cuda' in device else 'cpu'
ptdtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}[dtype]
ctx = nullcontext() if dtype == 'float32' else torch.autocast(device_type=device_type, dtype=ptdtype)
with torch.no_grad(), ctx:
    for _ in range(num_samples):
        y = model.generate(x, max_new_tokens, temperature=temperature, top_k=top_k or None, eot_id=eot)
        print(enc.decode(y[0].tolist()))
        print('---------------')
