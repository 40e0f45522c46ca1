"""Training-step throughput of the recipes, on the same in-memory batch, against today's triplet-only step.

Each variant builds its model, optimizer and objectives through `trinet.training.trainer.Trainer` (what
train.py runs) and times its compiled step on one fixed batch, so that only the step differs (the
input pipeline, where random erasing and pad-and-crop run, is measured by bench_train_pipeline.py).
The variants are measured in turns, `--repeats` times, and medians are reported with the ratio to
the triplet-only step of the same run, as trinet computed it before the engine (Keras' unfused batch
norm), and to today's triplet-only step:

    triplet, keras BN  the paper's objective and head (fc1024), what train.py did before the engine
    triplet            the same with today's default --batch_norm fused
    +id +bnneck        + identification loss (label smoothing) on a BNNeck head, cosine test metric
    recipe, stride 2   + warm-up, centre loss, margin 0.3: the whole recipe's step at the same
                       feature-map size (the engine's own cost)
    recipe, stride 1   + last stride 1: the Bag of Tricks as published (a 4x larger last feature map)

    python benchmarks/bench_step.py                                    # LuNet at the demo's 64x32
    python benchmarks/bench_step.py --model_name resnet50 --net_input 256x128 --batch_p 18 --steps 3
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import fixed_batch, peak_rss_mb, step_arguments, trainer_settings  # noqa: E402

RECIPE = dict(id_loss_weight=1.0, label_smoothing=0.1, head_name="bnneck", test_feature="after",
              test_metric="cosine")
BEFORE, TODAY = "triplet, keras BN", "triplet"
VARIANTS = {
    BEFORE: {"batch_norm": "keras"},
    TODAY: {},
    "+id +bnneck": RECIPE,
    "recipe, stride 2": {**RECIPE, "warmup_iterations": 10, "center_loss_weight": 0.0005, "margin": 0.3},
    "recipe, stride 1": {**RECIPE, "warmup_iterations": 10, "center_loss_weight": 0.0005, "margin": 0.3,
                         "last_stride": 1},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    step_arguments(p, steps=20, warmup=3, repeats=5)
    p.add_argument("--identities", type=int, default=100, help="classes of the classifier")
    args = p.parse_args()

    import numpy as np
    import tensorflow as tf

    from trinet.training.trainer import Trainer

    batch = args.batch_p * args.batch_k
    images, labels = fixed_batch(args.batch_p, args.batch_k, args.net_input, args.identities)
    steps = {}
    for name, changes in VARIANTS.items():
        settings = trainer_settings(args, **changes)
        steps[name] = Trainer(settings, args.identities).step(0)
        for _ in range(args.warmup):
            steps[name](images, labels)["loss"].numpy()

    def rate(step) -> float:
        start = time.perf_counter()
        for _ in range(args.steps):
            step(images, labels)["loss"].numpy()
        return args.steps * batch / (time.perf_counter() - start)

    print(f"{args.model_name}, batch {args.batch_p}x{args.batch_k}={batch} at {args.net_input[0]}x"
          f"{args.net_input[1]}, {args.identities} classes, {os.cpu_count()} CPUs, "
          f"TensorFlow {tf.__version__}")
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, step in steps.items():
            rates[name].append(rate(step))
    before, today = float(np.median(rates[BEFORE])), float(np.median(rates[TODAY]))
    print(f"{'variant':<18} {'images/s':>9} {'/before':>7} {'/today':>7}  runs")
    for name, values in rates.items():
        median = float(np.median(values))
        print(f"{name:<18} {median:9.1f} {median / before:7.3f} {median / today:7.3f}  "
              f"{', '.join(f'{v:.0f}' for v in values)}")
    print("/before, /today: images/s over the triplet-only step's with Keras' batch norm (trinet before the "
          "engine) and with the fused one (today's default); the bound of the recipe: >= 0.90")
    print(f"peak memory: {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
