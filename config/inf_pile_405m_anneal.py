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
_T = 132_366
out_dir = 'out/inf_pile_405m_anneal'
init_from = 'out/inf_pile_405m'
reset_optimizer = False            # a branch of one run: keep AdamW's state
continue_schedule = False          # the anneal schedule counts its own steps from 0
data = {'pile': 1.0}               # the Pile's stream continues: the windows the main line did not read
preset = 'pythia-410m'              # the checkpoint decides the shape; this names it for --dry_run
block_size = 2048
total_batch_size = 1104
batch_size = 6
max_iters = _T - round(0.01 * _T) - int(0.85 * _T)   # 18,531
learning_rate = 3e-4
min_lr = 3e-5
lr_schedule = 'anneal'
warmup_iters = 0                   # no warmup: it starts from a trained model
schedule_args = {'start_lr': 1.65e-4, 'shape': 'exponential'}
weight_decay = 0.1
beta1, beta2, eps = 0.9, 0.95, 1e-8
grad_clip = 1.0
dropout = 0.0
eval_interval = 1000
eval_windows = 480
log_interval = 10
