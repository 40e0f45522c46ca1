"""--distribute multi_worker: two local worker processes (TF_CONFIG on localhost ports), the chief writing the
run; a SIGTERM on one worker stops both after the same step, and a SIGKILL leaves a run that --resume ends."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO, TINY
from trinet.rundir import checkpoints

ROOT = REPO
ITERATIONS = 30


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(tmp_path, image_set, *flags, resume=False):
    """Start the two workers of one cluster (new ports each time); returns `(processes, their log paths)`."""
    workers = [f"localhost:{port}" for port in free_ports(2)]
    exp = tmp_path / "exp"
    csv, images = image_set
    args = (["--experiment_root", str(exp), "--resume", "--distribute", "multi_worker"] if resume else
            ["--experiment_root", str(exp), "--train_set", csv, "--image_root", images, *TINY,
             "--batch_p", "4", "--distribute", "multi_worker", "--train_iterations", str(ITERATIONS), *flags])
    processes, logs = [], []
    for index in range(2):
        task = {"type": "worker", "index": index}
        env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3",
               "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": task})}
        log = tmp_path / f"worker{index}-{'resume' if resume else 'start'}-{time.monotonic_ns()}.log"
        processes.append(subprocess.Popen([sys.executable, "-m", "trinet.cli.train", *args], env=env,
                                          stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=str(tmp_path)))
        logs.append(log)
    return processes, logs


def wait_for(path, pattern, processes, timeout=240):
    """Wait until the text of `path` matches `pattern` (fails if a process ends first or time runs out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and re.search(pattern, open(path).read()):
            return
        if any(p.poll() is not None for p in processes):
            break
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} never appeared in {path}:\n" + open(path).read()[-3000:])


def finish(processes, timeout=240):
    codes = []
    for p in processes:
        try:
            codes.append(p.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append("timeout")
    return codes


@pytest.mark.slow
def test_sigterm_on_one_worker_stops_both_after_the_same_step_and_resume_ends(tmp_path, image_set):
    processes, logs = start_workers(tmp_path, image_set, "--checkpoint_frequency", "0")
    wait_for(logs[1], r"iter:\s+2,", processes)
    processes[1].send_signal(signal.SIGTERM)  # the worker that is not the chief
    assert finish(processes) == [0, 0], [open(log).read()[-2000:] for log in logs]
    stopped = [re.search(r"Stopped at iteration (\d+) of", open(log).read()) for log in logs]
    assert all(stopped), [open(log).read()[-2000:] for log in logs]
    step = int(stopped[0].group(1))
    assert int(stopped[1].group(1)) == step < ITERATIONS
    exp = tmp_path / "exp"
    assert checkpoints.latest_checkpoint(str(exp)).endswith(f"checkpoint-{step}.h5")
    assert not [n for n in os.listdir(exp) if ".tmp" in n]  # no temporaries left by either worker
    train_log = open(exp / "train.log").read()
    assert "Training on 2 workers (this one is worker 0), 2 replicas." in train_log
    assert "this one is worker 1" not in train_log  # the chief alone writes train.log

    processes, logs = start_workers(tmp_path, image_set, resume=True)
    assert finish(processes) == [0, 0], [open(log).read()[-2000:] for log in logs]
    assert checkpoints.read_info(checkpoints.latest_checkpoint(str(exp)))[0] == ITERATIONS
    assert (exp / "model.keras").exists()


@pytest.mark.slow
def test_a_worker_killed_with_sigkill_leaves_a_run_that_resume_ends(tmp_path, image_set):
    processes, logs = start_workers(tmp_path, image_set, "--checkpoint_frequency", "5")
    exp = tmp_path / "exp"
    wait_for(exp / "train.log", r"Saved checkpoint checkpoint-5\.h5", processes)
    processes[1].kill()  # SIGKILL: no chance to save or to tell the other worker
    time.sleep(3)
    if processes[0].poll() is None:  # the chief waits for its peer in a collective: stop it too
        processes[0].kill()
    finish(processes)
    assert checkpoints.read_info(checkpoints.latest_checkpoint(str(exp)))[0] < ITERATIONS

    processes, logs = start_workers(tmp_path, image_set, resume=True)
    assert finish(processes) == [0, 0], [open(log).read()[-2000:] for log in logs]
    assert checkpoints.read_info(checkpoints.latest_checkpoint(str(exp)))[0] == ITERATIONS
    assert (exp / "model.keras").exists()


def test_multi_worker_needs_a_cluster_and_a_seed(monkeypatch):
    from trinet.models.distribute import cluster
    from trinet.core.errors import TrinetError
    from trinet.config.settings import TrainSettings

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(TrinetError, match="needs the environment variable TF_CONFIG"):
        cluster()
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(TrinetError, match="TF_CONFIG is not a cluster description"):
        cluster()
    with pytest.raises(TrinetError, match="--distribute multi_worker needs --seed"):
        TrainSettings(train_set="x.csv", distribute="multi_worker").validate()
