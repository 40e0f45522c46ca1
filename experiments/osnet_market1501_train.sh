#!/usr/bin/env bash
# Market-1501 with OSNet x1.0 (Zhou et al. 2019), trained from scratch, in torchreid's softmax recipe.
#
#   experiments/osnet_market1501_train.sh IMAGE_ROOT EXPERIMENT_ROOT [extra train.py flags]
#
# Needs: the extracted Market-1501-v15.09.15 release as IMAGE_ROOT, and data/market1501_{train,query,test}.csv
#   made by `python data/convert.py market1501 IMAGE_ROOT --out data` (data/README.md). No ImageNet weights:
#   trinet has none for OSNet (pass a Keras weights file of the same network as --initial_checkpoint to
#   start from one). Override the CSV location with CSV_PREFIX=path/to/market1501.
# Hardware: one GPU with >= 8 GB (OSNet x1.0 has 2.2M parameters; batches of 16 x 4 = 64 images at 256x128,
#   float32); 250 epochs = 50,500 iterations, several hours on a current GPU. On a CPU, OSNet embeds several
#   times faster than ResNet-50 (benchmarks/bench_backbones.py), but training the full recipe takes days.
# Expect: the paper's Market-1501 figures, rank-1 94.8% / mAP 84.9%, were reached from ImageNet-pretrained
#   weights (../shared/reference/peers.md); from scratch the paper reports lower figures, and this script has
#   not been run to the end in trinet yet: compare its evaluation.json with those as an upper bound.
# The recipe: torchreid's for OSNet on Market-1501 (identification loss with label smoothing 0.1, flips,
#   256x128, batch 64, cosine learning-rate decay over 250 epochs from 0.0015, Adam), plus BNNeck's feature
#   after the batch norm compared with the cosine distance, and trinet's P x K sampler (an epoch of 12,936
#   images / 64 = 202 iterations); no triplet loss (--triplet_loss_weight 0), as torchreid's softmax engine.
# The run validates on the query/test split itself every 20 epochs and keeps the best model as best.h5: its
#   figures are chosen on the test set, hence optimistic; the final model's are the ones to compare.
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
EPOCH=202
. "$HERE/experiments/recipe_lib.sh"
check_dataset Market-1501 "$PREFIX" "$IMAGES"
train_or_resume "$EXP" --train_set "${PREFIX}_train.csv" --image_root "$IMAGES" \
    --model_name osnet_x1_0 --pooling avg --head_name bnneck --test_feature after --test_metric cosine \
    --batch_p 16 --batch_k 4 --net_input_height 256 --net_input_width 128 --flip_augment \
    --triplet_loss_weight 0 --id_loss_weight 1 --label_smoothing 0.1 \
    --optimizer adam --learning_rate 0.0015 --lr_schedule cosine --train_iterations $((250 * EPOCH)) \
    --val_query "${PREFIX}_query.csv" --val_gallery "${PREFIX}_test.csv" --val_excluder market1501 \
    --val_frequency $((20 * EPOCH)) --checkpoint_frequency 1000 --log_frequency 20 "$@"

base=$(basename "$PREFIX")
for split in query test; do
    "$PY" "$HERE/embed.py" --experiment_root "$EXP" --dataset "${PREFIX}_${split}.csv" \
        --image_root "$IMAGES" --filename "${base}_${split}_embeddings.h5"
done
echo "== Market-1501, OSNet x1.0 from scratch, the final model (single view; cosine):"
"$PY" "$HERE/evaluate.py" --excluder market1501 \
    --query_dataset "${PREFIX}_query.csv" --query_embeddings "$EXP/${base}_query_embeddings.h5" \
    --gallery_dataset "${PREFIX}_test.csv" --gallery_embeddings "$EXP/${base}_test_embeddings.h5" \
    --filename "$EXP/evaluation.json" --quiet
