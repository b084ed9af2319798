#!/usr/bin/env bash
# CPU-scale reproduction of Table 1 (and the BG-MNIST models of Table 3), run sequentially.
# Budget (2 shared CPU cores, ~1.5 h for all nine runs): 2 epochs of a fresh random subset of
# 25000 (MNIST, BG-MNIST) or 12800 (CIFAR-10) training images per epoch, batch 64.
#   nohup nice -n 5 bash scripts/flows_cpu_runs.sh > /work/runs/logs/all.log 2>&1 &
# Runs an exported copy (git archive) of the current HEAD, so editing the worktree meanwhile
# cannot change the code under a running job; the commit is recorded in every JSON.
# Re-running the script resumes unfinished runs (--resume) and re-evaluates.
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

run mnist      reweighted small-mnist mnist-reweighted-small   2 25000 table1
run cifar10    reweighted small-cifar cifar10-reweighted-small 2 12800 table1
run mnist      split      small-mnist mnist-split-small        2 25000 table1
run cifar10    split      small-cifar cifar10-split-small      2 12800 table1
run mnist      base       small-mnist mnist-base-small         2 25000 table1
run cifar10    base       small-cifar cifar10-base-small       2 12800 table1
run bg-mnist-0 reweighted small-mnist bg-mnist-0-reweighted-small 2 25000 table3
run bg-mnist-1 reweighted small-mnist bg-mnist-1-reweighted-small 2 25000 table3
run bg-mnist-5 reweighted small-mnist bg-mnist-5-reweighted-small 2 25000 table3
echo "=== $(date -u +%FT%TZ) all done"
