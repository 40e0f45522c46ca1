"""Fault injection: kill the commands at random moments and check that nothing is lost or corrupted."""

import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from conftest import REPO, TINY
from trinet.cli.train import main as train_main
from trinet.data.embeddings import hdf5
from trinet.rundir import checkpoints

pytestmark = pytest.mark.slow
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
FREQUENCY = 4
ITERATIONS = 40


def start(*argv):
    return subprocess.Popen([sys.executable, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True,
                            env=ENV, cwd=REPO)


def logged_iterations(root):
    path = os.path.join(root, "train.log")
    if not os.path.exists(path):
        return []
    return [int(m) for m in re.findall(r"iter:\s+(\d+),", open(path).read())]


def test_random_kills_during_training_lose_at_most_a_checkpoint_interval(tmp_path, image_set):
    csv, images = image_set
    flags = ["--train_set", csv, "--image_root", images, *TINY, "--train_iterations", str(ITERATIONS),
             "--checkpoint_frequency", str(FREQUENCY), "--detailed_logs", "--histogram_frequency", "5"]
    reference = tmp_path / "reference"
    assert train_main(["--experiment_root", str(reference), *flags]) == 0

    root = str(tmp_path / "killed")
    rng = random.Random(1234)
    plan = [signal.SIGKILL, signal.SIGKILL, signal.SIGTERM, signal.SIGKILL, signal.SIGKILL]
    command = [os.path.join(REPO, "train.py"), "--experiment_root", root, *flags]
    restored_log = []
    for attempt, signum in enumerate(plan):
        resume = [os.path.join(REPO, "train.py"), "--experiment_root", root, "--resume"]
        process = start(*(command if attempt == 0 else resume))
        seen = len(logged_iterations(root))
        deadline = time.time() + 120
        while len(logged_iterations(root)) == seen:  # wait until this run trains
            assert process.poll() is None, process.stderr.read()
            assert time.time() < deadline
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.6))  # a random moment: a step, a log line or a checkpoint write
        if process.poll() is not None:
            break  # finished before the signal
        last = logged_iterations(root)[-1]
        process.send_signal(signum)
        process.wait(timeout=120)
        if signum == signal.SIGKILL:
            assert process.returncode == -signal.SIGKILL
        else:
            assert process.returncode == 0, process.stderr.read()  # SIGTERM: finishes the step and saves
        latest = checkpoints.latest_checkpoint(root)
        step = checkpoints.read_info(latest)[0]
        assert last - step <= FREQUENCY, (last, step)  # at most --checkpoint_frequency iterations lost
        if signum == signal.SIGTERM:
            assert step >= last  # nothing lost
        restored_log.append((signal.Signals(signum).name, last, step))
    final = start(os.path.join(REPO, "train.py"), "--experiment_root", root, "--resume")
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    assert len(restored_log) >= 3, restored_log  # several interruptions really happened
    log = open(os.path.join(root, "train.log")).read()
    assert f"Training finished after {ITERATIONS} iterations" in log
    assert log.count("Restored checkpoint-") >= len(restored_log)
    assert [n for n in os.listdir(root) if ".tmp-" in n] == []  # leftovers of killed writes were removed

    with h5py.File(os.path.join(root, f"checkpoint-{ITERATIONS}.h5")) as a, \
            h5py.File(reference / f"checkpoint-{ITERATIONS}.h5") as b:
        for key in b["model"]:
            np.testing.assert_array_equal(a["model"][key][()], b["model"][key][()])
        for key in b["optimizer"]:
            np.testing.assert_array_equal(a["optimizer"][key][()], b["optimizer"][key][()])
    np.testing.assert_array_equal(np.load(os.path.join(root, "detailed_losses.npy")),
                                  np.load(reference / "detailed_losses.npy"))


WRITER = textwrap.dedent("""
    import sys, numpy as np
    sys.path.insert(0, {repo!r})
    from trinet.rundir.checkpoints import save_checkpoint

    class Var:
        def __init__(self, i, value):
            self.path, self.value = f"layer{{i}}/kernel", value
        def numpy(self):
            return self.value

    weights = [Var(i, np.full((512, 1024), i, np.float32)) for i in range(12)]  # 24 MB

    step = int(sys.argv[2])
    while True:
        save_checkpoint(sys.argv[1], step, {{"model": weights}})
        print(step, flush=True)
        step += 1
""")


def test_kills_during_checkpoint_writes_never_corrupt_the_latest(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=REPO))
    root = tmp_path / "ckpt"
    root.mkdir()
    rng = random.Random(7)
    step = 0
    for _ in range(6):
        process = subprocess.Popen([sys.executable, str(script), str(root), str(step)],
                                   stdout=subprocess.PIPE,
                                   text=True)
        process.stdout.readline()  # one complete checkpoint written by this process
        time.sleep(rng.uniform(0.0, 0.3))
        process.kill()
        process.wait()
        latest = checkpoints.latest_checkpoint(str(root))
        found, _ = checkpoints.read_info(latest)
        with h5py.File(latest) as f:
            assert all((f["model"][k][()] == i).all() for i, k in enumerate(sorted(f["model"])))
        for found_step, path in checkpoints.list_checkpoints(str(root)):
            checkpoints.read_info(path)  # every file under a final name is complete
        step = found + 1
    assert step > 6


def _kill_midway(process, folder, final_name, timeout=60):
    """SIGKILL `process` once its temporary output file appears; returns whether it was caught midway."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            return False
        if any(n.startswith(f".{final_name}.tmp-") for n in os.listdir(folder)):
            process.kill()
            process.wait()
            return True
        time.sleep(0.01)
    process.kill()
    raise AssertionError("no temporary file appeared")


def test_embed_killed_midway_leaves_no_file(tmp_path, finished, image_set):
    csv, images = image_set
    rows = open(csv).read().splitlines() * 40  # 1,200 rows
    (tmp_path / "big.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    process = start(os.path.join(REPO, "embed.py"), "--experiment_root", str(finished), "--dataset",
                    str(tmp_path / "big.csv"), "--image_root", images, "--filename", str(out / "emb.h5"),
                    "--batch_size", "8", "--flip_augment", "--crop_augment", "five", "--aggregator", "mean")
    assert _kill_midway(process, out, "emb.h5")
    assert not (out / "emb.h5").exists()


def test_evaluate_killed_at_random_moments_leaves_no_partial_file(tmp_path):
    import json
    rng = np.random.default_rng(0)
    names = [f"{p:04d}_c{c}s1_{i:06d}_00.jpg" for p in range(1, 1501) for c, i in ((1, p), (2, p + 5000))]
    (tmp_path / "set.csv").write_text("".join(f"{n[:4]},{n}\n" for n in names))
    hdf5.write_embeddings(str(tmp_path / "e.h5"), rng.normal(size=(len(names), 64)).astype(np.float32))
    out = tmp_path / "out"
    out.mkdir()
    argv = [os.path.join(REPO, "evaluate.py"), "--excluder", "market1501", "--query_dataset",
            str(tmp_path / "set.csv"), "--query_embeddings", str(tmp_path / "e.h5"), "--gallery_dataset",
            str(tmp_path / "set.csv"), "--gallery_embeddings", str(tmp_path / "e.h5"), "--rerank",
            "--filename", str(out / "r.json"), "--plot", str(out / "cmc.png")]
    began = time.perf_counter()
    assert start(*argv).wait() == 0
    duration = time.perf_counter() - began
    assert sorted(os.listdir(out)) == ["cmc.png", "r.json"]
    complete_json, complete_png = (out / "r.json").read_bytes(), (out / "cmc.png").read_bytes()
    moments = random.Random(3)
    outcomes = set()
    for _ in range(5):
        for name in os.listdir(out):
            os.remove(out / name)
        process = start(*argv)
        time.sleep(moments.uniform(0.3, 1.0) * duration)
        process.kill()
        process.wait()
        final = sorted(n for n in os.listdir(out) if not n.startswith("."))
        outcomes.add(tuple(final))
        if "r.json" in final:  # complete, or absent: never partial
            assert json.load(open(out / "r.json"))["num_queries"] == len(names)
            assert (out / "r.json").read_bytes() == complete_json
        if "cmc.png" in final:
            assert (out / "cmc.png").read_bytes()[:8] == complete_png[:8] and \
                len((out / "cmc.png").read_bytes()) == len(complete_png)
    assert () in outcomes  # at least one kill happened before the results were written
