#!/usr/bin/env bash
# The one script to run on a GPU machine (one H100/H200, no network, no project venv): the machine's own python3
# with torch, triton, numpy and pytest is all it needs. In about 7 minutes it writes, under $OUT (default
# out/gpu_check), report.md and the raw log of every stage:
#   env       versions, the device, which LM-head weight-grad path this torch takes, train.py's imports load
#   tests     pytest tests/test_kernels.py with the kernels compiled for the GPU (no interpreter)
#   kernels   bench/bench_kernels.py --only=kernels: per kernel ms, peak MiB and error, Triton vs twin vs compiled
#             twin, at the 405M and 10B widths; the fused LM head's memory vs eager
#   train_*   train.py on synthetic bins, pythia-410m at sequence 2048, batch 8, bf16, compiled, kernels on / off:
#             tokens/s, MFU, peak memory
#
#     bash bench/gpu_check.sh            # on the GPU machine
#     bash bench/gpu_check.sh --smoke    # anywhere: the whole script on CPU, Triton interpreter, tiny shapes (CI)
#
# Each stage runs under its own time limit (T_ENV, T_DATA, T_TESTS, T_KERNELS, T_TRAIN seconds; their sum is 420)
# and a stage that fails or runs out of time is reported as such while the others go on; the exit status is 1 if
# any stage did not pass. PYTHON picks the interpreter (default python3). Caches (Triton, inductor) stay where
# torch puts them, so a second run on the same machine compiles less.
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
WORK=$(mktemp -d)  # bins, train.py's run folders (a 405M checkpoint is ~5 GB): never under $OUT
trap 'rm -rf "$WORK"' EXIT
T_ENV=${T_ENV:-10} T_DATA=${T_DATA:-10} T_TESTS=${T_TESTS:-80} T_KERNELS=${T_KERNELS:-120} T_TRAIN=${T_TRAIN:-100}

if [ $SMOKE = 1 ]; then
    export TRITON_INTERPRET=1
    TESTS=(-k "rows_split_over_programs or real_vocab or head_dim_128")  # the whole file runs in the test suite
    KERNELS=(--smoke --widths=1024)
    VOCAB=64 STEPS=4 DROP=1 WINDOWS=4  # eval windows: one batch
    MODEL=(--n_layer=2 --n_head=2 --n_embd=32 --block_size=32 --batch_size=4 --compile=False --dtype=bfloat16
           --device=cpu)
else
    unset TRITON_INTERPRET
    TESTS=()
    KERNELS=()
    VOCAB=50277 STEPS=12 DROP=3 WINDOWS=8  # the GPT-NeoX tokenizer's vocab; 3 steps dropped (compilation)
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
import numpy, torch, triton
import checkpoint, configurator, data, kernels, model, prepare, schedules  # what train.py imports
extras = [m for m in ('datasets', 'wandb', 'lm_eval') if m in sys.modules]
print(f'python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), '
      f'triton {triton.__version__}, numpy {numpy.__version__}; {os.cpu_count()} CPU cores')
print('train.py imports: ' + (f'pulled in {extras}, which the GPU machine lacks' if extras else
                                'ok, torch + numpy only'))
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    smi = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'], capture_output=True,
                         text=True).stdout.strip() if os.path.exists('/usr/bin/nvidia-smi') else '?'
    print(f'device: {p.name}, {p.multi_processor_count} SMs, {p.total_memory / 2**30:.0f} GiB, compute capability '
          f'{p.major}.{p.minor}, driver {smi}')
    fast = kernels._fp32_addmm(torch.device('cuda'))
    print('LM-head weight grad under bf16: ' + ('added into its fp32 sum by cuBLAS (addmm out_dtype)' if fast else
          'a bf16 V x C temporary per chunk (this torch cannot addmm bf16 into fp32)'))
else:
    print('device: CPU, Triton interpreter (smoke run: no number here is a GPU measurement)')
sys.exit(1 if extras else 0)
"
stage data "$T_DATA" "$PY" -c "
from prepare.synthetic import make_bin
make_bin('$WORK/data', 'synth', n_train=2_000_000, n_val=50_000, vocab_size=$VOCAB, seed=0)
print('synthetic bins: $WORK/data/synth, vocab $VOCAB')
"
stage tests "$T_TESTS" "$PY" -m pytest tests/test_kernels.py -q -rfE -p no:cacheprovider --durations=5 "${TESTS[@]}"
stage kernels "$T_KERNELS" "$PY" bench/bench_kernels.py --only=kernels "${KERNELS[@]}"
for arm in kernels twins; do
    flag=$([ $arm = kernels ] && echo True || echo False)
    stage "train_$arm" "$T_TRAIN" "$PY" train.py "${MODEL[@]}" --use_kernels=$flag --data_dir="$WORK/data" \
        --data="{'synth': 1.0}" --vocab_size=$VOCAB --out_dir="$WORK/train_$arm" --max_iters=$STEPS \
        --eval_interval=$STEPS --eval_windows=$WINDOWS --log_interval=1 --warmup_iters=0
    cp "$WORK/train_$arm/metrics.jsonl" "$OUT/train_$arm.jsonl" 2>/dev/null
    rm -rf "$WORK/train_$arm"
done

"$PY" - "$OUT" "$SMOKE" "$DROP" "${MODEL[*]}" <<'EOF'
# report.md from the stage logs
import json, os, statistics, sys

out, smoke, drop, model = sys.argv[1], sys.argv[2] == '1', int(sys.argv[3]), sys.argv[4]


def read(name):
    path = os.path.join(out, name)
    return open(path).read().rstrip() if os.path.exists(path) else ''


stages = [line.split('\t') for line in read('stages.tsv').splitlines()]
r = ["# gpu_check" + (" --smoke (CPU, Triton interpreter: checks the script, measures nothing)" if smoke else ''), '',
     read('env.log'), '', '| stage | status | seconds | limit |', '|---|---|---|---|']
r += [f"| {n} | {s} | {t} | {lim} |" for n, s, t, lim in stages]
r += ['', f"total: {sum(int(t) for _, _, t, _ in stages)} s", '',
      '## kernel tests: pytest tests/test_kernels.py, ' + ('a few, interpreted' if smoke else 'compiled for the GPU'),
      '']
tests = read('tests.log').splitlines()
r += [line for line in tests if line.startswith(('FAILED', 'ERROR'))] + (tests[-1:] or ['(no output)'])
r += ['', '## kernels (bench/bench_kernels.py --only=kernels)']
kernels_log = read('kernels.log').splitlines()
r += kernels_log[1:] if kernels_log else ['', '(no output)']
r += ['', f"## train.py {model}, synthetic bins", '',
      f"median of the logged steps after the first {drop} (compilation and the step-0 evaluation), peak of all", '',
      '| arm | tokens/s | MFU | peak GiB | steps timed | last loss |', '|---|---|---|---|---|---|']
arms = {}
for arm in ('kernels', 'twins'):
    rows = [json.loads(line) for line in read(f'train_{arm}.jsonl').splitlines()]
    rows = [x for x in rows if x.get('kind') == 'train']
    timed = rows[drop:]
    if not timed:
        r.append(f"| {arm} | no steps logged after the first {drop} (see train_{arm}.log) | | | | |")
        continue
    tps = statistics.median(x['tokens_per_s'] for x in timed)
    mfu = f"{100 * statistics.median(x['mfu'] for x in timed):.1f}%" if 'mfu' in timed[0] else '-'
    mem = max(x['peak_mem_gb'] for x in rows) if 'peak_mem_gb' in rows[0] else float('nan')
    arms[arm] = (tps, mem)
    r.append(f"| {arm} | {tps:,.0f} | {mfu} | {'-' if mem != mem else f'{mem:.1f}'} | {len(timed)} "
             f"| {rows[-1]['loss']:.3f} |")
if len(arms) == 2:
    (tk, mk), (tt, mt) = arms['kernels'], arms['twins']
    r += ['', f"kernels on / off: {tk / tt:.2f}x tokens/s" + (f", {mk / mt:.2f}x peak memory" if mt == mt else '')]
r += ['', '## fused LM head memory vs eager', '']
r += [line for line in kernels_log if line.startswith(('fused LM head', 'LM-head weight grad'))] or \
     ['(not measured: see kernels.log)' if not smoke else '(no CUDA memory statistics on CPU)']
r += ['', 'raw logs: ' + ', '.join(sorted(f for f in os.listdir(out) if f.endswith(('.log', '.jsonl', '.tsv'))))]
open(os.path.join(out, 'report.md'), 'w').write('\n'.join(r) + '\n')
EOF
echo "gpu_check: report in $OUT/report.md"
! grep -qv "	ok	" "$OUT/stages.tsv"
