#!/usr/bin/env bash
# The video re-id recipe shared by mars_train.sh and ilidsvid_train.sh: TriNet trained on the frames as on
# images (the paper's setting), then one embedding per tracklet (the mean of its frames' embeddings,
# embed.py --pool_by tracklet), evaluated with the camera column, with and without re-ranking.
#
#   experiments/video_recipe.sh NAME CSV_PREFIX ITERATIONS IMAGE_ROOT EXPERIMENT_ROOT [extra train.py flags]
#
# CSV_PREFIX is the path of the frames' CSVs without the _train/_query/_test.csv suffix (data/convert.py).
# FRAMES (environment) embeds that many evenly spaced frames per tracklet; default: all. An interrupted run
# is resumed by running the same command again.
set -euo pipefail

if [ $# -lt 5 ]; then
    echo "usage: $0 NAME CSV_PREFIX ITERATIONS IMAGE_ROOT EXPERIMENT_ROOT [extra train.py flags]" >&2
    exit 2
fi
NAME=$1 PREFIX=$2 ITERATIONS=$3 IMAGES=$4 EXP=$5
shift 5
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=${PYTHON:-python}

# shellcheck source=recipe_lib.sh
. "$HERE/experiments/recipe_lib.sh"
check_dataset "$NAME" "$PREFIX" "$IMAGES"
train_or_resume "$EXP" --train_set "${PREFIX}_train.csv" --image_root "$IMAGES" \
    --model_name resnet50 --head_name fc1024 --embedding_dim 128 --initial_checkpoint imagenet \
    --batch_p 18 --batch_k 4 --net_input_height 256 --net_input_width 128 \
    --pre_crop_height 288 --pre_crop_width 144 --flip_augment --crop_augment \
    --margin soft --metric euclidean --loss batch_hard --learning_rate 3e-4 \
    --train_iterations "$ITERATIONS" --decay_start_iteration $((ITERATIONS * 3 / 5)) \
    --checkpoint_frequency 1000 "$@"

frames=()
if [ -n "${FRAMES:-}" ]; then frames=(--frames_per_tracklet "$FRAMES"); fi
for split in query test; do
    "$PY" "$HERE/embed.py" --experiment_root "$EXP" --dataset "${PREFIX}_${split}.csv" --image_root "$IMAGES" \
        --pool_by tracklet --temporal_pooling mean "${frames[@]}"
done

base=$(basename "$PREFIX")
for rerank in "" "--rerank"; do
    out="$EXP/evaluation${rerank:+_reranked}.json"
    echo "== $NAME tracklets${rerank:+ with re-ranking}:"
    "$PY" "$HERE/evaluate.py" --excluder camera --use_market_ap $rerank \
        --query_dataset "${PREFIX}_query.csv" --query_embeddings "$EXP/${base}_query_embeddings.h5" \
        --gallery_dataset "${PREFIX}_test.csv" --gallery_embeddings "$EXP/${base}_test_embeddings.h5" \
        --filename "$out" --quiet
done
