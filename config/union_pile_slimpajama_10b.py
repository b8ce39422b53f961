# The weak-shift union baseline at 10B: re-trained from scratch on Pile ∪ SlimPajama, 600B tokens (300B of each,
# mixed by token budget), warmup 1% to η_max 1.2e-4, cosine to η_min 1.2e-5 (Ibrahim et al. 2024,
# arXiv 2403.08763). The continual run it is compared with (pretrain_pile_10b.py then cpt_pile_slimpajama_10b.py)
# costs the same in total, but reuses the Pile model: only its second half is new compute.
#
#   torchrun --standalone --nproc_per_node=8 train.py config/union_pile_slimpajama_10b.py
#
# Cost (--dry_run=True): 9,638.7M parameters, 598.6B tokens, ~25,400 H100-hours at 40% MFU, ~20,300 at 50%.
import os
exec(open(os.path.join(os.path.dirname(__file__), 'base_paper_10b.py')).read())  # the paper's shared recipe
out_dir = 'out/union_pile_slimpajama_10b'
data = {'pile': 0.5, 'slimpajama': 0.5}
val_data = ['pile', 'slimpajama']
max_iters = 2 * 132_366       # 264,732 steps = 598.6B tokens
