#!/usr/bin/env bash
# Phase 2 (after scripts/flows_cpu_runs.sh): the reweighted models with a larger CPU budget
# (4 epochs of 60000 MNIST / 25000 CIFAR-10 images), to show how the numbers move with scale.
#   nohup nice -n 5 bash scripts/flows_cpu_runs_medium.sh > /work/runs/logs/medium.log 2>&1 &
# Same mechanics as flows_cpu_runs.sh: exported copy of HEAD, --resume, evaluation JSON.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${RUNS:-/work/runs}"
DATA="${ANNULUS_DATA_DIR:-$REPO/../shared/data}"
PY="${PYTHON:-python}"
SHA="$(git -C "$REPO" rev-parse HEAD)"
CODE="$RUNS/code/$SHA"
mkdir -p "$CODE" "$RUNS/logs"
git -C "$REPO" archive "$SHA" flows | tar -x -C "$CODE"
export ANNULUS_GIT_COMMIT="$SHA"

run() {  # dataset objective preset name epochs subset table
  local dataset=$1 objective=$2 preset=$3 name=$4 epochs=$5 subset=$6 table=$7
  echo "=== $(date -u +%FT%TZ) $name"
  (cd "$CODE" && "$PY" -m flows.train --dataset "$dataset" --objective "$objective" \
      --preset "$preset" --epochs "$epochs" --batch-size 64 --seed 0 --train-subset "$subset" \
      --threads 1 --device cpu --data-dir "$DATA" --out "$RUNS/$name" --resume) \
      > "$RUNS/logs/$name.train.log" 2>&1
  mkdir -p "$REPO/results/$table"
  (cd "$CODE" && "$PY" -m flows.evaluate --run "$RUNS/$name" --threads 1 --device cpu \
      --data-dir "$DATA" --out "$REPO/results/$table/$name.json") 2>&1 | tee "$RUNS/logs/$name.eval.log"
}

run mnist   reweighted small-mnist mnist-reweighted-medium   4 0     table1-medium
run cifar10 reweighted small-cifar cifar10-reweighted-medium 4 25000 table1-medium
echo "=== $(date -u +%FT%TZ) all done"
