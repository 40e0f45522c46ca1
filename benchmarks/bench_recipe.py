"""The Bag-of-Tricks recipe on the demo dataset: accuracy over seeds, and training speed per image.

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

Each run is then embedded with a single view (the image resized to 64x32, no test-time augmentation, as the
Bag of Tricks tests: the variants differ in their training augmentation, so no variant is favoured by a
test-time crop resembling its training crops) and evaluated with evaluate.py's market1501 excluder, with
the run's test metric (euclidean for ``triplet``, cosine for the BNNeck variants). mAP and rank-1 are read
from evaluate.py's ``--filename`` JSON.

Speed: train.py logs the mean wall time of its last 20 steps (the data pipeline's waiting included) as the
TensorBoard scalar ``secs_per_iter``; the runs log every 20 iterations, so the windows tile the run. A
variant's step time is the median of its windows after the first 60 iterations (tracing, warm-up of the
pipeline); the median also discounts the few windows that hold a checkpoint save or a histogram write.
images/s = batch size (64) / step time. The ratio to ``triplet`` is taken seed by seed: the variants of
one seed run one after the other, so a load that another process puts on the machine for a while hits them
alike. The whole run's mean (steps 61 to the end, checkpoint saves included, from the events' wall times)
is printed too. The issue asks the full recipe to be no more than 10% slower per image (ratio >= 0.90).

    python benchmarks/bench_recipe.py                                   # 3 variants x seeds 0 1 2
    python benchmarks/bench_recipe.py --seeds 0 --iterations 200        # a quick look
    python benchmarks/bench_recipe.py --fresh                           # retrain instead of reusing
    python benchmarks/bench_recipe.py --variants "full recipe" "full recipe, bfloat16"   # the precisions

Measured (2026-11-30, 2 shared vCPUs, load 2-5 from other work; seeds 0 1 2, 1,000 iterations): mAP / rank-1
67.7 ± 0.9 / 78.1 ± 2.3 (triplet), 71.4 ± 1.4 / 85.0 ± 2.1 (triplet+id+bnneck), 73.2 ± 3.3 / 82.9 ± 3.3 (full
recipe); the accuracy is bit-for-bit the same on a re-run. CPU time per image: full recipe 0.83 ± 0.08 of
triplet's (last stride 1 is the largest cost); the wall-time ratios swung by ±0.3 with the load.

Finished runs (``WORK/<variant>/seed<N>/result.json``, written only when train, embed and evaluate all
succeeded with the same command line) are reused; anything else in a run's folder is deleted and redone.
Expect about 3 minutes a run on 2 CPU cores (9 runs by default).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shutil
import statistics
import struct
import subprocess
import sys
import time

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
    return [("triplet", triplet, "euclidean"), ("triplet+id+bnneck", bnneck, "cosine"),
            ("full recipe", full, "cosine"), ("full recipe, bfloat16", bfloat16, "cosine"),
            ("full recipe, pcb", pcb, "euclidean"), ("full recipe, mutual", mutual, "cosine"),
            ("full recipe, local", local, "cosine")]


#: The variants run by default (``--variants`` chooses others).
DEFAULT_VARIANTS = ("triplet", "triplet+id+bnneck", "full recipe")


def slug(name: str) -> str:
    return name.replace("+", "_").replace(",", "").replace(" ", "_")


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


def one_run(name: str, flags: dict, metric: str, seed: int, data: str, folder: str, fresh: bool) -> dict:
    """Train, embed and evaluate one variant with one seed in folder (reused if finished alike)."""
    py = sys.executable
    exp = os.path.join(folder, "experiment")
    train_cmd = ([py, os.path.join(REPO, "train.py"), "--experiment_root", exp,
                  "--train_set", os.path.join(data, "demo_train.csv"), "--image_root", data]
                 + as_argv(flags) + ["--seed", str(seed)])
    result_file = os.path.join(folder, "result.json")
    if not fresh and os.path.exists(result_file):
        with open(result_file) as f:
            result = json.load(f)
        if result.get("train_command") == train_cmd[1:]:
            result["reused"] = True
            return result
        print(f"    {folder} was made with other settings: redoing it", flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    log = os.path.join(folder, "output.log")
    load = os.getloadavg()[0]
    tick = time.perf_counter()
    cpu_samples: list = []
    run_logged(train_cmd, log, f"Training {name} (seed {seed})", cpu_samples)
    train_seconds = time.perf_counter() - tick
    splits = {}
    for split in ("query", "test"):
        splits[split] = os.path.join(folder, f"{split}_embeddings.h5")
        run_logged([py, os.path.join(REPO, "embed.py"), "--experiment_root", exp,
                    "--dataset", os.path.join(data, f"demo_{split}.csv"),
                    "--filename", splits[split], "--quiet"],
                   log, f"Embedding the {split} split of {name} (seed {seed})")

    def evaluate(filename: str, *extra: str) -> dict:
        run_logged([py, os.path.join(REPO, "evaluate.py"), "--excluder", "market1501", "--metric", metric,
                    "--query_dataset", os.path.join(data, "demo_query.csv"),
                    "--query_embeddings", splits["query"],
                    "--gallery_dataset", os.path.join(data, "demo_test.csv"),
                    "--gallery_embeddings", splits["test"],
                    "--filename", os.path.join(folder, filename), "--quiet", *extra], log,
                   f"Evaluating {name} (seed {seed})")
        with open(os.path.join(folder, filename)) as f:
            return json.load(f)

    scores = evaluate("evaluation.json")
    result = {"variant": name, "seed": seed, "mAP": scores["mAP"], "rank1": scores["top-1"],
              "train_seconds": train_seconds, "load_before": load, "load_after": os.getloadavg()[0],
              "batch_size": BATCH_P * BATCH_K, "train_command": train_cmd[1:], "metric": metric}
    if "--local_branch" in flags:  # the same embeddings ranked by global + local distance (weight 1)
        local = evaluate("evaluation_local.json", "--local_distance_weight", "1")
        result.update(mAP_local=local["mAP"], rank1_local=local["top-1"])
    result.update(speed(exp, cpu_samples))
    with open(result_file, "w") as f:
        json.dump(result, f, indent=1)
    result["reused"] = False
    return result


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=os.path.join("runs", "bench_recipe"),
                   help="folder for the dataset (WORK/data) and the runs (default: runs/bench_recipe)")
    p.add_argument("--iterations", type=int, default=1000, help="training iterations of every run (>= 100)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--pad_crop", type=int, default=3, help="the full recipe's --pad_crop (default 3)")
    p.add_argument("--fresh", action="store_true", help="redo finished runs instead of reusing them")
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS),
                   choices=[name for name, _, _ in variants(1000, 3)],
                   help="the variants to run ('full recipe, bfloat16': the full recipe with "
                        "--mixed_precision bfloat16; 'full recipe, pcb': with --head_name pcb, 4 stripes and "
                        "the global branch instead of BNNeck; 'full recipe, mutual': two networks by deep "
                        "mutual learning, the first one evaluated; 'full recipe, local': with AlignedReID's "
                        "local branch, evaluated by the global and by the global + local distance)")
    args = p.parse_args()
    if args.iterations < 100:
        p.error(f"--iterations must be >= 100 (the step time leaves out the first {SKIP_ITERATIONS}). "
                f"Received: --iterations={args.iterations}")

    work = os.path.abspath(args.work)
    data = os.path.join(work, "data")
    print(f"Generating (or reusing) the demo dataset in {data}", flush=True)
    subprocess.check_call([sys.executable, "-m", "trinet.demo", "--out", data, "--quiet"], cwd=REPO)

    specs = [spec for spec in variants(args.iterations, args.pad_crop) if spec[0] in args.variants]
    results: dict[str, list[dict]] = {name: [] for name, _, _ in specs}
    failures: list[str] = []
    total, done = len(specs) * len(args.seeds), 0
    # seed-major order: the variants of one seed run back to back, so their speeds are comparable
    for seed in args.seeds:
        for name, flags, metric in specs:
            done += 1
            folder = os.path.join(work, slug(name), f"seed{seed}")
            print(f"[{done}/{total}] {name}, seed {seed} ({time.strftime('%H:%M:%S')}, load "
                  f"{os.getloadavg()[0]:.1f})", flush=True)
            try:
                r = one_run(name, flags, metric, seed, data, folder, args.fresh)
            except RuntimeError as e:
                failures.append(f"{name}, seed {seed}: {e}")
                print(f"    FAILED: {e}", flush=True)
                continue
            results[name].append(r)
            print(f"    {'reused' if r['reused'] else 'done'}: mAP {r['mAP']:.2%}, rank-1 {r['rank1']:.2%}, "
                  f"{r['batch_size'] / r['median_s_per_it']:.0f} images/s (median of {r['windows']} windows; "
                  f"training took {r['train_seconds']:.0f} s)", flush=True)

    base = {r["seed"]: r for r in results.get("triplet", [])}
    reused = any(r["reused"] for rs in results.values() for r in rs)
    print(f"\nBag of Tricks on the demo dataset: LuNet 64x32, {args.iterations} iterations of "
          f"{BATCH_P}x{BATCH_K}, seeds {' '.join(map(str, args.seeds))}; single-view embeddings, "
          "market1501 protocol")
    header = (f"{'variant':20s} | {'mAP':>15s} | {'rank-1':>15s} | {'images/s':>11s} | "
              f"{'ratio to triplet':>16s} | {'CPU ms/image':>12s} | {'CPU ratio':>15s} | runs")
    print(header)
    print("-" * len(header))
    for name, _, _ in specs:
        rs = results[name]
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
        for r in results[name]:
            print(f"  {name:20s} seed {r['seed']}: {r['batch_size'] / r['overall_s_per_it']:4.0f} images/s, "
                  f"load {r['load_before']:.1f} -> {r['load_after']:.1f}")
    if reused:
        print("Some runs were reused from earlier invocations: their speeds were measured then "
              "(--fresh redoes them).")
    if failures:
        print(f"\n{len(failures)} run(s) failed:")
        for failure in failures:
            print("  " + failure.splitlines()[0])
        sys.exit(1)


if __name__ == "__main__":
    main()
