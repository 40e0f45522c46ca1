"""Helpers shared by the benchmarks (not part of the library)."""

from __future__ import annotations

import os
import resource
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_jpegs(root: str, identities: int, per_identity: int, size=(128, 64), seed: int = 0):
    """Market-sized JPEGs (textured noise, ~5 KB each) and their pids; returns (paths, pids)."""
    import cv2
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    paths, pids = [], []
    for pid in range(identities):
        base = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
        for j in range(per_identity):
            image = cv2.resize(base, size[::-1], interpolation=cv2.INTER_LINEAR)
            image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
            path = os.path.join(root, f"{pid:04d}_{j:02d}.jpg")
            cv2.imwrite(path, image)
            paths.append(path)
            pids.append(f"{pid:04d}")
    return paths, np.array(pids)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_arguments(parser, model_name: str = "lunet", batch_p: int = 16, batch_k: int = 4,
                   net_input=(64, 32), steps: int = 10, warmup: int = 2, repeats: int = 3) -> None:
    """The flags of the benchmarks that time training steps on one fixed batch (bench_step,
    bench_precision, bench_batchnorm)."""
    from trinet.console.argtypes import image_size

    parser.add_argument("--model_name", default=model_name)
    parser.add_argument("--batch_p", type=int, default=batch_p)
    parser.add_argument("--batch_k", type=int, default=batch_k)
    parser.add_argument("--net_input", type=image_size, default=net_input)
    parser.add_argument("--steps", type=int, default=steps,
                        help="timed steps per measurement (after warm-up)")
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--repeats", type=int, default=repeats)


def fixed_batch(batch_p: int, batch_k: int, net_input, identities: int | None = None):
    """`(images (P*K, h, w, 3) float32 in [0, 255], labels (P*K,) int32)` as constant tensors: P identities
    (drawn from `identities` classes, or 0..P-1) of K random images each."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_p * batch_k, *net_input, 3)).astype(np.float32)
    ids = rng.choice(identities, batch_p, replace=False) if identities else np.arange(batch_p)
    return tf.constant(images), tf.constant(np.repeat(ids, batch_k).astype(np.int32))


def trainer_settings(args, **changes):
    """The `TrainSettings` of a step benchmark's run: the backbone and batch of `args`, seed 0."""
    from trinet.config.settings import TrainSettings

    return TrainSettings(model_name=args.model_name, batch_p=args.batch_p, batch_k=args.batch_k,
                         net_input_height=args.net_input[0], net_input_width=args.net_input[1], seed=0,
                         **changes)
