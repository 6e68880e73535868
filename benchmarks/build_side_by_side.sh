#!/bin/bash
# Side by side, one after the other: the floor, another checkout's build (MAIN_SRC, default /work/main/src), this
# checkout's build with one process and with the default pool, the floor again; the load average before each.
# Usage: bash benchmarks/build_side_by_side.sh MEMORY_DIR   (PYTHON: the interpreter, default .venv/bin/python)
cd "$(dirname "$0")/.." || exit 1
DIR=$(realpath "${1:?usage: build_side_by_side.sh MEMORY_DIR}")
export MODEL_CUSTOMIZATION_ALLOWED_ROOTS="${MODEL_CUSTOMIZATION_ALLOWED_ROOTS:+$MODEL_CUSTOMIZATION_ALLOWED_ROOTS:}$DIR"
PY=${PYTHON:-.venv/bin/python}
run() { echo "## $1 load: $(cut -d' ' -f1-3 /proc/loadavg)"; shift; "$@"; echo; }
run floor $PY benchmarks/baseline_build_floor.py $DIR
run main-default env PYTHONPATH=${MAIN_SRC:-/work/main/src} $PY benchmarks/build_memory.py $DIR  # this script (it adds cpu_s), main's build
run ours-1 env PYTHONPATH=$PWD/src $PY benchmarks/build_memory.py $DIR --workers 1
run ours-default env PYTHONPATH=$PWD/src $PY benchmarks/build_memory.py $DIR
run floor $PY benchmarks/baseline_build_floor.py $DIR
echo "## end load: $(cut -d' ' -f1-3 /proc/loadavg)"
