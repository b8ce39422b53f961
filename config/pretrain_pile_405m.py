# Pre-train the paper's 405M model (Pythia-410M shape) on the Pile: D0 for every continual run at 405M.
# Ibrahim et al. 2024 (arXiv 2403.08763): 24 layers, d_model 1024, 16 heads, rotary on 25% of each head,
# parallel attention + MLP, untied embeddings, sequence 2048; 300B tokens = 132,366 steps of 1104 x 2048 tokens;
# AdamW (0.9, 0.95), eps 1e-8, weight decay 0.1, clip 1.0; warmup 1% to 3e-4, cosine to 3e-5.
# Its checkpoint is the starting point of the paper's Pile -> SlimPajama and Pile -> German tables
# (cpt_pile_slimpajama.py, cpt_en_de.py).
#
#   python -m prepare.pile --max_tokens 300e9                                  # DATA_DIR/pile/
#   torchrun --standalone --nproc_per_node=8 train.py config/pretrain_pile_405m.py
#
# Cost (python train.py config/pretrain_pile_405m.py --dry_run=True): 405.3M parameters, 2.73 GFLOPs/token,
# 299.3B tokens, 8.16e20 FLOPs: ~570 H100-hours at 40% MFU, ~460 at 50%.
import os
exec(open(os.path.join(os.path.dirname(__file__), 'base_paper.py')).read())  # the paper's shared recipe
out_dir = 'out/pile_405m'
data = {'pile': 1.0}
max_iters = 132_366       # 300B tokens (132,366 x 2,260,992 = 299.3B)
