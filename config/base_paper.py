# The recipe every paper run shares (Ibrahim et al. 2024, arXiv 2403.08763; the numbers are docs/paper.md's), at 405M.
# Not a run itself: each paper config execs this file first, then states only what makes it that run.
#
# Model: the Pythia-410M shape, the paper's "405M" (405,334,016 parameters: 24 layers, d_model 1024, 16 heads,
# rotary on 25% of each head, parallel attention + MLP, untied embeddings), with the authors' GPT-NeoX init
# (small_init / wang_init, model.py). vocab_size is left unset: the model follows the bins (GPT-NeoX-20B tokenizer
# 50,277, gpt2 50,257; both pad to 50,304), and --dry_run counts the preset's 50,277.
preset = 'pythia-410m'
block_size = 2048
# the paper's batch: 1104 sequences x 2048 tokens = 2,260,992 tokens per optimizer step, whatever the GPU count.
# batch_size 6 per GPU per micro-step divides 1104 / world size at 1, 2, 4 and 8 GPUs (8 GPUs: 1104 = 8 x 6 x 23
# micro-steps; 1 GPU: 184). At 16 GPUs use --batch_size=3 (16 x 3 x 23).
total_batch_size = 1104
batch_size = 6
# AdamW (0.9, 0.95), eps 1e-8, weight decay 0.1, clip 1.0; warmup over 1% to η_max 3e-4, cosine to η_min 3e-5
learning_rate = 3e-4
min_lr = 3e-5
lr_schedule = 'cosine'
warmup_iters = 0.01
weight_decay = 0.1
beta1, beta2, eps = 0.9, 0.95, 1e-8
grad_clip = 1.0
dropout = 0.0
compile = True            # bf16 ('auto' dtype) + torch.compile; DDP: the 405M fits on one GPU without sharding
eval_interval = 1000      # ~2.3B tokens between evals and checkpoints (SIGTERM/SIGUSR1 also checkpoint)
eval_windows = 480        # ~1M val tokens per dataset; splits into equal whole batches over 1-16 GPUs
log_interval = 10
# On a cluster a job is preempted and requeued: the same command resumes its own newest checkpoint. The last two
# checkpoints are kept (~4.9 GB each with AdamW's state: one to fall back to) and every 5,000th step's for good,
# so any of them can start a branch (init_from=out/<run>/step_005000)
auto_resume = True
keep_last = 2
keep_every = 5000
