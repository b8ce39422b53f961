# The paper's infinite learning-rate schedule, main line, on the Pile (405M; Ibrahim et al. 2024, arXiv 2403.08763,
# and the authors' gpt-neox fork, branch inf_lr: adam_infinv_lr3e-4_3e-5_wu-001.yml). Over T = 132,366 steps
# (the Pile's 300B tokens) the full schedule is: warmup over 1% to η_max 3e-4; inverse-sqrt cooldown (α = 10) over
# 0.6 T to η_const 1.65e-4; constant until n = t - T_w = 0.85 T; exponential annealing to η_min 3e-5 at t = T.
# The paper's finding: it reaches the cosine schedule's final loss (pretrain_pile_405m.py) and lets later datasets
# continue without re-warming. docs/paper.md gives no separate loss table for these runs.
#
# This run is the main line: it stops where the constant phase ends (t = T_w + 0.85 T = 113,835 steps, 257.4B
# tokens), so its checkpoint is a constant-phase one that the next dataset continues from
# (inf_cpt_pile_slimpajama.py). The annealed Pile model is a branch (inf_pile_405m_anneal.py: the last 18,531
# steps, 41.9B tokens); main line + branch = 132,366 steps = the cosine run's budget and compute.
# anneal='none' keeps the main line constant past 0.85 T; total_iters pins T for every run on this line.
#
#   torchrun --standalone --nproc_per_node=8 train.py config/inf_pile_405m.py
#
# Cost (--dry_run=True): 405.3M parameters, 257.4B tokens, ~490 H100-hours at 40% MFU, ~390 at 50%.
import os
exec(open(os.path.join(os.path.dirname(__file__), 'base_paper.py')).read())  # the paper's shared recipe
_T = 132_366                       # the schedule's T: 300B tokens
_warmup = round(0.01 * _T)         # 1,324 steps
out_dir = 'out/inf_pile_405m'
data = {'pile': 1.0}
max_iters = _warmup + int(0.85 * _T)   # 113,835: the end of the constant phase
lr_schedule = 'infinite'           # η_max 3e-4; η_min 3e-5 is reached by the anneal branches
warmup_iters = _warmup
schedule_args = {'cooldown': 'inv_sqrt', 'alpha': 10.0, 'cooldown_frac': 0.6, 'constant_frac': 0.85,
                 'const_lr': 1.65e-4, 'anneal': 'none', 'total_iters': _T}
