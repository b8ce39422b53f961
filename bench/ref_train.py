"""
The reference arm of bench_train.py: a plain-PyTorch GPT training loop with nanoGPT's CPU defaults, written here
(our code, not nanoGPT's) so that every arm of the bench is measured against it in the same run.

What it copies from nanoGPT's train.py and model.py as they run on a CPU: fp32 and no autocast, eager (no
torch.compile), torch's AdamW without fused= (on CPU that is the per-parameter for-loop), weight decay on matrices
only, gradient clipping at 1.0, zero_grad(set_to_none=True); the GPT-2 block (pre-LayerNorm without bias, causal
F.scaled_dot_product_attention, exact GELU as nn.GELU), learned positions, the LM head tied to the token embedding,
GPT-2 init; batches from a fresh np.memmap at random offsets; the next batch fetched before backward.

    python bench/ref_train.py --data_dir=DIR --n_layer=4 --n_head=4 --n_embd=256 --block_size=256 --batch_size=8

It prints train.py's step line ("step 3/14 | loss 8.9 | lr 6.00e-04 | 4,321 tok/s"), so the bench parses both alike.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, n_head):
        super().__init__()
        self.n_head = n_head
        self.ln_1, self.ln_2 = nn.LayerNorm(C, bias=False), nn.LayerNorm(C, bias=False)
        self.c_attn, self.attn_proj = nn.Linear(C, 3 * C, bias=False), nn.Linear(C, C, bias=False)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C, bias=False), nn.Linear(4 * C, C, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.attn_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, vocab, block_size, n_layer, n_head, C):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, C), nn.Embedding(block_size, C)
        self.h = nn.ModuleList([Block(C, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(C, bias=False)
        self.lm_head = nn.Linear(C, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        for name, p in self.named_parameters():  # GPT-2 init; the residual projections scaled by 1/sqrt(2 n_layer)
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith('proj.weight') else 0.02
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data_dir', required=True, help="folder with synth/train.bin and synth/meta.json")
    p.add_argument('--dataset', default='synth')
    for k, v in dict(n_layer=4, n_head=4, n_embd=256, block_size=256, batch_size=8, max_iters=14).items():
        p.add_argument(f'--{k}', type=int, default=v)
    args = p.parse_args()
    with open(os.path.join(args.data_dir, args.dataset, 'meta.json')) as f:
        meta = json.load(f)
    path = os.path.join(args.data_dir, args.dataset, 'train.bin')
    B, T = args.batch_size, args.block_size

    def get_batch():
        data = np.memmap(path, dtype=np.dtype(meta['dtype']), mode='r')  # re-opened per batch, as nanoGPT does
        ix = torch.randint(len(data) - T, (B,))
        x = torch.stack([torch.from_numpy(data[i:i + T].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1:i + 1 + T].astype(np.int64)) for i in ix])
        return x, y

    torch.manual_seed(1337)
    vocab = (meta['vocab_size'] + 63) // 64 * 64
    model = GPT(vocab, T, args.n_layer, args.n_head, args.n_embd)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{'params': [p for p in params if p.dim() >= 2], 'weight_decay': 0.1},
              {'params': [p for p in params if p.dim() < 2], 'weight_decay': 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=6e-4, betas=(0.9, 0.95))
    print(f"reference: {sum(p.numel() for p in params) / 1e6:.2f}M parameters, fp32 eager on cpu, "
          f"{torch.get_num_threads()} threads")
    x, y = get_batch()
    for it in range(1, args.max_iters + 1):
        t0 = time.time()
        lr = 6e-4  # nanoGPT sets each group's lr every step (its schedule costs nothing measurable)
        for group in optimizer.param_groups:
            group['lr'] = lr
        loss = model(x, y)
        x, y = get_batch()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        lossf = loss.item()
        print(f"step {it}/{args.max_iters} | loss {lossf:.4f} | lr {lr:.2e} | {B * T / (time.time() - t0):,.0f} tok/s",
              flush=True)


if __name__ == '__main__':
    main()
