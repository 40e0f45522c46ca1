"""trinet-projector: the projector files parsed back (config, tensor, metadata, sprite), the sample, the
errors."""

import os

import cv2
import numpy as np
import pytest
from google.protobuf import text_format
from PIL import Image

from trinet.cli.projector import main
from trinet.data.embeddings.hdf5 import write_embeddings
from trinet.tools.projector import MAX_SPRITE, sprite_cell


@pytest.fixture
def data(tmp_path):
    """Ten Market-1501-named images of distinct colours, their CSV and 5-d embeddings."""
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    fids, pids, colours = [], [], []
    for i in range(10):
        fid = f"images/{i // 2 + 1:04d}_c{i % 3 + 1}s1_{i:06d}_01.jpg"
        colour = [int(v) for v in rng.integers(0, 256, 3)]
        cv2.imwrite(str(tmp_path / fid), np.full((64, 32, 3), colour[::-1], np.uint8))  # BGR on disk
        fids.append(fid)
        pids.append(f"{i // 2 + 1:04d}")
        colours.append(colour)
    csv = tmp_path / "set.csv"
    csv.write_text("".join(f"{p},{f}\n" for p, f in zip(pids, fids)))
    emb = rng.standard_normal((10, 5)).astype(np.float32)
    write_embeddings(str(tmp_path / "set.h5"), emb, pids=pids, fids=fids)
    return dict(tmp=tmp_path, csv=str(csv), h5=str(tmp_path / "set.h5"), fids=fids, pids=pids, emb=emb,
                colours=np.array(colours))


def run(data, *extra, output="projector"):
    return main(["--dataset", data["csv"], "--embeddings", data["h5"], "--image_root", str(data["tmp"]),
                 "--output", str(data["tmp"] / output), "--quiet", *extra])


def read_config(folder):
    from tensorboard.plugins import projector
    config = projector.ProjectorConfig()
    text_format.Parse((folder / "projector_config.pbtxt").read_text(), config)
    return config


def test_projector_files_read_back(data):
    assert run(data, "--naming", "market1501") == 0
    folder = data["tmp"] / "projector"
    config = read_config(folder)
    assert len(config.embeddings) == 1
    info = config.embeddings[0]
    assert list(info.tensor_shape) == [10, 5] and info.tensor_path == "tensor.bytes"
    tensor = np.fromfile(folder / info.tensor_path, np.float32).reshape(list(info.tensor_shape))
    np.testing.assert_array_equal(tensor, data["emb"])
    lines = (folder / info.metadata_path).read_text().splitlines()
    assert lines[0] == "identity\tcamera\tpath"
    assert [line.split("\t") for line in lines[1:]] == [
        [p, str(i % 3 + 1), f] for i, (p, f) in enumerate(zip(data["pids"], data["fids"]))]
    width, height = info.sprite.single_image_dim
    assert (width, height) == (32, 64)
    sprite = np.asarray(Image.open(folder / info.sprite.image_path).convert("RGB"))
    columns = sprite.shape[1] // width
    assert sprite.shape[0] // height * columns >= 10
    for k in range(10):
        cell = sprite[(k // columns) * height:(k // columns + 1) * height, (k % columns) * width:
                      (k % columns + 1) * width]
        np.testing.assert_allclose(cell.reshape(-1, 3).mean(axis=0), data["colours"][k], atol=4)


def test_sample_without_sprite_and_folder_rules(data, capsys):
    assert run(data, "--max_points", "4", "--seed", "1", "--no_sprite") == 0
    folder = data["tmp"] / "projector"
    info = read_config(folder).embeddings[0]
    assert list(info.tensor_shape) == [4, 5] and not info.sprite.image_path
    assert not (folder / "sprite.png").exists()
    paths = [line.split("\t")[2] for line in (folder / "metadata.tsv").read_text().splitlines()[1:]]
    rows = [data["fids"].index(p) for p in paths]
    assert rows == sorted(rows) and len(set(rows)) == 4  # a sample, in CSV order
    tensor = np.fromfile(folder / "tensor.bytes", np.float32).reshape(4, 5)
    np.testing.assert_array_equal(tensor, data["emb"][rows])
    assert run(data) == 0  # an older projector folder is written again
    assert list(read_config(folder).embeddings[0].tensor_shape) == [10, 5]
    taken = data["tmp"] / "taken"
    taken.mkdir()
    (taken / "x.txt").write_text("x")
    assert run(data, output="taken") == 2
    assert f"--output {taken} holds files but no projector" in capsys.readouterr().err
    assert run(data, "--naming", "msmt17") == 2
    assert "--naming msmt17: none of the file names" in capsys.readouterr().err


def test_sprite_cells_shrink_to_fit_and_refuse_beyond():
    assert sprite_cell(10) == (32, 64, 5)
    width, height, columns = sprite_cell(100_000)
    assert columns * width <= MAX_SPRITE and -(-100_000 // columns) * height <= MAX_SPRITE
    assert (width, height) < (32, 64)
    from trinet.core.errors import TrinetError
    with pytest.raises(TrinetError, match="--max_points"):
        sprite_cell(10_000_000)


def test_missing_images_are_grey_and_warned(data, caplog):
    os.remove(data["tmp"] / data["fids"][0])
    assert main(["--dataset", data["csv"], "--embeddings", data["h5"], "--image_root", str(data["tmp"]),
                 "--output", str(data["tmp"] / "p")]) == 0
    assert "1 images are missing or unreadable" in caplog.text
