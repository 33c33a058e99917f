#!/usr/bin/env bash
# The GPU checks and the figures of the README's GPU section: the CUDA tests, R-Score speed
# against the reference on the GPU (both presets), architectures per second with 1, 4 and 8
# Ray workers sharing the GPU, the default search's wall time on 8 workers, and GPU memory
# over 1,000 evaluations.
#
#   bash examples/gpu_check.sh LOG_DIR [STEP ...]     # default: every step, in this order
#
# Steps and their time limits: machine (30 s), tests (180 s), speed_reference (80 s),
# speed_paper (60 s) | workers (100 s), default_search (100 s), memory (80 s) -- about 10
# minutes in all, so on a machine that stops a command after 10 minutes run it in two calls,
# split at the bar. Two more steps run only when named: cpu_scaling (120 s), the `reference`
# preset on the machine's CPU cores, one architecture at a time on every core against as many
# at once in process (threads) and on as many Ray workers (scaling beyond 2 cores is
# unmeasured on the project's own machines); and rnas_epoch (240 s), one search epoch of each
# differentiable search (RNAS-OS max and uniform, RNAS-FD H) at its paper's settings over 1,280
# images, extrapolated to a whole CIFAR-10 search, its memory estimate beside the peak used.
# Each step's full output and exit status go to LOG_DIR/gpu_check.log; a slow or failing step
# costs its limit and the steps after it still run.
#
# Run it from the repository root with the project's dependencies importable (an installed
# checkout, or PYTHONPATH).
set -u
log_dir=${1:-runs/gpu_check}
shift $(( $# > 0 ? 1 : 0 ))
steps=${*:-machine tests speed_reference speed_paper workers default_search memory}
mkdir -p "$log_dir" runs/gpu_check
log="$log_dir/gpu_check.log"
: > "$log"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

selected() {
    case " $steps " in *" $1 "*) return 0 ;; *) return 1 ;; esac
}

step() {
    local name=$1 limit=$2
    shift 2
    selected "$name" || return
    echo "== $name (limit ${limit}s, started $(date +%T)): $*" | tee -a "$log"
    local start=$SECONDS
    timeout "$limit" "$@" >> "$log" 2>&1
    local status=$?
    echo "== $name: exit $status after $((SECONDS - start))s" | tee -a "$log"
}

step machine 30 bash -c 'nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv;
    python3 -c "import torch; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda,
    torch.cuda.get_device_name(0), torch.cuda.is_available())"; nproc;
    python3 -c "import pymoo, torchattacks, ray, sklearn, scipy, yaml, matplotlib; print(\"imports ok\")"'
step tests 180 python3 -m pytest -v -rA --durations=15 -p no:cacheprovider tests/test_gpu.py
step speed_reference 80 python3 examples/bench_proxy_speed.py --device cuda --n 50 --presets reference
step speed_paper 60 python3 examples/bench_proxy_speed.py --device cuda --n 20 --presets paper
step workers 100 python3 examples/bench_workers.py --device cuda --n 200 --workers 1,4,8
if selected default_search; then
    # a fresh folder: an archive left by an earlier run would be reused and nothing timed
    rm -rf runs/gpu_check/default_search
    step default_search 100 python3 -m trnas.cli search --config default device=cuda workers=8 \
        out_dir=runs/gpu_check/default_search
    cp runs/gpu_check/default_search/summary.json "$log_dir/default_search_summary.json" 2>/dev/null
fi
step memory 80 python3 examples/bench_memory.py --device cuda --n 1000 --every 100
cores=$(nproc)
step cpu_scaling 120 python3 examples/bench_proxy_speed.py --device cpu --no-reference --n $((3 * cores)) \
    --presets reference --in-flight "$cores" --workers "$cores"
step rnas_epoch 240 python3 examples/bench_differentiable.py --device cuda --n-images 1280
echo "== done $(date +%T)" | tee -a "$log"
