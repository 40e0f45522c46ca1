"""Learning without labels (--unlabeled_set, issue 21): the refusals (settings, then the data before the
experiment root is written), the sampler of pseudo identities without the outliers, and runs that cluster,
train on the clusters with the memory loss, and resume bit for bit across a clustering."""

import os
import re
import shutil

import h5py
import numpy as np
import pytest

from conftest import TINY, assert_same_checkpoints, write_image_set
from trinet.config.settings import TrainSettings
from trinet.core.errors import TrinetError
from trinet.pipeline.sampling import make_sampler
from trinet.training.pseudo_labels import (load_unlabeled_set, pseudo_pids, sampler_seed,
                                           true_identities)


@pytest.mark.parametrize("changes, words", [
    ({}, "--train_set is required (unless --resume, or --unlabeled_set to learn without labels)"),
    ({"unlabeled_set": "u.txt", "train_set": "t.csv"}, "--joint_source, is not available yet"),
    ({"train_set": "t.csv", "memory_loss_weight": 1.0},
     "--memory_loss_weight 1.0 applies to --unlabeled_set"),
    ({"train_set": "t.csv", "cluster_eps": 0.5}, "--cluster_eps 0.5 applies to --unlabeled_set"),
    ({"train_set": "t.csv", "unlabeled_image_root": "x"},
     "--unlabeled_image_root x applies to --unlabeled_set"),
    ({"unlabeled_set": "u", "cluster_eps": 1.0}, "--cluster_eps must be in (0, 1)"),
    ({"unlabeled_set": "u", "cluster_min_samples": 1}, "--cluster_min_samples must be in [2, inf]"),
    ({"unlabeled_set": "u", "cluster_k1": 4, "cluster_k2": 6},
     "--cluster_k2 6 must be at most --cluster_k1 4"),
    ({"unlabeled_set": "u", "memory_momentum": 1.5}, "--memory_momentum must be in [0, 1]"),
    ({"unlabeled_set": "u", "memory_update": "max"}, "--memory_update 'max' is not one of hard, mean"),
    ({"unlabeled_set": "u", "sampler": "random"},
     "--sampler random with --unlabeled_set draws images regardless of their pseudo-identity"),
    ({"unlabeled_set": "u", "sampler": "class_balanced"},
     "--sampler class_balanced with --unlabeled_set draws images regardless"),
    ({"unlabeled_set": "u", "id_loss_weight": 1.0}, "--id_loss_weight does not go with --unlabeled_set yet"),
    ({"unlabeled_set": "u", "mutual_models": 2, "mutual_logits_weight": 0},
     "--mutual_models does not go with --unlabeled_set yet"),
    ({"unlabeled_set": "u", "sampler": "pk_clips"}, "--sampler pk_clips does not go with --unlabeled_set"),
    ({"unlabeled_set": "u", "triplet_loss_weight": 0}, "there is nothing to train"),
])
def test_unlabeled_settings_are_checked(changes, words):
    with pytest.raises(TrinetError, match=re.escape(words)):
        TrainSettings(**changes).validate()


def test_the_memory_loss_alone_trains_on_any_sampler():
    for sampler in ("pk", "random", "class_balanced"):
        TrainSettings(unlabeled_set="u", sampler=sampler, triplet_loss_weight=0,
                      memory_loss_weight=1).validate()


def test_train_py_reads_the_flags_and_makes_the_paths_absolute(tmp_path):
    from trinet.cli.train import build_parser, resolve_settings

    (tmp_path / "u.txt").write_text("a.jpg\n")
    argv = ["--experiment_root", str(tmp_path / "exp"),
            "--unlabeled_set", os.path.relpath(tmp_path / "u.txt"),
            "--unlabeled_image_root", os.path.relpath(tmp_path), "--recluster_frequency", "50",
            "--cluster_eps", "0.5", "--cluster_min_samples", "3", "--cluster_k1", "20", "--cluster_k2", "4",
            "--memory_loss_weight", "1", "--memory_temperature", "0.1", "--memory_momentum", "0.2",
            "--memory_update", "hard", "--triplet_loss_weight", "0"]
    s = resolve_settings(build_parser(), argv)
    assert (s.unlabeled_set, s.unlabeled_image_root) == (str(tmp_path / "u.txt"), str(tmp_path))
    assert (s.recluster_frequency, s.cluster_eps, s.cluster_min_samples, s.cluster_k1, s.cluster_k2) == (
        50, 0.5, 3, 20, 4)
    assert (s.memory_loss_weight, s.memory_temperature, s.memory_momentum, s.memory_update) == (
        1.0, 0.1, 0.2, "hard")
    assert s.pseudo_labels and TrainSettings.from_saved(s.saved())[0] == s.replace(experiment_root="")


def test_outliers_are_never_sampled_and_the_codes_are_the_clusters():
    labels = np.array([0, 0, -1, 1, 1, 1, -1, 2, 2, 0, -1, 2, 3, 3, 3, -1])
    pids, outliers = pseudo_pids(labels)
    np.testing.assert_array_equal(outliers, [2, 6, 10, 15])
    np.testing.assert_array_equal(pids[labels >= 0], labels[labels >= 0])
    for name in ("pk", "random"):
        sampler = make_sampler(name, pids, 2, 2, seed=3, excluded=outliers)
        drawn = np.concatenate([sampler.batch(i) for i in range(50)])
        assert not np.isin(drawn, outliers).any(), name
        assert set(drawn) == set(np.flatnonzero(labels >= 0))  # every clustered image comes up
        np.testing.assert_array_equal(sampler.codes[drawn], labels[drawn])  # the step's labels: the clusters
    assert pseudo_pids(np.array([0, 1, 1, 0]))[1].size == 0


def test_each_clustering_has_its_own_batches():
    seeds = [sampler_seed(4, n) for n in (1, 2, 3)]
    assert len(set(seeds)) == 3 and seeds == [sampler_seed(4, n) for n in (1, 2, 3)]
    assert all(0 <= seed < 2**31 for seed in seeds)


def _unlabeled(tmp_path, images=12, plain=True):
    """An unlabeled set of `images` images: a plain list of paths (or its dataset CSV); returns its path and
    image root."""
    root = str(tmp_path / "target")
    csv = write_image_set(root, identities=images // 3, per_identity=3, seed=7)
    if not plain:
        return csv, root
    rows = [line.split(",", 1)[1] for line in open(csv).read().split()]
    path = os.path.join(root, "unlabeled.txt")
    with open(path, "w") as f:
        f.write("\n".join(rows) + "\n")
    return path, root


def test_the_unlabeled_set_is_a_list_or_a_csv_whose_identities_are_only_a_diagnostic(tmp_path):
    path, root = _unlabeled(tmp_path)
    s = TrainSettings(unlabeled_set=path, unlabeled_image_root=root, loading_threads=2)
    dataset = load_unlabeled_set(s)
    assert len(dataset) == 12 and true_identities(dataset) is None
    csv = os.path.join(root, "train.csv")
    dataset = load_unlabeled_set(s.replace(unlabeled_set=csv))
    np.testing.assert_array_equal(true_identities(dataset), np.repeat(np.arange(4), 3))


def test_bad_unlabeled_sets_are_refused_before_long_work(tmp_path):
    path, root = _unlabeled(tmp_path)
    s = TrainSettings(unlabeled_set=path, unlabeled_image_root=root, loading_threads=2)
    with pytest.raises(TrinetError, match=re.escape("has 12 usable images; clustering with "
                                                    "--cluster_min_samples 7 needs at least 14")):
        load_unlabeled_set(s.replace(cluster_min_samples=7))
    with open(os.path.join(root, "images", "0001_00.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff" + b"not really a jpeg")  # an image file's signature, but it does not decode
    with pytest.raises(TrinetError, match=r"1 of 12 images are empty, not an image file, or not decodable: "
                                          r"images/0001_00.jpg.*--on_bad_image skip"):
        load_unlabeled_set(s.replace(on_bad_image="error"))
    assert len(load_unlabeled_set(s)) == 11  # skipped, as the training set's
    with open(path, "a") as f:
        f.write("images/missing.jpg\n")
    with pytest.raises(TrinetError, match="1 of 13 images not found.*--skip_missing"):
        load_unlabeled_set(s)
    assert len(load_unlabeled_set(s.replace(skip_missing=True))) == 11


def test_a_refused_unlabeled_set_writes_no_experiment(tmp_path, capsys):
    from trinet.cli.train import main

    path, root = _unlabeled(tmp_path)
    exp = tmp_path / "exp"
    assert main(["--experiment_root", str(exp), "--unlabeled_set", path, "--unlabeled_image_root", root,
                 *TINY, "--cluster_min_samples", "7"]) == 2
    assert "needs at least 14" in capsys.readouterr().err
    assert not exp.exists()


#: A run on pseudo labels of 8 colours x 4 images (clusters of the untrained network's embeddings) with
#: Cluster Contrast's memory loss beside the triplet loss, clustering at iterations 0 and 3.
PSEUDO = ["--cluster_k1", "6", "--cluster_k2", "2", "--cluster_min_samples", "2", "--memory_loss_weight", "1",
          "--recluster_frequency", "3"]


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    """`(list of paths, image root, the dataset CSV of the same images)`: 8 colour-coded identities x 4."""
    root = str(tmp_path_factory.mktemp("colours"))
    csv = write_image_set(root, identities=8, per_identity=4, seed=11)
    path = os.path.join(root, "unlabeled.txt")
    with open(path, "w") as f:
        f.write("\n".join(line.split(",", 1)[1] for line in open(csv).read().split()) + "\n")
    return path, root, csv


def _train(root, unlabeled, *extra):
    from trinet.cli.train import main

    path, images = unlabeled[:2]
    return main(["--experiment_root", str(root), "--unlabeled_set", path, "--unlabeled_image_root", images,
                 *TINY, *PSEUDO, *extra])


def _labels(checkpoint) -> np.ndarray:
    with h5py.File(checkpoint) as f:
        group = f["pseudo_labels"]
        return next(group[k][()] for k in group if group[k].attrs["path"] == "pseudo_labels")


@pytest.mark.slow
def test_pseudo_labels_train_resume_bit_for_bit_across_a_clustering_and_leave_outliers_out(tmp_path, colours):
    reference = tmp_path / "reference"
    assert _train(reference, colours, "--train_iterations", "6", "--checkpoint_frequency", "2",
                  "--detailed_logs", "--histogram_frequency", "0") == 0
    log = open(reference / "train.log").read()
    assert "objective: 1 x triplet + 1 x memory" in log
    assert len(re.findall(r"Clustering at iteration (\d+)", log)) == 2
    assert re.findall(r"Clustering at iteration (\d+)", log) == ["0", "3"]
    from trinet.rundir.checkpoints import read_info
    assert read_info(reference / "checkpoint-2.h5")[1]["next_clustering"] == 3
    assert read_info(reference / "checkpoint-4.h5")[1]["next_clustering"] == 6
    assert read_info(reference / "checkpoint-4.h5")[1]["clusterings"] == 2

    import glob

    import tensorflow as tf
    tags = {(v.tag, e.step) for path in glob.glob(str(reference / "events.out.tfevents.*"))
            for e in tf.compat.v1.train.summary_iterator(path) for v in e.summary.value}
    assert {("pseudo/clusters", 0), ("pseudo/outliers", 3), ("pseudo/size_median", 3)} <= tags

    # the batches of each clustering hold no outlier of it
    rows = {fid: i for i, fid in enumerate(open(colours[0]).read().split())}
    fids = np.load(reference / "detailed_fids.npy")
    for iterations, checkpoint in ((range(0, 3), "checkpoint-2.h5"), (range(3, 6), "checkpoint-4.h5")):
        labels = _labels(reference / checkpoint)
        drawn = [rows[f.decode()] for i in iterations for f in fids[i]]
        assert (labels[drawn] >= 0).all(), checkpoint
        assert len(np.unique(labels[labels >= 0])) >= 3

    resumed = tmp_path / "resumed"
    shutil.copytree(reference, resumed)
    for name in ("checkpoint-4.h5", "checkpoint-6.h5", "model.keras"):
        os.remove(resumed / name)
    from trinet.cli import train as train_cli
    assert train_cli.main(["--experiment_root", str(resumed), "--resume"]) == 0
    assert "Clustering at iteration 3" in open(resumed / "train.log").read().split("Resuming")[-1]
    for name in ("checkpoint-4.h5", "checkpoint-6.h5"):
        groups = assert_same_checkpoints(reference / name, resumed / name)
        assert "pseudo_labels" in groups
        assert read_info(reference / name)[1] == read_info(resumed / name)[1]
    np.testing.assert_array_equal(np.load(reference / "detailed_fids.npy"),
                                  np.load(resumed / "detailed_fids.npy"))


@pytest.mark.slow
def test_a_clustering_of_outliers_only_stops_after_a_checkpoint_naming_the_flag(tmp_path, colours, capsys):
    exp = tmp_path / "exp"
    # no image has 16 neighbours within a Jaccard distance of 0.05: every one is an outlier
    assert _train(exp, colours, "--train_iterations", "4", "--cluster_eps", "0.05",
                  "--cluster_min_samples", "16") == 2
    err = capsys.readouterr().err
    assert "--cluster_eps" in err and "clustering at iteration 0" in err
    assert (exp / "checkpoint-0.h5").exists()


def test_camera_centring_takes_each_cameras_mean_of_the_unit_embeddings():
    from trinet.training.pseudo_labels import camera_centred

    x = np.array([[3, 4], [0, 2], [1, 0], [0, 5]], np.float32)  # unit: (.6, .8), (0, 1), (1, 0), (0, 1)
    cameras = np.array([7, 7, 2, 2])
    # camera 7's mean (.3, .9): rows (.3, -.1) and (-.3, .1); camera 2's mean (.5, .5): (.5, -.5), (-.5, .5)
    s = np.sqrt(0.1)
    expected = [[.3 / s, -.1 / s], [-.3 / s, .1 / s], [.5 ** .5, -.5 ** .5], [-.5 ** .5, .5 ** .5]]
    np.testing.assert_allclose(camera_centred(x, cameras), expected, rtol=1e-6)
    alone = camera_centred(np.array([[1, 2], [2, 1]], np.float32), np.array([0, 1]))
    np.testing.assert_array_equal(alone, np.zeros((2, 2)))  # one image per camera: nothing is left


def test_camera_norm_needs_cameras_before_anything_is_written(tmp_path, capsys):
    from trinet.cli.train import main

    path, root = _unlabeled(tmp_path)
    exp = tmp_path / "exp"
    assert main(["--experiment_root", str(exp), "--unlabeled_set", path, "--unlabeled_image_root", root,
                 *TINY, "--cluster_camera_norm"]) == 2
    assert "--cluster_camera_norm needs the camera of every unlabeled image" in capsys.readouterr().err
    assert not exp.exists()
    with pytest.raises(TrinetError, match="--cluster_camera_norm True applies to --unlabeled_set only"):
        TrainSettings(train_set="t.csv", cluster_camera_norm=True).validate()
