"""Recipes measured on several worlds and on real images: accuracy over worlds and seeds, and training speed.

    python benchmarks/bench_recipe.py --worlds 0 1 2 3 --seeds 0 1 2     # the grid of the issue
    python benchmarks/bench_recipe.py --quick                            # a smoke test (a few minutes)
    python benchmarks/bench_recipe.py                                    # world 0 and the digits, 3 seeds

What it trains: each variant (below) on each task's training split, once per seed, through ``train.py`` in a
subprocess. The tasks are

* the **worlds** of ``--worlds``: demo datasets of other sites (``python -m trinet.demo --world N``; world 0
  is the demo's own), each scored on its own query/gallery split under the Market-1501 protocol and, with
  several worlds, also on every other world's (trained on world a, evaluated on world b: the domain gap);
* the **digits** (unless ``--no_digits``): scikit-learn's 8x8 handwritten digits (``load_digits``, shipped
  with scikit-learn), written 4x larger as PNG images; classes 4-9 train, the unseen classes 0-3 are query
  and gallery at once (each query ranks all the other test images: evaluate.py's ``diagonal`` excluder).
  The variants' flags change only where the data forces it: 32x32 inputs, P=6 classes of K=10, no flips.

Scores: single-view embeddings of the run's final model through ``trinet.Embedder`` (what embed.py writes),
evaluated by ``trinet.evaluation.metrics.evaluate`` (what evaluate.py prints) with the run's test metric.
Beside each task, the baselines without a network, on the same splits: raw pixels
(``trinet.tools.baselines``; 32x16, or the digits' own 8x8) and stripe colour histograms + PCA/LDA fitted
on the training world's identities (``pixel_baseline.py``). Printed: mAP and rank-1 per world (mean ±
standard deviation over seeds), overall (the mean of the world means ± their standard deviation: the spread
between worlds), the cross-world matrix of each variant, and the digits.

The variants and the speed measurement (world 0) follow.

Three variants train LuNet at 64x32 on the demo dataset (``python -m trinet.demo``) for the same number of
iterations, once per seed, through ``train.py`` in a subprocess:

* ``triplet``: the paper's triplet-only setting, as experiments/demo.sh trained before the recipe: batch-hard
  triplet loss with the soft margin, fc1024 head, flips and the resize-and-crop augmentation, Adam 1e-3
  decaying exponentially from half-way;
* ``triplet+id+bnneck``: the same plus the identification loss (weight 1) on a BNNeck head; the test
  feature is the one after the batch norm, compared with the cosine distance;
* ``full recipe``: that plus the other tricks of Luo et al. 2019 ("Bag of Tricks and a Strong Baseline for
  Deep Person Re-identification"): warm-up over the first 10% of the iterations from 0.1x, random erasing
  (p 0.5), label smoothing 0.1, last stride 1, centre loss (weight 0.0005) and the hard margin 0.3; the
  resize-and-crop augmentation is replaced by the paper's pad-and-crop, its 10 px at 256x128 scaled to
  64x32 (2.5, rounded to 3 px; ``--pad_crop``). Learning rate and schedule stay the demo's for all three
  (the paper's 3.5e-4 with steps at epochs 40 and 70 of 120 belongs to ResNet-50 on the full datasets).

``cpu recipe`` is what ``experiments/reid_cpu_recipe.sh`` passes to train.py (read from its dry run, so the
harness measures the script itself), with its held-out validation identities (not on the digits).

Single changes, for ablations (``--variants``): of the full recipe, one trick off (``full recipe, no
erasing``, ``no centre loss``, ``last stride 2``, ``no label smoothing``, ``no warm-up``, ``resize-and-crop``
instead of pad-and-crop, ``soft margin``, ``lr 3.5e-4``, ``lr 2e-3``, ``id weight 0.5``); of
``triplet+id+bnneck``, one trick on (``triplet+id+bnneck, + last stride 1``, ``+ warm-up``, ``+ label
smoothing``, ``+ centre loss``, ``+ margin 0.3``, ``+ erasing``). The tables then print each variant against
``triplet`` and ``full recipe`` on the same (world, seed) pairs: the mean difference ± its spread and the
pairs won, which the spread between worlds (some worlds are harder for every variant) does not tell.
A variant whose test metric is not euclidean is also scored by the euclidean distance, without training
again (the tables' ``<variant>, euclidean test`` rows).
Other variants: bfloat16, PCB, mutual learning, the local branch.

Each run is then embedded with a single view (the image resized to 64x32, no test-time augmentation, as the
Bag of Tricks tests: the variants differ in their training augmentation, so no variant is favoured by a
test-time crop resembling its training crops) and evaluated under the task's protocol (the worlds:
evaluate.py's market1501 excluder), with the run's test metric (euclidean for ``triplet``, cosine for the
BNNeck variants), in this process (the library functions that embed.py and evaluate.py call).

Speed: train.py logs the mean wall time of its last 20 steps (the data pipeline's waiting included) as the
TensorBoard scalar ``secs_per_iter``; the runs log every 20 iterations, so the windows tile the run. A
variant's step time is the median of its windows after the first 60 iterations (tracing, warm-up of the
pipeline); the median also discounts the few windows that hold a checkpoint save or a histogram write.
images/s = batch size (64) / step time. The ratio to ``triplet`` is taken seed by seed: the variants of
one seed run one after the other, so a load that another process puts on the machine for a while hits them
alike. The whole run's mean (steps 61 to the end, checkpoint saves included, from the events' wall times)
is printed too. The issue asks the full recipe to be no more than 10% slower per image (ratio >= 0.90).

    python benchmarks/bench_recipe.py --no_digits --seeds 0 --iterations 200   # world 0 only, a quick look
    python benchmarks/bench_recipe.py --fresh                           # retrain instead of reusing
    python benchmarks/bench_recipe.py --no_digits --variants "full recipe" "full recipe, bfloat16"

Measured (2026-11-30, 2 shared vCPUs, load 2-5 from other work; seeds 0 1 2, 1,000 iterations): mAP / rank-1
67.7 ± 0.9 / 78.1 ± 2.3 (triplet), 71.4 ± 1.4 / 85.0 ± 2.1 (triplet+id+bnneck), 73.2 ± 3.3 / 82.9 ± 3.3 (full
recipe); the accuracy is bit-for-bit the same on a re-run. CPU time per image: full recipe 0.83 ± 0.08 of
triplet's (last stride 1 is the largest cost); the wall-time ratios swung by ±0.3 with the load.

Measured on worlds 0-3 (2026-12-03, same machine; the README's "Measuring beyond the demo" has the table):
at 500 iterations (seeds 0 1) mAP over worlds 50.4 ± 17.4 (triplet) against 44.0 ± 19.4 (full recipe); at
1,000 iterations (seed 0) 61.8 ± 9.6 against 58.8 ± 19.7, the recipe ahead on worlds 0 and 1 and behind on
2 and 3; digits (500 iterations) 58.8 ± 3.7 (triplet), 79.5 ± 1.1 (full recipe), 81.0 (raw pixels).

Measured 2026-12-03 (bfloat16, ``--mixed_precision bfloat16``): the single changes at 500 iterations, seed 0,
4 worlds (triplet 50.6, triplet+id+bnneck 58.3, full recipe 45.5 mAP over worlds; every addition to
triplet+id+bnneck within ±1 or worse on average); cpu recipe against triplet at 1,000 iterations, 4 worlds x
3 seeds: 62.7 against 62.6 (+0.1 ± 1.9 paired, 6 of 12).

Finished runs (``WORK/[<task>/]<variant>/seed<N>/result.json``, no task folder for world 0; written only when
training and scoring succeeded with the same command line) are reused, and scored on the targets they lack
(a world added to ``--worlds``); anything else in a run's folder is deleted and redone. Expect about 3
minutes a run of 1,000 iterations on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import glob
import json
import math
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH_P, BATCH_K = 16, 4
LOG_FREQUENCY = 20  # = trinet.training.engine.ETA_WINDOW: the logged windows of step times tile the run
SKIP_ITERATIONS = 60  # start-up: the windows of step times from here on make the step time


def demo_flags(iterations: int) -> dict:
    """The triplet-only demo's training flags (a value of None is a switch), at the given length."""
    return {"--model_name": "lunet", "--head_name": "fc1024", "--embedding_dim": "128",
            "--batch_p": str(BATCH_P), "--batch_k": str(BATCH_K),
            "--net_input_height": "64", "--net_input_width": "32",
            "--pre_crop_height": "72", "--pre_crop_width": "36",
            "--flip_augment": None, "--crop_augment": None,
            "--margin": "soft", "--metric": "euclidean", "--loss": "batch_hard", "--learning_rate": "1e-3",
            "--train_iterations": str(iterations), "--decay_start_iteration": str(iterations // 2),
            "--checkpoint_frequency": "250", "--log_frequency": str(LOG_FREQUENCY)}


#: The recommended recipe's script; its variant ("cpu recipe") is the flags it passes to train.py.
RECIPE_SCRIPT = os.path.join(REPO, "experiments", "reid_cpu_recipe.sh")
#: What the harness sets itself (the paths and the seed), left out of the script's flags.
RUN_FLAGS = ("--experiment_root", "--train_set", "--image_root", "--seed")


@functools.lru_cache(maxsize=None)
def recipe_flags(iterations: int) -> tuple[tuple[str, str | None], ...]:
    """The train.py flags of experiments/reid_cpu_recipe.sh at this length, from its dry run (float32: the
    harness's --mixed_precision decides), as (flag, value or None for a switch) pairs, minus `RUN_FLAGS`."""
    env = {**os.environ, "RECIPE_DRY_RUN": "1", "RECIPE_PRECISION": "float32"}
    command = ["bash", RECIPE_SCRIPT, "TRAIN", "ROOT", "EXP", "--train_iterations", str(iterations)]
    argv = subprocess.run(command,
                          env=env, check=True, capture_output=True, text=True).stdout.split("\n")
    argv = [a for a in argv if a]
    flags: dict[str, str | None] = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else None
            flags[arg] = value
    return tuple((k, v) for k, v in flags.items() if k not in RUN_FLAGS)


def variants(iterations: int, pad: int) -> list[tuple[str, dict, str]]:
    """(name, train.py flags, test metric) of the three variants."""
    triplet = demo_flags(iterations)
    bnneck = dict(triplet)
    del bnneck["--embedding_dim"]  # bnneck's embedding is the pooled feature
    bnneck.update({"--id_loss_weight": "1", "--head_name": "bnneck", "--test_metric": "cosine"})
    full = dict(bnneck)
    del full["--crop_augment"]  # the Bag of Tricks pads and crops instead of resizing and cropping
    full.update({"--warmup_iterations": str(max(1, iterations // 10)), "--warmup_factor": "0.1",
                 "--random_erasing_prob": "0.5", "--pad_crop": str(pad), "--label_smoothing": "0.1",
                 "--last_stride": "1", "--center_loss_weight": "0.0005", "--margin": "0.3"})
    bfloat16 = dict(full)
    bfloat16["--mixed_precision"] = "bfloat16"
    pcb = dict(full)  # PCB instead of BNNeck: 4 stripes (of the 8 rows of LuNet's map at stride 1) + global
    del pcb["--test_metric"]
    pcb.update({"--head_name": "pcb", "--num_stripes": "4", "--pcb_global_branch": None,
                "--embedding_dim": "64"})
    mutual = dict(full)  # deep mutual learning of two networks (network 0 is evaluated)
    mutual["--mutual_models"] = "2"
    local = dict(full)  # AlignedReID's local branch: 8 stripes (the rows of LuNet's map at stride 1)
    local.update({"--local_branch": None, "--local_stripes": "8"})
    # Single changes of the full recipe (the ablations): one trick off, all else equal.
    no_erasing = {k: v for k, v in full.items() if k != "--random_erasing_prob"}
    no_center = {k: v for k, v in full.items() if k != "--center_loss_weight"}
    stride2 = {k: v for k, v in full.items() if k != "--last_stride"}
    no_smoothing = {k: v for k, v in full.items() if k != "--label_smoothing"}
    no_warmup = {k: v for k, v in full.items() if k not in ("--warmup_iterations", "--warmup_factor")}
    crop = {k: v for k, v in full.items() if k != "--pad_crop"}  # the triplet settings' resize-and-crop
    crop.update({"--crop_augment": None, "--pre_crop_height": "72", "--pre_crop_width": "36"})
    soft = {**full, "--margin": "soft"}
    lr_low, lr_high = {**full, "--learning_rate": "3.5e-4"}, {**full, "--learning_rate": "2e-3"}
    id_half = {**full, "--id_loss_weight": "0.5"}
    recipe = dict(recipe_flags(iterations))
    recipe["--log_frequency"] = str(LOG_FREQUENCY)  # the speed's windows (no effect on the training)
    # Single additions to triplet+id+bnneck: one trick of the full recipe on, all else equal.
    additions = {"last stride 1": {"--last_stride": "1"},
                 "warm-up": {k: full[k] for k in ("--warmup_iterations", "--warmup_factor")},
                 "label smoothing": {"--label_smoothing": "0.1"},
                 "centre loss": {"--center_loss_weight": "0.0005"}, "margin 0.3": {"--margin": "0.3"},
                 "erasing": {"--random_erasing_prob": "0.5"}}
    added = [(f"triplet+id+bnneck, + {name}", {**bnneck, **extra}, "cosine")
             for name, extra in additions.items()]
    return [("triplet", triplet, "euclidean"), ("triplet+id+bnneck", bnneck, "cosine"), *added,
            ("cpu recipe", recipe, recipe.get("--test_metric") or "euclidean"),
            ("full recipe", full, "cosine"), ("full recipe, bfloat16", bfloat16, "cosine"),
            ("full recipe, pcb", pcb, "euclidean"), ("full recipe, mutual", mutual, "cosine"),
            ("full recipe, local", local, "cosine"), ("full recipe, no erasing", no_erasing, "cosine"),
            ("full recipe, no centre loss", no_center, "cosine"),
            ("full recipe, last stride 2", stride2, "cosine"),
            ("full recipe, no label smoothing", no_smoothing, "cosine"),
            ("full recipe, no warm-up", no_warmup, "cosine"),
            ("full recipe, resize-and-crop", crop, "cosine"),
            ("full recipe, soft margin", soft, "cosine"),
            ("full recipe, lr 3.5e-4", lr_low, "cosine"), ("full recipe, lr 2e-3", lr_high, "cosine"),
            ("full recipe, id weight 0.5", id_half, "cosine")]


#: The variants run by default (``--variants`` chooses others).
DEFAULT_VARIANTS = ("triplet", "triplet+id+bnneck", "full recipe")


def slug(name: str) -> str:
    return re.sub("_+", "_", name.replace("+", "_").replace(",", "").replace(" ", "_"))


def as_argv(flags: dict) -> list[str]:
    argv: list[str] = []
    for flag, value in flags.items():
        argv += [flag] if value is None else [flag, value]
    return argv


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a running process (all its threads), from /proc; None where unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def run_logged(cmd: list[str], logfile: str, what: str, cpu_samples: list | None = None) -> None:
    """Run cmd with its output appended to logfile; raise RuntimeError with the output's tail if it fails.

    With cpu_samples, append (wall time, CPU seconds of the process) to it four times a second.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    with open(logfile, "a") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        while True:
            try:
                rc = proc.wait(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                cpu = process_cpu_seconds(proc.pid) if cpu_samples is not None else None
                if cpu is not None:
                    cpu_samples.append((time.time(), cpu))
    if rc != 0:
        with open(logfile) as f:
            tail = "".join(f.readlines()[-15:])
        raise RuntimeError(f"{what} failed (exit status {rc}); the end of {logfile}:\n{tail}")


def read_events(folder: str) -> list[tuple[int, float, float]]:
    """(step, wall time, seconds per iteration) of the ``secs_per_iter`` scalars in folder's event files."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.util import tensor_util

    rows = []
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        with open(path, "rb") as f:
            data = f.read()
        pos = 0
        while pos + 12 <= len(data):  # TFRecord: u64 length, u32 crc, payload, u32 crc
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            payload = data[pos + 12:pos + 12 + length]
            pos += 16 + length
            if len(payload) < length:
                break  # a record cut short by an interrupted write
            event = event_pb2.Event.FromString(payload)
            for value in event.summary.value:
                if value.tag == "secs_per_iter":
                    seconds = (float(tensor_util.make_ndarray(value.tensor)) if value.HasField("tensor")
                               else value.simple_value)
                    rows.append((event.step, event.wall_time, seconds))
    return sorted(rows)


def speed(experiment: str, cpu_samples: list) -> dict:
    """The step time of a finished run, and its CPU time per iteration (see the module docstring)."""
    rows = read_events(experiment)
    windows = [sec for step, _, sec in rows if step - LOG_FREQUENCY >= SKIP_ITERATIONS]
    if not windows:
        raise RuntimeError(f"No secs_per_iter scalars after iteration {SKIP_ITERATIONS} in {experiment}; "
                           "run more iterations")
    start = [(step, wall) for step, wall, _ in rows if step >= SKIP_ITERATIONS][0]
    end = rows[-1]
    overall = (end[1] - start[1]) / (end[0] - start[0]) if end[0] > start[0] else float("nan")
    cpu_per_it = float("nan")
    if len(cpu_samples) > 1 and end[0] > start[0]:
        import numpy as np
        times, cpus = np.array(cpu_samples).T
        if times[0] <= start[1] and end[1] <= times[-1]:
            cpu_per_it = float(np.interp(end[1], times, cpus) - np.interp(start[1], times, cpus)) / (
                end[0] - start[0])
    return {"median_s_per_it": statistics.median(windows), "windows": len(windows),
            "overall_s_per_it": overall, "cpu_s_per_it": cpu_per_it}


#: Sizes of the worlds' datasets under --quick (the demo's own otherwise).
QUICK_SIZES = dict(train_ids=40, test_ids=40, junk=30, distractors=30)

#: The digits task: scikit-learn's 8x8 handwritten digits (shipped with it, no download), written 4x larger.
DIGITS_TRAIN_CLASSES, DIGITS_TEST_CLASSES = (4, 5, 6, 7, 8, 9), (0, 1, 2, 3)
DIGITS_SCALE = 4

#: How the variants' flags change for the digits (32x32 grey images of 6 training classes): a square input,
#: P = 6 classes of K = 10 images (60 a batch, as near 64 as 6 classes allow), and no mirror images (a
#: mirrored digit is another symbol).
DIGITS_FLAGS = {"--net_input_height": "32", "--net_input_width": "32", "--batch_p": "6", "--batch_k": "10"}
DIGITS_PRE_CROP = {"--pre_crop_height": "36", "--pre_crop_width": "36"}
#: No flips for digits, and no held-out validation classes (of 6 training classes, the cpu recipe's 10%
#: would be one, a sixth of the data).
DIGITS_DROPPED = ("--flip_augment", "--val_fraction", "--val_identities", "--val_excluder", "--val_frequency")


@dataclasses.dataclass(frozen=True)
class Task:
    """A dataset to train on or to evaluate on.

    Attributes:
        name: 'world<N>' or 'digits'.
        root: the image root; train_csv, query_csv, gallery_csv: the splits (query = gallery for digits).
        excluder: evaluate.py's excluder (market1501 for the worlds; diagonal, the query itself, for digits).
    """

    name: str
    root: str
    train_csv: str
    query_csv: str
    gallery_csv: str
    excluder: str


def world_task(work: str, world: int, quick: bool) -> Task:
    """World `world`'s demo dataset under `work` (generated, or reused when it holds the same settings).
    World 0 keeps the folder of the harness before worlds existed (WORK/data), so its runs are reused."""
    from trinet.demo import generate

    root = os.path.join(work, "data" if world == 0 else f"data_world{world}")
    result = generate(root, world=world, quiet=True, **(QUICK_SIZES if quick else {}))
    return Task(f"world{world}", root, result.train_csv, result.query_csv, result.test_csv, "market1501")


def digits_split(target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row indices `(train, test)` of scikit-learn's digits: classes 4-9 train, the unseen 0-3 test."""
    target = np.asarray(target)
    return (np.flatnonzero(np.isin(target, DIGITS_TRAIN_CLASSES)),
            np.flatnonzero(np.isin(target, DIGITS_TEST_CLASSES)))


def digits_task(work: str) -> Task:
    """The digits as PNG images (8x8 scaled 4x, nearest neighbour, grey as RGB) and CSVs of `pid,path` rows:
    digits_train.csv (classes 4-9), digits_test.csv (0-3), the test set being query and gallery at once."""
    import cv2
    from sklearn.datasets import load_digits

    from trinet.data.datasets import write_csv

    root = os.path.join(work, "digits")
    train_csv, test_csv = os.path.join(root, "digits_train.csv"), os.path.join(root, "digits_test.csv")
    task = Task("digits", root, train_csv, test_csv, test_csv, "diagonal")
    if os.path.exists(os.path.join(root, "done")):
        return task
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, "images"))
    digits = load_digits()
    for csv, rows in zip((train_csv, test_csv), digits_split(digits.target)):
        fids = []
        for i in rows:
            grey = np.round(digits.images[i] * (255.0 / 16.0)).astype(np.uint8)
            big = cv2.resize(grey, None, fx=DIGITS_SCALE, fy=DIGITS_SCALE, interpolation=cv2.INTER_NEAREST)
            fids.append(f"images/{i:04d}_{digits.target[i]}.png")
            cv2.imwrite(os.path.join(root, fids[-1]), cv2.cvtColor(big, cv2.COLOR_GRAY2BGR))
        write_csv(csv, [str(digits.target[i]) for i in rows], fids)
    open(os.path.join(root, "done"), "w").close()
    return task


def task_flags(flags: dict, task: Task) -> dict:
    """A variant's train.py flags for `task` (the digits' changes, `DIGITS_FLAGS`; the worlds' none)."""
    if task.name != "digits":
        return dict(flags)
    out = {k: v for k, v in flags.items() if k not in DIGITS_DROPPED}
    out.update(DIGITS_FLAGS)
    out.update({k: v for k, v in DIGITS_PRE_CROP.items() if k in flags})
    return out


def score(experiment: str, metric: str, targets: list[Task]) -> dict:
    """`{task name: {"mAP", "rank1"}}` of the experiment's model (its latest checkpoint) on each target's
    query/gallery split: single-view embeddings through `trinet.Embedder` (what embed.py does), scored as
    evaluate.py does (`trinet.evaluation.metrics.evaluate` with the target's excluder). With a test metric
    other than euclidean, also `{"mAP_euclidean", "rank1_euclidean"}`: the same embeddings by the euclidean
    distance (the test metric's ablation, without training again)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported
    from trinet import Embedder
    from trinet.data.datasets import read_csv
    from trinet.evaluation.excluders import get_excluder
    from trinet.evaluation.metrics import evaluate

    embedder = Embedder.from_experiment(experiment)
    out = {}
    for task in targets:
        query, gallery = read_csv(task.query_csv, task.root), read_csv(task.gallery_csv, task.root)
        q_emb = embedder.embed(query.paths(), batch_size=256)
        same = task.gallery_csv == task.query_csv
        g_emb = q_emb if same else embedder.embed(gallery.paths(), batch_size=256)
        exclusion = get_excluder(task.excluder)(query.fids, gallery.fids)
        results = evaluate(q_emb, g_emb, query.pids, gallery.pids, exclusion, metric=metric)
        out[task.name] = {"mAP": results.mean_ap, "rank1": results.top(1)}
        if metric != "euclidean":
            other = evaluate(q_emb, g_emb, query.pids, gallery.pids, exclusion, metric="euclidean")
            out[task.name].update(mAP_euclidean=other.mean_ap, rank1_euclidean=other.top(1))
    return out


#: The name of the raw pixels' baseline in the tables.
PIXELS = "raw pixels (no learning)"

_FEATURES: dict[tuple, np.ndarray] = {}  # (kind, CSV) -> the baseline features of its images, computed once


def _features(kind: str, csv: str, dataset, compute) -> np.ndarray:
    if (kind, csv) not in _FEATURES:
        _FEATURES[kind, csv] = compute(dataset)
    return _FEATURES[kind, csv]


def baseline_scores(train: Task, targets: list[Task]) -> dict:
    """The baselines without a network, as `score` reports them: raw pixels 32x16 (no learning, so the same
    whatever the training task; 8x8, the digits' own pixels, on the digits), and stripe colour histograms
    projected by PCA + LDA fitted on `train`'s identities (`pixel_baseline.py`; the worlds only)."""
    from pixel_baseline import fit_lda, stripe_histograms

    from trinet.tools.baselines import pixel_embeddings
    from trinet.data.datasets import read_csv
    from trinet.evaluation.excluders import get_excluder
    from trinet.evaluation.metrics import evaluate

    out: dict = {PIXELS: {}, "histograms + LDA": {}}
    project = None
    if train.name != "digits":
        train_set = read_csv(train.train_csv, train.root)
        project = fit_lda(_features("hist", train.train_csv, train_set, stripe_histograms), train_set.pids)
    for task in targets:
        query, gallery = read_csv(task.query_csv, task.root), read_csv(task.gallery_csv, task.root)
        exclusion = get_excluder(task.excluder)(query.fids, gallery.fids)
        size = (8, 8) if task.name == "digits" else (32, 16)

        def pixels(dataset):
            return pixel_embeddings(dataset, size)

        features = [(PIXELS, _features("pixels", task.query_csv, query, pixels),
                     _features("pixels", task.gallery_csv, gallery, pixels))]
        if project is not None and task.name != "digits":
            features.append(("histograms + LDA",
                             project(_features("hist", task.query_csv, query, stripe_histograms)),
                             project(_features("hist", task.gallery_csv, gallery, stripe_histograms))))
        for name, q, g in features:
            results = evaluate(q, g, query.pids, gallery.pids, exclusion, metric="euclidean")
            out[name][task.name] = {"mAP": results.mean_ap, "rank1": results.top(1)}
    return out


def one_run(name: str, flags: dict, metric: str, seed: int, task: Task, targets: list[Task], folder: str,
            fresh: bool, train: bool = True) -> dict:
    """Train one variant with one seed on `task` in folder, and score it on each of `targets` (`task` first).
    A finished run with the same command line is reused; only the targets it lacks are scored. Without
    `train`, a run that is not finished raises RuntimeError instead of training."""
    py = sys.executable
    exp = os.path.join(folder, "experiment")
    train_cmd = ([py, os.path.join(REPO, "train.py"), "--experiment_root", exp,
                  "--train_set", task.train_csv, "--image_root", task.root]
                 + as_argv(flags) + ["--seed", str(seed)])
    result_file = os.path.join(folder, "result.json")
    if not fresh and os.path.exists(result_file):
        with open(result_file) as f:
            result = json.load(f)
        if result.get("train_command") == train_cmd[1:] and os.path.isdir(exp):
            missing = [t for t in targets if t.name not in result.get("scores", {})]
            if missing:
                result.setdefault("scores", {}).update(score(exp, metric, missing))
                with open(result_file, "w") as f:
                    json.dump(result, f, indent=1)
            result["reused"] = True
            return result
        if train:
            print(f"    {folder} was made with other settings: redoing it", flush=True)
    if not train:
        raise RuntimeError(f"not run (--no_train): no finished run in {folder}")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    log = os.path.join(folder, "output.log")
    load = os.getloadavg()[0]
    tick = time.perf_counter()
    cpu_samples: list = []
    run_logged(train_cmd, log, f"Training {name} on {task.name} (seed {seed})", cpu_samples)
    train_seconds = time.perf_counter() - tick
    scores = score(exp, metric, targets)
    own = scores[task.name]
    result = {"variant": name, "seed": seed, "task": task.name, "mAP": own["mAP"], "rank1": own["rank1"],
              "scores": scores, "train_seconds": train_seconds, "load_before": load,
              "load_after": os.getloadavg()[0],
              "batch_size": int(flags["--batch_p"]) * int(flags["--batch_k"]),
              "train_command": train_cmd[1:], "metric": metric}
    if "--local_branch" in flags:  # the same model ranked by global + local distance (weight 1), own task
        result.update(local_scores(exp, metric, task, folder, log))
    result.update(speed(exp, cpu_samples))
    with open(result_file, "w") as f:
        json.dump(result, f, indent=1)
    result["reused"] = False
    return result


def local_scores(exp: str, metric: str, task: Task, folder: str, log: str) -> dict:
    """mAP and rank-1 by the global + local distance, through embed.py and evaluate.py."""
    py = sys.executable
    splits = {}
    for split, csv in (("query", task.query_csv), ("test", task.gallery_csv)):
        splits[split] = os.path.join(folder, f"{split}_embeddings.h5")
        run_logged([py, os.path.join(REPO, "embed.py"), "--experiment_root", exp, "--dataset", csv,
                    "--image_root", task.root, "--filename", splits[split], "--quiet"],
                   log, f"Embedding {split}")
    out = os.path.join(folder, "evaluation_local.json")
    run_logged([py, os.path.join(REPO, "evaluate.py"), "--excluder", task.excluder, "--metric", metric,
                "--query_dataset", task.query_csv, "--query_embeddings", splits["query"],
                "--gallery_dataset", task.gallery_csv, "--gallery_embeddings", splits["test"],
                "--filename", out, "--quiet", "--local_distance_weight", "1"], log, "Evaluating (local)")
    with open(out) as f:
        local = json.load(f)
    return {"mAP_local": local["mAP"], "rank1_local": local["top-1"]}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value; NaN for none)."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


#: The suffix of a variant's records scored by the euclidean distance instead of its test metric.
EUCLIDEAN = ", euclidean test"


def records_of(results: dict[str, list[dict]]) -> list[dict]:
    """One record per (variant, trained on, evaluated on, seed): `{"variant", "train", "eval", "seed",
    "mAP", "rank1"}`, from the runs' results; a run scored by the euclidean distance too (`score`) gives
    a second record, its variant's name + `EUCLIDEAN`."""
    out = []
    for name, rs in results.items():
        for r in rs:
            for target, s in r["scores"].items():
                key = {"train": r["task"], "eval": target, "seed": r["seed"]}
                out.append({"variant": name, **key, "mAP": s["mAP"], "rank1": s["rank1"]})
                if "mAP_euclidean" in s:
                    out.append({"variant": name + EUCLIDEAN, **key, "mAP": s["mAP_euclidean"],
                                "rank1": s["rank1_euclidean"]})
    return out


def cell(records: list[dict], variant: str, train: str, evaluated: str, key: str) -> tuple[float, float, int]:
    """Mean and standard deviation over seeds of `key` for one variant trained on `train`, evaluated on
    `evaluated`, and the number of runs."""
    values = [r[key] for r in records if (r["variant"], r["train"], r["eval"]) == (variant, train, evaluated)]
    return (*mean_std(values), len(values))


def overall(cells: list[tuple[float, float, int]]) -> tuple[float, float]:
    """The mean of the per-world means and their standard deviation (the spread between worlds; for one
    world, its spread over seeds)."""
    means = [m for m, _, n in cells if n]
    if len(means) == 1:
        return means[0], [sd for _, sd, n in cells if n][0]
    return mean_std(means)


def same_world_table(records: list[dict], variants: list[str], baselines: dict, worlds: list[str],
                     key: str) -> list[str]:
    """Lines of a table: a row per variant (and baseline), a column per world (trained and evaluated
    there: mean ± sd over seeds, %), and the overall mean over worlds ± the spread between worlds."""
    width = max([26, *map(len, variants), *map(len, baselines)])
    head = (f"{'variant':{width}s} | " + " | ".join(f"{w:>13s}" for w in worlds)
            + f" | {'overall':>13s} | runs")
    lines = [head, "-" * len(head)]

    def fmt(m: float, sd: float) -> str:
        return f"{100 * m:5.1f} ± {100 * sd:4.1f}" if not math.isnan(m) else f"{'-':>13s}"

    for v in variants:
        cells = [cell(records, v, w, w, key) for w in worlds]
        lines.append(f"{v:{width}s} | " + " | ".join(fmt(m, sd) for m, sd, _ in cells)
                     + f" | {fmt(*overall(cells))} | {sum(n for _, _, n in cells):4d}")
    for name, per_train in baselines.items():
        cells = []
        for w in worlds:
            s = per_train.get(w, {}).get(w)
            cells.append((s[key], 0.0, 1) if s else (float("nan"), float("nan"), 0))
        if any(n for _, _, n in cells):
            lines.append(f"{name:{width}s} | " + " | ".join(fmt(m, sd) for m, sd, _ in cells)
                         + f" | {fmt(*overall(cells))} |    -")
    return lines


def paired(records: list[dict], variant: str, reference: str, tasks: list[str], key: str) -> dict:
    """`variant` against `reference` on the same (task, seed) pairs, trained and evaluated on the task:
    `{"mean", "sd", "wins", "n"}` of the differences variant - reference (the spread of a difference
    between two recipes on the same data, which the spread between worlds does not tell)."""
    def values(name: str) -> dict:
        return {(r["train"], r["seed"]): r[key] for r in records
                if r["variant"] == name and r["train"] == r["eval"] and r["train"] in tasks}

    mine, theirs = values(variant), values(reference)
    diffs = [mine[k] - theirs[k] for k in sorted(mine) if k in theirs]
    m, sd = mean_std(diffs)
    return {"mean": m, "sd": sd, "wins": sum(d > 0 for d in diffs), "n": len(diffs)}


def paired_table(records: list[dict], variants: list[str], reference: str, tasks: list[str],
                 key: str) -> list[str]:
    """Lines: each variant's paired difference to `reference` (see `paired`), in points of %."""
    width = max([26, *map(len, variants)])
    lines = [f"  {'variant':{width}s} | {'difference':>13s} | better on"]
    for v in variants:
        if v == reference:
            continue
        d = paired(records, v, reference, tasks, key)
        if d["n"]:
            lines.append(f"  {v:{width}s} | {round(100 * d['mean'], 1) + 0.0:+5.1f} ± {100 * d['sd']:4.1f} | "
                         f"{d['wins']} of {d['n']}")
    return lines


def cross_world_table(records: list[dict], variant: str, worlds: list[str], key: str) -> list[str]:
    """Lines of a matrix for one variant: trained on the row's world, evaluated on the column's (mean over
    seeds, %), with the mean off the diagonal (another world) and on it (the same world)."""
    head = f"  {'trained on':10s} | " + " | ".join(f"{w:>7s}" for w in worlds) + " | other worlds | same"
    lines = [head]
    for a in worlds:
        row = [cell(records, variant, a, b, key)[0] for b in worlds]
        others = [m for b, m in zip(worlds, row) if b != a and not math.isnan(m)]
        lines.append(f"  {a:10s} | " + " | ".join(f"{100 * m:7.1f}" for m in row)
                     + f" | {100 * mean_std(others)[0]:12.1f} | {100 * row[worlds.index(a)]:4.1f}")
    return lines


def cross_world_summary(records: list[dict], variant: str, worlds: list[str], key: str) -> tuple:
    """(mean, sd) over the ordered pairs of distinct worlds of the seed-mean `key`, and the same-world
    mean over the worlds: the domain gap in one line."""
    pairs = [cell(records, variant, a, b, key)[0] for a in worlds for b in worlds if a != b]
    same = [cell(records, variant, a, a, key)[0] for a in worlds]
    return (*mean_std(pairs), mean_std(same)[0])


def speed_table(specs: list, results: dict[str, list[dict]], args: argparse.Namespace) -> None:
    """The table of accuracy and speed on world 0 (the harness's output before worlds existed)."""
    world0 = {name: [r for r in rs if r["task"] == "world0"] for name, rs in results.items()}
    base = {r["seed"]: r for r in world0.get("triplet", [])}
    print(f"\nBag of Tricks on the demo dataset (world 0): LuNet 64x32, {args.iterations} iterations of "
          f"{BATCH_P}x{BATCH_K}, seeds {' '.join(map(str, args.seeds))}; single-view embeddings, "
          "market1501 protocol")
    header = (f"{'variant':20s} | {'mAP':>15s} | {'rank-1':>15s} | {'images/s':>11s} | "
              f"{'ratio to triplet':>16s} | {'CPU ms/image':>12s} | {'CPU ratio':>15s} | runs")
    print(header)
    print("-" * len(header))
    for name, _, _ in specs:
        rs = world0[name]
        if not rs:
            print(f"{name:20s} | {'failed':>15s} |")
            continue
        m, ms = mean_std([r["mAP"] * 100 for r in rs])
        k, ks = mean_std([r["rank1"] * 100 for r in rs])
        ips, ipss = mean_std([r["batch_size"] / r["median_s_per_it"] for r in rs])
        ra, ras = mean_std([base[r["seed"]]["median_s_per_it"] / r["median_s_per_it"]
                            for r in rs if r["seed"] in base])
        cpu, cpus = mean_std([1000 * r.get("cpu_s_per_it", math.nan) / r["batch_size"] for r in rs])
        cr, crs = mean_std([base[r["seed"]].get("cpu_s_per_it", math.nan) / r.get("cpu_s_per_it", math.nan)
                            for r in rs if r["seed"] in base])
        print(f"{name:20s} | {m:6.2f} ± {ms:5.2f} | {k:6.2f} ± {ks:5.2f} | {ips:4.0f} ± {ipss:3.0f} | "
              f"{ra:7.3f} ± {ras:5.3f} | {cpu:5.2f} ± {cpus:4.2f} | {cr:6.3f} ± {crs:5.3f} | {len(rs):4d}")
        if all("mAP_local" in r for r in rs):
            ml, mls = mean_std([r["mAP_local"] * 100 for r in rs])
            kl, kls = mean_std([r["rank1_local"] * 100 for r in rs])
            print(f"{'  + local distance':20s} | {ml:6.2f} ± {mls:5.2f} | {kl:6.2f} ± {kls:5.2f} | (the same "
                  "runs ranked by global + local distance, evaluate.py --local_distance_weight 1)")
    print(f"""
mAP and rank-1 in %, mean ± standard deviation over seeds.
images/s: batch size / median wall time of a step (windows of 20 steps after iteration {SKIP_ITERATIONS});
  ratio to triplet: triplet's step time / the variant's, seed by seed (the issue's bound: >= 0.90).
CPU ms/image: CPU time (all threads) of the training process from iteration {SKIP_ITERATIONS} to the end,
  per image, which another process's load disturbs less than wall time; CPU ratio: triplet's / the
  variant's, seed by seed.""")
    print("Per run: whole-run images/s (steps after the start-up, checkpoint saves included), load average "
          "before and after training:")
    for name, _, _ in specs:
        for r in world0[name]:
            print(f"  {name:20s} seed {r['seed']}: {r['batch_size'] / r['overall_s_per_it']:4.0f} images/s, "
                  f"load {r['load_before']:.1f} -> {r['load_after']:.1f}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=None,
                   help="folder for the datasets (WORK/data, WORK/data_world<N>, WORK/digits) and the runs "
                        "(default: runs/bench_recipe, runs/bench_recipe_quick with --quick)")
    p.add_argument("--iterations", type=int, default=None,
                   help="training iterations of every run (>= 100; default 1000, 100 with --quick)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 2 (0 with --quick)")
    p.add_argument("--worlds", type=int, nargs="+", default=None,
                   help="the demo worlds to train and evaluate on (python -m trinet.demo --world N; default: "
                        "0, the demo's own; 0 1 with --quick)")
    p.add_argument("--no_cross_world", action="store_true",
                   help="score each world's runs on their own world only (by default, with several worlds, "
                        "on every world: trained on a, evaluated on b)")
    p.add_argument("--no_digits", action="store_true",
                   help="leave out the digits task (scikit-learn's digits: classes 4-9 train, the unseen 0-3 "
                        "are query and gallery)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: worlds 0 1 of 40 + 40 identities, seed 0, 100 iterations, the "
                        "variants triplet and full recipe, and the digits (a few minutes on 2 cores)")
    p.add_argument("--pad_crop", type=int, default=3, help="the full recipe's --pad_crop (default 3)")
    p.add_argument("--mixed_precision", choices=("bfloat16",), default=None,
                   help="train every variant with train.py's --mixed_precision (bfloat16: 1.4-2x faster on "
                        "CPUs with AVX512-BF16 or AMX, as the demo trains there); the runs are kept apart "
                        "from the float32 ones (WORK/bfloat16/...)")
    p.add_argument("--fresh", action="store_true", help="redo finished runs instead of reusing them")
    p.add_argument("--no_train", action="store_true",
                   help="train nothing: print the tables of the finished runs (the others are listed "
                        "as not run)")
    p.add_argument("--variants", nargs="+", default=None,
                   choices=[name for name, _, _ in variants(1000, 3)],
                   help="the variants to run (default: triplet, triplet+id+bnneck, full recipe; 'full "
                        "recipe, bfloat16': the full recipe with --mixed_precision bfloat16; 'full recipe, "
                        "pcb': with --head_name pcb, 4 stripes and the global branch instead of BNNeck; "
                        "'full recipe, mutual': two networks by deep mutual learning, the first one "
                        "evaluated; 'full recipe, local': with AlignedReID's local branch, also evaluated "
                        "by the global + local distance)")
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the defaults that depend on --quick."""
    quick = args.quick
    args.work = args.work or os.path.join("runs", "bench_recipe_quick" if quick else "bench_recipe")
    args.iterations = args.iterations or (100 if quick else 1000)
    args.seeds = args.seeds if args.seeds is not None else ([0] if quick else [0, 1, 2])
    args.worlds = args.worlds if args.worlds is not None else ([0, 1] if quick else [0])
    args.variants = args.variants or (["triplet", "full recipe"] if quick else list(DEFAULT_VARIANTS))
    return args


def main(argv: list[str] | None = None) -> None:
    p = build_parser()
    args = resolve(p.parse_args(argv))
    if args.iterations < 100:
        p.error(f"--iterations must be >= 100 (the step time leaves out the first {SKIP_ITERATIONS}). "
                f"Received: --iterations={args.iterations}")
    if any(w < 0 for w in args.worlds) or len(set(args.worlds)) != len(args.worlds):
        p.error("--worlds must be distinct integers >= 0. "
                f"Received: --worlds {' '.join(map(str, args.worlds))}")

    work = os.path.abspath(args.work)
    started = time.perf_counter()
    print(f"Generating (or reusing) the datasets of worlds {' '.join(map(str, args.worlds))} in {work}"
          + ("" if args.no_digits else ", and the digits"), flush=True)
    worlds = [world_task(work, w, args.quick) for w in args.worlds]
    digits = None if args.no_digits else digits_task(work)
    jobs = [(t, worlds if len(worlds) > 1 and not args.no_cross_world else [t]) for t in worlds]
    if digits is not None:
        jobs.append((digits, [digits]))

    specs = [spec for spec in variants(args.iterations, args.pad_crop) if spec[0] in args.variants]
    if args.mixed_precision:
        specs = [(name, {**flags, "--mixed_precision": args.mixed_precision}, metric)
                 for name, flags, metric in specs]
        work = os.path.join(work, args.mixed_precision)
    results: dict[str, list[dict]] = {name: [] for name, _, _ in specs}
    failures: list[str] = []
    total, done = len(specs) * len(args.seeds) * len(jobs), 0
    # seed-major order: the variants of one seed and task run back to back, so their speeds are comparable
    for seed in args.seeds:
        for task, targets in jobs:
            for name, flags, metric in specs:
                done += 1
                sub = "" if task.name == "world0" else task.name
                folder = os.path.join(work, sub, slug(name), f"seed{seed}")
                print(f"[{done}/{total}] {name} on {task.name}, seed {seed} ({time.strftime('%H:%M:%S')}, "
                      f"load {os.getloadavg()[0]:.1f})", flush=True)
                try:
                    r = one_run(name, task_flags(flags, task), metric, seed, task, targets, folder,
                                args.fresh, train=not args.no_train)
                except RuntimeError as e:
                    failures.append(f"{name} on {task.name}, seed {seed}: {e}")
                    print(f"    FAILED: {e}", flush=True)
                    continue
                results[name].append(r)
                others = ", ".join(f"{t} {s['mAP']:.1%}" for t, s in r["scores"].items() if t != task.name)
                state = "reused" if r["reused"] else "done"
                print(f"    {state}: mAP {r['mAP']:.2%}, rank-1 {r['rank1']:.2%}"
                      + (f" (on {others})" if others else "")
                      + f", {r['batch_size'] / r['median_s_per_it']:.0f} images/s (training took "
                        f"{r['train_seconds']:.0f} s)", flush=True)

    baselines: dict[str, dict] = {}
    for task, targets in jobs:
        for name, per_target in baseline_scores(task, targets).items():
            baselines.setdefault(name, {})[task.name] = per_target

    records = records_of(results)
    names = [name for name, _, _ in specs]
    names += [n + EUCLIDEAN for n in names if any(r["variant"] == n + EUCLIDEAN for r in records)]
    if any(r["task"] == "world0" for rs in results.values() for r in rs):
        speed_table(specs, results, args)
    world_names = [t.name for t in worlds]
    print(f"\nThe worlds: trained and evaluated on the same world ({args.iterations} iterations, seeds "
          f"{' '.join(map(str, args.seeds))}; single-view embeddings, market1501 protocol)")
    for key, label in (("mAP", "mAP"), ("rank1", "rank-1")):
        print(f"\n{label} %, mean ± standard deviation over seeds; overall: the mean of the world means ± "
              "their standard deviation")
        print("\n".join(same_world_table(records, names, baselines, world_names, key)))
    for reference in ("triplet", "full recipe"):
        if reference in names and len(names) > 1:
            print(f"\nAgainst {reference}, on the same worlds and seeds: mAP difference in points, mean ± sd "
                  "over the (world, seed) pairs, and how many pairs it wins")
            print("\n".join(paired_table(records, names, reference, world_names, "mAP")))
    if len(worlds) > 1 and not args.no_cross_world:
        print("\nAcross worlds: trained on one world, evaluated on another (mAP %, mean over seeds)")
        for name in names:
            print(f"{name}:")
            print("\n".join(cross_world_table(records, name, world_names, "mAP")))
        pixels = baselines.get(PIXELS, {})
        row = [pixels.get(w, {}).get(w, {}).get("mAP", math.nan) for w in world_names]
        print(f"  {'raw pixels':10s} | " + " | ".join(f"{100 * m:7.1f}" for m in row) + "   (no training)")
        print("\nThe domain gap, mAP %: mean ± sd over the ordered pairs of distinct worlds, against the "
              "same-world mean")
        for name in names:
            m, sd, same = cross_world_summary(records, name, world_names, "mAP")
            print(f"  {name:26s} other world {100 * m:5.1f} ± {100 * sd:4.1f}   same world {100 * same:5.1f}")
        lda = baselines.get("histograms + LDA", {})
        pairs = [lda[a][b]["mAP"] for a in world_names for b in world_names if a != b and b in lda.get(a, {})]
        if pairs:
            m, sd = mean_std(pairs)
            same = mean_std([lda[a][a]["mAP"] for a in world_names if a in lda])[0]
            print(f"  {'histograms + LDA':26s} other world {100 * m:5.1f} ± {100 * sd:4.1f}   same world "
                  f"{100 * same:5.1f}")
    if digits is not None:
        print("\nDigits (scikit-learn): classes 4-9 train, the unseen 0-3 are query and gallery (the query "
              f"itself excluded); {args.iterations} iterations of 6x10 at 32x32, no flips")
        width = max([26, *map(len, names)])
        print(f"{'variant':{width}s} | {'mAP %':>13s} | {'rank-1 %':>13s} | runs")
        for name in names:
            m, sd, n = cell(records, name, "digits", "digits", "mAP")
            k, ksd, _ = cell(records, name, "digits", "digits", "rank1")
            print(f"{name:{width}s} | {100 * m:5.1f} ± {100 * sd:4.1f} | {100 * k:5.1f} ± {100 * ksd:4.1f} | "
                  f"{n:4d}")
        px = baselines[PIXELS]["digits"]["digits"]
        print(f"{'raw pixels 8x8':{width}s} | {100 * px['mAP']:13.1f} | {100 * px['rank1']:13.1f} |    -")
        if "triplet" in names and len(names) > 1:
            print("\nAgainst triplet on the digits: mAP difference in points over the seeds")
            print("\n".join(paired_table(records, names, "triplet", ["digits"], "mAP")))
    if any(r["reused"] for rs in results.values() for r in rs):
        print("Some runs were reused from earlier invocations: their speeds were measured then "
              "(--fresh redoes them).")
    print(f"\nWall time of this invocation: {time.perf_counter() - started:.0f} s")
    if failures:
        print(f"\n{len(failures)} run(s) failed:")
        for failure in failures:
            print("  " + failure.splitlines()[0])
        sys.exit(1)


if __name__ == "__main__":
    main()
