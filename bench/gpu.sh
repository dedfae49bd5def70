#!/usr/bin/env bash
# GPU figures for docs/benchmarks.md#gpu, in at most 8 minutes on a fresh machine with an NVIDIA
# GPU and this repository checked out:
#
#   DIFFUSIONTOOLS_DATA=/path/to/mnist bash bench/gpu.sh [OUT_DIR]    (default: $OUT, else gpu_results)
#   bash bench/gpu.sh --smoke [OUT_DIR]                               (tiny sizes, any device: a check)
#
# 1. installs: torch only if python cannot import it (pinned as the Makefile), then the package
#    (editable; offline, without dependencies; failing that, src/ on PYTHONPATH);
# 2. runs bench/bench_gpu.py with what is left of the 8 minutes (training and sampling speed,
#    then faithful model 1 trained for as many epochs as fit, sampled and scored at the end).
# Writes OUT_DIR/gpu_results.json, gpu_log.txt, model1_samples.png, model1_metrics.csv and
# model1_learning_curve.png. Without DIFFUSIONTOOLS_DATA, model 1 trains on the embedded subset.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
total_s=${GPU_BENCH_TOTAL_S:-480}
python=${PYTHON:-python3}

out="" flags=() smoke=0
for arg in "$@"; do
    case "$arg" in
        --smoke) smoke=1 flags+=("$arg") ;;
        --*) flags+=("$arg") ;;
        *) out=$arg ;;
    esac
done
out=${out:-${OUT:-gpu_results}}
mkdir -p "$out"

{
    # Fail fast where there is no network (the second try then installs from what is here).
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_RETRIES=0 PIP_TIMEOUT=10
    if ! "$python" -c "import torch" 2>/dev/null; then
        "$python" -m pip install --quiet "torch==2.13.0"
    fi
    "$python" -m pip install --quiet -e . \
        || "$python" -m pip install --quiet --no-deps --no-build-isolation -e . \
        || echo "pip could not install the package: using src/ on PYTHONPATH"
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'GPU:', torch.cuda.get_device_name() if torch.cuda.is_available() else 'none')"
    left=$((total_s - ($(date +%s) - start) - 20))  # 20 s for start-up and writing
    [ "$smoke" = 1 ] && left=60
    echo "installed after $(($(date +%s) - start)) s; bench budget ${left} s"
    "$python" -m bench.bench_gpu --budget-s "$left" ${flags[@]+"${flags[@]}"} "$out"
} 2>&1 | tee "$out/gpu_log.txt"
