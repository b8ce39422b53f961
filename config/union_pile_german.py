# The strong-shift union baseline: the 405M model re-trained from scratch on Pile ∪ German Common Crawl, 500B
# tokens (300B Pile + ~200B German), one warmup (1%) to 3e-4 and one cosine to 3e-5 (Ibrahim et al. 2024,
# arXiv 2403.08763). Paper, final validation loss Pile / German / average: union 2.26 / 1.25 / 1.75;
# Pile -> German with 25% replay (cpt_en_de.py, 200B tokens after the 300B Pile run) 2.33 / 1.16 / 1.75.
# The union is a mixture weighted by the token budgets (300B : 200B = 0.6 : 0.4); the steps are the sum of the
# Pile run's and the German run's.
#
#   torchrun --standalone --nproc_per_node=8 train.py config/union_pile_german.py
#
# Cost (--dry_run=True): 405.3M parameters, 499.3B tokens, ~960 H100-hours at 40% MFU, ~760 at 50%.
import os
exec(open(os.path.join(os.path.dirname(__file__), 'base_paper.py')).read())  # the paper's shared recipe
_pile_iters = 132_366                                      # 300B tokens
_german_iters = round(200e9 / (1104 * 2048))               # 88,457 steps = 200B tokens (cpt_en_de.py)
out_dir = 'out/union_pile_german'
data = {'pile': 0.6, 'german': 0.4}
val_data = ['pile', 'german']
max_iters = _pile_iters + _german_iters                    # 220,823 steps = 499.3B tokens
