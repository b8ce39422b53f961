# The anneal branch of the infinite schedule's SlimPajama continuation (inf_cpt_pile_slimpajama.py): exponential
# annealing from η_const 1.65e-4 to η_min 3e-5 over 18,531 steps (41.9B tokens) of the same 5%-replay mixture,
# with the main line's AdamW state. The result is the infinite-schedule counterpart of cpt_pile_slimpajama.py
# (re-warm + cosine re-decay, 5% replay; paper Pile / SlimPajama / average 2.23 / 2.51 / 2.37) at the same
# 132,366 steps of SlimPajama compute (Ibrahim et al. 2024, arXiv 2403.08763).
#
#   torchrun --standalone --nproc_per_node=8 train.py config/inf_cpt_pile_slimpajama_anneal.py
#
# Cost (--dry_run=True): 405.3M parameters, 41.9B tokens, ~80 H100-hours at 40% MFU, ~60 at 50%.
import os
exec(open(os.path.join(os.path.dirname(__file__), 'base_paper.py')).read())  # the paper's shared recipe
_T = 132_366
out_dir = 'out/inf_cpt_pile_slimpajama_anneal'
init_from = 'out/inf_cpt_pile_slimpajama'  # or any kept step of it: 'out/inf_cpt_pile_slimpajama/step_060000'
reset_optimizer = False
continue_schedule = False
data = {'slimpajama': 0.95}        # SlimPajama's stream continues: windows the main line did not read
replay = {'pile': 0.05}            # and the main line's replay stream continues too
val_data = ['pile', 'slimpajama']
max_iters = _T - round(0.01 * _T) - int(0.85 * _T)   # 18,531
lr_schedule = 'anneal'
warmup_iters = 0
schedule_args = {'start_lr': 1.65e-4, 'shape': 'exponential'}
