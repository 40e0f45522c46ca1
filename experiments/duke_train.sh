#!/usr/bin/env bash
# DukeMTMC-reID with the paper's TriNet setting (the original's duke_mtmc_train.sh: Market's settings).
#
#   experiments/duke_train.sh IMAGE_ROOT EXPERIMENT_ROOT [extra train.py flags]
#
# Needs: the extracted DukeMTMC-reID release as IMAGE_ROOT, and data/dukeMTMC_{train,query,test}.csv made by
#   `python data/convert.py duke IMAGE_ROOT --out data` (data/README.md); Keras' ImageNet weights of ResNet-50
#   (downloaded on first use; offline, the error says which file to put where). Override the CSV location with
#   CSV_PREFIX=path/to/dukeMTMC.
# Hardware: one GPU with >= 12 GB; a few hours for 25,000 iterations on a current GPU.
# Expect: the paper's TriNet reaches rank-1 72.4% / mAP 53.5%; the original code's Duke script was reported
#   at rank-1 73.3% / mAP 55.5%. Ctrl+C stops cleanly; run the same command again to resume.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,14p' "$0" >&2
    exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$HERE/paper_recipe.sh" DukeMTMC-reID "${CSV_PREFIX:-$HERE/../data/dukeMTMC}" duke "$@"
