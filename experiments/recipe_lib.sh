# Shared by the recipe scripts (sourced, not run): checking a converted dataset, and training that resumes.

# check_dataset NAME CSV_PREFIX IMAGE_ROOT: the CSVs of data/convert.py and the extracted release exist.
check_dataset() {
    local name=$1 prefix=$2 images=$3 split
    for split in train query test; do
        if [ ! -f "${prefix}_${split}.csv" ]; then
            echo "error: ${prefix}_${split}.csv not found; create it with data/convert.py (see data/README.md)." >&2
            exit 2
        fi
    done
    if [ ! -d "$images" ]; then
        echo "error: image root $images is not a directory (the extracted $name release)." >&2
        exit 2
    fi
}

# train_or_resume EXPERIMENT_ROOT [train.py flags of a new run]: start the run, resume an interrupted one,
# or reuse a finished one. Needs $PY and $HERE (the repository).
train_or_resume() {
    local exp=$1
    shift
    if [ -f "$exp/model.keras" ]; then
        echo "Training already finished in $exp: reusing it (delete it to train again)."
    elif [ -f "$exp/args.json" ]; then
        "$PY" "$HERE/train.py" --experiment_root "$exp" --resume
    else
        "$PY" "$HERE/train.py" --experiment_root "$exp" "$@"
    fi
}

# recipe_iterations MINIMUM [train.py flags...]: sets ITERATIONS to the last --train_iterations among the
# flags (else 1,000); exits with status 2 unless it is an integer >= MINIMUM.
recipe_iterations() {
    local minimum=$1 i
    shift
    local flags=("$@")
    ITERATIONS=1000
    for i in "${!flags[@]}"; do
        case ${flags[i]} in
            --train_iterations) ITERATIONS=${flags[i + 1]:-} ;;
            --train_iterations=*) ITERATIONS=${flags[i]#*=} ;;
        esac
    done
    if ! [[ $ITERATIONS =~ ^[0-9]+$ ]] || [ "$ITERATIONS" -lt "$minimum" ]; then
        echo "error: --train_iterations must be an integer >= $minimum for this recipe. Received: '$ITERATIONS'" >&2
        exit 2
    fi
}

# CLUSTER_CONTRAST: the training flags of the recipes without labels (usl_market1501.sh, uda_recipe.sh):
# Cluster Contrast's settings (Dai et al. 2021) for a ResNet-50 at 256x128; each recipe adds its data, its
# initial checkpoint and its validation.
CLUSTER_CONTRAST=(
    --model_name resnet50 --last_stride 1 --pooling avg --head_name bnneck --test_feature after
    --test_metric cosine --batch_p 16 --batch_k 16 --net_input_height 256 --net_input_width 128
    --flip_augment --pad_crop 10 --random_erasing_prob 0.5
    --triplet_loss_weight 0 --memory_loss_weight 1 --memory_temperature 0.05 --memory_momentum 0.1
    --memory_update mean --recluster_frequency 400 --cluster_eps 0.6 --cluster_min_samples 4
    --cluster_k1 30 --cluster_k2 6 --optimizer adam --learning_rate 3.5e-4 --train_iterations 20000
    --lr_schedule multistep --lr_milestones 8000 --lr_gamma 0.1
)
