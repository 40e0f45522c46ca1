"""train.py end to end on tiny data: files, logs, refusal, validation, resume, transfer, signals."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import REPO, TINY, train
from trinet.cli.train import main
from trinet.rundir import checkpoints


def log_losses(root):
    lines = [line for line in open(os.path.join(root, "train.log")) if "iter:" in line]
    return [float(line.split("loss min|avg|max: ")[1].split("|")[1]) for line in lines]


def copy_of(finished, tmp_path, rewind=False):
    """A copy of the finished run; with `rewind`, as if it had stopped at iteration 2."""
    root = tmp_path / "exp"
    shutil.copytree(finished, root)
    if rewind:
        os.remove(root / "checkpoint-4.h5")
        os.remove(root / "model.keras")
    return root


def test_fresh_run_writes_the_experiment_root(finished):
    root = finished
    names = set(os.listdir(root))
    assert {"args.json", "train.log", "model.keras", "checkpoint-0.h5", "checkpoint-2.h5",
            "checkpoint-4.h5"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    args = json.load(open(root / "args.json"))
    assert args["model_name"] == "lunet" and args["seed"] == 4 and args["margin"] == "soft"
    assert args["train_iterations"] == 4 and "resume" not in args and "experiment_root" not in args
    log = open(root / "train.log").read()
    assert log.count("iter:") == 4 and "batch-p@2:" in log and "ETA:" in log and "lr: 0.0003" in log
    assert "Training finished after 4 iterations" in log
    assert checkpoints.read_info(str(root / "checkpoint-4.h5"))[0] == 4


def test_loss_falls(tmp_path, image_set):
    root = tmp_path / "exp"
    assert train(root, image_set, "--train_iterations", "60", "--checkpoint_frequency", "0",
                 "--learning_rate", "1e-3", "--histogram_frequency", "0") == 0
    losses = log_losses(root)
    assert len(losses) == 60
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])


def test_non_empty_root_is_refused_without_resume(tmp_path, image_set, capsys):
    root = tmp_path / "exp"
    root.mkdir()
    (root / "something").write_text("x")
    assert train(root, image_set) == 2
    err = capsys.readouterr().err
    assert f"The experiment root {root} already exists and is not empty" in err and "--resume" in err
    assert os.listdir(root) == ["something"]


@pytest.mark.parametrize("flags, words", [
    (["--batch_p", "1"], "--batch_p must be at least 2"),
    (["--margin", "hard"], "expected a number >= 0, 'soft' or 'none', got 'hard'"),
    (["--margin", "-0.5"], "expected a number >= 0"),
    (["--crop_augment", "--pre_crop_height", "20"],
     "needs a pre-crop size (20x18) at least the net input size"),
    (["--model_name", "vgg"], "invalid choice: 'vgg'"),
    (["--batch_k", "0"], "expected a positive integer, got '0'"),
    (["--decay_start_iteration", "-3"], "--decay_start_iteration must be -1"),
])
def test_bad_flags_are_rejected_at_parse_time(tmp_path, image_set, capsys, flags, words):
    with pytest.raises(SystemExit) as e:
        train(tmp_path / "exp", image_set, *flags)
    assert e.value.code == 2 and words in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()


def test_train_set_is_required(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--experiment_root", str(tmp_path / "e")])
    assert "--train_set is required" in capsys.readouterr().err


def test_batch_p_larger_than_identities(tmp_path, image_set, capsys):
    assert train(tmp_path / "exp", image_set, "--batch_p", "7") == 2
    assert "--batch_p 7 is larger than the number of identities" in capsys.readouterr().err


def test_resume_of_a_finished_run_and_bad_args_json(finished, tmp_path, capsys):
    root = copy_of(finished, tmp_path)
    assert main(["--experiment_root", str(root), "--resume"]) == 0
    assert "Training already finished (4 of 4 iterations)" in open(root / "train.log").read()
    (root / "args.json").write_text('{"model_name": "lunet",')
    assert main(["--experiment_root", str(root), "--resume"]) == 2
    assert "args.json is damaged: Expecting" in capsys.readouterr().err
    os.remove(root / "args.json")
    assert main(["--experiment_root", str(root), "--resume"]) == 2
    assert "args.json not found" in capsys.readouterr().err


def test_resume_warns_about_differing_flags_and_keeps_the_saved_ones(finished, tmp_path, caplog):
    root = copy_of(finished, tmp_path, rewind=True)
    assert main(["--experiment_root", str(root), "--resume", "--batch_p", "2", "--train_iterations",
                 "4"]) == 0
    assert "--batch_p 2 differs from the resumed run's 3; using the saved value" in caplog.text
    assert "--train_iterations" not in caplog.text  # same value as saved: no warning
    assert "Restored checkpoint-2.h5: iteration 2, next batch 2" in caplog.text
    assert os.path.isfile(root / "model.keras") and os.path.isfile(root / "checkpoint-4.h5")
    # the detailed logs of the resumed iterations equal those of the uninterrupted run
    np.testing.assert_array_equal(np.load(root / "detailed_losses.npy"),
                                  np.load(finished / "detailed_losses.npy"))


def test_moved_experiment_root_keeps_working(finished, tmp_path):
    moved = tmp_path / "moved"
    os.rename(copy_of(finished, tmp_path, rewind=True), moved)
    assert main(["--experiment_root", str(moved), "--resume"]) == 0
    assert os.path.isfile(moved / "checkpoint-4.h5") and not (tmp_path / "exp").exists()


def test_initial_checkpoint_from_another_experiment(finished, tmp_path, image_set, caplog):
    target = tmp_path / "target"
    assert train(target, image_set, "--train_iterations", "1", "--initial_checkpoint", str(finished),
                 "--head_name", "direct") == 0
    assert "Initialised the backbone from" in caplog.text
    with h5py.File(finished / "checkpoint-4.h5") as s, h5py.File(target / "checkpoint-0.h5") as t:
        src = {s["model"][k].attrs["path"]: s["model"][k][()] for k in s["model"]}
        tgt = {t["model"][k].attrs["path"]: t["model"][k][()] for k in t["model"]}
    np.testing.assert_array_equal(src["lunet_stem_conv/kernel"], tgt["lunet_stem_conv/kernel"])
    assert src["head_emb/kernel"].shape != tgt["head_emb/kernel"].shape  # fc1024 vs direct: fresh head


def test_initial_checkpoint_errors(tmp_path, image_set, capsys):
    assert train(tmp_path / "a", image_set, "--initial_checkpoint", str(tmp_path / "nothing")) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert train(tmp_path / "b", image_set, "--initial_checkpoint", "imagenet") == 2
    assert "backbone 'lunet' has no ImageNet weights" in capsys.readouterr().err


def test_detailed_logs(finished):
    emb = np.load(finished / "detailed_embeddings.npy")
    losses = np.load(finished / "detailed_losses.npy")
    fids = np.load(finished / "detailed_fids.npy")
    assert emb.shape == (4, 9, 8) and losses.shape == (4, 9) and fids.shape == (4, 9)
    assert np.all(np.isfinite(emb)) and np.all(losses > 0)
    assert all(f.decode().startswith("images/") for f in fids.ravel())
    np.testing.assert_allclose(losses.mean(axis=1), log_losses(finished), atol=1e-3)


def _run(root, image_set, *extra):
    csv, images = image_set
    cmd = [sys.executable, os.path.join(REPO, "train.py"), "--experiment_root", str(root), "--train_set", csv,
           "--image_root", images, *TINY, "--train_iterations", "14", "--checkpoint_frequency", "5",
           "--detailed_logs", *extra]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _wait_for(root, text, process, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        log = os.path.join(root, "train.log")
        if os.path.exists(log) and text in open(log).read():
            return
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.05)
    raise AssertionError(f"{text!r} did not appear")


@pytest.mark.slow
def test_sigint_then_resume_reproduces_the_uninterrupted_run(tmp_path, image_set):
    """Ctrl+C finishes the step and saves; --resume then reproduces the uninterrupted run exactly.
    (SIGTERM and SIGKILL are covered by the fault-injection tests.)"""
    signum = signal.SIGINT
    reference = tmp_path / "reference"
    csv, images = image_set
    assert main(["--experiment_root", str(reference), "--train_set", csv, "--image_root", images, *TINY,
                 "--train_iterations", "14", "--checkpoint_frequency", "5", "--detailed_logs"]) == 0
    root = tmp_path / "interrupted"
    process = _run(root, image_set)
    _wait_for(root, "iter:      7", process)
    process.send_signal(signum)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 0, output
    log = open(root / "train.log").read()
    assert f"Received {signal.Signals(signum).name}" in log and "--resume" in log
    stopped = max(s for s, _ in checkpoints.list_checkpoints(str(root)))
    assert 7 <= stopped < 14 and not (root / "model.keras").exists()
    resumed = subprocess.run([sys.executable, os.path.join(REPO, "train.py"), "--experiment_root", str(root),
                              "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    np.testing.assert_array_equal(np.load(root / "detailed_losses.npy"),
                                  np.load(reference / "detailed_losses.npy"))
    with h5py.File(root / "checkpoint-14.h5") as a, h5py.File(reference / "checkpoint-14.h5") as b:
        for key in b["model"]:
            np.testing.assert_array_equal(a["model"][key][()], b["model"][key][()])


def test_offline_imagenet_fails_before_anything_is_written(tmp_path, image_set, capsys, monkeypatch):
    import keras
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(keras.utils, "get_file",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("Name or service not known")))
    root = tmp_path / "exp"
    assert train(root, image_set, "--model_name", "mobilenet_v2", "--initial_checkpoint", "imagenet") == 2
    err = capsys.readouterr().err
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5" in err
    assert "Name or service not known" in err and not root.exists()


def test_resume_before_first_checkpoint_applies_initial_weights(finished, tmp_path, image_set, caplog):
    root = tmp_path / "exp"
    assert train(root, image_set, "--train_iterations", "1", "--initial_checkpoint", str(finished)) == 0
    for name in os.listdir(root):  # as if killed right after args.json was written
        if name != "args.json":
            os.remove(root / name)
    caplog.clear()
    assert main(["--experiment_root", str(root), "--resume"]) == 0
    assert "No checkpoint in" in caplog.text and "Initialised the backbone and the head from" in caplog.text


def test_pk_camera_sampler_reads_the_camera_column(tmp_path, image_set, capsys):
    """--sampler pk_camera trains on a CSV with a camera column (the batches spread over the cameras), and
    a CSV without one is refused before anything is trained."""
    csv, images = image_set
    assert train(tmp_path / "plain", image_set, "--sampler", "pk_camera", "--train_iterations", "1") == 2
    assert "--sampler pk_camera draws each identity's images across its cameras, but the training CSV has " \
           "no camera column" in capsys.readouterr().err
    rows = [line.split(",") for line in open(csv).read().split()]
    with_cameras = tmp_path / "cameras.csv"
    with_cameras.write_text("pid,path,camera\n" + "".join(f"{pid},{path},{i % 2}\n"
                                                          for i, (pid, path) in enumerate(rows)))
    exp = tmp_path / "exp"
    assert main(["--experiment_root", str(exp), "--train_set", str(with_cameras), "--image_root", images,
                 *TINY, "--sampler", "pk_camera", "--train_iterations", "2",
                 "--checkpoint_frequency", "2"]) == 0
    assert json.load(open(exp / "args.json"))["sampler"] == "pk_camera"
    assert (exp / "model.keras").is_file()
