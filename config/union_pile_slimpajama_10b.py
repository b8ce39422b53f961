# The weak-shift union baseline at 10B: re-trained from scratch on Pile ∪ SlimPajama, 600B tokens (300B of each,
# mixed by token budget), warmup 1% to η_max 1.2e-4, cosine to η_min 1.2e-5 (Ibrahim et al. 2024,
# arXiv 2403.08763). The continual run it is compared with (pretrain_pile_10b.py then cpt_pile_slimpajama_10b.py)
# costs the same in total, but reuses the Pile model: only its second half is new compute.
#
#   torchrun --standalone --nproc_per_node=8 train.py config/union_pile_slimpajama_10b.py
#
# Cost (--dry_run=True): 9,638.7M parameters, 598.6B tokens, ~25,400 H100-hours at 40% MFU, ~20,300 at 50%.
out_dir = 'out/union_pile_slimpajama_10b'
data = {'pile': 0.5, 'slimpajama': 0.5}
val_data = ['pile', 'slimpajama']
preset = 'neox-10b'
block_size = 2048
fsdp = True
activation_checkpointing = True
compile = True
total_batch_size = 1104       # batch_size 3 divides 1104 / world size at 1, 2, 4, 8 and 16 GPUs
batch_size = 3
max_iters = 2 * 132_366       # 264,732 steps = 598.6B tokens
learning_rate = 1.2e-4
min_lr = 1.2e-5
lr_schedule = 'cosine'
warmup_iters = 0.01
weight_decay = 0.1
beta1, beta2, eps = 0.9, 0.95, 1e-8
grad_clip = 1.0
dropout = 0.0
eval_interval = 250
eval_windows = 480
log_interval = 1
