# The laptop replication behind `make demo` (2 CPU cores, minutes): the paper's 405M Pythia shape in miniature
# (rotary on 25% of each head, parallel attention + MLP, untied embeddings), on the demo corpora of prepare/demo.py
# with their 8k BPE trained on English (D0). Budgets and learning rates are the Makefile's, so that every run of
# the demo is one visible command there; this file holds what all the runs share.
out_dir = 'out-demo-cpu'
n_layer = 4
n_head = 4
n_embd = 128
block_size = 128
position = 'rotary'
rotary_pct = 0.25
parallel_residual = True
tie_embeddings = False
gelu_approximate = 'none'
bias = False
dropout = 0.0
batch_size = 16
gradient_accumulation_steps = 1
warmup_iters = 0.02       # a tiny model wants a little more than the paper's 1%
weight_decay = 0.1
grad_clip = 1.0
val_data = ['en_docs', 'de_man']
eval_interval = 50        # evaluate (96 + 96 windows of 128 tokens) and checkpoint every 50 steps
eval_windows = 96         # 12k tokens per dataset, the same windows in every run
log_interval = 50
compile = True
dtype = 'auto'            # bf16 autocast on CPUs that have it (AVX-512 BF16), else fp32
auto_resume = True        # an interrupted demo picks each run up where it stopped
