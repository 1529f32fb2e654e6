#!/usr/bin/env bash
# Everything a GPU should check and time, as one command (docs/benchmarks.md, "GPU checks").
#
#   make gpu-wheels                      # on your machine, once: wheels the GPU box may lack -> .whl/
#   bash benchmarks/gpu_session.sh       # on the GPU box, from the repository root
#   bash benchmarks/gpu_session.sh test train      # a subset of: test workflow train ablation attributions
#   bash benchmarks/gpu_session.sh amp             # bf16 vs fp32 robust CIFAR-10 training, 5 epochs each
#                                                  # (not in the default set; CIFAR-10 from data/cifar10, else digits)
#
# Python there needs torch + torchvision, numpy, scipy, pandas, pillow, matplotlib, scikit-learn,
# pyyaml and pytest; .whl/ adds captum, shap (+slicer), torchattacks, robustness (+cox, dill,
# tensorboardX) and snakemake with its dependencies, installed with --no-index, so nothing is fetched.
# Writes JSON and one log to $OUT (default benchmarks/results/gpu/):
#   session.log, train_cuda.json (vs robustness/torchattacks), train_cuda_{fp32,nchw,compile}.json
#   (one speed switch changed each, robinterp only), attributions_cuda.json, workflow_devices.json
#   (step `workflow`: the paper's shapes through the whole DAG with device=cuda, through the GPU
#   slots, and the device every GPU job logged; WORKFLOW_CONFIG picks another config),
#   amp_cuda.json (step amp: clean / PGD-20 accuracy and time of the same seeded training in bf16 and in fp32).
# Exit status: 0 when every step passed, 2 on an unknown step.
# DEVICE=cpu runs the same steps on the CPU (a check of this script, not of CUDA).
set -uo pipefail

OUT=${OUT:-benchmarks/results/gpu}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
WHEELS=${WHEELS-.whl}  # WHEELS= (empty) installs nothing
export ROBINTERP_TEST_DEVICE=$DEVICE
STEPS=("$@")
[ ${#STEPS[@]} -gt 0 ] || STEPS=(test workflow train ablation attributions)
mkdir -p "$OUT"
LOG="$OUT/session.log"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
status=0

run() {  # run NAME CMD...: time it, append its output to the log, keep going on failure
  local name=$1 start=$SECONDS rc
  shift
  echo "== $name: $*" | tee -a "$LOG"
  "$@" >>"$LOG" 2>&1
  rc=$?
  echo "   $name: exit $rc after $((SECONDS - start)) s" | tee -a "$LOG"
  [ $rc -eq 0 ] || status=1
}

{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  git rev-parse HEAD 2>/dev/null || echo "(no git)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || echo "no nvidia-smi"
  $PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.version.cuda)"
} >>"$LOG" 2>&1

if [ -n "$WHEELS" ] && compgen -G "$WHEELS/*.whl" >/dev/null; then
  run wheels "$PY" -m pip install -q --no-index --no-deps "$WHEELS"/*.whl
fi

for step in "${STEPS[@]}"; do
  case $step in
    test)
      run test_cuda "$PY" -m pytest -q -ra -p no:cacheprovider tests/test_cuda.py ;;
    workflow)
      cfg=${WORKFLOW_CONFIG:-workflow/configs/paper_smoke.yaml}
      run workflow_inputs "$PY" tests/paper_inputs.py results/paper_smoke/inputs
      run workflow "$PY" -m snakemake --cores all --configfile "$cfg" --rerun-incomplete \
        --config device="$DEVICE" results="$OUT/workflow"
      run workflow_devices "$PY" benchmarks/job_devices.py "$OUT/workflow/logs" --expect "$DEVICE" \
        --out "$OUT/workflow_devices.json" ;;
    train)
      run bench_train "$PY" benchmarks/bench_train.py --device "$DEVICE" --repeats 5 --out "$OUT/train_$DEVICE.json" ;;
    ablation)
      run fp32 "$PY" benchmarks/bench_train.py --device "$DEVICE" --no-peers --no-amp --out "$OUT/train_${DEVICE}_fp32.json"
      run nchw "$PY" benchmarks/bench_train.py --device "$DEVICE" --no-peers --no-channels-last \
        --out "$OUT/train_${DEVICE}_nchw.json"
      run compile "$PY" benchmarks/bench_train.py --device "$DEVICE" --no-peers --compile \
        --out "$OUT/train_${DEVICE}_compile.json" ;;
    attributions)
      run attributions "$PY" benchmarks/bench_attributions.py --device "$DEVICE" --width 1.0 --images 32 \
        --out "$OUT/attributions_$DEVICE.json" ;;
    amp)
      run amp "$PY" benchmarks/bench_amp.py --device "$DEVICE" --out "$OUT/amp_$DEVICE.json" ;;
    *)
      echo "unknown step '$step': choose from test workflow train ablation attributions amp" | tee -a "$LOG"
      status=2 ;;
  esac
done
exit $status
