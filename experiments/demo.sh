#!/usr/bin/env bash
# trinet's demo: the whole workflow (generate data, train, embed with test-time augmentation, evaluate)
# on a small generated dataset in Market-1501's layout, on the CPU.
#
#   make demo                          # creates .venv, installs trinet, runs this script
#   bash experiments/demo.sh [DIR]     # in an environment where trinet is installed (default DIR: runs/demo)
#
# Hardware: any CPU; about 2-3 minutes on 2 cores (training is 1,000 iterations of LuNet at 64x32 with the
# Bag-of-Tricks recipe, validated at iterations 500 and 1,000).
# Expect (seed 0): the trained model at roughly 78% mAP / 85% rank-1 on the demo query/gallery split
# (89% / 89% re-ranked), against about 2-3% for the untrained network and for raw pixels. Exact figures
# vary a little with the machine's math libraries.
#
# Re-running reuses what exists: the dataset if it is complete, the trained model if training finished,
# and an interrupted training run is resumed. Delete DIR to start from scratch.
set -euo pipefail

DIR=${1:-runs/demo}
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=${PYTHON:-python}
DATA="$DIR/data"
EXP="$DIR/experiment"
EVAL="$DIR/evaluation"
mkdir -p "$DIR" "$EVAL"

step() { printf '\n==> %s\n' "$*"; }

step "1/5 Generating the demo dataset in $DATA"
"$PY" -m trinet.demo --out "$DATA"

step "2/5 Training LuNet with the Bag-of-Tricks recipe (identification + triplet, BNNeck) in $EXP"
# The recipe beat the paper's triplet-only settings on this data (benchmarks/bench_recipe.py, 3 seeds:
# mAP 73.2% vs 67.7%, rank-1 82.9% vs 78.1%).
# For the paper's recipe instead: --head_name fc1024 --embedding_dim 128 --crop_augment --pre_crop_height 72
# --pre_crop_width 36 --margin soft, without the identification, centre, erasing, padding, warm-up and
# last-stride flags (and embed with --crop_augment five for its 10 views).
TRAIN=(--experiment_root "$EXP" --train_set "$DATA/demo_train.csv" --image_root "$DATA"
       --model_name lunet --batch_p 16 --batch_k 4
       --net_input_height 64 --net_input_width 32 --flip_augment --pad_crop 3 --random_erasing_prob 0.5
       --loss batch_hard --margin 0.3 --metric euclidean
       --id_loss_weight 1 --label_smoothing 0.1 --head_name bnneck --test_metric cosine
       --center_loss_weight 0.0005 --last_stride 1
       --learning_rate 1e-3 --train_iterations 1000 --decay_start_iteration 500
       --warmup_iterations 100 --warmup_factor 0.1
       --val_query "$DATA/demo_query.csv" --val_gallery "$DATA/demo_test.csv" --val_excluder market1501
       --val_frequency 500
       --checkpoint_frequency 250 --log_frequency 50 --seed 0)
# bfloat16 where the CPU computes it natively (AVX512-BF16 or AMX; oneDNN uses them): 1.4-2x the float32
# step of this LuNet, at the same accuracy (benchmarks/bench_precision.py, bench_recipe.py --variants).
# Elsewhere it would be emulated, and slower: float32. DEMO_PRECISION=float32 forces float32.
if [ "${DEMO_PRECISION:-auto}" = auto ] && grep -qwE 'amx_bf16|avx512_bf16' /proc/cpuinfo 2>/dev/null; then
    TRAIN+=(--mixed_precision bfloat16)
    echo "This CPU computes bfloat16 natively: training in mixed bfloat16 precision."
fi
if [ -f "$EXP/model.keras" ]; then
    echo "Training already finished: reusing $EXP (delete it to train again)."
elif [ -f "$EXP/args.json" ]; then
    echo "Resuming the interrupted run in $EXP."
    "$PY" "$HERE/train.py" --experiment_root "$EXP" --resume
else
    rm -rf "$EXP"  # no args.json: nothing of a run was written there yet
    "$PY" "$HERE/train.py" "${TRAIN[@]}"
fi

step "3/5 Embedding query and gallery: each image and its mirror image, averaged (test-time augmentation)"
for split in query test; do
    "$PY" "$HERE/embed.py" --experiment_root "$EXP" --dataset "$DATA/demo_$split.csv" \
        --flip_augment --aggregator mean --filename "demo_${split}_embeddings.h5"
done

step "4/5 Baselines: the untrained network (checkpoint-0) and raw pixels"
for split in query test; do
    "$PY" "$HERE/embed.py" --experiment_root "$EXP" --dataset "$DATA/demo_$split.csv" --checkpoint 0 \
        --flip_augment --aggregator mean --filename "untrained_${split}_embeddings.h5" --quiet
    "$PY" -m trinet.tools.baselines --dataset "$DATA/demo_$split.csv" --image_root "$DATA" \
        --filename "$EVAL/pixels_${split}_embeddings.h5" --quiet
done

step "5/5 Evaluating with the market1501 excluder (same-camera matches and junk ignored)"
evaluate() {  # name, query embeddings, gallery embeddings, extra flags...
    local name=$1 query=$2 gallery=$3
    shift 3
    "$PY" "$HERE/evaluate.py" --excluder market1501 --quiet \
        --query_dataset "$DATA/demo_query.csv" --query_embeddings "$query" \
        --gallery_dataset "$DATA/demo_test.csv" --gallery_embeddings "$gallery" \
        --filename "$EVAL/$name.json" "$@" > /dev/null
}
evaluate pixels "$EVAL/pixels_query_embeddings.h5" "$EVAL/pixels_test_embeddings.h5"
evaluate untrained "$EXP/untrained_query_embeddings.h5" "$EXP/untrained_test_embeddings.h5"
evaluate trained_reranked "$EXP/demo_query_embeddings.h5" "$EXP/demo_test_embeddings.h5" --rerank
# The HTML report (with the verification thresholds, and what re-ranking changes per query).
evaluate trained "$EXP/demo_query_embeddings.h5" "$EXP/demo_test_embeddings.h5" \
    --plot "$EVAL/cmc.png" --show_ranks "$EVAL/ranks" --image_root "$DATA" \
    --report "$EVAL/report" --report_compare "$EVAL/trained_reranked.json"

"$PY" - "$EVAL" <<'EOF'
import json, os, sys
folder = sys.argv[1]
rows = [("raw pixels (baseline)", "pixels"), ("untrained LuNet (baseline)", "untrained"),
        ("trained LuNet (Bag of Tricks)", "trained"), ("trained LuNet + re-ranking", "trained_reranked")]
print(f"\n{'demo results (market1501 protocol)':34s} {'mAP':>7s} {'rank-1':>7s} {'rank-5':>7s} {'rank-10':>7s}")
for label, name in rows:
    r = json.load(open(os.path.join(folder, name + ".json")))
    print(f"{label:34s} {r['mAP']:7.2%} {r['top-1']:7.2%} {r['top-5']:7.2%} {r['top-10']:7.2%}")
EOF
echo
echo "HTML report:           $EVAL/report/index.html   (open it in a browser; no server needed)"
echo "CMC curve:             $EVAL/cmc.png"
echo "Rank lists (pictures): $EVAL/ranks/"
echo "Training log:          $EXP/train.log   (TensorBoard: tensorboard --logdir $EXP)"
