#!/usr/bin/env bash
# The CUDA half of er_fast in one command, on a fresh GPU machine (a CUDA build of torch and nvcc
# installed, no internet): build for the card found, the CUDA tests, the timing suite.
#
#   bash benchmarks/gpu_suite.sh [RESULTS_DIR]     # default: $OUT if set, else ./gpu_suite_out
#
# Writes to RESULTS_DIR (8 files at most): gpu_suite.log (everything printed), build.log,
# pytest_ops.xml + pytest_cuda.xml (junit), gpu_suite.json + gpu_suite.md (timings),
# summary.txt (one line per stage), and table1_table.md with GPU_SUITE_ARGS=--table1.
# Exit status: non-zero if the build, the tests or the timing fail; the timing runs whenever the
# build succeeded. Budget: about 2 min build, 1-2 min tests, under 3 min timing.
#
# Environment: PYTHON (default python3); MAX_JOBS (default: all cores); TORCH_CUDA_ARCH_LIST
# (default: the card's compute capability); SKIP_BUILD=1 reuses the in-place build of an earlier
# run; GPU_SUITE_ARGS adds arguments to gpu_suite.py (e.g. "--table1"); GPU_SUITE_DEVICE=cpu is a
# dry run of this script on a machine without a GPU (CPU build and tests, gpu_suite.py --quick).
set -u -o pipefail

RES=${1:-${OUT:-./gpu_suite_out}}
mkdir -p "$RES" && RES=$(cd "$RES" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
PY=${PYTHON:-python3}
DEVICE=${GPU_SUITE_DEVICE:-cuda}
export PYTHONUNBUFFERED=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
exec > >(tee -a "$RES/gpu_suite.log") 2>&1
SUMMARY="$RES/summary.txt"
: > "$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
T0=$SECONDS
status=0

note "gpu_suite.sh $(date -u +%FT%TZ) repo $(git rev-parse --short HEAD 2>/dev/null || echo '?') device $DEVICE"
"$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available())' | tee -a "$SUMMARY"

# -- the card, the toolkit ---------------------------------------------------------------------
if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader | tee -a "$SUMMARY"
    CAP=$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())' 2>/dev/null) \
        || CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1)
    if [ -z "$CAP" ]; then note "no CUDA GPU found"; exit 2; fi
    export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$CAP}
    export FORCE_CUDA=1  # a build without CUDA kernels must fail here, not pass quietly
    if [ -z "${CUDA_HOME:-}" ]; then
        if command -v nvcc >/dev/null; then CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
        elif [ -x /usr/local/cuda/bin/nvcc ]; then CUDA_HOME=/usr/local/cuda; fi
    fi
    if [ -z "${CUDA_HOME:-}" ]; then note "no nvcc found (set CUDA_HOME)"; exit 2; fi
    export CUDA_HOME PATH="$CUDA_HOME/bin:$PATH"
    note "TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST CUDA_HOME=$CUDA_HOME ($("$CUDA_HOME/bin/nvcc" --version | tail -n1))"
fi
export MAX_JOBS=${MAX_JOBS:-$(nproc)}

# -- build (in place, so that the repository's er_fast/ is the built package) --------------------
t=$SECONDS
if [ "${SKIP_BUILD:-0}" = 1 ]; then
    note "build: skipped (SKIP_BUILD=1)"
else
    "$PY" -m pip install -v --no-build-isolation --no-deps --no-index -e . > "$RES/build.log" 2>&1
    rc=$?
    grep -iE "warning|error" "$RES/build.log" | grep -v "^  *warnings.warn\|WARNING: Location" | tail -n 20
    note "build: rc $rc ($((SECONDS - t)) s, MAX_JOBS=$MAX_JOBS)"
    if [ $rc -ne 0 ]; then tail -n 40 "$RES/build.log"; note "FAILED: build"; exit 1; fi
fi
"$PY" - "$DEVICE" <<'EOF' | tee -a "$SUMMARY"
import sys
from er_fast.ops import backend
key = {"cuda": "CUDA", "cpu": "CPU"}[sys.argv[1]]
missing = [op for op in backend.OPS if not backend.has_kernel(op, key)]
print(f"kernels: {key} {'all ' + str(len(backend.OPS)) + ' ops' if not missing else 'MISSING ' + ', '.join(missing)}"
      f" (loaded: {backend.LOADED}, {backend.LOAD_ERROR or 'ok'})")
sys.exit(1 if missing else 0)
EOF
[ $? -eq 0 ] || { note "FAILED: compiled $DEVICE kernels missing"; status=1; }

# -- tests: the op test files in full (every device), then any other CUDA test ------------------
OPS_TESTS="python_tests/test_mmd_imq.py python_tests/test_beta.py python_tests/test_circle.py"
t=$SECONDS
# shellcheck disable=SC2086
timeout 300 "$PY" -m pytest $OPS_TESTS -q -p no:cacheprovider --junitxml="$RES/pytest_ops.xml"
rc=$?
note "tests (op files): rc $rc ($((SECONDS - t)) s)"
[ $rc -eq 0 ] || status=1
t=$SECONDS
# shellcheck disable=SC2046
timeout 120 "$PY" -m pytest python_tests -q -p no:cacheprovider -k cuda $(printf -- '--ignore=%s ' $OPS_TESTS) \
    --junitxml="$RES/pytest_cuda.xml"
rc=$?
note "tests (-k cuda, other files): rc $rc ($((SECONDS - t)) s)"
[ $rc -eq 0 ] || [ $rc -eq 5 ] || status=1  # 5: no test selected

# -- timing ---------------------------------------------------------------------------------------
ARGS=(--device "$DEVICE" --out "$RES" --budget-s 170)
[ "$DEVICE" = cpu ] && ARGS+=(--quick)
LIMIT=330
case " ${GPU_SUITE_ARGS:-} " in *" --table1 "*) LIMIT=$((LIMIT + 420));; esac
t=$SECONDS
# shellcheck disable=SC2086
timeout "$LIMIT" "$PY" benchmarks/gpu_suite.py "${ARGS[@]}" ${GPU_SUITE_ARGS:-}
rc=$?
note "timing: rc $rc ($((SECONDS - t)) s)"
[ $rc -eq 0 ] || status=1

note "total: $((SECONDS - T0)) s, exit $status"
exit $status
