#!/usr/bin/env bash
# Cars196 with Proxy-Anchor (Kim et al. 2020): ResNet-50 from ImageNet, 512-d, the benchmark's protocol.
#
#   experiments/cars196_proxy_anchor.sh IMAGE_ROOT EXPERIMENT_ROOT [extra train.py flags]
#
# Needs: the extracted Stanford Cars release (car_ims/ and cars_annos.mat) as IMAGE_ROOT and
#   data/cars196_{train,test}.csv made by `python data/convert.py cars196 IMAGE_ROOT --out data` (classes 1-98
#   train, 99-196 test); ImageNet weights of ResNet-50 from Keras (downloaded on first use).
#   Override the CSV location with CSV_PREFIX=path/to/cars196.
# Hardware: one GPU with >= 16 GB (batches of 120 at 224x224, float32); 60 epochs = 4,020 iterations, about an
#   hour on a current GPU. On a CPU, days.
# Expect (published, ResNet-50 512-d, ImageNet init; ../shared/reference/peers.md): Recall@1 87.7 (Proxy-Anchor;
#   fast-reid's FastRetri 92.31). MAP@R of this setting: not published in the papers quoted there; evaluate.py
#   prints it. Not run by trinet yet: no figure of trinet's own.
# Settings: the Proxy-Anchor authors' Cars command (batch 120, AdamW 1e-4 with weight decay 1e-4, proxies at
#   100x, 5 warm-up epochs of the new layers only, the rate halved every 10 epochs, 224x224 crops and flips);
#   the same differences as experiments/cub200_proxy_anchor.sh. An epoch is 8,054 images / 120 = 67 iterations.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,17p' "$0" >&2
    exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$HERE/retrieval_benchmark.sh" Cars196 "${CSV_PREFIX:-$HERE/../data/cars196}" 67 1e-4 10 5 1,2,4,8 "$@"
