#!/usr/bin/env bash
# Run the Section-4 experiments on the CPU-scale runs in $RUNS (flows/train), one chain per
# dataset family, each step starting when the run's eval.json exists.  Usage (repo root):
#   bash flows/experiments/run_section4.sh mnist   # MNIST: reweighted, then split
#   bash flows/experiments/run_section4.sh cifar10 # CIFAR-10: reweighted, then split
#   bash flows/experiments/run_section4.sh bg      # Table 3 / Figs 5-6 (BG-MNIST + MNIST + CIFAR-10)
#   bash flows/experiments/run_section4.sh one RUN [N_IMAGES]   # any single run directory name
# Numbers go to results/<experiment>/<run>.json, pictures to $PNG (default results/figures).
set -u
RUNS=${RUNS:-/work/runs}
PNG=${PNG:-results/figures}
CACHE=${CACHE:-/tmp/exp-cache}
N_IMAGES=${N_IMAGES:-50}
N_IMAGES_SPLIT=${N_IMAGES_SPLIT:-$N_IMAGES}
N_PAIRS=${N_PAIRS:-200}
CW_STEPS=${CW_STEPS:-100}
CW_BINARY=${CW_BINARY:-5}
BOUNDARY_STEPS=${BOUNDARY_STEPS:-1000}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

wait_for() {
  until [ -f "$RUNS/$1/eval.json" ]; do sleep 30; done
}

step() {  # step NAME CMD...: log wall time
  local name=$1; shift
  local t0=$SECONDS
  echo "=== $(date -u +%FT%TZ) start $name: $*"
  "$@"
  echo "=== $(date -u +%FT%TZ) done $name rc=$? in $((SECONDS - t0)) s"
}

one_run() {  # one_run RUN N_IMAGES
  local run=$1 n=$2
  wait_for "$run"
  step "$run likelihood_gap" python -m flows.experiments.likelihood_gap --run "$RUNS/$run" \
    --out "results/likelihood_gap/$run.json" --png-dir "$PNG/$run" --cache-dir "$CACHE"
  step "$run interpolation" python -m flows.experiments.interpolation --run "$RUNS/$run" \
    --out "results/interpolation/$run.json" --png-dir "$PNG/$run" --cache-dir "$CACHE" \
    --n-pairs "$N_PAIRS" --n-alphas 100 --seed 0
  step "$run attacks" python -m flows.experiments.attacks --run "$RUNS/$run" \
    --out "results/attacks/$run.json" --png-dir "$PNG/$run" --cache-dir "$CACHE" \
    --n-images "$n" --seed 0 --cw-steps "$CW_STEPS" --cw-binary-steps "$CW_BINARY" \
    --boundary-steps "$BOUNDARY_STEPS"
}

case "${1:-}" in
  mnist|cifar10)
    one_run "$1-reweighted-small" "$N_IMAGES"
    one_run "$1-split-small" "$N_IMAGES_SPLIT"
    ;;
  one)
    one_run "$2" "${3:-$N_IMAGES}"
    ;;
  bg)
    for r in bg-mnist-5-reweighted-small bg-mnist-1-reweighted-small bg-mnist-0-reweighted-small \
             mnist-reweighted-small cifar10-reweighted-small; do
      wait_for "$r"
    done
    step "table3" python -m flows.experiments.bg_mnist \
      --run "$RUNS/mnist-reweighted-small" --run "$RUNS/bg-mnist-5-reweighted-small" \
      --run "$RUNS/bg-mnist-1-reweighted-small" --run "$RUNS/bg-mnist-0-reweighted-small" \
      --run "$RUNS/cifar10-reweighted-small" --samples-run "$RUNS/bg-mnist-0-reweighted-small" \
      --out results/bg_mnist/table3.json --png-dir "$PNG/bg_mnist" --cache-dir "$CACHE" \
      --n-pairs "$N_PAIRS" --seed 0
    ;;
  *)
    echo "usage: $0 mnist|cifar10|bg|one RUN [N_IMAGES]" >&2
    exit 2
    ;;
esac
