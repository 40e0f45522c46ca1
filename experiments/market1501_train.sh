#!/usr/bin/env bash
# Market-1501 with the paper's TriNet setting.
#
#   experiments/market1501_train.sh IMAGE_ROOT EXPERIMENT_ROOT [extra train.py flags]
#
# Needs: the extracted Market-1501-v15.09.15 release as IMAGE_ROOT, and data/market1501_{train,query,test}.csv
#   made by `python data/convert.py market1501 IMAGE_ROOT --out data` (data/README.md); ImageNet weights of
#   ResNet-50 from Keras (downloaded on first use into ~/.keras/models; offline, the error says which file
#   to put there). Override the CSV location with CSV_PREFIX=path/to/market1501.
# Hardware: one GPU with >= 12 GB (ResNet-50, batches of 18 x 4 = 72 images at 256x128, float32).
#   25,000 iterations take a few hours on a current GPU; on a CPU it is days.
# Expect: the paper's TriNet reaches rank-1 84.9% / mAP 69.1% (Market-1501 AP), and 86.7% / 81.1% with
#   re-ranking; runs differ by about a point. Ctrl+C stops cleanly; run the same command again to resume.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,15p' "$0" >&2
    exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$HERE/paper_recipe.sh" Market-1501 "${CSV_PREFIX:-$HERE/../data/market1501}" market1501 "$@"
