#!/usr/bin/env bash
# trinet's recommended settings for small re-ID data on the CPU, from scratch: LuNet at 64x32 with the
# paper's batch-hard soft-margin triplet loss and augmentation (flips, resize to 72x36 and crop), plus the
# identification loss on a BNNeck head (the test feature after its batch norm, by the cosine distance).
# The demo (experiments/demo.sh) trains with exactly this script.
#
#   experiments/reid_cpu_recipe.sh TRAIN_CSV IMAGE_ROOT EXPERIMENT_ROOT [train.py flags...]
#
# The flags after EXPERIMENT_ROOT go to train.py after the recipe's own, so they override them (a later flag
# wins): --train_iterations N (default 1000; the warm-up, the decay and the validations follow it), --seed S,
# --val_excluder NAME (the protocol of the held-out validation identities; default market1501, use the one
# matching your file names, e.g. duke, or none), --val_fraction F or --val_identities N, --mixed_precision.
#
# Model choice by validation: 10% of the training identities (at least 1) are held out of training as a
# validation query/gallery, split by --val_excluder's rules; the run validates four times and keeps the best
# model as best.h5 (embed.py --checkpoint best), so the test set is never looked at.
#
# Why these settings: single-change ablations on the 4 worlds of the demo generator
# (benchmarks/bench_recipe.py; the README's "Measuring beyond the demo" has the tables). The identification
# loss on BNNeck was the one Bag-of-Tricks trick that helped on every world (+7.7 mAP over the paper's
# triplet-only settings at 500 iterations). Random erasing, warm-up, the hard margin, pad-and-crop, label
# smoothing, centre loss and last stride 1 did not help on average, and erasing cost 9-12 mAP on the blurry
# worlds. At 1,000 iterations this recipe ties the triplet-only settings (+0.1 ± 1.9 mAP, 4 worlds x 3 seeds,
# while training on 90% of the identities).
#
# Precision: bfloat16 where the CPU computes it natively (AVX512-BF16 or AMX, which oneDNN uses: 1.4-2x the
# float32 step), float32 elsewhere. RECIPE_PRECISION=float32 or bfloat16 forces one.
# Hardware: any CPU; about 1.5-3 minutes for 1,000 iterations on 2 cores.
#
# An interrupted run is resumed by running the same command again; a finished one is left as it is.
# RECIPE_DRY_RUN=1 prints train.py's arguments, one per line, instead of training.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 TRAIN_CSV IMAGE_ROOT EXPERIMENT_ROOT [train.py flags...]" >&2
    exit 2
fi
TRAIN_CSV=$1 IMAGES=$2 EXP=$3
shift 3
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY=${PYTHON:-python}
# shellcheck source=recipe_lib.sh
. "$HERE/experiments/recipe_lib.sh"

# The run's length: the last --train_iterations among the extra flags, else 1,000 (recipe_lib.sh).
recipe_iterations 4 "$@"

RECIPE=(--train_set "$TRAIN_CSV" --image_root "$IMAGES"
        --model_name lunet --head_name bnneck --test_metric cosine
        --batch_p 16 --batch_k 4 --net_input_height 64 --net_input_width 32
        --flip_augment --crop_augment --pre_crop_height 72 --pre_crop_width 36
        --loss batch_hard --margin soft --metric euclidean --id_loss_weight 1
        --learning_rate 1e-3 --train_iterations "$ITERATIONS" --decay_start_iteration $((ITERATIONS / 2))
        --val_fraction 0.1 --val_excluder market1501 --val_frequency $((ITERATIONS / 4))
        --checkpoint_frequency $((ITERATIONS / 4)) --log_frequency 50 --seed 0)
PRECISION=${RECIPE_PRECISION:-auto}
case $PRECISION in
    auto)
        PRECISION=float32
        if grep -qwE 'amx_bf16|avx512_bf16' /proc/cpuinfo 2>/dev/null; then PRECISION=bfloat16; fi ;;
    bfloat16 | float32) ;;
    *)
        echo "error: RECIPE_PRECISION must be auto, float32 or bfloat16. Received: '$PRECISION'" >&2
        exit 2 ;;
esac
if [ "$PRECISION" = bfloat16 ]; then RECIPE+=(--mixed_precision bfloat16); fi

if [ -n "${RECIPE_DRY_RUN:-}" ]; then
    printf '%s\n' --experiment_root "$EXP" "${RECIPE[@]}" "$@"
    exit 0
fi
if [ "$PRECISION" = bfloat16 ]; then
    echo "Training in mixed bfloat16 precision (RECIPE_PRECISION=${RECIPE_PRECISION:-auto})."
fi
train_or_resume "$EXP" "${RECIPE[@]}" "$@"
