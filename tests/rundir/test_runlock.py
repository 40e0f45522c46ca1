"""runlock: one writer per experiment root, with real second processes as the other owners."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO
from trinet.core.errors import TrinetError
from trinet.rundir.runlock import LOCK_FILE, ExperimentLock, read_owner

HOLD = """
import sys, time
from trinet.rundir.runlock import ExperimentLock
with ExperimentLock(sys.argv[1], "train.py --resume"):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def python(code, *args, **kwargs):
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": REPO},
                            **kwargs)


@pytest.fixture
def holder(tmp_path):
    """A second process that holds the lock of `tmp_path` until it is killed."""
    process = python(HOLD, tmp_path, 60)
    assert process.stdout.readline() == "locked\n", process.stderr.read()
    yield process
    process.kill()
    process.wait()


def write_lock(root, **owner):
    owner = {"host": socket.gethostname(), "since": "2026-01-02 03:04:05 UTC", "command": "train.py", **owner}
    (root / LOCK_FILE).write_text(json.dumps(owner))


def test_the_lock_records_its_owner_and_is_released(tmp_path):
    with ExperimentLock(str(tmp_path), "train.py") as lock:
        owner = read_owner(str(tmp_path))
        assert (owner["pid"], owner["host"]) == (os.getpid(), socket.gethostname())
        assert owner["command"] == "train.py"
        assert lock.path == str(tmp_path / LOCK_FILE)
    assert not (tmp_path / LOCK_FILE).exists()
    with pytest.raises(ZeroDivisionError):
        with ExperimentLock(str(tmp_path)):
            1 / 0
    assert os.listdir(tmp_path) == []


def test_a_live_owner_is_named_and_its_lock_kept(tmp_path, holder):
    with pytest.raises(TrinetError) as info:
        with ExperimentLock(str(tmp_path)):
            pass
    message = str(info.value)
    assert f"{tmp_path} is in use by train.py --resume (pid {holder.pid} on host {socket.gethostname()}, " \
           "since 20" in message
    assert f"kill {holder.pid}" in message and str(tmp_path / LOCK_FILE) in message
    assert read_owner(str(tmp_path))["pid"] == holder.pid


def test_the_lock_of_a_killed_owner_is_broken(tmp_path, holder, caplog):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert read_owner(str(tmp_path))["pid"] == holder.pid  # a kill leaves the lock behind
    with caplog.at_level(logging.INFO, logger="trinet"):
        with ExperimentLock(str(tmp_path)):
            assert read_owner(str(tmp_path))["pid"] == os.getpid()
    assert f"Removed the lock of train.py --resume (pid {holder.pid}" in caplog.text


def test_a_dead_pid_and_a_reused_pid_count_as_gone(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    write_lock(tmp_path, pid=dead.pid)
    with ExperimentLock(str(tmp_path)):
        assert read_owner(str(tmp_path))["pid"] == os.getpid()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        write_lock(tmp_path, pid=sleeper.pid, process_start="1")  # the pid now names a later process
        with ExperimentLock(str(tmp_path)):
            pass
        write_lock(tmp_path, pid=sleeper.pid)  # no start time recorded: the live pid keeps the lock
        with pytest.raises(TrinetError, match=f"pid {sleeper.pid} on host"):
            ExperimentLock(str(tmp_path)).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_lock_of_another_host_is_never_broken(tmp_path):
    write_lock(tmp_path, pid=1, host="gpu-node-7")
    with pytest.raises(TrinetError) as info:
        ExperimentLock(str(tmp_path)).acquire()
    message = str(info.value)
    assert "pid 1 on host gpu-node-7, since 2026-01-02 03:04:05 UTC" in message
    assert "If it has ended, delete that file and start again" in message and LOCK_FILE in message
    assert read_owner(str(tmp_path))["host"] == "gpu-node-7"


def test_a_damaged_lock_file_is_named(tmp_path):
    (tmp_path / LOCK_FILE).write_text("garbage")
    old = time.time() - 60
    os.utime(tmp_path / LOCK_FILE, (old, old))
    with pytest.raises(TrinetError, match="is damaged .* If no run uses .* delete that file"):
        ExperimentLock(str(tmp_path)).acquire()


def test_release_leaves_a_lock_that_another_run_took_over(tmp_path):
    lock = ExperimentLock(str(tmp_path))
    lock.acquire()
    write_lock(tmp_path, pid=12345678)
    lock.release()
    assert read_owner(str(tmp_path))["pid"] == 12345678


def test_racing_runs_on_a_stale_lock_get_one_winner(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    write_lock(tmp_path, pid=dead.pid)
    race = """
import sys, time
from trinet.core.errors import TrinetError
from trinet.rundir.runlock import ExperimentLock
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
try:
    with ExperimentLock(sys.argv[1]):
        print("won", flush=True)
        time.sleep(1.5)
except TrinetError:
    print("refused", flush=True)
"""
    start = time.time() + 1.5  # all four start together, after their imports
    runs = [python(race, tmp_path, start) for _ in range(4)]
    outputs = sorted(run.communicate(timeout=60)[0].strip() for run in runs)
    assert outputs == ["refused", "refused", "refused", "won"], [run.stderr for run in runs]
    assert not (tmp_path / LOCK_FILE).exists()
