#!/usr/bin/env bash
# The paper's TriNet setting (Hermans, Beyer, Leibe 2017), shared by market1501_train.sh and
# duke_train.sh: train, embed query and gallery with 10 views, evaluate with and without re-ranking.
#
#   experiments/paper_recipe.sh NAME CSV_PREFIX EXCLUDER IMAGE_ROOT EXPERIMENT_ROOT [extra train.py flags]
#
# CSV_PREFIX is the path of the CSVs without the _train/_query/_test.csv suffix (as written by
# data/convert.py). An interrupted run is resumed by running the same command again.
set -euo pipefail

if [ $# -lt 5 ]; then
    echo "usage: $0 NAME CSV_PREFIX EXCLUDER IMAGE_ROOT EXPERIMENT_ROOT [extra train.py flags]" >&2
    exit 2
fi
NAME=$1 PREFIX=$2 EXCLUDER=$3 IMAGES=$4 EXP=$5
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
    --train_iterations 25000 --decay_start_iteration 15000 --checkpoint_frequency 1000 "$@"

for split in query test; do
    "$PY" "$HERE/embed.py" --experiment_root "$EXP" --dataset "${PREFIX}_${split}.csv" --image_root "$IMAGES" \
        --flip_augment --crop_augment five --aggregator mean
done

base=$(basename "$PREFIX")
for rerank in "" "--rerank"; do
    out="$EXP/evaluation${rerank:+_reranked}.json"
    echo "== $NAME${rerank:+ with re-ranking} (Market-1501 AP, as the paper):"
    "$PY" "$HERE/evaluate.py" --excluder "$EXCLUDER" --use_market_ap $rerank \
        --query_dataset "${PREFIX}_query.csv" --query_embeddings "$EXP/${base}_query_embeddings.h5" \
        --gallery_dataset "${PREFIX}_test.csv" --gallery_embeddings "$EXP/${base}_test_embeddings.h5" \
        --filename "$out" --quiet
done
