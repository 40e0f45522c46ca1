#!/usr/bin/env bash
# trinet's demo: the whole workflow (generate data, train, embed with test-time augmentation, evaluate)
# on a small generated dataset in Market-1501's layout, on the CPU.
#
#   make demo                          # creates .venv, installs trinet, runs this script
#   bash experiments/demo.sh [DIR]     # in an environment where trinet is installed (default DIR: runs/demo)
#
# Hardware: any CPU; about 2-4 minutes on 2 cores (training is 1,000 iterations of LuNet at 64x32 with
# trinet's CPU recipe, experiments/reid_cpu_recipe.sh, validated four times on held-out training identities).
# Expect (seed 0): the trained model at roughly 75% mAP / 85% rank-1 on the demo query/gallery split
# (88% / 89% re-ranked), against about 2-3% for the untrained network and for raw pixels. Exact figures
# vary a little with the machine's math libraries and its precision (bfloat16 where the CPU computes it
# natively).
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

step "2/5 Training LuNet with trinet's CPU recipe (experiments/reid_cpu_recipe.sh) in $EXP"
# The recipe: identification + batch-hard triplet losses on a BNNeck head, chosen on the generator's 4 worlds
# with 3 seeds each, not on this one (see the script's header). It holds 10% of the training identities out
# as its validation set (best.h5), so the test split below is never looked at during training.
# The paper's triplet-only settings for comparison: the variant "triplet" of benchmarks/bench_recipe.py.
if [ ! -f "$EXP/args.json" ] && [ ! -f "$EXP/model.keras" ]; then
    rm -rf "$EXP"  # no args.json: nothing of a run was written there yet
fi
RECIPE_PRECISION=${DEMO_PRECISION:-auto} PYTHON="$PY" \
    bash "$HERE/experiments/reid_cpu_recipe.sh" "$DATA/demo_train.csv" "$DATA" "$EXP"

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
        ("trained LuNet (CPU recipe)", "trained"), ("trained LuNet + re-ranking", "trained_reranked")]
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
