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
