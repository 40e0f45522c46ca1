"""Training images/s in float32, bfloat16, with XLA, and bfloat16 + XLA, side by side in one run.

Each variant builds its step through `trinet.training.trainer.Trainer` (what train.py runs; the paper's
triplet recipe on the chosen backbone, fused batch norm) and times it on one fixed P x K batch; the variants
are measured in turns, `--repeats` times, and the medians are printed with the ratio to float32:

    float32          the default
    bfloat16         --mixed_precision bfloat16 (oneDNN uses AVX512-BF16 / AMX where the CPU has them)
    XLA              --jit_compile
    bfloat16 + XLA   both

    python benchmarks/bench_precision.py                                          # LuNet at 64x32
    python benchmarks/bench_precision.py --model_name resnet50 --net_input 256x128 --batch_p 8 --steps 2
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import fixed_batch, peak_rss_mb, step_arguments, trainer_settings  # noqa: E402

VARIANTS = {
    "float32": {},
    "bfloat16": {"mixed_precision": "bfloat16"},
    "XLA": {"jit_compile": True},
    "bfloat16 + XLA": {"mixed_precision": "bfloat16", "jit_compile": True},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    step_arguments(p)
    args = p.parse_args()

    import numpy as np
    import tensorflow as tf

    from trinet.training.trainer import Trainer

    batch = args.batch_p * args.batch_k
    images, labels = fixed_batch(args.batch_p, args.batch_k, args.net_input)
    steps, compile_seconds = {}, {}
    for name, changes in VARIANTS.items():
        steps[name] = Trainer(trainer_settings(args, **changes), args.batch_p).step(0)
        start = time.perf_counter()
        for _ in range(args.warmup):
            steps[name](images, labels)["loss"].numpy()
        compile_seconds[name] = time.perf_counter() - start

    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step(images, labels)["loss"].numpy()
            rates[name].append(args.steps * batch / (time.perf_counter() - start))
    print(f"{args.model_name} training step, batch {args.batch_p}x{args.batch_k}={batch} at "
          f"{args.net_input[0]}x{args.net_input[1]}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}")
    base = float(np.median(rates["float32"]))
    print(f"{'variant':<16} {'images/s':>9} {'ratio':>6} {'warm-up s':>10}  runs")
    for name, values in rates.items():
        median = float(np.median(values))
        print(f"{name:<16} {median:9.1f} {median / base:6.2f} {compile_seconds[name]:10.1f}  "
              f"{', '.join(f'{v:.1f}' for v in values)}")
    print("ratio: images/s over float32's; warm-up: the first steps, tracing and (XLA) compiling included")
    print(f"peak memory: {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
