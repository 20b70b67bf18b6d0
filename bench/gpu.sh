#!/usr/bin/env bash
# The whole GPU benchmark of docs/performance.md in one run (issue 17): plain / fast /
# fast+compile at batch 1 and 16, 1/5-shot, 321/473, ResNet-50/101, both training steps, the
# end-to-end evaluation with 8 loader workers, host-sync warnings; writes docs/bench_<gpu>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export NO_ALBUMENTATIONS_UPDATE=1 WANDB_MODE=offline
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python bench/model.py --device cuda --batch "${BATCH:-16}" --compile --sync-debug \
    --workers "${WORKERS:-8}" --episodes "${EPISODES:-400}" --repeats 5 --warmup 3 --docs "$@"
# accuracy of the default path against plain fp32 (CKPT=logs/demo/runs/<run>/checkpoints/last.ckpt)
if [ -n "${CKPT:-}" ]; then python bench/accuracy.py --ckpt "$CKPT" --device cuda; fi
