# `make demo SCALE=gpu`: the pipeline of demo_cpu.py with a bigger model and batch, for one GPU (two runs share
# it side by side). Budgets and learning rates are in the Makefile (SCALE=gpu). Not yet run on a GPU.
import os
exec(open(os.path.join(os.path.dirname(__file__), 'demo_cpu.py')).read())  # the demo's shared settings
out_dir = 'out-demo-gpu'
n_layer = 6
n_head = 6
n_embd = 384
block_size = 256
batch_size = 32
eval_windows = 256
