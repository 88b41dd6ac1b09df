#!/usr/bin/env bash
# The activation, analysis and sweep benchmarks at GPU-sized settings, in one go.
#
#   bash benchmarks/gpu.sh                  # on a GPU machine: under 8 minutes on one H200
#   GPU_SH_QUICK=1 bash benchmarks/gpu.sh   # smoke run of the script itself (--quick sizes), any CPU
#
# Writes one table per benchmark, plus the environment, under $OUT (default results/gpu/):
#   env.txt, activations.txt, analysis.txt, sweep.txt
# Each benchmark runs under its own time limit (the three together stay under 8 minutes) and
# writes its table line by line, so a run cut short still leaves what it measured. The exit
# status is the first failing benchmark's (124: its time limit).
#
# GPU-sized settings: activations.py and sweep.py at their full sizes (2^24 elements, a
# 16-layer MLP of batch 4096; K = 64 configs, 500 steps), analysis.py with batches of 2048.
# Environment: PYTHON (default python), OUT, GPU_SH_QUICK.
set -u -o pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
OUT=${OUT:-results/gpu}
mkdir -p "$OUT"

if [[ -n "${GPU_SH_QUICK:-}" ]]; then
  act_args=(--quick); ana_args=(--quick); swp_args=(--quick)
  limits=(300 300 300)
else
  act_args=(); ana_args=(--batch 2048 --batches 32 --repeats 7); swp_args=(--both)
  limits=(200 110 150)
fi

{
  date -u +"%Y-%m-%d %H:%M UTC"
  git rev-parse --short HEAD 2>/dev/null || true
  "$PYTHON" -c 'import jax; print("jax", jax.__version__, "backend", jax.default_backend(), jax.devices())'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
  echo "settings: activations ${act_args[*]:-(full)}; analysis ${ana_args[*]}; sweep ${swp_args[*]}"
} | tee "$OUT/env.txt"

status=0
run() {  # name, limit in seconds, command...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s): $*"
  local start=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$OUT/$name.txt"
  if [[ $rc -ne 0 && $status -eq 0 ]]; then status=$rc; fi
}

export PYTHONUNBUFFERED=1
run activations "${limits[0]}" "$PYTHON" benchmarks/activations.py "${act_args[@]}"
run analysis "${limits[1]}" "$PYTHON" benchmarks/analysis.py "${ana_args[@]}"
run sweep "${limits[2]}" "$PYTHON" benchmarks/sweep.py "${swp_args[@]}"
echo "tables in $OUT"
exit "$status"
