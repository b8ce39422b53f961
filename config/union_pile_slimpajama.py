# The weak-shift union baseline: the 405M model re-trained from scratch on Pile ∪ SlimPajama, 600B tokens
# (300B of each), one warmup (1%) to 3e-4 and one cosine to 3e-5 (Ibrahim et al. 2024, arXiv 2403.08763).
# It costs twice the continual run (cpt_pile_slimpajama.py), which matches it:
# paper, final validation loss Pile / SlimPajama / average: union 2.17 / 2.53 / 2.35; Pile -> SlimPajama with 5%
# replay 2.23 / 2.51 / 2.37.
# The union is drawn as a mixture weighted by each dataset's token budget (300B : 300B), so every batch holds
# both; the steps are the sum of the two datasets' runs (2 x 132,366).
#
#   torchrun --standalone --nproc_per_node=8 train.py config/union_pile_slimpajama.py
#
# Cost (--dry_run=True): 405.3M parameters, 598.6B tokens, ~1,150 H100-hours at 40% MFU, ~920 at 50%.
_pile_iters, _slimpajama_iters = 132_366, 132_366   # 300B + 300B tokens
out_dir = 'out/union_pile_slimpajama'
data = {'pile': 0.5, 'slimpajama': 0.5}
val_data = ['pile', 'slimpajama']
preset = 'pythia-410m'
block_size = 2048
total_batch_size = 1104       # batch_size 6 divides 1104 / world size at 1, 2, 4, 8 GPUs (16: --batch_size=3)
batch_size = 6
max_iters = _pile_iters + _slimpajama_iters          # 264,732 steps = 598.6B tokens
learning_rate = 3e-4
min_lr = 3e-5
lr_schedule = 'cosine'
warmup_iters = 0.01
weight_decay = 0.1
beta1, beta2, eps = 0.9, 0.95, 1e-8
grad_clip = 1.0
dropout = 0.0
eval_interval = 1000
eval_windows = 480
log_interval = 10
