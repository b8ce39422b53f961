# Pre-train the paper's 10B model on the Pile (Ibrahim et al. 2024, arXiv 2403.08763): 36 layers, d_model 4608,
# 36 heads, the GPT-NeoX/Pythia block (rotary on 25% of each head, parallel attention + MLP, untied embeddings);
# sequence 2048; 300B tokens = 132,366 steps of 1104 x 2048 tokens; AdamW (0.9, 0.95), eps 1e-8, weight decay 0.1,
# clip 1.0; warmup 1% to η_max 1.2e-4, cosine to η_min 1.2e-5. (The authors' gpt-neox config for it is
# configs/iclr_models/7_1B.yml; its exact size is 9.64B parameters with their vocab padding, ours 9.639B.)
# D0 of the 10B weak-shift run, cpt_pile_slimpajama_10b.py.
#
#   torchrun --standalone --nproc_per_node=8 train.py config/pretrain_pile_10b.py
#   # several nodes: torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 \
#   #                    train.py config/pretrain_pile_10b.py --batch_size=3   (docs/scale.md)
#
# Memory: AdamW in fp32 needs 16 bytes per parameter (weights, gradients, two moments): 154 GB, more than one
# GPU holds, so FSDP shards it (19 GB per GPU on 8 GPUs) and activation checkpointing keeps only each block's
# input (36 x 3 x 2048 x 4608 bf16 = 2 GB per micro-batch) at ~1/3 more compute (not counted in MFU).
# Cost (--dry_run=True): 9,638.7M parameters, 60.52 GFLOPs/token, 299.3B tokens, 1.81e22 FLOPs:
# ~12,700 H100-hours at 40% MFU, ~10,200 at 50%.
import os
exec(open(os.path.join(os.path.dirname(__file__), 'base_paper_10b.py')).read())  # the paper's shared recipe
out_dir = 'out/pile_10b'
data = {'pile': 1.0}
max_iters = 132_366           # 300B tokens
