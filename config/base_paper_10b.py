# The paper's recipe at 10B (Ibrahim et al. 2024, arXiv 2403.08763): base_paper.py with the 10B model and what it
# needs. Not a run itself: the 10B configs exec this file first.
#
# Model: 36 layers, d_model 4608, 36 heads, the GPT-NeoX/Pythia block of the 405M; 9,638.7M parameters here. (The
# authors' gpt-neox config for it is configs/iclr_models/7_1B.yml: 9.64B with their vocab padding.)
# Memory: AdamW in fp32 needs 16 bytes per parameter (weights, gradients, two moments): 154 GB, more than one GPU
# holds, so FSDP shards it (19 GB per GPU on 8 GPUs) and activation checkpointing keeps only each block's input
# (36 x 3 x 2048 x 4608 bf16 = 2 GB per micro-batch) at ~1/3 more compute (not counted in MFU). Across nodes, set
# replicate to the node count (HSDP: shard within a node, replicate across nodes; docs/scale.md).
import os
exec(open(os.path.join(os.path.dirname(__file__), 'base_paper.py')).read())
preset = 'neox-10b'
fsdp = True                   # FSDP2: parameters, gradients and optimizer state sharded over the GPUs
activation_checkpointing = True
batch_size = 3                # divides 1104 / world size at 1, 2, 4, 8 and 16 GPUs (8 GPUs: 46 micro-steps)
learning_rate = 1.2e-4        # η_max at 10B
min_lr = 1.2e-5               # η_min = 0.1 η_max
eval_interval = 250           # a step is ~45 s on 8 H100s at 40% MFU: an eval + sharded checkpoint every ~3 h
log_interval = 1
keep_every = 0                # a sharded 10B checkpoint with AdamW's state is 154 GB: keep only the last two
