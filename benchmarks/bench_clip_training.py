"""Video re-id: training on single frames (`--sampler pk`) against training on clips (`--sampler pk_clips`,
the clip's frames mean-pooled before the losses), scored on unseen people as single frames and as mean- and
max-pooled tracklets (`bench_demo_tracklets.py`).

    python benchmarks/bench_clip_training.py --work /tmp/clips               # 2 seeds, 600 iterations
    python benchmarks/bench_clip_training.py --work /tmp/clips --seeds 1 2 3 --iterations 1000

The training data are the demo's video data (`python -m trinet.demo --tracklets`, seed 0, 100 identities,
8 frames per walk, 64x32); the test data another seed's (7), 100 unseen identities. Every variant sees the
same number of images per batch (64) and the same schedule; runs already finished under WORK are reused.
Prints each run and the mean ± sd over seeds; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

#: name -> the sampler flags (each 64 images a batch).
VARIANTS = {
    "frames P8 x K8": ["--batch_p", "8", "--batch_k", "8"],
    "clips P8 x K4 x T2": ["--batch_p", "8", "--batch_k", "4", "--sampler", "pk_clips", "--clip_length", "2"],
    "clips P8 x K2 x T4": ["--batch_p", "8", "--batch_k", "2", "--sampler", "pk_clips", "--clip_length", "4"],
}
COLUMNS = ("single frames", "mean-pooled tracklets", "max-pooled tracklets")


def train_flags(data: str, iterations: int, precision: str) -> list[str]:
    return ["--train_set", os.path.join(data, "demo_train.csv"), "--image_root", data,
            "--model_name", "lunet", "--embedding_dim", "32", "--net_input_height", "64",
            "--net_input_width", "32",
            "--pre_crop_height", "72", "--pre_crop_width", "36", "--flip_augment", "--crop_augment",
            "--train_iterations", str(iterations), "--learning_rate", "1e-3",
            "--decay_start_iteration", str(iterations // 2), "--checkpoint_frequency", str(iterations),
            "--loading_threads", "2", *(["--mixed_precision", precision] if precision != "float32" else [])]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", required=True, help="folder for the data, the runs and their scores")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="training seeds")
    p.add_argument("--iterations", type=int, default=600)
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    p.add_argument("--mixed_precision", choices=("float32", "bfloat16"), default="bfloat16")
    args = p.parse_args(argv)
    from bench_demo_tracklets import main as score
    from trinet.demo import generate

    data = os.path.join(args.work, "data")
    generate(data, seed=0, tracklets=True, images_per_camera=8, height=64, width=32, quiet=True)
    results: dict[str, list[dict]] = {}
    for variant in args.variants:
        for seed in args.seeds:
            name = f"{variant.replace(' ', '')}_s{seed}_{args.iterations}"
            root, scores = os.path.join(args.work, name), os.path.join(args.work, name + ".json")
            if not os.path.isfile(os.path.join(root, "model.keras")):
                with open(root + ".log", "w") as log:
                    subprocess.run([sys.executable, os.path.join(HERE, "..", "train.py"), "--experiment_root",
                                    root, *train_flags(data, args.iterations, args.mixed_precision),
                                    "--seed", str(seed), *VARIANTS[variant]], check=True, stdout=log,
                                   stderr=subprocess.STDOUT)
            if not os.path.isfile(scores):
                print(f"{variant}, seed {seed}:", flush=True)
                score(["--model", root, "--seed", "7", "--json", scores])
            results.setdefault(variant, []).append(json.load(open(scores))["results"])
    print(f"\nmAP / rank-1 %, mean ± sd over seeds {args.seeds}, {args.iterations} iterations")
    print(f"{'variant':22}" + "".join(f"{c:>28}" for c in COLUMNS))
    for variant, runs in results.items():
        cells = []
        for column in COLUMNS:
            m = 100 * np.array([r[column]["mAP"] for r in runs])
            r1 = 100 * np.array([r[column]["top-1"] for r in runs])
            cells.append(f"{m.mean():5.1f} ± {m.std():3.1f} / {r1.mean():5.1f} ± {r1.std():3.1f}")
        print(f"{variant:22}" + "".join(f"{c:>28}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
