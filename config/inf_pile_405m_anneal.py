# The anneal branch of the infinite schedule's Pile main line (inf_pile_405m.py): from its constant-phase
# checkpoint, with its AdamW state, anneal exponentially from η_const 1.65e-4 to η_min 3e-5 over the schedule's
# last 18,531 steps (t = T_w + 0.85 T .. T, T = 132,366; 41.9B Pile tokens), giving the finished Pile model of the
# paper's infinite-schedule runs (Ibrahim et al. 2024, arXiv 2403.08763): η = η_const (η_min/η_const)^x. Main line +
# this branch = 132,366 steps = 299.3B tokens, the cosine run's budget, and the same LRs as one `infinite` run
# with anneal='exponential'. The branch writes its own out_dir: the main line stays untouched and continues
# (inf_cpt_pile_slimpajama.py).
#
#   torchrun --standalone --nproc_per_node=8 train.py config/inf_pile_405m_anneal.py
#
# Cost (--dry_run=True): 405.3M parameters, 41.9B tokens, ~80 H100-hours at 40% MFU, ~60 at 50%.
import os
exec(open(os.path.join(os.path.dirname(__file__), 'base_paper.py')).read())  # the paper's shared recipe
_T = 132_366
out_dir = 'out/inf_pile_405m_anneal'
init_from = 'out/inf_pile_405m'    # its newest checkpoint; any kept one branches too: 'out/inf_pile_405m/step_060000'
reset_optimizer = False            # a branch of one run: keep AdamW's state
continue_schedule = False          # the anneal schedule counts its own steps from 0
data = {'pile': 1.0}               # the Pile's stream continues: the windows the main line did not read
max_iters = _T - round(0.01 * _T) - int(0.85 * _T)   # 18,531
lr_schedule = 'anneal'
warmup_iters = 0                   # no warmup: it starts from a trained model
schedule_args = {'start_lr': 1.65e-4, 'shape': 'exponential'}
