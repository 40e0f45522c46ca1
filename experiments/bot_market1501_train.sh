#!/usr/bin/env bash
# Market-1501 with the strong baseline of the Bag of Tricks (Luo et al. 2019), every trick on.
#
#   experiments/bot_market1501_train.sh IMAGE_ROOT EXPERIMENT_ROOT [extra train.py flags]
#
# Needs: the extracted Market-1501-v15.09.15 release as IMAGE_ROOT, and data/market1501_{train,query,test}.csv
#   made by `python data/convert.py market1501 IMAGE_ROOT --out data` (data/README.md); ImageNet weights of
#   ResNet-50 from Keras (downloaded on first use into ~/.keras/models; offline, the error says which file
#   to put there). Override the CSV location with CSV_PREFIX=path/to/market1501.
# Hardware: one GPU with >= 12 GB (ResNet-50 with last stride 1, batches of 16 x 4 = 64 images at 256x128,
#   float32). 24,240 iterations take a few hours on a current GPU, plus a minute or two per validation;
#   on a CPU it is days.
# Expect: the paper's rank-1 94.5% / mAP 85.9% (single view, the feature after the BNNeck's batch norm,
#   cosine distance, scikit-learn's AP as the paper's code); without the centre loss (append
#   --center_loss_weight 0) 94.1% / 85.7%. Runs differ by about a point. Ctrl+C stops cleanly; run the same
#   command again to resume.
# Epochs as iterations: an epoch of the paper's P x K sampler passes over the training images once, 12,936
#   images / 64 per batch = 202 iterations. So: warm-up over 10 epochs = 2,020 iterations, linearly from 0.1x
#   3.5e-4; x0.1 at epochs 40 and 70 = iterations 8,080 and 14,140; 120 epochs = 24,240 iterations;
#   validation every 10 epochs = 2,020 iterations.
#   (Not 751 identities / 16 = 47 iterations: the paper's sampler draws about every image once an epoch.)
# Differs from the paper's code: its Adam adds an L2 term of 5e-4 to the gradient, which trinet's adam does
#   not have (its adamw decays decoupled, another regulariser); none is used here.
# The run validates on the query/test split itself, as the paper's and fast-reid's code do, and keeps the
#   best model as best.h5: figures of that model are chosen on the test set, hence optimistic. The final
#   model's figures (evaluation.json) are the ones to compare with the paper, which reports the last epoch.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,26p' "$0" >&2
    exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$HERE/bot_recipe.sh" Market-1501 "${CSV_PREFIX:-$HERE/../data/market1501}" market1501 202 "$@"
