#!/usr/bin/env bash
# Every GPU check of memcomp in ONE device call of at most 8 minutes on one GPU (issue 17).
#
#   bash benchmarks/gpu_check.sh OUT_DIR           # on a GPU machine: about 7 minutes
#   bash benchmarks/gpu_check.sh OUT_DIR --quick   # tiny sizes, any device (checks this script)
#
# Steps, each time-boxed with `timeout` (seconds of work; they add up to 420, and the whole run
# never passes TOTAL=420 s of steps: a step gets at most what is left). Start-up (wheels, torch
# import, env) and the tarballs add about 15-30 s, so the call ends well inside 8 minutes:
#   gpu_tests     70  pytest tests/gpu (CUDA-only paths: OOM row, per-phase peaks, budgets on
#                     cuda, --gpus pinning, synchronised timing, peers in float64)
#   calibration   75  calibrate_memory.py --shapes 84px-conv4-32 32px-conv4-64 --ks 5 20
#                     --iterations 1 (24 rows: CPU estimate / CUDA peak)
#   paper_memory  70  suites/paper-memory.yaml cut to K in {5, 20}, meta-batch 4, sequential
#   budgets       40  memcomp check budgets/ci.yaml --device cuda, then --update on a copy
#   oom_row       30  a real CUDA OOM: MAML K=20, B=32 batched at 84 px under --memory-limit 2000
#   speed         50  speed.py, both shapes, B=32, K=N=20, batched: floor ratios
#   speed_maml    35  speed.py, CIFAR shape, maml sequential vs batched (1 timed step, no memory)
#   peers         50  speed.py --peers, CIFAR shape, B=4, K=5 and K=20 (float64 check first)
#   speed_compile 75  speed.py, CIFAR shape, mrml and anil batched, --compile none graphs inductor
#                     --opcount (meta-gradient checked against eager first; ATen ops, inductor
#                     kernels, CUDA kernels and launches per meta-iteration; anil is refused)
# speed_compile (issue 18) is not in the 420 s: it runs last, on what the others leave of TOTAL
# (at most 75 s; none if they all use their whole limit: steps.tsv then says no-time).
#
# Results: everything under a work folder (GPU_CHECK_WORK, default a fresh temporary one); after
# every step OUT_DIR/gpu-check.tar.gz holds all of it (the dataset cache left out), so a run
# stopped at any point still returns what it did. OUT_DIR also gets summary.txt and steps.tsv
# (3 files: the device returns at most 8, 16 MiB each). The short summary table is printed last.
#
# The lent GPU machine has torch, typer, pandas, rich, pyyaml, scipy, matplotlib, pytest but no
# pydantic (nor higher for --peers). Their wheels go in .whl/ at the repository root (ignored by
# git: `echo /.whl/ >> .git/info/exclude`), fetched on a machine with pip and the package index:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl pydantic==2.14.4 pydantic-core==2.50.5 \
#     annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0 higher==0.2.1
# (pydantic needs typing-extensions >= 4.16, newer than some images have), and the device call
# carries `.whl`. They are installed from there into /tmp/site, never downloaded.
set -uo pipefail
OUT="${1:?usage: gpu_check.sh OUT_DIR [--quick]}"
QUICK="${2:-}"
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="${GPU_CHECK_WORK:-$(mktemp -d /tmp/memcomp-gpu-check.XXXXXX)}"
mkdir -p "$WORK"
PY="${PYTHON:-python3}"
TOTAL="${GPU_CHECK_TOTAL:-420}"  # seconds of steps in all (lower it to test the clamp)
START=$SECONDS
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg MEMCOMP_CACHE="$WORK/cache"

if ! "$PY" -c "import pydantic, higher" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl >"$WORK/pip.log" 2>&1 \
    || echo "installing .whl/*.whl failed: see pip.log" | tee -a "$WORK/pip.log"
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

"$PY" - >"$WORK/env.txt" 2>&1 <<'PYEOF'
import datetime, importlib, importlib.metadata as md, platform, torch
print("date", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
print("torch", torch.__version__, "cuda", torch.version.cuda, "python", platform.python_version())
print("device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (no CUDA)")
for name in ("pydantic", "higher"):
    try:
        importlib.import_module(name)
        print(name, md.version(name))
    except Exception as e:  # noqa: BLE001
        print(name, "missing:", e)
PYEOF
DEV=cuda
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || DEV=cpu
printf "step\tstatus\tseconds\tlimit\n" >"$WORK/steps.tsv"

pack() {  # all results into OUT (atomically), after every step
  tar -czf "$OUT/.gpu-check.tar.gz" --exclude=./cache -C "$WORK" . 2>/dev/null \
    && mv "$OUT/.gpu-check.tar.gz" "$OUT/gpu-check.tar.gz"
  cp "$WORK/steps.tsv" "$OUT/steps.tsv"
}

step() {  # step NAME LIMIT_S CMD...: run time-boxed, log to WORK/NAME.log, record, pack
  local name=$1 limit=$2; shift 2
  local left=$((TOTAL - (SECONDS - T0)))
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$limit" -lt 5 ]; then
    printf "%s\tno-time\t0\t%s\n" "$name" "$limit" >>"$WORK/steps.tsv"; pack; return
  fi
  local t0=$SECONDS rc st
  echo "== $name (at most ${limit}s): $*" | tee "$WORK/$name.log"
  timeout --kill-after=5 "$limit" "$@" >>"$WORK/$name.log" 2>&1
  rc=$?
  case $rc in 0) st=ok ;; 124|137) st=timeout ;; *) st="rc=$rc" ;; esac
  printf "%s\t%s\t%s\t%s\n" "$name" "$st" "$((SECONDS - t0))" "$limit" >>"$WORK/steps.tsv"
  echo "   $name: $st in $((SECONDS - t0))s"
  pack
}

skip() {  # skip NAME WHY
  printf "%s\tskipped\t0\t0\n" "$1" >>"$WORK/steps.tsv"; echo "$2" >"$WORK/$1.log"; pack
}

"$PY" benchmarks/gpu_check_tools.py paper-suite "$WORK/paper-memory.yaml" $QUICK
cat >"$WORK/oom.yaml" <<'YEOF'
name: oom-check
datasets: [{name: synthetic, image_size: 84, train_classes: 8, val_classes: 5, test_classes: 5}]
settings: [{ways: 5, shots: 5, queries: 5}]
backbones: [{name: conv4, hidden: 32}]
train: {iterations: 2, meta_batch: 32, eval_every: 10, val_episodes: 2}
test: {episodes: 2}
learners: [{name: maml, inner_steps: 20, inner_lr: 0.1, execution: batched}]
YEOF
cp budgets/ci.yaml "$WORK/budgets-updated.yaml"
SPEED=("$PY" benchmarks/speed.py --device "$DEV")

T0=$SECONDS  # the steps' clock (start-up above not counted in TOTAL)
step gpu_tests 70 "$PY" -m pytest tests/gpu -v -rs -p no:cacheprovider --junitxml "$WORK/gpu-tests.xml"
if [ "$QUICK" = "--quick" ]; then
  step calibration 75 "$PY" benchmarks/calibrate_memory.py --quick --out "$WORK/calibration" \
    --shapes 32px-conv4-64 --ks 1 --iterations 1
else
  step calibration 75 "$PY" benchmarks/calibrate_memory.py --out "$WORK/calibration" \
    --shapes 84px-conv4-32 32px-conv4-64 --ks 5 20 --iterations 1
fi
step paper_memory 70 "$PY" -m memcomp run "$WORK/paper-memory.yaml" --device "$DEV" \
  --out "$WORK/results" --isolation inline
step budgets 40 bash -c "\"$PY\" -m memcomp check budgets/ci.yaml --device $DEV \
  --junit \"$WORK/budgets.xml\"; rc=\$?; \"$PY\" -m memcomp check \"$WORK/budgets-updated.yaml\" \
  --device $DEV --update; exit \$rc"
if [ "$DEV" = cuda ]; then
  step oom_row 30 "$PY" -m memcomp run "$WORK/oom.yaml" --device cuda --out "$WORK/results" \
    --memory-limit 2000
else
  skip oom_row "no CUDA GPU: a real out-of-memory row needs one"
fi
if [ "$QUICK" = "--quick" ]; then
  step speed 50 "${SPEED[@]}" --quick --learners mrml anil fomaml f2sa --modes batched \
    --out "$WORK/speed.csv"
  step speed_maml 35 "${SPEED[@]}" --quick --learners maml --no-memory --out "$WORK/speed-maml.csv"
  step peers 50 "${SPEED[@]}" --quick --learners maml --modes sequential --peers \
    --out "$WORK/peers.csv"
else
  step speed 50 "${SPEED[@]}" --shapes miniimagenet cifar --learners mrml anil fomaml f2sa \
    --modes batched --iters 5 --warmup 2 --out "$WORK/speed.csv"
  step speed_maml 35 "${SPEED[@]}" --shapes cifar --learners maml --iters 1 --warmup 1 \
    --no-memory --out "$WORK/speed-maml.csv"
  step peers 50 bash -c "for k in 5 20; do \"$PY\" benchmarks/speed.py --device $DEV \
    --shapes cifar --learners maml --modes sequential --meta-batch 4 --inner-steps \$k \
    --iters 2 --warmup 1 --no-memory --peers --out \"$WORK/peers-K\$k.csv\" || exit; done"
fi
# compile modes and op counts (issue 18), last: on what is left of TOTAL (at most 75 s). A
# refused (anil), skipped (graphs off CUDA) or failing row is a row; a timeout or crash of the
# step only marks it in steps.tsv, and the summary below still runs
if [ "$QUICK" = "--quick" ]; then
  step speed_compile 75 "${SPEED[@]}" --quick --learners mrml anil --modes batched \
    --compile none graphs inductor --opcount --no-memory --out "$WORK/speed-compile.csv"
else
  step speed_compile 75 "${SPEED[@]}" --shapes cifar --learners mrml anil --modes batched \
    --compile none graphs inductor --opcount --iters 5 --warmup 2 --out "$WORK/speed-compile.csv"
fi

echo "all steps: $((SECONDS - T0))s (start-up $((T0 - START))s)"
"$PY" benchmarks/gpu_check_tools.py summary "$WORK" >"$WORK/summary.log" 2>&1
cp "$WORK/summary.txt" "$OUT/summary.txt" 2>/dev/null || cp "$WORK/summary.log" "$OUT/summary.txt"
pack
echo
echo "results: $OUT/gpu-check.tar.gz (work folder $WORK); $((SECONDS - START))s in all"
echo
cat "$OUT/summary.txt"
