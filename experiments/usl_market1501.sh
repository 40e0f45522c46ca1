#!/usr/bin/env bash
# Market-1501 without labels (fully unsupervised): Cluster Contrast (Dai et al. 2021) from an ImageNet
# ResNet-50 on the training images, their identities unused (only to measure the pseudo labels).
#
#   experiments/usl_market1501.sh IMAGE_ROOT EXPERIMENT_ROOT [extra train.py flags]
#
# Needs: the extracted Market-1501-v15.09.15 release as IMAGE_ROOT, and data/market1501_{train,query,test}.csv
#   made by `python data/convert.py market1501 IMAGE_ROOT --out data` (data/README.md); ImageNet weights of
#   ResNet-50 from Keras (downloaded on first use into ~/.keras/models). Override the CSV location with
#   CSV_PREFIX=path/to/market1501.
# Hardware: one GPU with >= 40 GB (ResNet-50, last stride 1, batches of 16 pseudo-identities x 16 images =
#   256 at 256x128; with less memory append --batch_k 8). 20,000 iterations plus 50 clusterings of the
#   12,936 training images (an embedding pass each, then a few seconds of sparse Jaccard distances and
#   DBSCAN): several hours on a current GPU; Cluster Contrast's shipped log took 2 h 44 min on 4 GPUs.
# Expect: Cluster Contrast's Market-1501 figures from an ImageNet ResNet-50 are rank-1 92.3% / mAP 82.1% with
#   GeM pooling (append --pooling gem), and about 73.6% mAP with average pooling in its users' reproduction
#   (../shared/reference/peers.md); SpCL's 88.1% / 73.1%. This recipe has not been run to the end in trinet
#   yet: compare its evaluation.json with those.
# The recipe: Cluster Contrast's: the memory loss alone (temperature 0.05, momentum 0.1; --memory_update
#   hard for its hard variant), Adam 3.5e-4 x0.1 after 20 epochs, 50 epochs of 400 iterations, a clustering
#   every epoch (DBSCAN eps 0.6, min_samples 4, on the k-reciprocal Jaccard distance with k1 30, k2 6), the
#   BNNeck feature compared by cosine. Not Cluster Contrast's: its Adam adds weight decay 5e-4 to the
#   gradient, which trinet's adam does not (none is used here), and its sampler prefers positives from other
#   cameras.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,24p' "$0" >&2
    exit 2
fi
IMAGES=$1 EXP=$2
shift 2
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=${PYTHON:-python}
PREFIX=${CSV_PREFIX:-$HERE/data/market1501}
# shellcheck source=recipe_lib.sh
. "$HERE/experiments/recipe_lib.sh"
check_dataset Market-1501 "$PREFIX" "$IMAGES"
train_or_resume "$EXP" --unlabeled_set "${PREFIX}_train.csv" --unlabeled_image_root "$IMAGES" \
    --initial_checkpoint imagenet "${CLUSTER_CONTRAST[@]}" \
    --val_query "${PREFIX}_query.csv" --val_gallery "${PREFIX}_test.csv" --val_image_root "$IMAGES" \
    --val_excluder market1501 \
    --val_frequency 4000 --checkpoint_frequency 1000 --log_frequency 20 "$@"

base=$(basename "$PREFIX")
for split in query test; do
    "$PY" "$HERE/embed.py" --experiment_root "$EXP" --dataset "${PREFIX}_${split}.csv" \
        --image_root "$IMAGES" --filename "${base}_${split}_embeddings.h5"
done
echo "== Market-1501 without labels, the final model (single view; cosine):"
"$PY" "$HERE/evaluate.py" --excluder market1501 \
    --query_dataset "${PREFIX}_query.csv" --query_embeddings "$EXP/${base}_query_embeddings.h5" \
    --gallery_dataset "${PREFIX}_test.csv" --gallery_embeddings "$EXP/${base}_test_embeddings.h5" \
    --filename "$EXP/evaluation.json" --quiet
