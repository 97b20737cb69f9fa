#!/usr/bin/env bash
# Every GPU check and benchmark of the speed work in one command, for a GPU lent for a few minutes.
#
#   OUT=results/gpu-checks bash benchmarks/gpu_checks.sh
#
# Run from the repository root with tganbench importable (installed, or PYTHONPATH=.).
# Writes to $OUT: log.txt (every figure, in order), compare-bf16.md and
# compare-cuda-graph.md (each option against fp32, cell by cell) and runs.tgz
# (the quick runs' CSVs, manifests and summaries). Each step has its own time
# limit, so a slow step cannot take the rest with it. On an H100 expect 8-9
# minutes (run 1 of benchmarks/RESULTS.md took 492 s, without the --cuda-graph
# run) plus at most 5 for the two StyleGAN2 runs (not yet measured). DEVICE=cpu
# and PROFILE=smoke give a fast dry run on a CPU.
set -u
OUT=${OUT:-results/gpu-checks}
DEVICE=${DEVICE:-cuda}
PROFILE=${PROFILE:-quick}
SEEDS=${SEEDS:-3}
STEPS=${STEPS:-300}
RUNS=${RUNS:-/tmp/tganbench-gpu-runs}
mkdir -p "$OUT" "$RUNS"
export PYTHONUNBUFFERED=1
export TGANBENCH_CACHE=${TGANBENCH_CACHE:-/tmp/tganbench-gpu-cache}
LOG="$OUT/log.txt"
step() { echo; echo "== $(date +%T) $*" | tee -a "$LOG"; }

step "device"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true; } | tee -a "$LOG"
python3 -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(), '| cpus', __import__('os').cpu_count())" \
    2>&1 | tee -a "$LOG"

# First what the GPU must confirm (the tests of --cuda-graph's capture), then the figures.
step "tests that exercise the training device (device auto: the GPU), --cuda-graph's first"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py tests/test_end_to_end.py \
    tests/test_fast_path.py tests/test_divergence.py 2>&1 | tail -15 | tee -a "$LOG"

step "training loops: plain PyTorch loop against tganbench's variants, 32x32 and 64x64, batch 64"
timeout 240 python3 benchmarks/compare_loops.py --device "$DEVICE" --resolutions 32,64 \
    --variants fp32,fp32-contiguous,bf16,cuda-graph \
    --steps "$STEPS" --warmup 30 --repeats 3 2>&1 | tee -a "$LOG"

for option in fp32 cuda-graph bf16; do
    flags=(--precision "$option")
    [ "$option" = cuda-graph ] && flags=(--cuda-graph)
    step "tganbench run --strategies all --seeds $SEEDS ${flags[*]} ($PROFILE profile)"
    timeout 150 python3 -m tganbench.cli run --strategies all --seeds "$SEEDS" --profile "$PROFILE" \
        --device "$DEVICE" "${flags[@]}" --quiet --out "$RUNS/$PROFILE-$option" 2>&1 | tee -a "$LOG"
done

# StyleGAN2 at the few-shot papers' sizes, rosinality's FFHQ widths (channel_multiplier 2) and the stylegan2-gpu
# profile's lr and R1 (R1 costs a second backward pass through D), a short budget:
# time, steps/s, peak memory and the evaluation share (next step) of one finetune cell each.
for px in 64 256; do
    step "stylegan2 at $px px (width $((32768 / px)), z 512): finetune, 200 source + 200 target steps"
    timeout 150 python3 -m tganbench.cli run --strategies finetune --architecture stylegan2 --resolution "$px" \
        --width $((32768 / px)) --z-dim 512 --profile quick --lr 0.002 --r1-gamma 10 \
        --source-steps 200 --target-steps 200 --eval-every 100 \
        --device "$DEVICE" --quiet --out "$RUNS/stylegan2-$px" 2>&1 | tee -a "$LOG"
done

step "evaluation share of the runs' wall time; peak memory per cell"
python3 - "$RUNS" 2>&1 <<'EOF' | tee -a "$LOG"
import sys
from pathlib import Path

import pandas as pd
from tabulate import tabulate

sys.path.insert(0, "benchmarks")
from compare_loops import evaluation_share

folders = sorted(p for p in Path(sys.argv[1]).iterdir() if (p / "manifest.json").is_file())
print(tabulate([evaluation_share(p) for p in folders],
               headers=["run", "profile", "wall s", "evaluation s", "evaluation share"], floatfmt=".3f"))
for folder in folders:
    cells = pd.read_csv(folder / "cells.csv")
    print(f"{folder.name}: peak memory per cell {cells['peak_memory_mb'].min():.1f}-{cells['peak_memory_mb'].max():.1f} MB "
          f"({cells['peak_memory_kind'].iloc[0]}); steps/s median {cells['steps_per_second'].median():.1f}")
EOF

for option in cuda-graph bf16; do
    step "$option against fp32, cell by cell (its effect on FD)"
    timeout 60 python3 -m tganbench.cli compare "$RUNS/$PROFILE-fp32" "$RUNS/$PROFILE-$option" --allow-protocol-change \
        --max-regression time=off --output "$OUT/compare-$option.md" 2>&1 | tee -a "$LOG"
done
tar czf "$OUT/runs.tgz" -C "$RUNS" --exclude=samples --exclude=plots --exclude=report.html --exclude=.lock . \
    2>&1 | tee -a "$LOG"

step "torch.compile variants at 32x32 (compilation time not counted)"
timeout 150 python3 benchmarks/compare_loops.py --device "$DEVICE" --resolutions 32 \
    --variants compile,compile-contiguous,compile-reduce-overhead --steps "$STEPS" --warmup 30 --repeats 3 --eval-images 100 \
    2>&1 | tee -a "$LOG"

step "done"
