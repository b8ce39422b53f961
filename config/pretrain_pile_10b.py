# Pre-train the paper's 10B model on the Pile (Ibrahim et al. 2024, arXiv 2403.08763): 36 layers, d_model 4608,
# 36 heads, the GPT-NeoX/Pythia block (rotary on 25% of each head, parallel attention + MLP, untied embeddings);
# sequence 2048; 300B tokens = 132,366 steps of 1104 x 2048 tokens; AdamW (0.9, 0.95), eps 1e-8, weight decay 0.1,
# clip 1.0; warmup 1% to η_max 1.2e-4, cosine to η_min 1.2e-5. (The authors' gpt-neox config for it is
# configs/iclr_models/7_1B.yml; its exact size is 9.64B parameters with their vocab padding, ours 9.639B.)
# D0 of the 10B weak-shift run, cpt_pile_slimpajama_10b.py.
#
#   torchrun --standalone --nproc_per_node=8 train.py config/pretrain_pile_10b.py
#   # several nodes: torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 \
#   #                    train.py config/pretrain_pile_10b.py --batch_size=3   (see the README's scale section)
#
# Memory: AdamW in fp32 needs 16 bytes per parameter (weights, gradients, two moments): 154 GB, more than one
# GPU holds, so FSDP shards it (19 GB per GPU on 8 GPUs) and activation checkpointing keeps only each block's
# input (36 x 3 x 2048 x 4608 bf16 = 2 GB per micro-batch) at ~1/3 more compute (not counted in MFU).
# Cost (--dry_run=True): 9,638.7M parameters, 60.52 GFLOPs/token, 299.3B tokens, 1.81e22 FLOPs:
# ~12,700 H100-hours at 40% MFU, ~10,200 at 50%.
out_dir = 'out/pile_10b'
data = {'pile': 1.0}
preset = 'neox-10b'
block_size = 2048
# vocab_size unset: the model follows the bins (the NeoX-20B and gpt2 tokenizers both pad to 50,304)
fsdp = True                   # FSDP2: parameters, gradients and optimizer state sharded over the GPUs
activation_checkpointing = True
compile = True                # per block under FSDP
# 1104 sequences per step: batch_size 3 per GPU divides 1104 / world size at 1, 2, 4, 8 and 16 GPUs
# (8 GPUs: 1104 = 8 x 3 x 46 micro-steps; 16 GPUs: 16 x 3 x 23)
total_batch_size = 1104
batch_size = 3
max_iters = 132_366           # 300B tokens
learning_rate = 1.2e-4        # η_max at 10B
min_lr = 1.2e-5               # η_min = 0.1 η_max
lr_schedule = 'cosine'
warmup_iters = 0.01
weight_decay = 0.1
beta1, beta2, eps = 0.9, 0.95, 1e-8
grad_clip = 1.0
dropout = 0.0
eval_interval = 250           # a step is ~45 s on 8 H100s at 40% MFU: an eval + sharded checkpoint every ~3 h
eval_windows = 480        # equal whole batches per GPU at 1-16 GPUs: FSDP's eval needs every rank in step
log_interval = 1
