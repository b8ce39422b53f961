# The laptop replication behind `make demo` (2 CPU cores, minutes): the paper's 405M Pythia shape in miniature
# (rotary on 25% of each head, parallel attention + MLP, untied embeddings), on the demo corpora of prepare/demo.py
# with their 1k BPE trained on English (D0). The model follows the sweep's shape rule, n_layer = n_head =
# n_embd / 32; its width is the largest whose whole demo (3 seeds, D0 at 30 tokens per non-embedding parameter)
# fits in 20 minutes from a fresh clone (README, the demo). Budgets and learning rates are the Makefile's, so that
# every run of the demo is one visible command there; this file holds what all the runs share.
out_dir = 'out-demo-cpu'
n_layer = 2
n_head = 2
n_embd = 64
block_size = 128
position = 'rotary'
rotary_pct = 0.25
parallel_residual = True
tie_embeddings = False
gelu_approximate = 'none'
bias = False
dropout = 0.0
batch_size = 32           # 4,096 tokens a step: twice the old demo's, which small models need to keep a core busy
gradient_accumulation_steps = 1
warmup_iters = 0.02       # a tiny model wants a little more than the paper's 1%
weight_decay = 0.1
grad_clip = 1.0
val_data = ['en_docs_demo1k', 'de_man_demo1k', 'en2_demo1k']
eval_interval = 50        # the Makefile sets it per budget: 9 evaluations in D0
eval_windows = 128        # 16k tokens per dataset, the same windows in every run
log_interval = 50
compile = True
dtype = 'auto'            # bf16 autocast on CPUs that have it (AVX-512 BF16), else fp32
auto_resume = True        # an interrupted demo picks each run up where it stopped
