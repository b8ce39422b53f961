# Continual pre-training of the 405M Pile model on SlimPajama with 5% replay: the paper's weak-shift recipe
# (Ibrahim et al. 2024, arXiv 2403.08763): load the Pile checkpoint, reset AdamW, re-warm to η_max 3e-4 over 1%,
# re-decay (cosine) to η_min 3e-5 over SlimPajama's 300B-token budget. Replay is compute-equivalent: 5% of every
# batch comes from the Pile, so the run sees 285B SlimPajama + 15B Pile tokens (132,366 steps of 1104 x 2048).
# Paper, final validation loss Pile / SlimPajama / average:
#     0% replay 2.44 / 2.50 / 2.47     1% 2.26 / 2.50 / 2.38     5% 2.23 / 2.51 / 2.37     50% 2.16 / 2.54 / 2.35
#     union baseline (retrained on Pile ∪ SlimPajama, 600B; union_pile_slimpajama.py) 2.17 / 2.53 / 2.35
#
#   python -m prepare.slimpajama --max_tokens 300e9                            # DATA_DIR/slimpajama/
#   torchrun --standalone --nproc_per_node=8 train.py config/cpt_pile_slimpajama.py
#
# Other rows of the paper's tables from this file:
#   0% / 1% / 50% replay:        --data="{'slimpajama': 0.99}" --replay="{'pile': 0.01}"  (and so on; 0%: --replay={})
#   constant η_min, no re-warm:  --lr_schedule=constant --learning_rate=3e-5
#   re-warm without re-decay:    --lr_schedule=linear_warmup
#   re-warm from η_min:          --schedule_args="{'warmup_from_min': True}"
# Replay draws only the Pile windows pre-training read (its checkpoint records them), in a fresh order; SlimPajama
# starts its own stream. `python -m eval.audit out/cpt_pile_slimpajama` lists what every step read.
# Cost (--dry_run=True): 405.3M parameters, 299.3B tokens, ~570 H100-hours at 40% MFU, ~460 at 50%.
import os
exec(open(os.path.join(os.path.dirname(__file__), 'base_paper.py')).read())  # the paper's shared recipe
out_dir = 'out/cpt_pile_slimpajama'
init_from = 'out/pile_405m'   # pretrain_pile_405m.py's run: the weights load, the shape comes from the checkpoint
reset_optimizer = True        # the paper resets AdamW at the dataset boundary
data = {'slimpajama': 0.95}
replay = {'pile': 0.05}       # only Pile windows pre-training read, reshuffled (data.py)
val_data = ['pile', 'slimpajama']  # D0 and D1 losses and their mean: the paper's columns
max_iters = 132_366           # 300B tokens, as much compute as pre-training: re-warm to η_max, re-decay to η_min
