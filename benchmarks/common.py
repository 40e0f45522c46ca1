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
