"""Distillation (--teacher): the KL and distance-matching terms in closed form, a student that learns from a
teacher and resumes bit for bit, and the errors."""

import math
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_same_checkpoints, train, write_image_set
from trinet.config.settings import TrainSettings
from trinet.training.distillation import distance_matching, kl_divergence


def test_kl_divergence_on_known_distributions():
    teacher = tf.constant([[0.0, math.log(3.0)], [1.0, 1.0]])  # softmax: (1/4, 3/4) and (1/2, 1/2)
    student = tf.constant([[0.0, 0.0], [1.0, 1.0]])  # (1/2, 1/2) twice
    kl = kl_divergence(student, teacher, 1.0).numpy()
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    np.testing.assert_allclose(kl, [expected, 0.0], atol=1e-6)
    # temperature 2: the logits halved (softmax (1/(1+sqrt 3), sqrt 3/(1+sqrt 3))), the KL times 4
    p = np.array([1.0, math.sqrt(3.0)]) / (1.0 + math.sqrt(3.0))
    expected_t2 = 4.0 * float(np.sum(p * np.log(p / 0.5)))
    np.testing.assert_allclose(kl_divergence(student, teacher, 2.0).numpy()[0], expected_t2, atol=1e-6)


def test_distance_matching_by_hand():
    student = tf.constant([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]])
    # each matrix is divided by its mean off-diagonal distance: a scaled copy matches exactly
    np.testing.assert_allclose(distance_matching(student, 3.0 * student).numpy(), [0.0, 0.0, 0.0], atol=1e-7)
    teacher = tf.constant([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    # student / (8/6): off-diagonal 0.75, 1.5, 0.75; teacher / 1: 1 everywhere
    # |diff| = 0.25, 0.5, 0.25 -> Huber 0.03125, 0.125, 0.03125; per anchor: mean over the 2 others
    expected = [(0.03125 + 0.125) / 2, (0.03125 + 0.03125) / 2, (0.125 + 0.03125) / 2]
    np.testing.assert_allclose(distance_matching(student, teacher).numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("changes, words", [
    ({"distill_distance_weight": 1.0}, "--distill_distance_weight needs --teacher"),
    ({"teacher": "t"}, "--teacher needs --distill_logits_weight and/or --distill_distance_weight"),
    ({"teacher": "t", "distill_logits_weight": 1.0},
     "--distill_logits_weight needs the student's classifier"),
    ({"teacher": "t", "distill_distance_weight": 1.0, "distill_temperature": 0.0},
     "--distill_temperature must be > 0"),
])
def test_distillation_settings_are_checked(changes, words):
    with pytest.raises(Exception, match=words):
        TrainSettings(train_set="x.csv", **changes).validate()


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, image_set):
    """A tiny teacher with a classifier (identification + triplet, bnneck)."""
    root = tmp_path_factory.mktemp("teacher") / "exp"
    assert train(root, image_set, "--train_iterations", "4", "--id_loss_weight", "1", "--head_name",
                 "bnneck") == 0
    return root


@pytest.mark.slow
def test_a_student_learns_from_its_teacher_and_resumes_bit_for_bit(tmp_path, image_set, teacher):
    reference = tmp_path / "reference"
    flags = ["--teacher", str(teacher), "--distill_logits_weight", "1", "--distill_distance_weight", "1",
             "--id_loss_weight", "1", "--train_iterations", "6", "--checkpoint_frequency", "3"]
    assert train(reference, image_set, *flags) == 0  # another head than its teacher's: fc1024
    log = open(reference / "train.log").read()
    assert "objective: 1 x triplet + 1 x id + 1 x distill_logits + 1 x distill_distance" in log
    assert ", distill_logits " in log and ", distill_distance " in log and "Distilling from " in log
    resumed = tmp_path / "resumed"
    shutil.copytree(reference, resumed)
    for name in ("checkpoint-6.h5", "model.keras"):
        os.remove(resumed / name)
    from trinet.cli import train as train_cli
    assert train_cli.main(["--experiment_root", str(resumed), "--resume"]) == 0
    groups = assert_same_checkpoints(reference / "checkpoint-6.h5", resumed / "checkpoint-6.h5")
    assert groups == ["model", "optimizer"]  # the teacher is not part of the student's checkpoints


@pytest.mark.slow
def test_a_teacher_of_other_identities_or_without_classifier_is_refused(tmp_path, teacher, finished, capsys):
    other = str(tmp_path / "other")
    csv = write_image_set(other, identities=4, per_identity=3, seed=3)
    assert train(tmp_path / "a", (csv, other), "--teacher", str(teacher), "--distill_logits_weight", "1",
                 "--id_loss_weight", "1") == 2
    assert "the teacher's 6 classes are not the student's 4 training identities" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    assert train(tmp_path / "b", (csv, other), "--teacher", str(finished), "--distill_logits_weight", "1",
                 "--id_loss_weight", "1") == 2
    assert "needs a teacher with a classifier" in capsys.readouterr().err


@pytest.mark.slow
def test_a_resumed_student_reloads_exactly_the_teacher_it_started_with(tmp_path, image_set, teacher,
                                                                       capsys):
    """Defect 8 of issue 26: on --resume the teacher's latest checkpoint was loaded again; a teacher that had
    trained on meanwhile silently gave the student another teacher (and broke exact resume)."""
    from trinet.rundir import checkpoints
    from trinet.cli import train as train_cli
    moving = tmp_path / "teacher"
    shutil.copytree(teacher, moving)
    flags = ["--teacher", str(moving), "--distill_distance_weight", "1", "--train_iterations", "4",
             "--checkpoint_frequency", "2"]
    reference = tmp_path / "reference"
    assert train(reference, image_set, *flags) == 0
    pin = checkpoints.read_info(str(reference / "checkpoint-2.h5"))[1]["teacher"]
    assert pin["path"] == str(moving / "checkpoint-4.h5") and len(pin["sha256"]) == 64
    resumed = tmp_path / "resumed"
    shutil.copytree(reference, resumed)
    for name in ("checkpoint-4.h5", "model.keras"):
        os.remove(resumed / name)
    # the teacher trains on: a newer checkpoint with other weights (its untrained ones)
    shutil.copy(moving / "checkpoint-0.h5", moving / "checkpoint-9.h5")
    assert train_cli.main(["--experiment_root", str(resumed), "--resume"]) == 0
    assert_same_checkpoints(reference / "checkpoint-4.h5", resumed / "checkpoint-4.h5")
    # the pinned file changed: refused, naming it, instead of training against another teacher
    os.remove(resumed / "checkpoint-4.h5")
    shutil.copy(moving / "checkpoint-0.h5", moving / "checkpoint-4.h5")
    assert train_cli.main(["--experiment_root", str(resumed), "--resume"]) == 2
    err = capsys.readouterr().err
    pinned = moving / "checkpoint-4.h5"
    assert f"this run was trained against {pinned} with SHA-256 {pin['sha256'][:16]}" in err
    assert not (resumed / "checkpoint-4.h5").exists()


def test_a_teacher_still_training_is_refused_unless_a_checkpoint_is_named(tmp_path, image_set, teacher,
                                                                          capsys):
    from trinet.rundir import checkpoints
    from trinet.rundir.runlock import ExperimentLock
    running = tmp_path / "teacher"
    shutil.copytree(teacher, running)
    flags = ["--teacher", str(running), "--distill_distance_weight", "1", "--train_iterations", "1"]
    with ExperimentLock(str(running), "train.py"):  # held by a live process: this one
        assert train(tmp_path / "a", image_set, *flags) == 2
        err = capsys.readouterr().err
        assert f"--teacher {running} is still training (train.py (pid {os.getpid()}" in err
        assert "--teacher_checkpoint (it has: checkpoint-0.h5, checkpoint-4.h5)" in err
        assert not (tmp_path / "a").exists()
        assert train(tmp_path / "b", image_set, *flags, "--teacher_checkpoint", "4") == 0
    pin = checkpoints.read_info(str(tmp_path / "b" / "checkpoint-1.h5"))[1]["teacher"]
    assert pin["path"] == str(running / "checkpoint-4.h5")
    assert train(tmp_path / "c", image_set, *flags, "--teacher_checkpoint", "7") == 2
    err = capsys.readouterr().err
    assert f"--teacher_checkpoint 7 (of --teacher {running}): Checkpoint '7' not found" in err
