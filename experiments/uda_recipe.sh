#!/usr/bin/env bash
# Domain adaptation without target labels, shared by uda_market_to_duke.sh and uda_duke_to_market.sh (their
# headers say what they need and what to expect): (1) the Bag-of-Tricks baseline trained with the source's
# labels (experiments/bot_recipe.sh, in EXPERIMENT_ROOT/source), (2) that model adapted to the target's
# training images without their labels: Cluster Contrast's memory loss on P x K batches of the clusters of
# the target, reclustered every epoch (in EXPERIMENT_ROOT/adapted), (3) both evaluated on the target's
# query/test split (direct transfer, then adapted).
#
#   experiments/uda_recipe.sh SOURCE_NAME SOURCE_PREFIX SOURCE_EXCLUDER SOURCE_EPOCH SOURCE_IMAGES \
#       TARGET_NAME TARGET_PREFIX TARGET_EXCLUDER TARGET_EPOCH TARGET_IMAGES EXPERIMENT_ROOT [train.py flags]
#
# The extra flags go to the adaptation; SOURCE_FLAGS (an environment variable, words split at spaces) are
# appended to the source's training. The target CSV's identities are not used for training, only to measure
# the pseudo labels (train.log, TensorBoard) and for the final evaluation. An interrupted run is resumed by
# running the same command again.
set -euo pipefail
if [ $# -lt 11 ]; then
    sed -n '9,10p' "$0" >&2
    exit 2
fi
SNAME=$1 SPREFIX=$2 SEXCLUDER=$3 SEPOCH=$4 SIMAGES=$5 TNAME=$6 TPREFIX=$7 TEXCLUDER=$8 TEPOCH=$9 TIMAGES=${10}
EXP=${11}
shift 11
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=${PYTHON:-python}
# shellcheck source=recipe_lib.sh
. "$HERE/experiments/recipe_lib.sh"
check_dataset "$SNAME" "$SPREFIX" "$SIMAGES"
check_dataset "$TNAME" "$TPREFIX" "$TIMAGES"
mkdir -p "$EXP"
# shellcheck disable=SC2086
"$HERE/experiments/bot_recipe.sh" "$SNAME" "$SPREFIX" "$SEXCLUDER" "$SEPOCH" "$SIMAGES" "$EXP/source" \
    ${SOURCE_FLAGS:-}

# Cluster Contrast (Dai et al. 2021) from the source model: the memory loss alone (temperature 0.05,
# momentum 0.1), batches of 16 pseudo-identities x 16 images, Adam 3.5e-4 (x0.1 after 20 epochs), 50
# epochs of 400 iterations, a clustering per epoch (DBSCAN eps 0.6 on the k-reciprocal Jaccard distance,
# k1 30, k2 6). The source model's head (BNNeck) and pooling are kept, so that it starts from all of it.
train_or_resume "$EXP/adapted" --unlabeled_set "${TPREFIX}_train.csv" --unlabeled_image_root "$TIMAGES" \
    --initial_checkpoint "$EXP/source" "${CLUSTER_CONTRAST[@]}" \
    --val_query "${TPREFIX}_query.csv" --val_gallery "${TPREFIX}_test.csv" --val_image_root "$TIMAGES" \
    --val_excluder "$TEXCLUDER" \
    --val_frequency $((10 * TEPOCH)) --checkpoint_frequency 1000 --log_frequency 20 "$@"

base=$(basename "$TPREFIX")
for model in source adapted; do
    for split in query test; do
        "$PY" "$HERE/embed.py" --experiment_root "$EXP/$model" --dataset "${TPREFIX}_${split}.csv" \
            --image_root "$TIMAGES" --filename "${base}_${split}_embeddings.h5"
    done
    if [ "$model" = source ]; then what="direct transfer (the source model)"; else what="adapted"; fi
    echo "== $SNAME -> $TNAME, $what (single view; cosine):"
    emb="$EXP/$model/${base}"
    "$PY" "$HERE/evaluate.py" --excluder "$TEXCLUDER" \
        --query_dataset "${TPREFIX}_query.csv" --query_embeddings "${emb}_query_embeddings.h5" \
        --gallery_dataset "${TPREFIX}_test.csv" --gallery_embeddings "${emb}_test_embeddings.h5" \
        --filename "$EXP/evaluation_$model.json" --quiet
done
