#!/usr/bin/env bash
# iLIDS-VID, one of the protocol's 10 trials, with the TriNet setting on frames and mean-pooled tracklets.
#
#   TRIAL=0 experiments/ilidsvid_train.sh IMAGE_ROOT EXPERIMENT_ROOT [extra train.py flags]
#
# Needs: the extracted iLIDS-VID release (i-LIDS-VID/sequences/ and "train-test people splits/") as
#   IMAGE_ROOT, and data/ilidsvid_trial${TRIAL}_{train,query,test}.csv made by `python data/convert.py ilidsvid
#   IMAGE_ROOT --trial $TRIAL --out data`; ImageNet weights of ResNet-50 from Keras. Override the CSV location
#   with CSV_PREFIX=path/to/ilidsvid_trial0. The protocol's figure is the mean over TRIAL=0..9 (one experiment
#   folder each).
# Hardware: one GPU with >= 12 GB; 10,000 iterations (fewer than on MARS: 150 training identities).
# Expect: the TriNet paper reports no iLIDS-VID figure, and no published TriNet number on it is known to this
#   repository: the script prints rank-1/5/10 (query: camera 1, gallery: camera 2) to compare between runs.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,13p' "$0" >&2
    exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$HERE/video_recipe.sh" iLIDS-VID "${CSV_PREFIX:-$HERE/../data/ilidsvid_trial${TRIAL:-0}}" 10000 "$@"
