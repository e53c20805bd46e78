#!/usr/bin/env bash
# The GPU checks of the project as one prepared run, for a machine with CUDA that has PyTorch but
# not this project's other dependencies, and no network (Python 3.12, x86-64).
#
#   bash benchmarks/gpu_kit.sh prepare [DATA_DIR]   # here, with network: fills .gpu_kit/
#   bash benchmarks/gpu_kit.sh run [OUT_DIR]        # there, with .gpu_kit/ copied beside the repo
#
# prepare downloads the wheels of the packages such a machine lacks (anndata, scanpy and what they
# need beyond NumPy, SciPy, pandas, scikit-learn, numba, h5py, matplotlib, which it has) for
# CPython 3.12 into .gpu_kit/whl, and copies the staged sorted-PBMC matrix and the MNIST test
# images into .gpu_kit/data (.gpu_kit/ is git-ignored; about 33 MB in all). run installs the
# wheels into a folder of its own, records the card, torch and CUDA versions, then runs, each
# under a time limit and with its log in OUT_DIR: the GPU tests (tests/test_gpu.py, and in
# tests/test_benchmarks.py the MNIST study and the image table's conv ensembles on CUDA),
# benchmarks/bench_gpu.py (the default fit eager, captured as a CUDA graph, and captured with
# concurrent ensembles, plus a profile) and the default's end-to-end timing on sorted PBMC 8
# (benchmarks/bench_default.py). About 9 minutes at most.
set -uo pipefail
cd "$(dirname "$0")/.."
KIT=.gpu_kit
# anndata 0.12 / scanpy 1.11 and the packages they need that a PyTorch image seldom has
WHEELS=(
    anndata==0.12.19 scanpy==1.11.5 umap-learn==0.5.12 pynndescent==0.6.0
    igraph==1.0.0 leidenalg==0.12.0 texttable==1.7.2 legacy-api-wrap==1.5 natsort==8.4.0
    session-info2==0.4.1 scverse-misc==0.0.3 array-api-compat==1.16.0 zarr==3.1.6
    numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0
)

prepare() {
    local data=${1:-../shared/data}
    mkdir -p "$KIT/whl" "$KIT/data"
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$KIT/whl" "${WHEELS[@]}" || return 1
    cp -r --no-preserve=mode "$data/zheng2017_pbmc_facs_fasttopics" "$KIT/data/" || return 1
    mkdir -p "$KIT/data/mnist"
    cp --no-preserve=mode "$data"/mnist/t10k-*-idx[13]-ubyte.gz "$KIT/data/mnist/" || return 1
    du -sh "$KIT"
}

run() {
    local out=${1:-${OUT:-gpu_out}}
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/gpu_kit_site "$KIT"/whl/*.whl || return 1
    export PYTHONPATH="/tmp/gpu_kit_site:$PWD" PYTHONUNBUFFERED=1 SCGAN_DATA_DIR="$PWD/$KIT/data"
    {
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
        python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__, \
'CUDA', torch.version.cuda, torch.cuda.get_device_name())"
    } 2>&1 | tee "$out/machine.txt"
    timeout 180 python3 -m pytest -m gpu tests/test_gpu.py tests/test_benchmarks.py -q \
        -p no:cacheprovider 2>&1 |
        tee "$out/gpu_tests.log"
    timeout 200 python3 benchmarks/bench_gpu.py --data-dir "$KIT/data" --device cuda \
        --out "$out/bench_gpu.json" 2>&1 | tee "$out/bench_gpu.log"
    timeout 150 python3 benchmarks/bench_default.py --data-dir "$KIT/data" \
        --datasets zheng2017_sorted8 --device cuda --out "$out/bench_default.json" 2>&1 |
        tee "$out/bench_default.log"
}

case "${1:-}" in
    prepare) shift; prepare "$@" ;;
    run) shift; run "$@" ;;
    *) echo "usage: bash benchmarks/gpu_kit.sh prepare [DATA_DIR] | run [OUT_DIR]" >&2; exit 2 ;;
esac
