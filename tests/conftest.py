"""Shared test fixtures: small generated image datasets (the tests never touch the network)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported anywhere

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The tests' data and helper scripts (the tests themselves sit in folders named after trinet's parts).
FIXTURES = os.path.join(REPO, "tests", "fixtures")
SCRIPTS = os.path.join(REPO, "tests", "scripts")

#: How far a run that a fixture's old code resumed may be from the same run resumed here, on another build of
#: TensorFlow and CPU: training steps round differently under other oneDNN kernels (measured with TensorFlow
#: 2.21 on an AVX512/AMX CPU against the v1 fixture's build: 1.9e-5 absolute, 1.4e-4 relative after two Adam
#: steps). Within one build, resuming is exact.
ACROSS_BUILDS = dict(rtol=1e-3, atol=1e-4)


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


#: Flags of a tiny, fast training run (LuNet on 32x16 crops of 36x18 images).
TINY = ["--model_name", "lunet", "--embedding_dim", "8", "--batch_p", "3", "--batch_k", "3",
        "--net_input_height", "32", "--net_input_width", "16", "--pre_crop_height", "36",
        "--pre_crop_width", "18", "--flip_augment", "--crop_augment", "--loading_threads", "2", "--seed", "4"]


def train(root, image_set, *extra):
    """Run train.py in-process on `image_set` with the TINY flags; returns the exit status."""
    from trinet.cli.train import main
    csv, images = image_set
    return main(["--experiment_root", str(root), "--train_set", csv, "--image_root", images, *TINY, *extra])


@pytest.fixture(scope="session")
def finished(tmp_path_factory, image_set):
    """A finished 4-iteration run with checkpoints at 0, 2 and 4 and detailed logs. Do not modify it:
    copy it first."""
    root = tmp_path_factory.mktemp("finished") / "exp"
    assert train(root, image_set, "--train_iterations", "4", "--checkpoint_frequency", "2",
                 "--histogram_frequency", "2", "--detailed_logs") == 0
    return root


def assert_same_checkpoints(a_path, b_path) -> list[str]:
    """Assert that two checkpoint files hold bit-for-bit the same variables, group by group; returns the
    groups."""
    import h5py

    with h5py.File(a_path) as a, h5py.File(b_path) as b:
        assert sorted(a) == sorted(b)
        for group in a:
            assert sorted(a[group]) == sorted(b[group]), group
            for key in a[group]:
                np.testing.assert_array_equal(a[group][key][()], b[group][key][()], err_msg=f"{group}/{key}")
        return sorted(a)
