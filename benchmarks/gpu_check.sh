#!/usr/bin/env bash
# One script for a GPU machine (about 5 minutes on one GPU, 8 at most: every step has a time limit):
# the CUDA-marked tests, the whole suite, then the benchmarks on cuda, printing everything.
# Run from the repository root:
#     bash benchmarks/gpu_check.sh            # uses ./.venv if present, else python3 (PYTHON=... to choose)
# Results land in benchmarks/results/gpu/ (and in $OUT when that is set, as on a lent device machine).
# Exits 1 at once without a CUDA device; otherwise runs every step and exits 1 if any failed or overran.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUTDIR=${OUT:-benchmarks/results/gpu}
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the benchmarks import the checkout, installed or not
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" || exit 1
mkdir -p "$OUTDIR"
status=0

step() {  # step NAME SECONDS COMMAND...: run COMMAND within SECONDS; a failure or an overrun fails the check
    local name=$1 limit=$2 rc
    shift 2
    echo "== $name (limit ${limit}s)"
    timeout "$limit" "$@"
    rc=$?
    [ $rc -eq 124 ] && echo "!! $name: stopped at its ${limit}s limit"
    [ $rc -eq 0 ] || status=1
}

step "CUDA tests" 60 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests
step "whole suite on a GPU machine (pin-memory thread path live)" 180 "$PY" -m pytest -q -p no:cacheprovider tests
step "mix kernel" 30 "$PY" benchmarks/mix_kernel.py --device cuda --threads 4 --out "$OUTDIR/mix_kernel.json"
step "loss" 30 "$PY" benchmarks/loss.py --device cuda --out "$OUTDIR/loss.json"
step "collate overhead (apply on cuda)" 45 \
    "$PY" benchmarks/collate_overhead.py --device cuda --out "$OUTDIR/collate_overhead.json"
# The memory pipeline only (decoding dominates the decode pipeline whatever mixes), at half its samples per round.
step "loader throughput (memory pipeline, all modes)" 135 "$PY" benchmarks/loader_throughput.py --device cuda \
    --pipelines memory --samples 2048 --workers 0 8 --rounds 2 --out "$OUTDIR"
exit $status
