#!/usr/bin/env bash
# Unsupervised domain adaptation Market-1501 -> DukeMTMC-reID: a model trained with Market-1501's labels,
# adapted to DukeMTMC-reID's training images without their labels, evaluated on DukeMTMC-reID.
#
#   experiments/uda_market_to_duke.sh MARKET_ROOT DUKE_ROOT EXPERIMENT_ROOT [extra train.py flags]
#
# Needs: the extracted Market-1501-v15.09.15 and DukeMTMC-reID releases, and data/market1501_*.csv and
#   data/dukeMTMC_*.csv made by data/convert.py (data/README.md); ImageNet weights of ResNet-50 from Keras.
#   Override the CSV locations with SOURCE_PREFIX=... TARGET_PREFIX=...
# Hardware: one GPU with >= 40 GB (ResNet-50, last stride 1; the adaptation's batches are 16 x 16 = 256
#   images at 256x128; with less memory append --batch_k 8). The source training (24,240 iterations,
#   experiments/bot_market1501_train.sh's recipe) takes a few hours; the adaptation, 20,000 iterations plus
#   50 clusterings of the 16,522 Duke training images (each an embedding pass and a sparse Jaccard distance
#   + DBSCAN), a few more. On a CPU it is days.
# Expect: ../shared/reference/peers.md lists no published Market -> Duke figure of these methods (its UDA
#   figure is Duke -> Market: MMT 87.7% rank-1 / 71.2% mAP); Cluster Contrast's fully unsupervised Market
#   figures (82.1% mAP) bound what pseudo labels reach. This recipe has not been run to the end in trinet
#   yet: evaluation_source.json (direct transfer) and evaluation_adapted.json are the figures to compare.
# Layout: EXPERIMENT_ROOT/source (the Bag of Tricks on Market-1501, with its own evaluation on Market-1501)
#   and EXPERIMENT_ROOT/adapted; extra flags go to the adaptation, SOURCE_FLAGS="..." to the source run.
set -euo pipefail
if [ $# -lt 3 ]; then
    sed -n '2,20p' "$0" >&2
    exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MARKET=$1 DUKE=$2
shift 2
exec "$HERE/uda_recipe.sh" Market-1501 "${SOURCE_PREFIX:-$HERE/../data/market1501}" market1501 202 "$MARKET" \
    DukeMTMC-reID "${TARGET_PREFIX:-$HERE/../data/dukeMTMC}" duke 258 "$DUKE" "$@"
