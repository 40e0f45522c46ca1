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
