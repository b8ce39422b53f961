# Shared by every test file. Without a CUDA device, run Triton kernels in Triton's CPU interpreter: the variable
# must be set before kernels.py is imported (its @triton.jit decorators read it), hence the very top of conftest.
import os

import pytest
import torch

from synth import make_bin

if not torch.cuda.is_available():
    os.environ.setdefault('TRITON_INTERPRET', '1')


@pytest.fixture(scope='module')
def bins(tmp_path_factory):
    """A data dir with synthetic 'en' and 'de' bins (one tokenizer), shared by the tests of one module."""
    d = tmp_path_factory.mktemp('data')
    make_bin(d, 'en', seed=1)
    make_bin(d, 'de', seed=2)
    return str(d)
