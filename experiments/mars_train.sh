#!/usr/bin/env bash
# MARS with the paper's TriNet setting, trained on frames and evaluated on mean-pooled tracklets.
#
#   experiments/mars_train.sh IMAGE_ROOT EXPERIMENT_ROOT [extra train.py flags]
#
# Needs: the extracted MARS release (bbox_train/, bbox_test/ and the info/ files of its evaluation code) as
#   IMAGE_ROOT, and data/mars_{train,query,test}.csv made by `python data/convert.py mars IMAGE_ROOT --out
#   data` (data/README.md); ImageNet weights of ResNet-50 from Keras. Override the CSV location with
#   CSV_PREFIX=path/to/mars; FRAMES=N embeds N evenly spaced frames per tracklet (default: all).
# Hardware: one GPU with >= 12 GB (ResNet-50, batches of 18 x 4 = 72 frames at 256x128, float32).
#   25,000 iterations take a few hours on a current GPU, as on Market-1501, and every test frame is embedded.
# Expect: the TriNet paper (Hermans, Beyer, Leibe 2017) reports rank-1 79.80% / mAP 67.70% on MARS,
#   81.21% / 77.43% with re-ranking. Not yet reproduced with trinet; runs differ by about a point.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,13p' "$0" >&2
    exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$HERE/video_recipe.sh" MARS "${CSV_PREFIX:-$HERE/../data/mars}" 25000 "$@"
