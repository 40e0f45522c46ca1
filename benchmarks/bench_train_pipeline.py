"""Training throughput: the real tf.data pipeline vs the same model fed from in-memory tensors.

Both runs use the same compiled training step; the only difference is where the batches come from:
(a) `trinet.pipeline.dataset.training_dataset` reading, decoding, resizing, flipping and cropping JPEGs in
parallel, (b) one pre-decoded batch held in memory. The ratio (a)/(b) shows whether the input pipeline
holds the model back (target: >= 0.95).

    python benchmarks/bench_train_pipeline.py                       # LuNet, demo-sized input
    python benchmarks/bench_train_pipeline.py --model_name resnet50 --batch_p 18 --steps 6 \
        --net_input 256x128 --pre_crop 288x144                     # the paper's setting
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import peak_rss_mb, write_jpegs  # noqa: E402
from trinet.console.argtypes import image_size  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_name", default="lunet")
    p.add_argument("--head_name", default="fc1024")
    p.add_argument("--batch_p", type=int, default=18)
    p.add_argument("--batch_k", type=int, default=4)
    p.add_argument("--net_input", type=image_size, default=(128, 64))
    p.add_argument("--pre_crop", type=image_size, default=(144, 72))
    p.add_argument("--steps", type=int, default=30, help="timed steps per run (after warm-up)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3,
                   help="alternate the two measurements this many times; medians are reported")
    args = p.parse_args()

    import numpy as np
    import tensorflow as tf

    from trinet.pipeline.dataset import training_dataset
    from trinet.pipeline.sampling import PKSampler
    from trinet.config.settings import TrainSettings
    from trinet.training.trainer import Trainer

    folder = tempfile.mkdtemp(prefix="bench_train_")
    paths, pids = write_jpegs(folder, identities=max(2 * args.batch_p, 60), per_identity=8)
    sampler = PKSampler(pids, args.batch_p, args.batch_k, seed=0)
    settings = TrainSettings(model_name=args.model_name, head_name=args.head_name, batch_p=args.batch_p,
                             batch_k=args.batch_k, seed=0)
    step = Trainer(settings, len(sampler.unique_pids)).step(0)
    dataset = training_dataset(paths, sampler, 0, None, net_size=args.net_input, pre_crop_size=args.pre_crop,
                               flip=True, crop=True, threads=args.threads)
    iterator = iter(dataset)
    _, images, labels = next(iterator)
    memory = (tf.constant(images.numpy()), tf.constant(labels.numpy()))
    batch = sampler.batch_size

    def timed(get_batch) -> float:
        for _ in range(args.warmup):
            images, labels = get_batch()
            step(images, labels)["loss"].numpy()
        start = time.perf_counter()
        for _ in range(args.steps):
            images, labels = get_batch()
            step(images, labels)["loss"].numpy()
        return args.steps * batch / (time.perf_counter() - start)

    def from_pipeline():
        _, images, labels = next(iterator)
        return images, labels

    print(f"{args.model_name} + {args.head_name}, batch {args.batch_p}x{args.batch_k}={batch}, input "
          f"{args.net_input[0]}x{args.net_input[1]} cropped from {args.pre_crop[0]}x{args.pre_crop[1]}, "
          f"flip + crop, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}")
    pipeline_rates, memory_rates = [], []
    for _ in range(args.repeats):
        memory_rates.append(timed(lambda: memory))
        pipeline_rates.append(timed(from_pipeline))
    pipe, mem = float(np.median(pipeline_rates)), float(np.median(memory_rates))
    print(f"in-memory tensors : {mem:8.1f} images/s  (runs: {', '.join(f'{r:.1f}' for r in memory_rates)})")
    runs = ", ".join(f"{r:.1f}" for r in pipeline_rates)
    print(f"tf.data pipeline  : {pipe:8.1f} images/s  (runs: {runs})")
    print(f"ratio pipeline / in-memory: {pipe / mem:.3f}  (target >= 0.95)")
    print(f"peak memory: {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
