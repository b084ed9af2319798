#!/usr/bin/env bash
# Re-evaluate finished runs with the current HEAD (exported copy), rewriting results JSON.
#   bash scripts/flows_reevaluate.sh table1:mnist-reweighted-small table3:bg-mnist-0-reweighted-small ...
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
for spec in "$@"; do
  table=${spec%%:*} name=${spec#*:}
  (cd "$CODE" && "$PY" -m flows.evaluate --run "$RUNS/$name" --threads 1 --device cpu \
      --data-dir "$DATA" --out "$REPO/results/$table/$name.json") 2>&1 | tee "$RUNS/logs/$name.eval.log"
done
