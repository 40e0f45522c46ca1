"""Shared test fixtures: small generated image datasets (the tests never touch the network)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported anywhere

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_image_set(root: str, identities: int = 6, per_identity: int = 5, size=(32, 16), seed: int = 0,
                    csv_name: str = "train.csv") -> str:
    """Write `identities` x `per_identity` JPEGs whose identity is a distinct colour (plus noise) and
    a CSV of them; return the CSV path. Paths in the CSV are relative to `root`."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    rows = []
    for pid in range(identities):
        colour = rng.integers(0, 256, 3)
        for j in range(per_identity):
            image = np.clip(colour + rng.normal(0, 25, (*size, 3)), 0, 255).astype(np.uint8)
            rel = f"images/{pid:04d}_{j:02d}.jpg"
            cv2.imwrite(os.path.join(root, rel), image)
            rows.append(f"{pid:04d},{rel}")
    path = os.path.join(root, csv_name)
    with open(path, "w") as f:
        f.write("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="session")
def image_set(tmp_path_factory):
    """`(csv path, image root)` of a small colour-coded dataset shared by the whole session."""
    root = str(tmp_path_factory.mktemp("image_set"))
    return write_image_set(root), root
