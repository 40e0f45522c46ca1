"""benchmarks/bench_tracklets.py on a small generated set: pooled tracklets beat single frames, and the
experiments' video recipes print their header when called without arguments."""

import json
import os
import subprocess
import sys

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import bench_tracklets  # noqa: E402


def test_pooling_beats_single_frames_on_generated_tracklets(tmp_path):
    out = tmp_path / "r.json"
    assert bench_tracklets.main(["--tracklets", "300", "--max_frames", "40", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    results = report["results"]
    assert report["frames"] > 300 and set(results) == {"single", "mean", "max"}
    assert results["mean"]["mAP"] > results["single"]["mAP"] + 0.1
    assert results["max"]["mAP"] > results["single"]["mAP"]


def test_video_recipes_print_their_header_without_arguments():
    for script in ("mars_train.sh", "ilidsvid_train.sh"):
        done = subprocess.run(["bash", os.path.join(REPO, "experiments", script)], capture_output=True,
                              text=True)
        assert done.returncode == 2 and "# Expect:" in done.stderr and "set -euo" not in done.stderr


def test_demo_benchmark_pools_the_demo_tracklets(tmp_path):
    import h5py
    import numpy as np

    import bench_demo_tracklets
    from trinet.data.datasets import read_csv
    from trinet.demo import generate

    demo = generate(str(tmp_path / "demo"), seed=1, train_ids=2, test_ids=4, images_per_camera=3, junk=0,
                    distractors=2, height=64, width=32, tracklets=True, quiet=True)
    frames = read_csv(demo.test_csv)
    emb = np.random.default_rng(0).standard_normal((len(frames), 5)).astype(np.float32)
    bench_demo_tracklets.tracklet_file(demo.test_csv, emb, "max", str(tmp_path / "t.h5"))
    with h5py.File(tmp_path / "t.h5") as f:
        names = [n.decode() for n in f["tracklets"][()]]
        pooled, counts = f["emb"][()], f["frame_counts"][()]
    for name, row, count in zip(names, pooled, counts):
        own = frames.tracklets == name
        assert own.sum() == count and np.allclose(row, emb[own].max(axis=0))
    assert sorted(counts.tolist()).count(3) == len(counts) - 2  # the walks; the 2 distractors are single
    out = tmp_path / "r.json"
    assert bench_demo_tracklets.main(["--test_ids", "4", "--frames", "3", "--json", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert results["single frames"]["queries"] == 3 * results["mean-pooled tracklets"]["queries"]
