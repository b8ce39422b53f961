# The infinite schedule's main line continued on SlimPajama with 5% replay (405M; Ibrahim et al. 2024,
# arXiv 2403.08763): no re-warm, no optimizer reset. It picks the schedule up where inf_pile_405m.py stopped
# (continue_schedule: step 113,835 of the same function, in its constant phase) and stays at η_const 1.65e-4 for
# SlimPajama's main-line share (113,835 steps, 257.4B tokens: 244.5B SlimPajama + 12.9B Pile replayed). Its anneal
# branch (inf_cpt_pile_slimpajama_anneal.py, 18,531 steps) finishes the model; together they are the 132,366 steps
# (300B tokens) of the cosine recipe, cpt_pile_slimpajama.py (paper, 5% replay, Pile / SlimPajama / average:
# 2.23 / 2.51 / 2.37). The paper's claim: the infinite schedule matches re-warm + re-decay without re-warming.
# Chain more datasets the same way: init_from this run, continue_schedule=True, reset_optimizer=False.
#
#   torchrun --standalone --nproc_per_node=8 train.py config/inf_cpt_pile_slimpajama.py
#
# Cost (--dry_run=True): 405.3M parameters, 257.4B tokens, ~490 H100-hours at 40% MFU, ~390 at 50%.
import os
exec(open(os.path.join(os.path.dirname(__file__), 'base_paper.py')).read())  # the paper's shared recipe
_T = 132_366
out_dir = 'out/inf_cpt_pile_slimpajama'
init_from = 'out/inf_pile_405m'
reset_optimizer = False            # keep AdamW's state across the dataset boundary
continue_schedule = True           # schedule step = the source run's last step + this run's step: no re-warm
data = {'slimpajama': 0.95}
replay = {'pile': 0.05}            # only Pile windows the main line read, reshuffled (data.py)
val_data = ['pile', 'slimpajama']
max_iters = round(0.01 * _T) + int(0.85 * _T)   # 113,835: SlimPajama's budget less its anneal branch
lr_schedule = 'infinite'           # the same function as the main line (same T): constant from here on
warmup_iters = round(0.01 * _T)
schedule_args = {'cooldown': 'inv_sqrt', 'alpha': 10.0, 'cooldown_frac': 0.6, 'constant_frac': 0.85,
                 'const_lr': 1.65e-4, 'anneal': 'none', 'total_iters': _T}
