# Continual pre-training of the 10B Pile model on SlimPajama with 5% replay: the paper's weak-shift recipe at
# 10B (Ibrahim et al. 2024, arXiv 2403.08763): load the Pile checkpoint, reset AdamW, re-warm to η_max 1.2e-4 over
# 1%, cosine to η_min 1.2e-5 over 300B tokens (285B SlimPajama + 15B Pile replayed; 132,366 steps of 1104 x 2048).
# The paper shows that at 10B, as at 405M, this matches the union baseline retrained on Pile ∪ SlimPajama
# (union_pile_slimpajama_10b.py, 600B) at half its compute; docs/paper.md's loss tables are the 405M ones.
#
#   torchrun --standalone --nproc_per_node=8 train.py config/cpt_pile_slimpajama_10b.py
#
# Cost (--dry_run=True): 9,638.7M parameters, 299.3B tokens, ~12,700 H100-hours at 40% MFU, ~10,200 at 50%.
import os
exec(open(os.path.join(os.path.dirname(__file__), 'base_paper_10b.py')).read())  # the paper's shared recipe
out_dir = 'out/cpt_pile_slimpajama_10b'
init_from = 'out/pile_10b'    # pretrain_pile_10b.py's run: its sharded checkpoints load at any GPU count
reset_optimizer = True
data = {'slimpajama': 0.95}
replay = {'pile': 0.05}       # only Pile windows pre-training read, reshuffled (data.py)
val_data = ['pile', 'slimpajama']
max_iters = 132_366           # 300B tokens
