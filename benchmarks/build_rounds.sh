#!/bin/bash
# Rounds of three builds of one corpus, one right after the other: the floor (baseline_build_floor.py), another
# checkout's build (BEFORE_SRC, e.g. `git archive REV src | tar -x -C /tmp/before`), this checkout's build (default
# pool), the builds without the memory sampler (--no-memory: the floor runs without one). Prints each side's wall
# seconds, their medians, and each build's ratio to the floor of its own round with the median of those ratios: on a
# machine whose speed drifts between minutes, a ratio within one round is the figure to quote. Then one build of
# each side with the sampler, for the peak memory.
# Usage: bash benchmarks/build_rounds.sh ROUNDS MEMORY_DIR BEFORE_SRC   (PYTHON: the interpreter, default .venv/bin/python)
cd "$(dirname "$0")/.." || exit 1
rounds=${1:?rounds}; dir=$(realpath "${2:?memory dir}"); before=$(realpath "${3:?before src}")
export MODEL_CUSTOMIZATION_ALLOWED_ROOTS="${MODEL_CUSTOMIZATION_ALLOWED_ROOTS:+$MODEL_CUSTOMIZATION_ALLOWED_ROOTS:}$dir"
PY=${PYTHON:-.venv/bin/python}
out=$(mktemp)
for _ in $(seq "$rounds"); do
  echo "floor $($PY benchmarks/baseline_build_floor.py "$dir")" >> "$out"
  echo "before $(PYTHONPATH=$before $PY benchmarks/build_memory.py "$dir" --no-memory)" >> "$out"
  echo "now $(PYTHONPATH=$PWD/src $PY benchmarks/build_memory.py "$dir" --no-memory)" >> "$out"
done
echo "before_memory $(PYTHONPATH=$before $PY benchmarks/build_memory.py "$dir")" >> "$out"
echo "now_memory $(PYTHONPATH=$PWD/src $PY benchmarks/build_memory.py "$dir")" >> "$out"
$PY - "$out" <<'PY'
import collections, json, statistics, sys
rows = [(line.split(" ", 1)[0], json.loads(line.split(" ", 1)[1])) for line in open(sys.argv[1])]
walls = collections.defaultdict(list)
for side, row in rows:
    if not side.endswith("_memory"):
        walls[side].append(row["wall_s"])
for side, values in walls.items():
    print(side, "wall_s", values, "median", round(statistics.median(values), 2))
for side in ("before", "now"):
    ratios = [round(a / f, 2) for a, f in zip(walls[side], walls["floor"])]
    print(side, "ratio to the floor of its round", ratios, "median", statistics.median(ratios))
print("dataset ids", sorted({row["dataset_id"] for side, row in rows if side != "floor"}))
print("peak PSS summed MB", {side: row["peak_pss_sum_mb"] for side, row in rows if side.endswith("_memory")})
PY
rm -f "$out"
