"""AlignedReID's local branch (--local_branch): the local distance by hand (numpy and TensorFlow), the local
triplet loss on a tiny batch, the branch, training, embed.py's emb_local and evaluate.py
--local_distance_weight."""

import math

import h5py
import numpy as np
import pytest
import tensorflow as tf

from conftest import train
from trinet.core import local_distances as ld
from trinet.losses.triplet import local_distance, local_triplet, shortest_path
from trinet.models.builder import ModelSpec, build_model, embedding_model

#: tanh(1) = (e^2 - 1) / (e^2 + 1): the normalised distance of two stripes 2 apart.
T1 = (math.e ** 2 - 1) / (math.e ** 2 + 1)

#: Right or down from 1 (top left) to 1 (bottom right): 1 -> 2 -> 1 -> 5 -> 1 = 10 is the cheapest path
#: (1 -> 4 -> 1 -> 5 -> 1 = 12, 1 -> 2 -> 3 -> 5 -> 1 = 12, 1 -> 2 -> 1 -> 7 -> 1 = 12, 1 -> 4 -> 6 -> 7 -> 1
#: = 19; the diagonal cells alone, 3, are not a path).
COSTS = [[1.0, 2.0, 3.0],
         [4.0, 1.0, 5.0],
         [6.0, 7.0, 1.0]]


def test_the_shortest_path_of_a_hand_written_3x3_matrix():
    assert ld.shortest_path(np.array(COSTS)) == pytest.approx(10.0)
    assert float(shortest_path(tf.constant(COSTS))) == pytest.approx(10.0)
    # batched: its transpose has the same cheapest cost (paths transpose), a matrix of ones 5 cells
    batch = np.stack([COSTS, np.transpose(COSTS), np.ones((3, 3))])
    np.testing.assert_allclose(ld.shortest_path(batch), [10.0, 10.0, 5.0])
    np.testing.assert_allclose(shortest_path(tf.constant(batch)), [10.0, 10.0, 5.0])


def test_the_normalisation_is_e_to_the_d_minus_1_over_plus_1():
    d = np.array([0.0, 1.0, 2.0, 800.0])
    np.testing.assert_allclose(ld.normalize(d), [0.0, (math.e - 1) / (math.e + 1), T1, 1.0])


def test_the_local_distance_of_two_stripes_by_hand():
    # stripes (1-d) of a: 0, 3; of b: 0, 4. Distances [[0, 4], [3, 1]] -> tanh(d / 2);
    # the cheapest path goes down: 0 + tanh(1.5) + tanh(0.5)
    a, b = np.array([[[0.0], [3.0]]]), np.array([[[0.0], [4.0]]])
    expected = math.tanh(1.5) + math.tanh(0.5)
    assert ld.local_distances(a, b)[0, 0] == pytest.approx(expected, abs=1e-5)
    assert float(local_distance(tf.constant(a), tf.constant(b))[0]) == pytest.approx(expected, abs=1e-5)


def test_blocks_of_pairs_give_the_distances_of_one_pair_at_a_time(monkeypatch):
    rng = np.random.default_rng(0)
    query = rng.normal(size=(5, 4, 3)).astype(np.float32)
    gallery = rng.normal(size=(7, 4, 3)).astype(np.float32)
    one_by_one = np.array([[ld.shortest_path(ld.normalize(np.sqrt(
        ((q[:, None] - g[None]) ** 2).sum(-1) + 1e-12))) for g in gallery] for q in query])
    np.testing.assert_allclose(ld.local_distances(query, gallery), one_by_one, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(ld, "MAX_BLOCK_ENTRIES", 1)  # one query per block
    np.testing.assert_allclose(ld.local_distances(query, gallery), one_by_one, rtol=1e-5, atol=1e-5)
    # TensorFlow's (training) and numpy's (evaluation) agree
    pairs = local_distance(tf.constant(np.repeat(query, 7, axis=0)), tf.constant(np.tile(gallery, (5, 1, 1))))
    np.testing.assert_allclose(np.reshape(pairs, (5, 7)), one_by_one, rtol=1e-5, atol=1e-5)


def test_the_local_triplet_loss_uses_the_pairs_mined_with_the_global_distance():
    labels = tf.constant([0, 0, 1, 1])
    dists = tf.constant([[0.0, 1.0, 2.0, 3.0],   # anchor 0: positive 1, closest negative 2
                         [1.0, 0.0, 5.0, 4.0],   # anchor 1: positive 0, closest negative 3
                         [2.0, 5.0, 0.0, 1.0],   # anchor 2: positive 3, closest negative 0
                         [3.0, 4.0, 1.0, 0.0]])  # anchor 3: positive 2, closest negative 0
    # two 1-d stripes each; a pair's 2x2 stripe distances are 0 or 2, i.e. normalised 0 or tanh(1)
    local = tf.constant([[[0.0], [0.0]], [[0.0], [2.0]], [[2.0], [2.0]], [[2.0], [0.0]]])
    # d(0,1) = tanh(1) (0 -> 0 -> tanh 1), d(0,2) = 3 tanh(1) (all cells 2 apart);
    # d(1,0) = tanh(1), d(1,3) = 2 tanh(1) ([[2, 0], [0, 2]]: the corners);
    # d(2,3) = tanh(1), d(2,0) = 3 tanh(1);
    # d(3,2) = tanh(1), d(3,0) = tanh(1) ([[2, 2], [0, 0]]: down first).
    # Mined by the local distance instead, anchor 1's negative would be 2 (d(1,2) = tanh(1)), loss 1.
    expected = [0.0, 1 - T1, 0.0, 1.0]  # max(d_ap - d_an + 1, 0)
    np.testing.assert_allclose(local_triplet(dists, local, labels, 1.0), expected, atol=1e-5)
    soft = local_triplet(dists, local, labels, "soft").numpy()
    np.testing.assert_allclose(soft[1], math.log1p(math.exp(-T1)), atol=1e-5)


def test_the_local_branch_is_one_reduction_shared_by_the_stripes():
    spec = ModelSpec("lunet", "fc1024", 8, local_branch=True, local_stripes=2, local_dim=4)
    model = build_model(spec)
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 16, 3)).astype(np.float32)
    out = model(images, training=False)
    assert out["local"].shape == (3, 2, 4) and out["embedding"].shape == (3, 8)
    fmap = model.get_layer("backbone")(images, training=False).numpy()  # (3, 2, w, F): a stripe per row
    kernel = model.get_layer("head_local_reduce").kernel.numpy()
    # an untrained batch norm in inference: x / sqrt(1 + 1e-5)
    expected = np.maximum(fmap.mean(axis=2) @ kernel / math.sqrt(1 + 1e-5), 0.0)
    np.testing.assert_allclose(out["local"], expected, rtol=1e-4, atol=1e-5)
    inference = embedding_model(model, local=True)
    assert set(inference.output) == {"embedding", "local"}
    assert embedding_model(model).output.shape == (None, 8)  # the global-only model stays as it was
    no_branch = build_model(ModelSpec("lunet", "fc1024", 8))
    assert "local" not in no_branch.output
    assert not any("local" in v.path for v in no_branch.weights)


def test_embedder_aggregates_the_stripes_of_the_views_with_the_aggregator():
    import keras

    from trinet.embedding.embedder import Embedder

    keras.utils.set_random_seed(0)  # an untrained branch with a zero stripe mean (3 of the 6 stripes)
    model = embedding_model(build_model(ModelSpec("lunet", "fc1024", 8, local_branch=True, local_stripes=2,
                                                  local_dim=4)), local=True)
    embedder = Embedder(model, (32, 16))
    assert embedder.local_shape == (2, 4) and embedder.dim == 8
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 16, 3), dtype=np.uint8)
    emb, _, local = next(embedder.blocks_with_local(images, flip=True, aggregator="mean"))
    _, _, plain = next(embedder.blocks_with_local(images))
    _, _, mirrored = next(embedder.blocks_with_local(np.ascontiguousarray(images[:, :, ::-1])))
    np.testing.assert_allclose(local, (plain + mirrored) / 2, rtol=1e-4, atol=1e-5)
    _, _, normalized = next(embedder.blocks_with_local(images, flip=True, aggregator="normalized_mean"))
    # each stripe's mean scaled to unit length; a stripe whose mean is zero (4 ReLU outputs of an untrained
    # branch, all 0) stays zero
    defined = np.linalg.norm(local, axis=-1) > 0
    assert defined.any() and not defined.all()
    np.testing.assert_allclose(np.linalg.norm(normalized, axis=-1)[defined], 1.0, rtol=1e-5)
    np.testing.assert_allclose(normalized[~defined], 0.0)
    np.testing.assert_allclose(normalized[defined], local[defined] / np.linalg.norm(local[defined], axis=-1,
                                                                                    keepdims=True),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(emb, embedder.embed(images, flip=True, aggregator="mean"), rtol=1e-6)


def test_local_flags_elsewhere_and_too_many_stripes_are_refused(tmp_path, image_set, capsys):
    with pytest.raises(SystemExit) as refused:
        train(tmp_path / "a", image_set, "--local_stripes", "4")
    assert refused.value.code == 2
    assert "--local_stripes 4 applies to --local_branch only" in capsys.readouterr().err
    # TINY LuNet at 32x16: the feature map has 2 rows; the default 8 stripes do not fit
    assert train(tmp_path / "b", image_set, "--local_branch") == 2
    assert "--local_stripes 8 is larger than the height of the feature map (2 rows" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def _write(path, emb, local=None, fids=()):
    from trinet.data.embeddings.hdf5 import write_embeddings
    write_embeddings(str(path), np.asarray(emb, np.float32), fids=list(fids),
                     emb_local=None if local is None else np.asarray(local, np.float32))


def test_evaluate_ranks_by_global_plus_w_times_local(tmp_path, capsys):
    from trinet.cli.evaluate import main

    # one query; the non-match is closer globally (1 against 2), the match locally (0 against 3 tanh 1)
    (tmp_path / "q.csv").write_text("1,q.jpg\n")
    (tmp_path / "g.csv").write_text("1,match.jpg\n2,other.jpg\n")
    _write(tmp_path / "q.h5", [[0.0]], [[[0.0], [0.0]]], ["q.jpg"])
    _write(tmp_path / "g.h5", [[2.0], [1.0]], [[[0.0], [0.0]], [[2.0], [2.0]]], ["match.jpg", "other.jpg"])
    plain = tmp_path / "g_plain.h5"
    _write(plain, [[2.0], [1.0]], fids=["match.jpg", "other.jpg"])

    def evaluate(gallery, *extra):
        return main(["--excluder", "none", "--query_dataset", str(tmp_path / "q.csv"), "--query_embeddings",
                     str(tmp_path / "q.h5"), "--gallery_dataset", str(tmp_path / "g.csv"),
                     "--gallery_embeddings", str(gallery), "--quiet", *extra])

    import json
    results = tmp_path / "r.json"
    assert evaluate(tmp_path / "g.h5", "--filename", str(results)) == 0
    assert json.loads(results.read_text())["top-1"] == 0.0
    # 2 + 0.5 x 0 < 1 + 0.5 x 3 tanh(1) = 2.14; with W = 0.3, 2 > 1.69: still the non-match first
    assert evaluate(tmp_path / "g.h5", "--local_distance_weight", "0.5", "--filename", str(results)) == 0
    saved = json.loads(results.read_text())
    assert saved["top-1"] == 1.0 and saved["settings"]["local_distance_weight"] == 0.5
    assert evaluate(tmp_path / "g.h5", "--local_distance_weight", "0.3", "--filename", str(results)) == 0
    assert json.loads(results.read_text())["top-1"] == 0.0
    capsys.readouterr()
    assert evaluate(plain, "--local_distance_weight", "0.5") == 2
    err = capsys.readouterr().err
    assert (f"{plain} has no local features (dataset 'emb_local'), which --local_distance_weight 0.5 "
            "needs") in err
    assert evaluate(tmp_path / "g.h5", "--local_distance_weight", "1", "--rerank") == 2
    assert "--local_distance_weight 1 does not go with --rerank" in capsys.readouterr().err


def test_with_local_distances_in_small_blocks_equals_the_dense_sum(monkeypatch):
    from trinet.evaluation.metrics import EmbeddingDistances, WithLocalDistances
    from trinet.core.distances import cdist

    rng = np.random.default_rng(2)
    q, g = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(9, 3)).astype(np.float32)
    ql, gl = rng.normal(size=(6, 3, 2)).astype(np.float32), rng.normal(size=(9, 3, 2)).astype(np.float32)
    columns = np.array([0, 2, 3, 7, 8])
    dense = cdist(q, g) + 0.7 * ld.local_distances(ql, gl)
    monkeypatch.setattr(ld, "MAX_BLOCK_ENTRIES", 20)
    fn = WithLocalDistances(EmbeddingDistances(q, g), ql, gl, 0.7)
    np.testing.assert_allclose(fn(slice(1, 5), columns), dense[1:5][:, columns], rtol=1e-5)


def test_train_embed_and_evaluate_with_the_local_branch(tmp_path, image_set):
    from trinet.cli.embed import main as embed
    from trinet.cli.evaluate import main as evaluate

    root = tmp_path / "e"
    assert train(root, image_set, "--local_branch", "--local_stripes", "2", "--local_dim", "4",
                 "--local_loss_weight", "0.5", "--margin", "0.3", "--train_iterations", "2") == 0
    log = (root / "train.log").read_text()
    assert "1 x triplet + 0.5 x local" in log and "local " in log
    csv, images = image_set
    common = ["--experiment_root", str(root), "--dataset", csv, "--image_root", images, "--loading_threads",
              "2", "--quiet"]
    assert embed([*common, "--filename", "c.h5", "--flip_augment", "--aggregator", "mean"]) == 0
    assert embed([*common, "--filename", "k.h5", "--flip_augment", "--aggregator", "mean", "--checkpoint",
                  "model.keras"]) == 0
    with h5py.File(root / "c.h5") as a, h5py.File(root / "k.h5") as b:
        assert a["emb"].shape == (30, 8) and a["emb_local"].shape == (30, 2, 4)
        np.testing.assert_allclose(a["emb_local"][()], b["emb_local"][()], rtol=1e-5, atol=1e-6)
    # shards carry the local features through --merge
    assert embed([*common, "--shard", "0/2", "--filename", "s0.h5"]) == 0
    assert embed([*common, "--shard", "1/2", "--filename", "s1.h5"]) == 0
    assert embed([*common, "--filename", "one.h5"]) == 0
    assert embed(["--experiment_root", str(root), "--dataset", csv, "--quiet", "--filename", "m.h5",
                  "--merge", "s0.h5", "s1.h5"]) == 0
    with h5py.File(root / "m.h5") as merged, h5py.File(root / "one.h5") as one:
        np.testing.assert_array_equal(merged["emb_local"][()], one["emb_local"][()])
    h5 = str(root / "c.h5")
    assert evaluate(["--excluder", "none", "--query_dataset", csv, "--query_embeddings", h5,
                     "--gallery_dataset", csv, "--gallery_embeddings", h5, "--local_distance_weight", "1",
                     "--quiet"]) == 0
