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
import os
exec(open(os.path.join(os.path.dirname(__file__), 'base_paper.py')).read())  # the paper's shared recipe
_pile_iters, _slimpajama_iters = 132_366, 132_366   # 300B + 300B tokens
out_dir = 'out/union_pile_slimpajama'
data = {'pile': 0.5, 'slimpajama': 0.5}
val_data = ['pile', 'slimpajama']
max_iters = _pile_iters + _slimpajama_iters          # 264,732 steps = 598.6B tokens
