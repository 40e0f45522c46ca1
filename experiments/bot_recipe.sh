#!/usr/bin/env bash
# The Bag-of-Tricks strong baseline (Luo et al. 2019), every trick on, shared by bot_market1501_train.sh and
# bot_duke_train.sh (their headers say what it needs and what to expect): train with validation, then embed
# and evaluate the final and the best validated model.
#
#   experiments/bot_recipe.sh NAME CSV_PREFIX EXCLUDER EPOCH IMAGE_ROOT EXPERIMENT_ROOT [extra train.py flags]
#
# EPOCH is the number of iterations of one epoch (training images / 64). An interrupted run is resumed by
# running the same command again.
set -euo pipefail
if [ $# -lt 6 ]; then
    echo "usage: $0 NAME CSV_PREFIX EXCLUDER EPOCH IMAGE_ROOT EXPERIMENT_ROOT [extra train.py flags]" >&2
    exit 2
fi
NAME=$1 PREFIX=$2 EXCLUDER=$3 EPOCH=$4 IMAGES=$5 EXP=$6
shift 6
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=${PYTHON:-python}
# shellcheck source=recipe_lib.sh
. "$HERE/experiments/recipe_lib.sh"
check_dataset "$NAME" "$PREFIX" "$IMAGES"
train_or_resume "$EXP" --train_set "${PREFIX}_train.csv" --image_root "$IMAGES" \
    --model_name resnet50 --initial_checkpoint imagenet --last_stride 1 --pooling avg \
    --head_name bnneck --test_feature after --test_metric cosine \
    --batch_p 16 --batch_k 4 --net_input_height 256 --net_input_width 128 \
    --flip_augment --pad_crop 10 --random_erasing_prob 0.5 \
    --loss batch_hard --metric euclidean --margin 0.3 --triplet_loss_weight 1 \
    --id_loss_weight 1 --label_smoothing 0.1 --center_loss_weight 0.0005 --center_learning_rate 0.5 \
    --optimizer adam --learning_rate 3.5e-4 --train_iterations $((120 * EPOCH)) \
    --warmup_iterations $((10 * EPOCH)) --warmup_factor 0.1 \
    --lr_schedule multistep --lr_milestones $((40 * EPOCH)),$((70 * EPOCH)) --lr_gamma 0.1 \
    --val_query "${PREFIX}_query.csv" --val_gallery "${PREFIX}_test.csv" --val_excluder "$EXCLUDER" \
    --val_frequency $((10 * EPOCH)) --checkpoint_frequency 1000 --log_frequency 20 "$@"

base=$(basename "$PREFIX")
for model in final best; do  # the final model (compare this with the paper), then the best validated one
    if [ "$model" = best ]; then tag=_best; else tag=""; fi
    for split in query test; do
        "$PY" "$HERE/embed.py" --experiment_root "$EXP" --dataset "${PREFIX}_${split}.csv" \
            --image_root "$IMAGES" ${tag:+--checkpoint best} --filename "${base}_${split}${tag}_embeddings.h5"
    done
    echo "== $NAME, the $model model (single view; the run's --test_metric, cosine):"
    "$PY" "$HERE/evaluate.py" --excluder "$EXCLUDER" \
        --query_dataset "${PREFIX}_query.csv" --query_embeddings "$EXP/${base}_query${tag}_embeddings.h5" \
        --gallery_dataset "${PREFIX}_test.csv" --gallery_embeddings "$EXP/${base}_test${tag}_embeddings.h5" \
        --filename "$EXP/evaluation${tag}.json" --quiet
done
