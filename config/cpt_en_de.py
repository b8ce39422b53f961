# Continual pre-training of the 405M Pile (English) model on German Common Crawl with 25% replay: the paper's
# strong-shift recipe (Ibrahim et al. 2024, arXiv 2403.08763): load the Pile checkpoint, reset AdamW, re-warm to
# η_max 3e-4 over 1%, cosine to η_min 3e-5 over German's ~200B-token budget. Compute-equivalent replay: 25% of
# every batch comes from the Pile, so the run sees 150B German + 50B Pile tokens.
# Paper, final validation loss Pile / German / average:
#     0% replay 3.56 / 1.11 / 2.34     1% 2.83 / 1.12 / 1.97     5% 2.57 / 1.12 / 1.85
#     25% 2.33 / 1.16 / 1.75           50% 2.24 / 1.22 / 1.73
#     union baseline (retrained on Pile ∪ German, 500B; union_pile_german.py) 2.26 / 1.25 / 1.75
#   no-replay LR sweep (Pile / German): constant η_min 3.22 / 1.21; η_max 1.5e-4 3.47 / 1.13; 3e-4 3.56 / 1.11;
#   6e-4 3.63 / 1.11. Those rows: --data="{'german': 1.0}" --replay={} with --learning_rate=1.5e-4 --min_lr=1.5e-5 (and so on),
#   or --lr_schedule=constant --learning_rate=3e-5 for constant η_min.
#
#   python -m prepare.german --max_tokens 200e9        # DATA_DIR/german/, with the tokenizer the Pile was prepared with
#   torchrun --standalone --nproc_per_node=8 train.py config/cpt_en_de.py
#
# Cost (--dry_run=True): 405.3M parameters, 200.0B tokens, ~380 H100-hours at 40% MFU, ~310 at 50%.
import os
exec(open(os.path.join(os.path.dirname(__file__), 'base_paper.py')).read())  # the paper's shared recipe
_tokens = 200e9               # the paper's German budget (~200B)
out_dir = 'out/cpt_en_de'
init_from = 'out/pile_405m'   # pretrain_pile_405m.py's run
reset_optimizer = True
data = {'german': 0.75}
replay = {'pile': 0.25}       # only Pile windows pre-training read, reshuffled (data.py)
val_data = ['pile', 'german']
max_iters = round(_tokens / (1104 * 2048))  # 88,457 steps = 200.0B tokens; warmup 885
