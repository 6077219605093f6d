#!/usr/bin/env bash
# One-command GPU check for a fresh CUDA machine, run from the repository root:
#
#   bash benchmarks/gpu_check.sh                       # the real check (~5-8 min on one H100/H200)
#   bash benchmarks/gpu_check.sh --device cpu --quick  # dry run of every step on a CPU (CI does this)
#
# Steps (each under `timeout`; a failed step is recorded and the next one still runs):
#   sync      uv sync --locked --all-extras --group dev   (--quick: --dry-run; --no-sync: skipped)
#   env       torch / CUDA / GPU as seen from the environment
#   scene     generate the benchmark scene (in the background, while the GPU tests run)
#   gpu-tests pytest -m gpu
#   cam-fp32  benchmarks/bench_cam.py --device DEV                         (+ the reference library)
#   cam-bf16  benchmarks/bench_cam.py --device DEV --autocast bf16
#   explain   benchmarks/bench_explain.py --device DEV --size 8192 --batch-size 32 --end-to-end
#             with nvidia-smi sampling GPU utilisation every 200 ms; also the reader's MP/s alone
#   summary   benchmarks/gpu_check_summary.py -> OUTDIR/summary.md and summary.json (goals, PASS/FAIL)
#
# Output: --out DIR, default $OUT when set, else gpu_check_out/. Logs: OUTDIR/logs/STEP.log.
# Exit status: 0 when every step ran (goals may still FAIL: read the summary), 1 when a step failed.
# No `set -e`: a failing step is recorded and the next one runs.

DEVICE=cuda QUICK=0 SYNC=1 OUTDIR="${OUT:-gpu_check_out}"
while [ $# -gt 0 ]; do
  case "$1" in --device|--out) [ $# -ge 2 ] || { echo "gpu_check.sh: $1 needs a value" >&2; exit 2; } ;; esac
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --no-sync) SYNC=0; shift ;;
    --out) OUTDIR="$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$DEVICE" in cpu|cuda) ;; *) echo "gpu_check.sh: --device cpu|cuda, got $DEVICE (pick a GPU with CUDA_VISIBLE_DEVICES)" >&2; exit 2 ;; esac

cd "$(dirname "$0")/.." || exit 1
mkdir -p "$OUTDIR/logs" || exit 1
OUTDIR="$(cd "$OUTDIR" && pwd)"
LOGS="$OUTDIR/logs"
(cd "$OUTDIR" && rm -f steps.tsv cam_fp32.json cam_bf16.json explain.json nvidia_smi.csv summary.md summary.json)
export SEGXAI_BENCH_CACHE="${SEGXAI_BENCH_CACHE:-/tmp/segxai_bench}"  # the scene cache stays out of OUTDIR
export PYTHONUNBUFFERED=1

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --user uv >/dev/null 2>&1 || python3 -m pip install --quiet uv >/dev/null 2>&1
  export PATH="$HOME/.local/bin:$PATH"
fi
RUN=(uv run --no-sync)  # the sync step decides what is installed; later steps never re-sync
Q=(); [ "$QUICK" = 1 ] && Q=(--quick)
# A dry run's tiny tensors gain nothing from threads, and spinning OpenMP threads on a shared CPU cost seconds
[ "$QUICK" = 1 ] && export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

# step NAME LIMIT_S CMD...: run under timeout, log to LOGS/NAME.log (also shown), record in steps.tsv
CUR_PID=""
step() {
  local name="$1" limit="$2" rc t0 ms
  shift 2
  echo "=== $name (limit ${limit} s): $*"
  t0=$(date +%s%N)
  timeout --kill-after=15 "$limit" "$@" > >(tee "$LOGS/$name.log") 2>&1 &
  CUR_PID=$!
  wait "$CUR_PID"
  rc=$?
  CUR_PID=""
  ms=$((($(date +%s%N) - t0) / 1000000))
  printf '%s\t%s\t%d.%03d\t%s\n' "$name" "$rc" $((ms / 1000)) $((ms % 1000)) "$limit" >> "$OUTDIR/steps.tsv"
  echo "=== $name: exit $rc"
  return 0
}
skip() { printf '%s\t-\t0\t-\t%s\n' "$1" "$2" >> "$OUTDIR/steps.tsv"; echo "=== $1: skipped ($2)"; }

SMI_PID=""
stop_smi() { if [ -n "$SMI_PID" ]; then kill "$SMI_PID" 2>/dev/null; wait "$SMI_PID" 2>/dev/null; SMI_PID=""; fi; }
interrupted() {  # timeout runs the step in its own process group: pass the signal on, then stop
  [ -n "$CUR_PID" ] && kill -TERM "$CUR_PID" 2>/dev/null
  stop_smi
  echo "gpu_check.sh: interrupted" >&2
  exit 130
}
trap stop_smi EXIT
trap interrupted INT TERM

# ---------------------------------------------------------------- environment
SYNC_ARGS=(--locked --all-extras --group dev)
if [ "$SYNC" = 0 ]; then skip sync "--no-sync"
elif [ "$QUICK" = 1 ]; then step sync 120 uv sync "${SYNC_ARGS[@]}" --dry-run
else step sync 300 uv sync "${SYNC_ARGS[@]}"; fi

step env 90 "${RUN[@]}" python -c "
import sys, torch
print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA build', torch.version.cuda)
print('cuda available:', torch.cuda.is_available(), '| devices:', torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f'  cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, bf16: {torch.cuda.is_bf16_supported()}')
sys.exit(0 if '$DEVICE' == 'cpu' or torch.cuda.is_available() else 'CUDA is not available to torch')
"
if [ "$DEVICE" != cpu ] && command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi >> "$LOGS/env.log" 2>&1; fi

# ---------------------------------------------------------------- benchmarks
EXPLAIN_ARGS=(--device "$DEVICE" --size 8192 --batch-size 32 --end-to-end --to-host --repeats 3 "${Q[@]}")
step scene 240 "${RUN[@]}" python benchmarks/bench_explain.py "${EXPLAIN_ARGS[@]}" --prepare &
SCENE_PID=$!

# only the files that mark tests gpu: the same tests as plain `pytest -m gpu`, without collecting the rest
mapfile -t GPU_TEST_FILES < <(grep -l 'mark\.gpu' tests/test_*.py)
step gpu-tests 240 "${RUN[@]}" pytest -m gpu -q -p no:cacheprovider "${GPU_TEST_FILES[@]}"

CAM_ARGS=(--device "$DEVICE" --batch 16 --size 512 --repeats 10 "${Q[@]}")
step cam-fp32 180 "${RUN[@]}" python benchmarks/bench_cam.py "${CAM_ARGS[@]}" --json "$OUTDIR/cam_fp32.json"
step cam-bf16 120 "${RUN[@]}" python benchmarks/bench_cam.py "${CAM_ARGS[@]}" --autocast bf16 --skip-reference \
  --json "$OUTDIR/cam_bf16.json"

wait "$SCENE_PID"
if [ "$DEVICE" = cpu ]; then
  skip nvidia-smi "no GPU"
elif command -v nvidia-smi >/dev/null 2>&1; then
  LINEBUF=(); command -v stdbuf >/dev/null 2>&1 && LINEBUF=(stdbuf -oL)  # no samples lost at the kill
  "${LINEBUF[@]}" nvidia-smi --query-gpu=timestamp,uuid,utilization.gpu,memory.used --format=csv -lms 200 \
    > "$OUTDIR/nvidia_smi.csv" 2> "$LOGS/nvidia-smi.log" &
  SMI_PID=$!
else
  skip nvidia-smi "nvidia-smi not found"
fi
step explain 330 "${RUN[@]}" python benchmarks/bench_explain.py "${EXPLAIN_ARGS[@]}" --json "$OUTDIR/explain.json"
if [ -n "$SMI_PID" ]; then
  stop_smi
  rows=$(($(wc -l < "$OUTDIR/nvidia_smi.csv") - 1))
  printf 'nvidia-smi\t%s\t0\t-\n' "$([ "$rows" -gt 0 ] && echo 0 || echo 1)" >> "$OUTDIR/steps.tsv"
  echo "=== nvidia-smi: $rows samples"
fi

# ---------------------------------------------------------------- summary
SQ=(); [ "$QUICK" = 1 ] && SQ=(--quick)
timeout 60 python3 benchmarks/gpu_check_summary.py "$OUTDIR" --device "$DEVICE" "${SQ[@]}" \
  || timeout 60 "${RUN[@]}" python benchmarks/gpu_check_summary.py "$OUTDIR" --device "$DEVICE" "${SQ[@]}"
echo "summary: $OUTDIR/summary.md"
if cut -f2 "$OUTDIR/steps.tsv" | grep -qvE '^(0|-)$'; then exit 1; fi
exit 0
