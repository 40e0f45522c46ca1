#!/usr/bin/env bash
# Shared by experiments/cub200_*.sh, cars196_*.sh and sop_*.sh (run those): ResNet-50 from ImageNet, a 512-d
# linear embedding, the Proxy-Anchor loss (Kim et al. 2020) with its proxies at 100x the learning rate, then
# the benchmark's protocol: the test set queried against itself (--excluder diagonal), Recall@K, MAP@R and
# R-precision (evaluate.py --metrics).
#
#   experiments/retrieval_benchmark.sh NAME CSV_PREFIX EPOCH LR MILESTONE_EPOCHS WARM_EPOCHS KS IMAGE_ROOT
#       EXPERIMENT_ROOT [extra train.py flags]
#
# EPOCH: iterations of one pass over the training images in batches of 120; LR: AdamW's learning rate;
# MILESTONE_EPOCHS: the epochs between halvings of it; WARM_EPOCHS: epochs training only the new layers and
# the proxies (the backbone frozen); KS: the Recall@K list. Flags after EXPERIMENT_ROOT go to train.py last
# (a later flag wins).
set -euo pipefail
if [ $# -lt 9 ]; then
    echo "usage: $0 NAME CSV_PREFIX EPOCH LR MILESTONE_EPOCHS WARM_EPOCHS KS IMAGE_ROOT EXPERIMENT_ROOT" \
         "[extra train.py flags]" >&2
    exit 2
fi
NAME=$1 PREFIX=$2 EPOCH=$3 LR=$4 STEP=$5 WARM=$6 KS=$7 IMAGES=$8 EXP=$9
shift 9
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=${PYTHON:-python}
# shellcheck source=recipe_lib.sh
. "$HERE/experiments/recipe_lib.sh"
for split in train test; do
    if [ ! -f "${PREFIX}_${split}.csv" ]; then
        echo "error: ${PREFIX}_${split}.csv not found; create it with data/convert.py (see data/README.md)." >&2
        exit 2
    fi
done
if [ ! -d "$IMAGES" ]; then
    echo "error: image root $IMAGES is not a directory (the extracted $NAME release)." >&2
    exit 2
fi
EPOCHS=60
milestones=""
for ((e = STEP; e < EPOCHS; e += STEP)); do milestones+="${milestones:+,}$((e * EPOCH))"; done
RECIPE=(--train_set "${PREFIX}_train.csv" --image_root "$IMAGES"
        --model_name resnet50 --initial_checkpoint imagenet --pooling avg
        --head_name direct --embedding_dim 512 --test_metric cosine
        --sampler random --batch_p 30 --batch_k 4
        --net_input_height 224 --net_input_width 224 --pre_crop_height 256 --pre_crop_width 256
        --flip_augment --crop_augment
        --triplet_loss_weight 0 --proxy_anchor_loss_weight 1 --proxy_anchor_alpha 32 --proxy_anchor_delta 0.1
        --proxy_lr_multiplier 100
        --optimizer adamw --weight_decay 1e-4 --learning_rate "$LR"
        --train_iterations $((EPOCHS * EPOCH)) --freeze_backbone_iterations $((WARM * EPOCH))
        --lr_schedule multistep --lr_milestones "$milestones" --lr_gamma 0.5
        --checkpoint_frequency $((5 * EPOCH)) --log_frequency 20)
if [ -n "${RECIPE_DRY_RUN:-}" ]; then
    printf '%s\n' --experiment_root "$EXP" "${RECIPE[@]}" "$@"
    exit 0
fi
train_or_resume "$EXP" "${RECIPE[@]}" "$@"
base=$(basename "$PREFIX")
"$PY" "$HERE/embed.py" --experiment_root "$EXP" --dataset "${PREFIX}_test.csv" --image_root "$IMAGES" \
    --filename "${base}_test_embeddings.h5"
echo "== $NAME: the test set against itself (single view, cosine):"
"$PY" "$HERE/evaluate.py" --excluder diagonal \
    --query_dataset "${PREFIX}_test.csv" --query_embeddings "$EXP/${base}_test_embeddings.h5" \
    --gallery_dataset "${PREFIX}_test.csv" --gallery_embeddings "$EXP/${base}_test_embeddings.h5" \
    --metrics "recall@$KS" map_at_r r_precision --filename "$EXP/evaluation.json"
