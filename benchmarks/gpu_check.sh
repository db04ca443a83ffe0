#!/usr/bin/env bash
# Every GPU check in one call (device time is short): memory calibration (CPU estimate vs CUDA),
# the paper's memory figure, memory budgets measured twice (stability), a real CUDA OOM turned
# into a results row, and the speed table. Prints a short summary table LAST; details go to OUT.
#
#   bash benchmarks/gpu_check.sh OUT_DIR          # on a GPU machine (about 6-8 minutes)
#   bash benchmarks/gpu_check.sh OUT_DIR --quick  # tiny sizes, any device: checks the script
#
# Needs torch + memcomp's dependencies. pydantic is not on the lent GPU machines: put its wheels
# (pydantic, pydantic-core, annotated-types, typing-inspection for that Python) in
# benchmarks/wheels/ and carry that folder; they are installed from there, never downloaded.
set -uo pipefail
OUT="${1:?usage: gpu_check.sh OUT_DIR [--quick]}"
QUICK="${2:-}"
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg
export MEMCOMP_CACHE="$OUT/cache"
if ! "$PY" -c "import pydantic" 2>/dev/null; then
  "$PY" -m pip install --quiet --no-index --find-links benchmarks/wheels pydantic \
    >"$OUT/pip.log" 2>&1 || echo "pydantic missing and not installable from benchmarks/wheels"
fi
SUMMARY="$OUT/summary.tsv"
printf "step\tstatus\tseconds\tdetail\n" >"$SUMMARY"
step() {  # step NAME TIMEOUT_S CMD...: run, log, record status and duration
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  local st=ok; [ $rc -ne 0 ] && st="rc=$rc"
  printf "%s\t%s\t%s\t%s\n" "$name" "$st" "$((SECONDS - t0))" "$OUT/$name.log" >>"$SUMMARY"
}
"$PY" - >"$OUT/env.txt" 2>&1 <<'PYEOF'
import torch, platform
print("torch", torch.__version__, "cuda", torch.version.cuda, "python", platform.python_version())
print("device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
PYEOF
DEV=cuda; "$PY" -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)" || DEV=cpu

if [ "$QUICK" = "--quick" ]; then
  step calibration 120 "$PY" benchmarks/calibrate_memory.py --quick --out "$OUT/calibration"
  step speed 120 "$PY" benchmarks/speed.py --quick --device "$DEV" --out "$OUT/speed"
  MEMSUITE=suites/smoke.yaml
else
  step calibration 150 "$PY" benchmarks/calibrate_memory.py --out "$OUT/calibration" \
    --shapes 84px-conv4-32 32px-conv4-64 --ks 5 10 20
  step speed 150 "$PY" benchmarks/speed.py --device "$DEV" --out "$OUT/speed"
  MEMSUITE=suites/paper-memory.yaml
fi
step paper_memory 150 "$PY" -m memcomp run "$MEMSUITE" --device "$DEV" --out "$OUT/results" \
  --isolation inline
step report 60 "$PY" -m memcomp report "$OUT/results/$(basename "$MEMSUITE" .yaml)"
# Budgets measured twice on this device: --update records, the second run must agree (stable).
sed "s/^source: cpu-estimate/source: $([ "$DEV" = cuda ] && echo cuda || echo cpu-estimate)/" \
  budgets/ci.yaml >"$OUT/budgets.yaml"
step budgets_record 60 "$PY" -m memcomp check "$OUT/budgets.yaml" --device "$DEV" --update
step budgets_recheck 60 "$PY" -m memcomp check "$OUT/budgets.yaml" --device "$DEV" \
  --junit "$OUT/budgets.xml"
# A real out-of-memory: MAML K=20, meta-batch 32 batched at 84x84 under a 2 GB cap -> status oom.
cat >"$OUT/oom.yaml" <<'YEOF'
name: oom-check
datasets: [{name: synthetic, image_size: 84}]
settings: [{ways: 5, shots: 5, queries: 5}]
backbones: [{name: conv4, hidden: 32}]
train: {iterations: 2, meta_batch: 32, eval_every: 10, val_episodes: 2}
test: {episodes: 2}
learners: [{name: maml, inner_steps: 20, inner_lr: 0.1, execution: batched}]
YEOF
if [ "$DEV" = cuda ]; then
  step oom_row 120 "$PY" -m memcomp run "$OUT/oom.yaml" --device cuda --out "$OUT/results" \
    --memory-limit 2000
fi

"$PY" - "$OUT" <<'PYEOF'
import csv, glob, os, sys
out = sys.argv[1]
print(open(os.path.join(out, "env.txt")).read().strip())
print("\n== steps ==")
for row in csv.DictReader(open(os.path.join(out, "summary.tsv")), delimiter="\t"):
    print(f"{row['step']:<16} {row['status']:<6} {row['seconds']:>4}s")
for name in glob.glob(os.path.join(out, "results", "*", "*", "runs.csv")):
    rows = list(csv.DictReader(open(name)))
    print(f"\n== {name.split(os.sep)[-3]}: learner, K, status, peak MB (source) ==")
    for r in rows:
        print(f"{r['learner']:<8} {r.get('features', '') or '':<9} K={r.get('inner_steps', ''):<3} "
              f"{r['status']:<8} {r.get('peak_mem_mb', '')[:8]:>8} ({r.get('mem_source', '')})")
cal = os.path.join(out, "calibration", "calibration.md")
if os.path.exists(cal):
    print("\n== calibration (estimate / CUDA) ==")
    print(open(cal).read()[-2500:])
PYEOF
