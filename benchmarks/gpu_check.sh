#!/usr/bin/env bash
# One script for a GPU machine (about 6 minutes on one GPU, 8 at most: every step has a time limit):
# the CUDA-marked tests, the quick suite, the interpreter's kernel tests, then the benchmarks on cuda (the fused
# kernel against the torch path, MIXUP_COLLATE_KERNEL=torch, in the same run), printing everything.
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
step "the suite without its slow tests, on a GPU machine" 90 "$PY" -m pytest -q -m "not slow" -p no:cacheprovider tests
step "the fused kernel under Triton's interpreter" 45 "$PY" -m pytest -q -p no:cacheprovider \
    tests/test_fused.py::test_the_kernel_under_the_interpreter
step "mix kernel (torch path and fused kernel)" 40 \
    "$PY" benchmarks/mix_kernel.py --device cuda --threads 4 --out "$OUTDIR/mix_kernel.json"
step "host cost per batch, fused kernel" 25 "$PY" benchmarks/fixed_cost.py --device cuda --rounds 30 \
    --out "$OUTDIR/fixed_cost_cuda.json"
step "host cost per batch, torch path" 25 env MIXUP_COLLATE_KERNEL=torch "$PY" benchmarks/fixed_cost.py \
    --device cuda --rounds 30 --out "$OUTDIR/fixed_cost_cuda_torch_path.json"
# The memory pipeline only (decoding dominates the decode pipeline whatever mixes), at half its samples per round.
step "loader throughput (memory pipeline, all modes)" 130 "$PY" benchmarks/loader_throughput.py --device cuda \
    --pipelines memory --samples 2048 --workers 0 8 --rounds 2 --out "$OUTDIR"
step "loader throughput (dense pairs, 3x32x32)" 50 "$PY" benchmarks/loader_throughput.py --device cuda \
    --pipelines dense --dense-cells 64x32 256x32 --dense-samples 2048 --workers 8 --rounds 2 --out "$OUTDIR/dense"
exit $status
