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
IMAGES=$1 EXP=$2
shift 2
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=${PYTHON:-python}
PREFIX=${CSV_PREFIX:-$HERE/data/market1501}
EXCLUDER=market1501
EPOCH=202  # iterations: 12,936 training images / 64

for split in train query test; do
    if [ ! -f "${PREFIX}_${split}.csv" ]; then
        echo "error: ${PREFIX}_${split}.csv not found; create it with data/convert.py (data/README.md)." >&2
        exit 2
    fi
done
if [ ! -d "$IMAGES" ]; then
    echo "error: image root $IMAGES is not a directory (the extracted Market-1501 release)." >&2
    exit 2
fi

if [ -f "$EXP/model.keras" ]; then
    echo "Training already finished in $EXP; embedding and evaluating."
elif [ -f "$EXP/args.json" ]; then
    "$PY" "$HERE/train.py" --experiment_root "$EXP" --resume
else
    "$PY" "$HERE/train.py" --experiment_root "$EXP" --train_set "${PREFIX}_train.csv" --image_root "$IMAGES" \
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
fi

# the distance the run was trained for (cosine unless an extra flag changed it)
METRIC=$("$PY" -c 'import json, sys; a = json.load(open(sys.argv[1]))
print(a.get("test_metric") or a["metric"])' "$EXP/args.json")
base=$(basename "$PREFIX")
for model in final best; do  # the final model (compare this with the paper), then the best validated one
    if [ "$model" = best ]; then tag=_best; else tag=""; fi
    for split in query test; do
        "$PY" "$HERE/embed.py" --experiment_root "$EXP" --dataset "${PREFIX}_${split}.csv" \
            --image_root "$IMAGES" ${tag:+--checkpoint best} --filename "${base}_${split}${tag}_embeddings.h5"
    done
    echo "== Market-1501, the $model model (single view, $METRIC distance):"
    "$PY" "$HERE/evaluate.py" --excluder "$EXCLUDER" --metric "$METRIC" \
        --query_dataset "${PREFIX}_query.csv" --query_embeddings "$EXP/${base}_query${tag}_embeddings.h5" \
        --gallery_dataset "${PREFIX}_test.csv" --gallery_embeddings "$EXP/${base}_test${tag}_embeddings.h5" \
        --filename "$EXP/evaluation${tag}.json" --quiet
done
