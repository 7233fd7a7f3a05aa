#!/usr/bin/env bash
# One script for a GPU machine (under 5 minutes on one GPU): the CUDA-marked tests, then the three
# benchmarks on cuda, printing everything. Run from the repository root:
#     bash benchmarks/gpu_check.sh            # uses ./.venv if present, else python3
# Results land in benchmarks/results/gpu/ (and in $OUT when that is set, as on a lent device machine).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUTDIR=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" || exit 1
status=0
echo "== CUDA tests"
"$PY" -m pytest -q -m cuda -p no:cacheprovider tests || status=1
echo "== whole suite on a GPU machine (pin-memory thread path live)"
"$PY" -m pytest -q -x -p no:cacheprovider tests || status=1
echo "== mix kernel"
"$PY" benchmarks/mix_kernel.py --device cuda --threads 4 --out "$OUTDIR/mix_kernel.json" || status=1
echo "== loss"
"$PY" benchmarks/loss.py --device cuda --out "$OUTDIR/loss.json" || status=1
echo "== loader throughput"
"$PY" benchmarks/loader_throughput.py --device cuda --workers 0 8 --rounds 2 --out "$OUTDIR" || status=1
exit $status
