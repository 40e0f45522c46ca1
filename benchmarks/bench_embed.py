"""Embedding throughput with test-time augmentation: the whole embed path vs the model alone.

Interleaved runs are reported (median, best and each run). (On the 2-vCPU development VM, feeding the
model from a tf.data iterator made most runs ~35% slower, with a core partly idle: the same CPU work,
no steal time, no page faults. embed.py therefore prepares views with compiled TensorFlow ops on a
producer thread instead; the training pipeline, measured the same way, does not show the effect.)

(a) `trinet.embedding.writer.embed_to_file`: read and decode JPEGs, make the 10 views (flip x five crops)
in a parallel tf.data pipeline, run the model, aggregate, write HDF5; (b) the same model on the same view
tensors already in memory. The ratio (a)/(b) (target >= 0.9) shows what the pipeline and the writing cost.

    python benchmarks/bench_embed.py                                   # LuNet at 128x64
    python benchmarks/bench_embed.py --model_name resnet50 --net_input 256x128 --pre_crop 288x144 --images 64
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
    p.add_argument("--net_input", type=image_size, default=(128, 64))
    p.add_argument("--pre_crop", type=image_size, default=(144, 72))
    p.add_argument("--images", type=int, default=600)
    p.add_argument("--batch_size", type=int, default=256, help="views per batch, as embed.py's --batch_size")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5,
                   help="alternate the two measurements this many times; medians are reported")
    args = p.parse_args()

    import numpy as np
    import tensorflow as tf

    from trinet.embedding.embedder import Embedder
    from trinet.embedding.inference import view_batches
    from trinet.embedding.writer import embed_to_file
    from trinet.models.builder import ModelSpec, build_model, embedding_model
    from trinet.pipeline.views import view_names

    folder = tempfile.mkdtemp(prefix="bench_embed_")
    paths, _ = write_jpegs(folder, identities=args.images // 10, per_identity=10)
    model = embedding_model(build_model(ModelSpec(args.model_name, "fc1024", 128)))
    embedder = Embedder(model, args.net_input, args.pre_crop)
    names = view_names(True, "five")
    per_batch = max(1, args.batch_size // len(names))
    pipeline = dict(net_size=args.net_input, pre_crop_size=args.pre_crop, flip=True, crop_mode="five",
                    threads=args.threads)
    # the same view tensors, decoded once, in memory
    batches = [b[0].numpy() for b in view_batches(paths, images_per_batch=per_batch, **pipeline)]

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    def run(images):
        return model(images, training=False)

    def model_alone() -> float:
        start = time.perf_counter()
        for b in batches:
            run(tf.constant(b)).numpy()
        return len(paths) / (time.perf_counter() - start)

    def full() -> float:
        out = os.path.join(folder, "out.h5")
        start = time.perf_counter()
        embed_to_file(embedder, paths, [os.path.basename(p) for p in paths], None, filename=out,
                      output_format="h5", aggregator="mean", batch_size=args.batch_size, threads=args.threads,
                      quiet=True, attrs={}, flip=True, crop_mode="five")
        return len(paths) / (time.perf_counter() - start)

    model_alone()  # warm-up (tracing)
    full()
    alone, whole = [], []
    for _ in range(args.repeats):
        alone.append(model_alone())
        whole.append(full())
    a, w = float(np.median(alone)), float(np.median(whole))
    print(f"{args.model_name}, {len(paths)} images x {len(names)} views at "
          f"{args.net_input[0]}x{args.net_input[1]} from {args.pre_crop[0]}x{args.pre_crop[1]}, "
          f"batches of {per_batch * len(names)} views, {os.cpu_count()} CPUs")
    print(f"model alone on in-memory views : median {a:6.1f} images/s, best {max(alone):6.1f}  "
          f"runs: {', '.join(f'{r:.0f}' for r in alone)}")
    print(f"embed.py path (decode..HDF5)   : median {w:6.1f} images/s, best {max(whole):6.1f}  "
          f"runs: {', '.join(f'{r:.0f}' for r in whole)}")
    print(f"ratio embed / model alone: median {w / a:.3f}, best {max(whole) / max(alone):.3f}  "
          "(target >= 0.9)")
    print(f"peak memory: {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
