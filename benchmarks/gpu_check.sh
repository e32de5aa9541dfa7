#!/usr/bin/env bash
# One-GPU check of facevox's streamed training path (issue 13): generated corpora -> tar shards ->
# fakeface ResNet-50 and speaker ECAPA-TDNN in bf16 on CUDA, the Trainer against a raw PyTorch loop
# on the same batches, the data loader alone, peak GPU memory, and the train commands on the shards.
# Budget: under 8 minutes on one GPU with 16 CPU cores (the python part is cut off at 470 s).
#
#   bash benchmarks/gpu_check.sh                 # work folder in /tmp, removed at the end
#   GPU_CHECK_DIR=/scratch/gc bash benchmarks/gpu_check.sh --json gpu_check.json   # kept; extra args go to gpu_check.py
#
# Without CUDA it stops at once with status 2. The same path runs on a CPU, tiny, with
#   python benchmarks/gpu_check.py --work /tmp/gc --device cpu --tiny
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && PY=.venv/bin/python

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: error: no CUDA device: torch.cuda.is_available() is False (this check needs one GPU)" >&2
    exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

if [ -n "${GPU_CHECK_DIR:-}" ]; then
    WORK="$GPU_CHECK_DIR"
else
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/facevox-gpu-check.XXXXXX")"
    trap 'rm -rf "$WORK"' EXIT
fi
start=$SECONDS
status=0
timeout --signal=INT --kill-after=10 470 "$PY" benchmarks/gpu_check.py --work "$WORK" --device cuda "$@" || status=$?
echo "gpu_check.sh: $((SECONDS - start)) s, status $status"
[ "$status" -eq 124 ] && echo "gpu_check: error: over the 470 s budget" >&2
exit "$status"
