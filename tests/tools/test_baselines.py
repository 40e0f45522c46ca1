"""The pixel baseline: embeddings of known images, the embedding file it writes, and its poor ranking."""

import argparse
import os
import re

import cv2
import h5py
import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from trinet import demo

from trinet.core.errors import TrinetError
from trinet.data.datasets import Dataset, read_csv
from trinet.data.embeddings.hdf5 import read_embeddings, read_strings
from trinet.tools import baselines


@pytest.fixture
def images(tmp_path):
    """Three 4x2 PNG images (lossless) and their CSV: red, blue, and white-over-black."""
    red = np.zeros((4, 2, 3), np.uint8)
    red[..., 2] = 255  # OpenCV writes BGR
    blue = np.zeros((4, 2, 3), np.uint8)
    blue[..., 0] = 255
    split = np.zeros((4, 2, 3), np.uint8)
    split[:2] = 255
    (tmp_path / "img").mkdir()
    rows = []
    for pid, name, image in [("0001", "red.png", red), ("0002", "blue.png", blue),
                             ("-1", "split.png", split)]:
        cv2.imwrite(str(tmp_path / "img" / name), image)
        rows.append(f"{pid},img/{name}\n")
    (tmp_path / "set.csv").write_text("".join(rows))
    return tmp_path


def test_pixel_embeddings_are_rgb_pixels_in_unit_range(images):
    dataset = read_csv(str(images / "set.csv"), str(images))
    emb = baselines.pixel_embeddings(dataset, size=(4, 2))
    assert emb.shape == (3, 4 * 2 * 3) and emb.dtype == np.float32
    np.testing.assert_allclose(emb[0].reshape(4, 2, 3), np.broadcast_to([1, 0, 0], (4, 2, 3)))
    np.testing.assert_allclose(emb[1].reshape(4, 2, 3), np.broadcast_to([0, 0, 1], (4, 2, 3)))


def test_downsampling_averages_areas(images):
    dataset = read_csv(str(images / "set.csv"), str(images))
    emb = baselines.pixel_embeddings(dataset, size=(2, 1))
    np.testing.assert_allclose(emb[2], [1, 1, 1, 0, 0, 0])  # white top half, black bottom half
    mean = baselines.pixel_embeddings(dataset, size=(1, 1))[2]
    np.testing.assert_allclose(mean, [0.5, 0.5, 0.5], atol=0.003)


def test_unreadable_image_is_named(images):
    (images / "img" / "broken.png").write_bytes(b"not an image")
    dataset = Dataset(np.array(["0003"]), np.array(["img/broken.png"]), "x.csv", str(images))
    with pytest.raises(TrinetError, match="broken.png"):
        baselines.pixel_embeddings(dataset)
    with pytest.raises(TrinetError, match="size"):
        baselines.pixel_embeddings(dataset, size=(0, 4))


@pytest.mark.parametrize("text, size", [("32x16", (32, 16)), ("8X4", (8, 4)), (" 64 x 32 ", (64, 32))])
def test_parse_size(text, size):
    assert baselines.parse_size(text) == size


@pytest.mark.parametrize("text", ["32", "0x16", "32x0", "axb", "32x16x3", "-4x2", ""])
def test_parse_size_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError, match="HEIGHTxWIDTH"):
        baselines.parse_size(text)


def test_command_line_writes_an_embedding_file(images, capsys):
    out = images / "emb" / "pixels.h5"
    assert baselines.main(["--dataset", str(images / "set.csv"), "--image_root", str(images),
                           "--filename", str(out), "--size", "4x2", "--quiet"]) == 0
    assert "Wrote 3 pixel embeddings" in capsys.readouterr().out
    emb = read_embeddings(str(out), expected_rows=3)
    assert emb.shape == (3, 24)
    np.testing.assert_allclose(emb[0, :3], [1, 0, 0])
    assert read_strings(str(out), "pids") == ["0001", "0002", "-1"]
    assert read_strings(str(out), "fids") == ["img/red.png", "img/blue.png", "img/split.png"]
    assert read_strings(str(out), "augmentation_types") == ["original_resize"]
    with h5py.File(out, "r") as f:
        assert f.attrs["baseline"] == "pixels" and f.attrs["size"] == "4x2"
    assert os.listdir(images / "emb") == ["pixels.h5"]  # no temporary file left


def test_command_line_errors(images, capsys):
    (images / "missing.csv").write_text("0001,img/nope.png\n")
    assert baselines.main(["--dataset", str(images / "missing.csv"), "--image_root", str(images),
                           "--filename", str(images / "out.h5")]) == 2
    assert "nope.png" in capsys.readouterr().err
    assert not (images / "out.h5").exists()
    with pytest.raises(SystemExit) as exit_:
        baselines.main(["--dataset", str(images / "set.csv"), "--image_root", str(images),
                        "--filename", str(images / "out.h5"), "--size", "0x16"])
    assert exit_.value.code == 2


def test_raw_pixels_rank_the_demo_poorly(tmp_path):
    """The Market-1501 protocol (same id+camera and junk ignored) on a demo split: far from perfect."""
    result = demo.generate(str(tmp_path / "d"), quiet=True, seed=1, train_ids=2, test_ids=30, cameras=6,
                           images_per_camera=2, junk=20, distractors=20, height=64, width=32)
    query, gallery = read_csv(result.query_csv, result.root), read_csv(result.test_csv, result.root)
    q_emb, g_emb = baselines.pixel_embeddings(query), baselines.pixel_embeddings(gallery)

    def camera(fid):
        return re.search(r"_c(\d)s", fid)[1]

    g_cams = np.array([camera(f) for f in gallery.fids])
    aps, hits = [], []
    for pid, fid, emb in zip(query.pids, query.fids, q_emb):
        keep = ~((gallery.pids == pid) & (g_cams == camera(fid))) & (gallery.pids != "-1")
        dist = np.linalg.norm(g_emb[keep] - emb, axis=1)
        aps.append(average_precision_score(gallery.pids[keep] == pid, -dist))
        hits.append(gallery.pids[keep][np.argmin(dist)] == pid)
    print(f"pixel baseline on a small demo split: mAP {np.mean(aps):.1%}, rank-1 {np.mean(hits):.1%}")
    assert np.mean(aps) < 0.3 and np.mean(hits) < 0.5
