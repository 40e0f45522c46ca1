"""Knowledge distillation (`--teacher`): a trained trinet model, frozen, whose outputs teach the student.

Two terms join the student's objective (`trinet.training.objectives`):
    distill_logits: the KL divergence from the teacher's to the student's class probabilities, both softened
        by the temperature T, times T^2 (Hinton et al. 2015), per sample; it needs both classifiers, over the
        same identities;
    distill_distance: the batch distance matrices matched (relational knowledge distillation, distance-wise,
        Park et al. 2019): each matrix divided by the mean of its off-diagonal entries, the Huber loss of
        their difference averaged per anchor.
The student may use another backbone than its teacher.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import keras
import numpy as np
import tensorflow as tf

from trinet.core.errors import TrinetError
from trinet.core.fileio import file_sha256
from trinet.data.datasets import read_csv
from trinet.embedding.inference import rebuild_model
from trinet.losses.pairwise import cdist
from trinet.rundir import checkpoints, experiment, runlock


@dataclasses.dataclass
class Teacher:
    """A frozen trinet model and what its outputs mean.

    Attributes:
        model: the training model (with its classifier, if it has one), frozen.
        metric: the distance its metric feature was trained with.
        num_classes: its classifier's size (0: none).
        pids: its training identities, in the order of its classifier's classes (None: unknown).
        source: the checkpoint it was loaded from (an absolute path).
        sha256: the SHA-256 of that checkpoint file.
    """

    model: keras.Model
    metric: str
    num_classes: int
    pids: np.ndarray | None
    source: str
    sha256: str = ""

    def pin(self) -> dict[str, str]:
        """What the student's checkpoints record of the teacher, for `load(pin=...)` on resume."""
        return {"path": self.source, "sha256": self.sha256}

    @classmethod
    def load(cls, root: str, checkpoint: str | None = None, *,
             pin: Mapping[str, Any] | None = None) -> "Teacher":
        """The teacher of the experiment folder `root`: exactly the checkpoint `pin` names (a resumed
        student's), else `checkpoint` (a step, name or path), else the latest one.

        Raises:
            TrinetError: `root` is not a trinet experiment; the latest checkpoint is asked for while the
                teacher's run holds its lock (it would move on under the student); the pinned checkpoint is
                gone or its checksum differs.
        """
        if not os.path.isdir(root):
            raise TrinetError(f"--teacher {root}: no such folder; expected the experiment root of a trained "
                              "trinet model")
        if pin is not None:
            path, sha256 = _pinned(root, pin)
        else:
            path = _chosen(root, checkpoint)
            sha256 = file_sha256(path)
        model, settings = rebuild_model(root, path, experiment.load_args(root))
        num_classes = int(checkpoints.read_info(path)[1].get("num_classes", 0))
        model.trainable = False
        pids = None
        if num_classes and settings.train_set and os.path.isfile(settings.train_set):
            pids = np.unique(read_csv(settings.train_set, settings.image_root).pids)
        return cls(model, settings.metric, num_classes, pids, path, sha256)

    def check_identities(self, student_pids: np.ndarray) -> None:
        """Raise TrinetError unless the teacher's classes are the student's identities, in the same order."""
        if not self.num_classes:
            raise TrinetError(f"--distill_logits_weight needs a teacher with a classifier; {self.source} has "
                              "none (it was trained without --id_loss_weight): use --distill_distance_weight")
        if self.pids is None:
            raise TrinetError(f"--distill_logits_weight: the training set of the teacher ({self.source}) is "
                              "not readable, so its classes cannot be matched to the student's identities")
        teacher, student = self.pids.astype(str), np.asarray(student_pids).astype(str)
        if len(teacher) != len(student) or not np.array_equal(teacher, student):
            raise TrinetError(f"--distill_logits_weight: the teacher's {len(teacher)} classes are not the "
                              f"student's {len(student)} training identities (the KL term compares class by "
                              "class); train both on the same identities, or use only "
                              "--distill_distance_weight")

    def outputs(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """`teacher_metric (B, D_t)` and, with a classifier, `teacher_logits (B, C)`, float32, constant."""
        out = self.model(images, training=False)
        result = {"teacher_metric": tf.stop_gradient(tf.cast(out["metric"], tf.float32))}
        if "logits" in out:
            result["teacher_logits"] = tf.stop_gradient(tf.cast(out["logits"], tf.float32))
        return result


def _chosen(root: str, checkpoint: str | None) -> str:
    """The absolute path of the teacher's checkpoint a new student starts with."""
    if checkpoint is not None:
        try:
            return os.path.abspath(checkpoints.resolve(root, checkpoint))
        except TrinetError as e:
            raise TrinetError(f"--teacher_checkpoint {checkpoint} (of --teacher {root}): {e}") from None
    owner = runlock.live_owner(root)
    if owner is not None:
        found = [os.path.basename(p) for _, p in checkpoints.list_checkpoints(root)]
        raise TrinetError(f"--teacher {root} is still training ({runlock.describe_owner(owner)} holds its "
                          "lock): its latest checkpoint would not be the one a resumed student reloads. Name "
                          "a checkpoint of it with --teacher_checkpoint (it has: "
                          f"{', '.join(found) or 'none'}), or wait until that run ends.")
    path = checkpoints.latest_checkpoint(root)
    if path is None:
        raise TrinetError(f"--teacher {root}: the folder holds no trinet checkpoint")
    return os.path.abspath(path)


def _pinned(root: str, pin: Mapping[str, Any]) -> tuple[str, str]:
    """The checkpoint a resumed student was trained against, checked against its recorded checksum; in
    `root` under the same name if the teacher's folder was moved."""
    recorded, sha256 = str(pin.get("path", "")), str(pin.get("sha256", ""))
    candidates = [recorded, os.path.join(root, os.path.basename(recorded))]
    path = next((p for p in candidates if os.path.isfile(p)), None)
    if path is None:
        raise TrinetError(f"--teacher {root}: this run was trained against the teacher's checkpoint "
                          f"{recorded}, which is gone (removed by the teacher's run, which keeps only its "
                          "newest checkpoints?). Restore that file to resume exactly; a resume against "
                          "another teacher would not be one.")
    found = file_sha256(path)
    if found != sha256:
        raise TrinetError(f"--teacher {root}: this run was trained against {path} with SHA-256 "
                          f"{sha256[:16]}..., but that file now has {found[:16]}...: it changed since. "
                          "Restore the file the student learnt from to resume exactly.")
    return os.path.abspath(path), sha256


def kl_divergence(student_logits: tf.Tensor, teacher_logits: tf.Tensor, temperature: float) -> tf.Tensor:
    """`(B,)` T^2 KL(softmax(teacher / T) || softmax(student / T)) per sample."""
    teacher = tf.nn.softmax(teacher_logits / temperature, axis=-1)
    log_teacher = tf.nn.log_softmax(teacher_logits / temperature, axis=-1)
    log_student = tf.nn.log_softmax(student_logits / temperature, axis=-1)
    return temperature ** 2 * tf.reduce_sum(teacher * (log_teacher - log_student), axis=-1)


def _normalised(dists: tf.Tensor) -> tf.Tensor:
    n = tf.shape(dists)[0]
    off_diagonal = tf.cast(n * (n - 1), dists.dtype)
    return dists / tf.maximum(tf.reduce_sum(dists) / tf.maximum(off_diagonal, 1.0), 1e-12)


def distance_matching(student_dists: tf.Tensor, teacher_dists: tf.Tensor) -> tf.Tensor:
    """`(B,)` per anchor: the mean over the other samples of the Huber loss (delta 1) between the two
    `(B, B)` distance matrices, each divided by its mean off-diagonal distance."""
    diff = tf.abs(_normalised(student_dists) - _normalised(teacher_dists))
    huber = tf.where(diff < 1.0, 0.5 * tf.square(diff), diff - 0.5)
    n = tf.cast(tf.shape(diff)[0], diff.dtype)
    return tf.reduce_sum(huber, axis=1) / tf.maximum(n - 1.0, 1.0)  # the diagonal is 0 in both


def logits_term(temperature: float):
    """The `distill_logits` objective term: `(outputs, labels) -> (B,)`."""
    return lambda outputs, labels: kl_divergence(outputs["logits"], outputs["teacher_logits"], temperature)


def distance_term(teacher_metric: str):
    """The `distill_distance` objective term, the teacher's distances under its own metric."""
    def term(outputs, labels):
        teacher = outputs["teacher_metric"]
        return distance_matching(outputs["dists"], cdist(teacher, teacher, teacher_metric))
    return term
