#!/usr/bin/env bash
# CUB-200-2011 with Proxy-Anchor (Kim et al. 2020): ResNet-50 from ImageNet, 512-d, the benchmark's protocol.
#
#   experiments/cub200_proxy_anchor.sh IMAGE_ROOT EXPERIMENT_ROOT [extra train.py flags]
#
# Needs: the extracted CUB_200_2011 release as IMAGE_ROOT and data/cub200_{train,test}.csv made by
#   `python data/convert.py cub200 IMAGE_ROOT --out data` (classes 1-100 train, 101-200 test); ImageNet
#   weights of ResNet-50 from Keras (downloaded on first use; offline, the error says which file to put where).
#   Override the CSV location with CSV_PREFIX=path/to/cub200.
# Hardware: one GPU with >= 16 GB (batches of 120 at 224x224, float32); 60 epochs = 2,940 iterations, well
#   under an hour on a current GPU. On a CPU, days.
# Expect (published, ResNet-50 512-d, ImageNet init; ../shared/reference/peers.md): Recall@1 69.9 (Proxy-Anchor;
#   fast-reid's FastRetri 69.46). MAP@R of this setting: not published in the papers quoted there (Musgrave et
#   al. 2020 report BN-Inception); evaluate.py prints it. Not run by trinet yet: no figure of trinet's own.
# Settings: the Proxy-Anchor authors' CUB command (batch 120, AdamW 1e-4 with weight decay 1e-4, proxies at
#   100x, 5 warm-up epochs of the new layers only, the rate halved every 5 epochs, 224x224 crops and flips).
#   Differs: their network pools by average + max and freezes the batch norms; trinet pools by average and
#   keeps Keras' batch norms training; their random-resized crop is trinet's resize-and-crop.
#   An epoch is 5,864 images / 120 = 49 iterations.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,20p' "$0" >&2
    exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$HERE/retrieval_benchmark.sh" CUB-200-2011 "${CSV_PREFIX:-$HERE/../data/cub200}" 49 1e-4 5 5 1,2,4,8 "$@"
