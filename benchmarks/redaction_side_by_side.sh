#!/bin/sh
# Redaction CPU seconds before and after, in one run: build_stages.py (every stage of a build, one process) on the
# base commit's code and on this tree's, alternating, then redaction_identity.py (both redaction modules in one
# process, alternating rounds, and the byte-identity check).
# Usage: sh benchmarks/redaction_side_by_side.sh BASE_COMMIT CORPUS_DIR [ROUNDS]
set -e
base=$1; corpus=$2; rounds=${3:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
tree=$(mktemp -d)
git -C "$here" archive "$base" src benchmarks | tar -x -C "$tree"
export MODEL_CUSTOMIZATION_ALLOWED_ROOTS="${MODEL_CUSTOMIZATION_ALLOWED_ROOTS:-$corpus}"
i=0
while [ "$i" -lt "$rounds" ]; do
    echo "base    $(PYTHONPATH="$tree/src" "$here/.venv/bin/python" "$tree/benchmarks/build_stages.py" "$corpus" --hash)"
    echo "current $(PYTHONPATH="$here/src" "$here/.venv/bin/python" "$here/benchmarks/build_stages.py" "$corpus" --hash)"
    i=$((i + 1))
done
PYTHONPATH="$here/src" "$here/.venv/bin/python" "$here/benchmarks/redaction_identity.py" --ref "$base" --rounds "$rounds" "$corpus"
rm -rf "$tree"
