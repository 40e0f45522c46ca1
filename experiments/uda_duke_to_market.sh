#!/usr/bin/env bash
# Unsupervised domain adaptation DukeMTMC-reID -> Market-1501: a model trained with DukeMTMC-reID's labels,
# adapted to Market-1501's training images without their labels, evaluated on Market-1501.
#
#   experiments/uda_duke_to_market.sh DUKE_ROOT MARKET_ROOT EXPERIMENT_ROOT [extra train.py flags]
#
# Needs: the extracted DukeMTMC-reID and Market-1501-v15.09.15 releases, and data/dukeMTMC_*.csv and
#   data/market1501_*.csv made by data/convert.py (data/README.md); ImageNet weights of ResNet-50 from Keras.
#   Override the CSV locations with SOURCE_PREFIX=... TARGET_PREFIX=...
# Hardware: one GPU with >= 40 GB (ResNet-50, last stride 1; the adaptation's batches are 16 x 16 = 256
#   images at 256x128; with less memory append --batch_k 8). The source training (30,960 iterations,
#   experiments/bot_duke_train.sh's recipe) takes a few hours; the adaptation, 20,000 iterations plus 50
#   clusterings of the 12,936 Market training images, a few more. On a CPU it is days.
# Expect: the published UDA figure Duke -> Market of MMT is 87.7% rank-1 / 71.2% mAP, SpCL's MSMT17 ->
#   Market 89.7% / 77.5% (../shared/reference/peers.md); Cluster Contrast without any source reaches 92.3% /
#   82.1% with GeM pooling (73.6% mAP with average pooling, as here, in its users' reproduction). This
#   recipe has not been run to the end in trinet yet: evaluation_source.json (direct transfer) and
#   evaluation_adapted.json are the figures to compare.
# Layout: EXPERIMENT_ROOT/source (the Bag of Tricks on DukeMTMC-reID, with its own evaluation there) and
#   EXPERIMENT_ROOT/adapted; extra flags go to the adaptation, SOURCE_FLAGS="..." to the source run.
set -euo pipefail
if [ $# -lt 3 ]; then
    sed -n '2,20p' "$0" >&2
    exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DUKE=$1 MARKET=$2
shift 2
exec "$HERE/uda_recipe.sh" DukeMTMC-reID "${SOURCE_PREFIX:-$HERE/../data/dukeMTMC}" duke 258 "$DUKE" \
    Market-1501 "${TARGET_PREFIX:-$HERE/../data/market1501}" market1501 202 "$MARKET" "$@"
