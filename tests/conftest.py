# Shared by every test file. Without a CUDA device, run Triton kernels in Triton's CPU interpreter: the variable
# must be set before kernels.py is imported (its @triton.jit decorators read it), hence the very top of conftest.
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault('TRITON_INTERPRET', '1')
