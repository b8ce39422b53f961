# `make demo SCALE=gpu`: the same pipeline as demo_cpu.py with a bigger model and more steps, for one GPU
# (two runs share it side by side). English D0 is only ~1.2M tokens, so at this scale D0 is repeated ~6 times:
# the runs stay comparable with each other, but the absolute losses are those of a model that has seen its
# English several times. Budgets and learning rates are in the Makefile (SCALE=gpu).
out_dir = 'out-demo-gpu'
n_layer = 6
n_head = 6
n_embd = 384
block_size = 256
position = 'rotary'
rotary_pct = 0.25
parallel_residual = True
tie_embeddings = False
gelu_approximate = 'none'
bias = False
dropout = 0.0
batch_size = 32
gradient_accumulation_steps = 1
warmup_iters = 0.02
weight_decay = 0.1
grad_clip = 1.0
val_data = ['en', 'de']
eval_interval = 50
eval_windows = 256
log_interval = 50
compile = True
dtype = 'auto'
auto_resume = True
