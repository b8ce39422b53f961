"""
What every script needs once at run time (nanochat's common.py is the model): the clean-error policy, the device
and its dtype, distributed start and end, the accelerator's peak FLOPs, atomic and durable file writes, and
the micro-steps of an optimizer step. train.py, sample.py, eval/, prepare/ and bench/ stand on it; it imports
nothing of this project (docs/design.md: how the files depend on each other).
"""
import json
import os
import signal
import sys
import threading
import traceback
from contextlib import nullcontext

import torch
import torch.distributed as dist

HERE = os.path.dirname(os.path.abspath(__file__))
# dense bf16 peak of one accelerator, for MFU (NVIDIA's data sheets; the sparse figures are twice these), by a part
# of the name torch reports ('NVIDIA H100 80GB HBM3' is the SXM card), the first that matches: the PCIe and NVL
# cards are clocked lower than the SXM ones of the same name
PEAK_FLOPS = {'H100 PCIe': 756e12, 'H100 NVL': 835e12, 'H200 NVL': 835e12, 'H100': 989e12, 'H200': 989e12,
              'A100': 312e12}


def clean_errors():
    """Bad input stops with one line, not a traceback: a ValueError or FileNotFoundError raised by this project's
    own code (its checks) prints just its message. Errors from inside torch or numpy, which mean a bug rather than
    bad input, keep their full traceback."""
    def hook(kind, err, tb):
        frames = traceback.extract_tb(tb)
        where = os.path.abspath(frames[-1].filename) if frames else ''
        ours = where.startswith(HERE + os.sep) and 'site-packages' not in where  # not .venv's libraries
        if issubclass(kind, (ValueError, FileNotFoundError)) and ours:
            # no sys.exit here: torch.distributed wraps this hook to prefix each line with the rank, and needs it
            # to return; Python then exits with status 1
            print(f"error: {err}", file=sys.stderr)
        else:
            sys.__excepthook__(kind, err, tb)
    sys.excepthook = hook


# -----------------------------------------------------------------------------------------------------------------
# files: written whole or not at all, and still there after a power cut


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, write):
    """write(f) fills a binary file at a temporary name; it is fsync'd, renamed over `path`, and the folder fsync'd.
    Readers see the old file or the new one, never half of one; a write that fails leaves the old one and no
    temporary behind."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(os.path.dirname(os.path.abspath(path)))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def durable_replace(tmp, path):
    """Renames a finished file (written in pieces, e.g. a token bin streamed by workers) over `path`, with the
    fsyncs that make the rename survive a power cut: the file's data first, the folder's entry after."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def write_text(path, text):
    atomic_write(path, lambda f: f.write(text.encode('utf-8')))


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=1) + '\n')


def append_jsonl(path, row):
    """One row appended to a JSON-lines log (metrics.jsonl), flushed and fsync'd: a crash loses at most the line
    being written, which read_jsonl then drops."""
    with open(path, 'a') as f:
        f.write(json.dumps(row) + '\n')
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path):
    """The rows of a JSON-lines log. A torn last line (a crash mid-append) is dropped with a warning; a bad line
    before it means the file is not a log of ours, and stops with one line. No file: no rows."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = f.read().splitlines()
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i + 1 < len(lines):
                raise ValueError(f"{path} line {i + 1} is not JSON ({line[:60]!r}): not a log that train.py "
                                 f"wrote; move it away to start a fresh one") from None
            print(f"warning: {path} ends in a torn line (a crash mid-write), dropped: {line[:60]!r}",
                  file=sys.stderr)
    return rows


# -----------------------------------------------------------------------------------------------------------------
# device, dtype, processes


def default_device():
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def device_type(device):
    return 'cuda' if str(device).startswith('cuda') else 'cpu'


def resolve_dtype(dtype, device, training=True):
    """'auto' is bf16 where the device computes it (training: any GPU or CPU with bf16 support; evaluation: CUDA
    only, so CPU scores stay exact fp32); others are themselves. Training refuses fp16: it would need loss scaling."""
    allowed = ('auto', 'bfloat16', 'float32') + (() if training else ('float16',))
    if dtype not in allowed:
        raise ValueError(f"dtype={dtype!r} is not one of {allowed}" + (" (fp16 would need loss scaling)" if training
                                                                        and dtype == 'float16' else ''))
    if dtype != 'auto':
        return dtype
    if device_type(device) == 'cuda':
        return 'bfloat16' if torch.cuda.is_bf16_supported() else 'float32'
    return 'bfloat16' if training and torch.ops.mkldnn._is_mkldnn_bf16_supported() else 'float32'


def autocast(device, dtype, training=True):
    """The mixed-precision context of a dtype ('auto' resolved as resolve_dtype does): matmuls in bf16 (or fp16)
    under autocast while the weights stay fp32; nothing at all for float32."""
    dtype = resolve_dtype(dtype, device, training)
    return nullcontext() if dtype == 'float32' else torch.autocast(device_type(device), dtype=getattr(torch, dtype))


def init_distributed(device, backend='', alone=False):
    """torchrun sets RANK and WORLD_SIZE: join its process group (nccl on CUDA, gloo on CPU) and take this
    process's GPU. Without torchrun, alone=True still makes a one-process group (FSDP needs one).
    Returns (under torchrun, rank, local_rank, world_size, device). TF32 matmuls are allowed (the fp32 parts of
    a CUDA step, at no cost the loss can see)."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    backend = backend or ('nccl' if device.startswith('cuda') else 'gloo')
    if int(os.environ.get('RANK', -1)) == -1:
        if alone:
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
        return False, 0, 0, 1, device
    dist.init_process_group(backend=backend)
    local_rank = int(os.environ['LOCAL_RANK'])
    if device.startswith('cuda'):
        device = f'cuda:{local_rank}'
        torch.cuda.set_device(device)
    return True, dist.get_rank(), local_rank, dist.get_world_size(), device


def teardown(torchrun):
    if dist.is_initialized():  # torchrun, or a one-process FSDP run
        dist.barrier()
        dist.destroy_process_group()
    if torchrun:
        # gloo sometimes aborts in its destructor after a correct run (docs/machine-notes.md); leave without running it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def all_reduce(values, device, op=dist.ReduceOp.SUM):
    """A list of numbers summed (or op'd) over every process; the list itself when there is no group."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=op)
    return t.tolist()


def micro_steps(batch_size, grad_accum, total_batch_size, world_size):
    """Micro-steps per optimizer step over all processes: total_batch_size / batch_size when it is set (the paper's
    1104 sequences from any GPU count), else grad_accum; either way a multiple of the process count."""
    if total_batch_size:
        if total_batch_size % (batch_size * world_size):
            raise ValueError(f"total_batch_size={total_batch_size} is not a multiple of batch_size={batch_size} x "
                             f"{world_size} processes; choose a batch_size that divides "
                             f"{total_batch_size // world_size}")
        grad_accum = total_batch_size // batch_size
    if grad_accum % world_size:
        raise ValueError(f"gradient_accumulation_steps={grad_accum} must be a multiple of the number of processes "
                         f"({world_size})")
    return grad_accum


def preemption_flag():
    """A flag that SIGTERM and SIGUSR1 (what a cluster sends before it kills a job) set, for the loop to check."""
    flag = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, lambda signum, frame: flag.set())
    return flag


def peak_flops(device):
    """Dense bf16 peak FLOP/s of this GPU (PEAK_FLOPS), 0 when unknown or on a CPU: MFU is then not reported."""
    if not str(device).startswith('cuda'):
        return 0.0
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), 0.0)
