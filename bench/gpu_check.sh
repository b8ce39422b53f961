#!/usr/bin/env bash
# The one script to run on a GPU machine (one H100/H200, no network, no project venv): the machine's own python3
# with torch, triton, numpy and pytest is all it needs. In at most 8 minutes from cold caches it writes, under $OUT
# (default out/gpu_check), report.md and the raw log of every stage, most important first:
#   env        versions, the device, which LM-head weight-grad path this torch takes, train.py's imports load
#   lm_head    the fused LM head + loss against eager and compiled: memory and time (bench_kernels.py), at once
#   kernels    every other kernel: ms, peak MiB and max error, Triton vs twin vs compiled twin, at the 405M and
#              10B widths (16k tokens, V 50304)
#   train_*    train.py on synthetic bins, pythia-410m at sequence 2048, batch 8, bf16, compiled: the twins, every
#              kernel, one-process FSDP2, activation checkpointing: tokens/s, MFU, steady-state peak memory, and
#              the first step's seconds (compilation) apart; evaluation only at the end, work files on /dev/shm
#   tests      pytest tests/test_kernels.py -k: the 14 tests whose answer only a GPU gives, compiled for it
#
#     bash bench/gpu_check.sh            # on the GPU machine
#     bash bench/gpu_check.sh --smoke    # anywhere: the whole script on CPU, Triton interpreter, tiny shapes (CI)
#
# Each stage runs under its own time limit (T_ENV, T_DATA, T_LM, T_KERNELS, T_TRAIN, T_TRAIN2, T_TESTS seconds;
# their sum is 480) and a stage that fails or runs out of time is reported with the tail of its log while the
# others go on; the exit status is 1 if any stage did not pass. The limits are estimates (no GPU has run this yet):
# the first GPU run's stages.tsv gives the real times. PYTHON picks the interpreter (default python3). Caches
# (Triton, inductor) stay where torch puts them, so a second run on the same machine compiles less.
set -uo pipefail
cd "$(dirname "$0")/.."

SMOKE=0
case "${1:-}" in
    --smoke) SMOKE=1 ;;
    '') ;;
    *) echo "usage: bash bench/gpu_check.sh [--smoke]  (OUT=folder for the report, PYTHON=interpreter)"; exit 2 ;;
esac
PY=${PYTHON:-python3}
OUT=${OUT:-out/gpu_check}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/*.log "$OUT"/*.jsonl "$OUT/stages.tsv" "$OUT/report.md"
# bins and train.py's run folders (a 405M checkpoint with AdamW is ~5 GB): in memory where the machine allows
SHM=/dev/shm; [ -d $SHM ] && [ -w $SHM ] || SHM=${TMPDIR:-/tmp}
WORK=$(mktemp -d -p "$SHM")
trap 'rm -rf "$WORK"' EXIT
T_ENV=${T_ENV:-15} T_DATA=${T_DATA:-15} T_LM=${T_LM:-50} T_KERNELS=${T_KERNELS:-100} T_TRAIN=${T_TRAIN:-80}
T_TRAIN2=${T_TRAIN2:-50} T_TESTS=${T_TESTS:-50}

if [ $SMOKE = 1 ]; then
    export TRITON_INTERPRET=1
    TESTS=(-k "rows_split_over_programs or real_vocab or head_dim_128")  # the whole file runs in the test suite
    KERNELS=(--smoke --widths=1024)
    VOCAB=64 STEPS=4 STEPS2=3 DROP=1 WINDOWS=4  # eval windows: one batch
    MODEL=(--n_layer=2 --n_head=2 --n_embd=32 --block_size=32 --batch_size=4 --compile=False --dtype=bfloat16
           --device=cpu)
else
    unset TRITON_INTERPRET
    # the tests whose answer only a GPU gives (cuBLAS's fp32 addmm, inductor's Triton around our ops, the LM head's
    # memory, dloss on CUDA, real shapes compiled), not the whole file: its ~111 cold Triton compiles would take
    # 20-90 s of a 50 s stage (docs/kernels.md); the whole file runs on CPU, interpreted, in the test suite
    GPU_TESTS="without_temporary or unrounded_loss_grad or compile_keeps_kernels or real_shape or real_vocab"
    TESTS=(-k "$GPU_TESTS or autocast_dtype or one_launch_per_attention")
    KERNELS=()
    # the GPT-NeoX tokenizer's vocab; the first DROP steps are dropped (compilation, allocator warm-up)
    VOCAB=50277 STEPS=10 STEPS2=6 DROP=2 WINDOWS=8
    MODEL=(--preset=pythia-410m --block_size=2048 --batch_size=8 --compile=True --dtype=bfloat16)
fi

stage() {  # stage NAME LIMIT COMMAND...: output in $OUT/NAME.log, status and seconds in $OUT/stages.tsv
    local name=$1 limit=$2 t0=$SECONDS status rc
    shift 2
    # SIGINT first: pytest still prints what ran, train.py stops without its SIGTERM checkpoint
    timeout -s INT -k 10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    case $rc in
        0) status=ok ;;
        124|137) status="timed out after $limit s" ;;
        *) status="failed (exit $rc)" ;;
    esac
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - t0))" "$limit" >> "$OUT/stages.tsv"
    echo "gpu_check: $name: $status ($((SECONDS - t0)) s)"
}

stage env "$T_ENV" "$PY" -c "
import os, platform, subprocess, sys
import numpy
print(f'python {platform.python_version()}, numpy {numpy.__version__}; {os.cpu_count()} CPU cores', flush=True)
import torch
print(f'torch {torch.__version__} (CUDA {torch.version.cuda})', flush=True)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    smi = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'], capture_output=True,
                         text=True).stdout.strip() if os.path.exists('/usr/bin/nvidia-smi') else '?'
    print(f'device: {p.name}, {p.multi_processor_count} SMs, {p.total_memory / 2**30:.0f} GiB, compute capability '
          f'{p.major}.{p.minor}, driver {smi}', flush=True)
else:
    print('device: CPU, Triton interpreter (smoke run: no number here is a GPU measurement)', flush=True)
import triton
print(f'triton {triton.__version__}', flush=True)
import checkpoint, configurator, data, kernels, model, prepare, schedules  # what train.py imports
extras = [m for m in ('datasets', 'wandb', 'lm_eval') if m in sys.modules]
print('train.py imports: ' + (f'pulled in {extras}, which the GPU machine lacks' if extras else
                                'ok, torch + numpy only'))
if torch.cuda.is_available():
    fast = kernels._fp32_addmm(torch.device('cuda'))
    print('LM-head weight grad under bf16: ' + ('added into its fp32 sum by cuBLAS (addmm out_dtype)' if fast else
          'a bf16 V x C temporary per chunk (this torch cannot addmm bf16 into fp32)'))
sys.exit(1 if extras else 0)
"
stage data "$T_DATA" "$PY" -c "
from prepare.synthetic import make_bin
make_bin('$WORK/data', 'synth', n_train=2_000_000, n_val=50_000, vocab_size=$VOCAB, seed=0)
print('synthetic bins: $WORK/data/synth, vocab $VOCAB')
"
LM='linear + cross_entropy'
stage lm_head "$T_LM" "$PY" bench/bench_kernels.py --only=kernels --cases="$LM" "${KERNELS[@]}"
stage kernels "$T_KERNELS" "$PY" bench/bench_kernels.py --only=kernels --skip="$LM" "${KERNELS[@]}"
train() {  # train NAME LIMIT STEPS ARGS...: one train.py arm; its metrics.jsonl is kept, its checkpoint is not
    local name=$1 limit=$2 steps=$3
    shift 3
    stage "train_$name" "$limit" "$PY" train.py "${MODEL[@]}" --data_dir="$WORK/data" --data="{'synth': 1.0}" \
        --vocab_size=$VOCAB --out_dir="$WORK/train_$name" --max_iters="$steps" --eval_interval=0 \
        --eval_windows=$WINDOWS --log_interval=1 --warmup_iters=0 "$@"
    cp "$WORK/train_$name/metrics.jsonl" "$OUT/train_$name.jsonl" 2>/dev/null
    rm -rf "$WORK/train_$name"
}
train twins "$T_TRAIN" $STEPS --use_kernels=False
train kernels "$T_TRAIN" $STEPS --use_kernels=True
train fsdp "$T_TRAIN2" $STEPS2 --use_kernels=False --fsdp=True
train checkpointing "$T_TRAIN2" $STEPS2 --use_kernels=False --activation_checkpointing=True
stage tests "$T_TESTS" "$PY" -m pytest tests/test_kernels.py -q -rfE -p no:cacheprovider --durations=5 "${TESTS[@]}"

"$PY" - "$OUT" "$SMOKE" "$DROP" "${MODEL[*]}" <<'EOF'
# report.md from the stage logs, in the stages' order of importance
import json, os, statistics, sys

out, smoke, drop, model = sys.argv[1], sys.argv[2] == '1', int(sys.argv[3]), sys.argv[4]
TAIL = 30  # lines of a failed stage's log in the report


def read(name):
    path = os.path.join(out, name)
    return open(path, errors='replace').read().rstrip() if os.path.exists(path) else ''


stages = [line.split('\t') for line in read('stages.tsv').splitlines()]
r = ["# gpu_check" + (" --smoke (CPU, Triton interpreter: checks the script, measures nothing)" if smoke else ''), '',
     read('env.log'), '', '| stage | status | seconds | limit |', '|---|---|---|---|']
r += [f"| {n} | {s} | {t} | {lim} |" for n, s, t, lim in stages]
r += ['', f"total: {sum(int(t) for _, _, t, _ in stages)} s"]

r += ['', '## fused LM head + loss (bench_kernels.py --cases=linear + cross_entropy)']
lm_log = read('lm_head.log').splitlines()
r += lm_log[1:] if lm_log else ['', '(no output)']
summary = [line for line in lm_log if line.startswith(('fused LM head', 'LM-head weight grad'))]
r += ['', *summary] if summary else ['', '(memory vs eager: ' + ('no CUDA memory statistics on CPU)' if smoke else
                                            'not measured, see lm_head.log)')]
r += ['', '## kernels (bench/bench_kernels.py --only=kernels, every other kernel)']
kernels_log = read('kernels.log').splitlines()
r += kernels_log[1:] if kernels_log else ['', '(no output)']

r += ['', f"## train.py {model}, synthetic bins", '',
      f"tokens/s and MFU: median of the logged steps after the first {drop}; peak memory: the largest of those steps "
      "(steady state: train.py resets the peak at every log line); first step: its time in steady-state steps "
      "(compilation)", '',
      '| arm | tokens/s | MFU | peak GiB | first step | steps timed | last loss |', '|---|---|---|---|---|---|---|']
arms = {}
for arm in ('twins', 'kernels', 'fsdp', 'checkpointing'):
    rows = [json.loads(line) for line in read(f'train_{arm}.jsonl').splitlines()]
    rows = [x for x in rows if x.get('kind') == 'train']
    timed = rows[drop:]
    if not timed:
        r.append(f"| {arm} | no steps logged after the first {drop} (see train_{arm}.log) | | | | | |")
        continue
    tps = statistics.median(x['tokens_per_s'] for x in timed)
    mfu = f"{100 * statistics.median(x['mfu'] for x in timed):.1f}%" if 'mfu' in timed[0] else '-'
    mem = max(x['peak_mem_gb'] for x in timed) if 'peak_mem_gb' in timed[0] else float('nan')
    first = tps / rows[0]['tokens_per_s']  # the first step's time over a steady step's: compilation
    arms[arm] = (tps, mem)
    r.append(f"| {arm} | {tps:,.0f} | {mfu} | {'-' if mem != mem else f'{mem:.1f}'} | {first:.1f} steps "
             f"| {len(timed)} | {rows[-1]['loss']:.3f} |")
for arm in ('kernels', 'fsdp', 'checkpointing'):
    if arm in arms and 'twins' in arms:
        (ta, ma), (tt, mt) = arms[arm], arms['twins']
        r += ['', f"{arm} / twins: {ta / tt:.2f}x tokens/s" + (f", {ma / mt:.2f}x peak memory" if mt == mt else '')]

r += ['', '## kernel tests: pytest tests/test_kernels.py, ' + ('a few, interpreted' if smoke else 'compiled for the GPU'),
      '']
tests = read('tests.log').splitlines()
r += [line for line in tests if line.startswith(('FAILED', 'ERROR'))] + (tests[-1:] or ['(no output)'])

for name, status, _, _ in stages:
    if status != 'ok':
        log = read(f'{name}.log').splitlines()
        r += ['', f"## {name}: {status}, the last {min(TAIL, len(log))} lines of {name}.log", '', '```',
              *log[-TAIL:], '```']
r += ['', 'raw logs: ' + ', '.join(sorted(f for f in os.listdir(out) if f.endswith(('.log', '.jsonl', '.tsv'))))]
open(os.path.join(out, 'report.md'), 'w').write('\n'.join(r) + '\n')
EOF
echo "gpu_check: report in $OUT/report.md"
! grep -qv "	ok	" "$OUT/stages.tsv"
