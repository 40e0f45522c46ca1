"""The metric-learning losses on classes unseen in training: MAP@R, Recall@1 and mAP over seeds, against the
raw pixels.

    python benchmarks/bench_losses.py                          # both tasks, every loss, 3 seeds (minutes)
    python benchmarks/bench_losses.py --tasks digits --seeds 0 --losses triplet supcon   # a quick look
    python benchmarks/bench_losses.py --iterations 1000        # longer runs

Tasks (each trains on some classes and is scored on others, never seen in training):

* ``digits``: scikit-learn's 8x8 handwritten digits (``load_digits``, shipped with it), written 4x larger as
  PNG images (``bench_recipe.digits_task``): classes 4-9 train, the unseen 0-3 are query and gallery at once
  (each query ranks all the other test images: the ``diagonal`` excluder). 32x32 inputs, P = 6 classes of
  K = 10 images, no flips (``bench_recipe.task_flags``).
* ``world0``: the demo dataset of trinet (``python -m trinet.demo``, the small sizes of ``bench_recipe
  --quick``: 40 training identities), whose test identities are disjoint from its training ones: query
  against gallery under the Market-1501 protocol (other cameras only).

Variants: ``triplet`` is the demo's triplet-only training (``bench_recipe.demo_flags``: LuNet, fc1024, 128-d,
batch-hard with the soft margin, Adam 1e-3 decaying from half-way, euclidean); each loss of
``trinet.config.registries.METRIC_LOSSES`` replaces the triplet loss (``--triplet_loss_weight 0 --<loss
weight> 1``, the paper's parameters, the same P x K batches) and is tested by cosine; ``retrieval recipe`` is
what ``experiments/retrieval_recipe.sh`` passes to train.py (its dry run). ``raw pixels`` embeds each image
by its pixels (8x8 for the digits, 32x16 for the world; ``trinet.tools.baselines``), euclidean.

Scores: single-view embeddings of the final model (``trinet.Embedder``), MAP@R, Recall@1
(``trinet.evaluation.retrieval``) and mAP (``trinet.evaluation.metrics``), mean ± sample standard deviation
over the seeds. CPU time per image: the process CPU time of the whole training call (start-up and tracing
included, every thread) over the images it trained on; the machine's load is printed beside it. Runs are
in-process, one after the other; finished runs (``WORK/<task>/<variant>/seed<N>/result.json`` with the same
command line) are reused.

Measured 2026-12-03 (2 shared cores, load 5-18 from other work; 300 iterations, seeds 0 1 2; the README's
"Retrieval of unseen classes" has the tables): digits MAP@R 69.7 (raw pixels), 41.5 ± 1.6 (triplet), 24.2 to
38.9 (the seven losses alone), 70.0 ± 2.1 (retrieval recipe; mAP 81.8 ± 1.9 against the pixels' 81.0); world
0 (triplet, multi_similarity, proxy_anchor and the recipe only) MAP@R 1.2 (pixels), 47.2 ± 2.8, 43.1 ± 1.8,
51.2 ± 4.5 and 51.2 ± 2.3.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.dirname(BENCH))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import bench_recipe  # noqa: E402
from bench_recipe import Task, as_argv, demo_flags, digits_task, task_flags, world_task  # noqa: E402

REPO = os.path.dirname(BENCH)
RECIPE_SCRIPT = os.path.join(REPO, "experiments", "retrieval_recipe.sh")
RECIPE = "retrieval recipe"
PIXELS = "raw pixels"
#: What the harness sets itself, left out of the recipe script's flags.
RUN_FLAGS = ("--experiment_root", "--train_set", "--image_root", "--seed")


def recipe_flags(iterations: int) -> dict:
    """The train.py flags of experiments/retrieval_recipe.sh at this length (its dry run), minus
    `RUN_FLAGS`."""
    import subprocess

    env = {**os.environ, "RECIPE_DRY_RUN": "1", "RECIPE_PRECISION": "float32"}
    command = ["bash", RECIPE_SCRIPT, "TRAIN", "ROOT", "EXP", "--train_iterations", str(iterations)]
    argv = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout.split("\n")
    argv = [a for a in argv if a]
    flags: dict = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            flags[arg] = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else None
    return {k: v for k, v in flags.items() if k not in RUN_FLAGS}


def variants(iterations: int, losses: list[str]) -> list[tuple[str, dict, str]]:
    """`(name, train.py flags, test metric)` of each variant asked for."""
    from trinet.config.registries import metric_loss

    out = []
    base = demo_flags(iterations)
    for name in losses:
        if name == "triplet":
            out.append((name, base, "euclidean"))
        elif name == RECIPE:
            flags = recipe_flags(iterations)
            out.append((name, flags, flags.get("--test_metric") or flags.get("--metric") or "euclidean"))
        else:
            flags = {**base, "--triplet_loss_weight": "0", f"--{metric_loss(name).weight}": "1",
                     "--test_metric": "cosine"}
            out.append((name, flags, "cosine"))
    return out


def score(q_emb, g_emb, query, gallery, excluder: str, metric: str) -> dict:
    """MAP@R, Recall@1 and mAP of query against gallery embeddings under `excluder`."""
    from trinet.evaluation.excluders import get_excluder
    from trinet.evaluation.metrics import evaluate
    from trinet.evaluation.retrieval import evaluate_retrieval

    exclusion = get_excluder(excluder)(query.fids, gallery.fids)
    retrieval = evaluate_retrieval(q_emb, g_emb, query.pids, gallery.pids, exclusion, metric=metric)
    ranking = evaluate(q_emb, g_emb, query.pids, gallery.pids, exclusion, metric=metric)
    return {"map_at_r": retrieval.mean_map_at_r, "recall1": retrieval.recall_at(1), "mAP": ranking.mean_ap}


def split(task: Task):
    from trinet.data.datasets import read_csv

    query = read_csv(task.query_csv, task.root)
    gallery = query if task.gallery_csv == task.query_csv else read_csv(task.gallery_csv, task.root)
    return query, gallery


def pixel_scores(task: Task) -> dict:
    """The raw pixels' scores on the task's test split."""
    from trinet.tools.baselines import pixel_embeddings

    query, gallery = split(task)
    size = (8, 8) if task.name == "digits" else (32, 16)
    q = pixel_embeddings(query, size)
    g = q if gallery is query else pixel_embeddings(gallery, size)
    return score(q, g, query, gallery, task.excluder, "euclidean")


def one_run(name: str, flags: dict, metric: str, seed: int, task: Task, folder: str, fresh: bool) -> dict:
    """Train one variant with one seed on `task` (in this process) and score it; a finished run with the same
    command line is reused."""
    exp = os.path.join(folder, "experiment")
    argv = ["--experiment_root", exp, "--train_set", task.train_csv, "--image_root", task.root,
            *as_argv(flags), "--seed", str(seed)]
    result_file = os.path.join(folder, "result.json")
    if not fresh and os.path.exists(result_file):
        with open(result_file) as f:
            result = json.load(f)
        if result.get("argv") == argv:
            return result
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    import keras

    from trinet import Embedder
    from trinet.cli.train import main as train_main

    load = os.getloadavg()[0]
    cpu, wall = time.process_time(), time.perf_counter()
    if train_main(argv) != 0:
        raise RuntimeError(f"train.py failed for {name} on {task.name} (seed {seed})")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    images = int(flags["--train_iterations"]) * int(flags["--batch_p"]) * int(flags["--batch_k"])
    query, gallery = split(task)
    embedder = Embedder.from_experiment(exp)
    q = embedder.embed(query.paths(), batch_size=256)
    g = q if gallery is query else embedder.embed(gallery.paths(), batch_size=256)
    result = {"variant": name, "seed": seed, "task": task.name, "argv": argv, "metric": metric,
              **score(q, g, query, gallery, task.excluder, metric),
              "cpu_s_per_image": cpu / images, "wall_s": wall, "load_before": load,
              "load_after": os.getloadavg()[0]}
    keras.backend.clear_session()
    with open(result_file, "w") as f:
        json.dump(result, f, indent=1)
    return result


def mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):5.1f} ± {100 * sd:4.1f}"


def table(task: Task, results: list[dict], pixels: dict, names: list[str]) -> list[str]:
    lines = [f"\n{task.name} (unseen classes; {task.excluder} excluder): mean ± sd over seeds, %",
             f"{'variant':20s} {'MAP@R':>13s} {'Recall@1':>13s} {'mAP':>13s} {'CPU ms/image':>13s} "
             f"{'vs pixels MAP@R':>16s}"]
    lines.append(f"{PIXELS:20s} {100 * pixels['map_at_r']:13.1f} {100 * pixels['recall1']:13.1f} "
                 f"{100 * pixels['mAP']:13.1f} {'-':>13s} {'':>16s}")
    for name in names:
        runs = [r for r in results if r["variant"] == name]
        if not runs:
            continue
        cpu = statistics.mean(r["cpu_s_per_image"] for r in runs) * 1e3
        wins = sum(r["map_at_r"] > pixels["map_at_r"] for r in runs)
        lines.append(f"{name:20s} {mean_sd([r['map_at_r'] for r in runs]):>13s} "
                     f"{mean_sd([r['recall1'] for r in runs]):>13s} {mean_sd([r['mAP'] for r in runs]):>13s} "
                     f"{cpu:13.2f} {f'{wins} of {len(runs)} above':>16s}")
    return lines


def build_parser() -> argparse.ArgumentParser:
    from trinet.config.registries import METRIC_LOSSES

    choices = ["triplet", *METRIC_LOSSES, RECIPE]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--work", default=os.path.join(REPO, "runs", "bench_losses"),
                   help="folder for the datasets and the runs")
    p.add_argument("--tasks", nargs="+", choices=["digits", "world0"], default=["digits", "world0"])
    p.add_argument("--losses", nargs="+", choices=choices, default=choices, metavar="VARIANT",
                   help=f"variants to train, of {', '.join(choices)}")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--iterations", type=int, default=300, help="training iterations of every run")
    p.add_argument("--fresh", action="store_true", help="retrain instead of reusing finished runs")
    p.add_argument("--json", help="also write every run's result to this file")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    import logging

    logging.getLogger("trinet").setLevel(logging.WARNING)
    specs = variants(args.iterations, args.losses)
    print(f"{len(specs)} variants x {len(args.seeds)} seeds x {len(args.tasks)} tasks, {args.iterations} "
          f"iterations each; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    everything = []
    for task_name in args.tasks:
        task = (digits_task(args.work) if task_name == "digits" else
                world_task(args.work, 0, quick=True))
        pixels = pixel_scores(task)
        results = []
        for name, flags, metric in specs:
            flags = task_flags(flags, task)
            for seed in args.seeds:
                folder = os.path.join(args.work, task.name, bench_recipe.slug(name), f"seed{seed}")
                result = one_run(name, flags, metric, seed, task, folder, args.fresh)
                print(f"  {task.name} {name} seed {seed}: MAP@R {100 * result['map_at_r']:.1f}, Recall@1 "
                      f"{100 * result['recall1']:.1f}, mAP {100 * result['mAP']:.1f} "
                      f"({result['wall_s']:.0f} s, "
                      f"load {result['load_before']:.1f})", flush=True)
                results.append(result)
        print("\n".join(table(task, results, pixels, [s[0] for s in specs])), flush=True)
        everything.extend(results)
        everything.append({"variant": PIXELS, "task": task.name, **pixels})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(everything, f, indent=1)


if __name__ == "__main__":
    main()
