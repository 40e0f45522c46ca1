"""embed.py --pool_by tracklet: one embedding per tracklet, equal to a numpy pooling of the per-frame
embeddings, in bounded memory (pooled as the frames stream by)."""

import os

import h5py
import numpy as np
import pytest

from trinet.cli.embed import main
from trinet.data.datasets import read_csv
from trinet.data.tracklets import frame_choice, group_tracklets, tracklet_dataset
from trinet.embedding import writer


class FakeEmbedder:
    """Embeds path 'f<i>.jpg' as (i, -i, i^2 mod 7) (view 0) and its double (view 1): no network."""

    dim, local_shape = 3, (2, 1)

    def view_names(self, flip, crops, aggregator, scales):
        return ["a", "b"]

    def blocks_with_local(self, paths, *, batch_size, **_):
        self.calls = getattr(self, "calls", 0)
        for start in range(0, len(paths), batch_size):
            numbers = np.array([float(p[1:-4]) for p in paths[start:start + batch_size]])
            base = np.stack([numbers, -numbers, numbers ** 2 % 7], axis=1).astype(np.float32)
            aug = np.stack([base, 2 * base])
            local = np.stack([base[:, :1], base[:, 1:2]], axis=1)  # (b, 2, 1)
            self.calls += 1
            yield aug.mean(axis=0), aug, local


def frames_csv(tmp_path, lengths):
    """A frames CSV of tracklets of the given lengths: pid = tracklet // 2, camera = tracklet % 2, frames
    listed in reverse (the frame column orders them)."""
    lines, index = ["pid,path,camera,tracklet,frame"], 0
    for t, length in enumerate(lengths):
        for frame in reversed(range(length)):
            lines.append(f"{t // 2},f{index + frame}.jpg,{t % 2},track{t},{frame}")
        index += length
    path = tmp_path / "frames.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize("how, wanted", [("mean", None), ("max", 3), ("mean", 1)])
def test_pooled_file_equals_a_numpy_reference(tmp_path, monkeypatch, how, wanted):
    monkeypatch.setattr(writer, "TRACKLET_BUFFER", 2)  # several flushes
    lengths = [1, 40, 2, 7, 13]  # one tracklet spans many batches of 4
    dataset = read_csv(frames_csv(tmp_path, lengths))
    tracklets = group_tracklets(dataset)
    rows = tracklet_dataset(dataset, tracklets)
    embedder = FakeEmbedder()
    out = str(tmp_path / "t.h5")
    count, frames, dim = writer.embed_tracklets_to_file(
        embedder, list(dataset.fids), tracklets, rows, how=how, frames_per_tracklet=wanted, filename=out,
        aggregator="mean", batch_size=4, threads=1, flip=False, crop_mode=None, attrs={"x": 1}, quiet=True)
    chosen = [frame_choice(n, wanted) for n in lengths]
    assert (count, frames, dim) == (5, sum(len(c) for c in chosen), 3)
    with h5py.File(out) as f:
        emb, aug, local = f["emb"][()], f["emb_aug"][()], f["emb_local"][()]
        assert [t.decode() for t in f["tracklets"][()]] == [f"track{t}" for t in range(5)]
        assert [p.decode() for p in f["pids"][()]] == ["0", "0", "1", "1", "2"]
        assert f["cameras"][()].tolist() == [0, 1, 0, 1, 0]
        assert f["frame_counts"][()].tolist() == [len(c) for c in chosen]
        assert f["fids"][1].decode() == "f1.jpg"  # the first frame of track1
    start = 0
    for t, n in enumerate(lengths):
        numbers = start + chosen[t].astype(float)
        base = np.stack([numbers, -numbers, numbers ** 2 % 7], axis=1)
        views = np.stack([base, 2 * base])
        pool = (lambda x, axis: x.mean(axis=axis)) if how == "mean" else (lambda x, axis: x.max(axis=axis))
        np.testing.assert_allclose(emb[t], pool(views.mean(axis=0), 0), rtol=1e-6)
        np.testing.assert_allclose(aug[:, t], pool(views, 1), rtol=1e-6)
        np.testing.assert_allclose(local[t, :, 0], pool(base[:, :2], 0), rtol=1e-6)
        start += n


@pytest.fixture
def tracklet_csv(image_set, tmp_path):
    """The image set's 6 x 5 images as 12 tracklets: per identity frames 0-2 (camera 1) and 3-4 (camera 2)."""
    csv, root = image_set
    lines = ["pid,path,camera,tracklet,frame"]
    for pid in range(6):
        for j in range(5):
            camera = 1 if j < 3 else 2
            lines.append(f"{pid:04d},images/{pid:04d}_{j:02d}.jpg,{camera},{pid}_{camera},{j}")
    path = tmp_path / "tracks.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path), root


def test_embed_py_pool_by_tracklet(finished, image_set, tracklet_csv, tmp_path):
    csv, root = tracklet_csv
    frames_h5, tracks_h5 = str(tmp_path / "frames.h5"), str(tmp_path / "tracks.h5")
    base = ["--experiment_root", str(finished), "--dataset", csv, "--image_root", root,
            "--loading_threads", "2", "--quiet", "--batch_size", "4"]
    assert main([*base, "--filename", frames_h5]) == 0
    assert main([*base, "--filename", tracks_h5, "--pool_by", "tracklet", "--temporal_pooling", "max",
                 "--frames_per_tracklet", "2"]) == 0
    with h5py.File(frames_h5) as f:
        frames = f["emb"][()]
    with h5py.File(tracks_h5) as f:
        tracks = f["emb"][()]
        assert tracks.shape == (12, 8) and f["frame_counts"][()].tolist() == [2] * 12
        assert f.attrs["temporal_pooling"] == "max" and f.attrs["pool_by"] == "tracklet"
        names = [t.decode() for t in f["tracklets"][()]]
    assert names[:2] == ["0_1", "0_2"]
    for t in range(12):
        own = np.arange(5 * (t // 2), 5 * (t // 2) + 5)[:3] if t % 2 == 0 else \
            np.arange(5 * (t // 2), 5 * (t // 2) + 5)[3:]
        np.testing.assert_allclose(tracks[t], frames[own[frame_choice(len(own), 2)]].max(axis=0), atol=1e-5)


def test_tracklet_flag_errors(finished, tracklet_csv, image_set, tmp_path, capsys):
    csv, root = tracklet_csv
    base = ["--experiment_root", str(finished), "--image_root", root, "--quiet"]
    assert main([*base, "--dataset", csv, "--temporal_pooling", "max"]) == 2
    assert "--temporal_pooling apply to --pool_by tracklet" in capsys.readouterr().err
    assert main([*base, "--dataset", csv, "--pool_by", "tracklet", "--filename", "x.csv"]) == 2
    assert "writes HDF5" in capsys.readouterr().err
    assert main([*base, "--dataset", image_set[0], "--pool_by", "tracklet",
                 "--filename", str(tmp_path / "n.h5")]) == 2
    assert "`tracklet` column" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "n.h5")


def test_embedder_embeds_a_list_of_tracklets(finished, image_set):
    """Embedder.embed_tracklets (for trackers): crops as arrays, one pooled embedding per tracklet."""
    import cv2

    from trinet import Embedder
    from trinet.core.errors import TrinetError

    csv, root = image_set
    paths = [os.path.join(root, f"images/{pid:04d}_{j:02d}.jpg") for pid in range(3) for j in range(5)]
    crops = [cv2.imread(p)[:, :, ::-1].copy() for p in paths]
    embedder = Embedder.from_experiment(str(finished))
    frames = embedder.embed(crops, batch_size=4, threads=1)
    tracklets = [crops[0:5], crops[5:6], crops[6:15]]
    mean = embedder.embed_tracklets(tracklets, batch_size=4, threads=1)
    assert mean.shape == (3, embedder.dim) and mean.dtype == np.float32
    for t, (a, b) in enumerate([(0, 5), (5, 6), (6, 15)]):
        np.testing.assert_allclose(mean[t], frames[a:b].mean(axis=0), atol=1e-5)
    high = embedder.embed_tracklets(tracklets, pooling="max", frames_per_tracklet=3, batch_size=4, threads=1)
    np.testing.assert_allclose(high[2], frames[6:15][frame_choice(9, 3)].max(axis=0), atol=1e-5)
    with pytest.raises(TrinetError, match=r"Tracklets 1 have no frames"):
        embedder.embed_tracklets([crops[:1], []])
    with pytest.raises(TrinetError, match=r"pooling='median'; expected one of \['max', 'mean'\]"):
        embedder.embed_tracklets([crops[:1]], pooling="median")


def test_the_tracker_example_matches_tracks_as_a_brute_force_search(finished, image_set, tmp_path, capsys):
    """examples/track_embed.py: crops with track ids -> one embedding per track -> the nearest gallery
    entries of a trinet-search index, equal to a numpy nearest-neighbour search of the pooled embeddings."""
    import sys

    from conftest import REPO
    from trinet import Embedder
    from trinet.data.datasets import read_csv
    from trinet.search.index import build_index, save_index

    sys.path.insert(0, os.path.join(REPO, "examples"))
    import track_embed

    csv, root = image_set
    gallery = read_csv(csv, root)
    embedder = Embedder.from_experiment(str(finished))
    gallery_emb = embedder.embed(gallery.paths(), batch_size=8, threads=1)
    save_index(str(tmp_path / "index"), build_index(gallery_emb, gallery))
    tracks = tmp_path / "tracks.csv"
    tracks.write_text("pid,path,tracklet\n" + "".join(
        f"unknown,images/{pid:04d}_{j:02d}.jpg,track{pid}\n" for pid in (1, 4) for j in (0, 2, 3)))
    crops = track_embed.read_tracks(str(tracks), root)
    assert list(crops) == ["track1", "track4"] and len(crops["track1"]) == 3
    from trinet.search.index import load_index
    matches = track_embed.match_tracks(embedder, crops, load_index(str(tmp_path / "index")), top_k=4)
    pooled = embedder.embed_tracklets(list(crops.values()))
    for t, name in enumerate(crops):
        dist = np.sqrt(((pooled[t] - gallery_emb) ** 2).sum(axis=1))
        expected = np.argsort(dist, kind="stable")[:4]
        assert [path for _, path, _ in matches[name]] == gallery.fids[expected].tolist()
        np.testing.assert_allclose([d for _, _, d in matches[name]], dist[expected], rtol=1e-4, atol=1e-5)
    assert track_embed.main(["--experiment_root", str(finished), "--index", str(tmp_path / "index"),
                             "--tracks", str(tracks), "--image_root", root, "--top_k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["track track1", "track track4"]
    assert out[0].count("images/") == 2
