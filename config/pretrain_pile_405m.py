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
out_dir = 'out/pile_405m'
data = {'pile': 1.0}
preset = 'pythia-410m'     # 405,334,016 parameters, the paper's "405M"
block_size = 2048
# vocab_size is left unset: the model follows the bins (GPT-NeoX-20B tokenizer 50,277, gpt2 50,257; both pad to
# 50,304), and --dry_run counts the preset's 50,277.
# the paper's batch: 1104 sequences x 2048 tokens = 2,260,992 tokens per optimizer step, whatever the GPU count.
# batch_size 6 sequences per GPU per micro-step divides 1104 / world size at 1, 2, 4 and 8 GPUs
# (8 GPUs: 1104 = 8 x 6 x 23 micro-steps; 1 GPU: 184 micro-steps). At 16 GPUs use --batch_size=3 (16 x 3 x 23).
total_batch_size = 1104
batch_size = 6
max_iters = 132_366       # 300B tokens (132,366 x 2,260,992 = 299.3B)
learning_rate = 3e-4      # η_max
min_lr = 3e-5             # η_min = 0.1 η_max
lr_schedule = 'cosine'
warmup_iters = 0.01       # 1% of the run: 1,324 steps
weight_decay = 0.1
beta1, beta2, eps = 0.9, 0.95, 1e-8
grad_clip = 1.0
dropout = 0.0
compile = True            # bf16 ('auto' dtype) + torch.compile; DDP: the 405M fits on one GPU without sharding
eval_interval = 1000      # ~2.3B tokens between evals (and checkpoints; SIGTERM/SIGUSR1 also checkpoint)
eval_windows = 480        # ~1M val tokens per dataset; splits into equal whole batches over 1-16 GPUs
log_interval = 10
