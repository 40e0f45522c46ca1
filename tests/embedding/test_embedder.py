"""The Python API: `Embedder` equals embed.py on files and on uint8 arrays; its errors; the README snippet."""

import os
import re
import shutil

import cv2
import h5py
import numpy as np
import pytest

from conftest import REPO
from trinet.cli.embed import main as embed_main
from trinet.core.errors import TrinetError


@pytest.fixture(scope="module")
def embedder(finished):
    from trinet import Embedder
    return Embedder.from_experiment(str(finished))


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    """`(csv, paths, RGB arrays)` of 4 lossless images of three sizes (one the net input size, 32x16)."""
    folder = tmp_path_factory.mktemp("pngs")
    rng = np.random.default_rng(7)
    paths, arrays = [], []
    for i, size in enumerate([(40, 20), (32, 16), (24, 12), (40, 20)]):
        rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        path = str(folder / f"{i}.png")
        cv2.imwrite(path, rgb[..., ::-1])  # OpenCV writes BGR
        paths.append(path)
        arrays.append(rgb)
    csv = folder / "d.csv"
    csv.write_text("".join(f"{i},{p}\n" for i, p in enumerate(paths)))
    return str(csv), paths, arrays


@pytest.mark.parametrize("flags, options", [
    ([], {}),
    (["--flip_augment", "--crop_augment", "five", "--aggregator", "normalized_mean"],
     {"flip": True, "crops": "five", "aggregator": "normalized_mean"}),
])
def test_the_api_equals_embed_py_on_paths_and_arrays(finished, embedder, pngs, tmp_path, flags, options):
    csv, paths, arrays = pngs
    out = str(tmp_path / "e.h5")
    assert embed_main(["--experiment_root", str(finished), "--dataset", csv, "--filename", out, "--quiet",
                       "--batch_size", "20", *flags]) == 0
    with h5py.File(out) as f:
        written = f["emb"][()]
    assert written.shape == (4, 8)
    from_paths = embedder.embed(paths, batch_size=20, **options)
    assert from_paths.dtype == np.float32 and from_paths.shape == (4, 8)
    np.testing.assert_allclose(from_paths, written, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(embedder.embed(arrays, **options), written, rtol=1e-5, atol=1e-6)
    same_size = np.stack([arrays[0], arrays[3]])  # one (N, H, W, 3) array
    np.testing.assert_allclose(embedder.embed(same_size, **options), written[[0, 3]], rtol=1e-5, atol=1e-6)


def test_checkpoints_and_model_file(finished, embedder, pngs):
    from trinet import Embedder
    _, paths, _ = pngs
    assert embedder.source.endswith("checkpoint-4.h5")
    assert embedder.net_size == (32, 16) and embedder.pre_crop_size == (36, 18) and embedder.dim == 8
    latest = embedder.embed(paths)
    np.testing.assert_allclose(Embedder.from_experiment(finished, "model.keras").embed(paths), latest,
                               rtol=1e-5, atol=1e-6)
    first = Embedder.from_experiment(finished, checkpoint=0).embed(paths)
    assert not np.allclose(first, latest)  # the untrained weights differ
    assert embedder.embed([]).shape == (0, 8)


@pytest.mark.parametrize("images, words", [
    (np.zeros((2, 32, 16, 3), np.float32), "received an array of shape (2, 32, 16, 3) and dtype float32"),
    (np.zeros((32, 16, 3), np.uint8), "one image: pass image[None]"),
    (np.zeros((2, 32, 16, 4), np.uint8), "shape (2, 32, 16, 4)"),
    ([np.zeros((32, 16), np.uint8)], "item 0 has shape (32, 16)"),
    ("a.jpg", "received the single path 'a.jpg': pass [path]"),
    (["nowhere/a.jpg"], "1 of 1 images are not readable files: nowhere/a.jpg (not found)"),
    ([np.zeros((8, 8, 3), np.uint8), "a.jpg"], "item 1 is a str (paths and arrays cannot be mixed)"),
    (3, "received int"),
])
def test_bad_images_are_named(embedder, images, words):
    with pytest.raises(TrinetError, match=re.escape(words)):
        embedder.embed(images)


def test_view_options_are_checked(embedder):
    """In the API's words (aggregator=, crops=), not the commands' flags (issue 26)."""
    images = np.zeros((1, 32, 16, 3), np.uint8)
    with pytest.raises(TrinetError, match=r"2 views per image .* need an aggregator to combine them; pass "
                                          r"aggregator='mean' or 'normalized_mean'\.$"):
        embedder.embed(images, flip=True)
    with pytest.raises(TrinetError, match=r"aggregator='mean' needs several views per image, .*; leave out "
                                          r"aggregator, or pass flip=True, crops='five' or a second scale"):
        embedder.embed(images, aggregator="mean")
    with pytest.raises(TrinetError, match=r"^scales=\(1.0, 1.0\): expected one or more different"):
        embedder.embed(images, scales=(1, 1), aggregator="mean")
    with pytest.raises(TrinetError, match="Unknown aggregator 'median'"):
        embedder.embed(images, flip=True, aggregator="median")


def test_experiment_errors(finished, tmp_path):
    from trinet import Embedder
    with pytest.raises(TrinetError, match=f"The experiment root {tmp_path / 'none'} is not found"):
        Embedder.from_experiment(tmp_path / "none")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(finished / "args.json", bare / "args.json")
    with pytest.raises(TrinetError, match=r"bare holds no model yet \(args.json: yes; checkpoints: none yet; "
                                          r"model.keras: no\)"):
        Embedder.from_experiment(bare)
    with pytest.raises(TrinetError, match="Checkpoint '77' not found"):
        Embedder.from_experiment(finished, 77)
    (bare / "args.json").unlink()
    with pytest.raises(TrinetError, match=r"bare holds no model yet \(args.json: no; checkpoints: none yet"):
        Embedder.from_experiment(bare)
    shutil.copy(finished / "model.keras", bare / "model.keras")
    with pytest.raises(TrinetError, match=r"net input size .* not known \(it has no args.json\); pass "
                                          r"net_size=\(height, width\)\.$"):
        Embedder.from_experiment(bare)


def readme_snippet() -> str:
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        section = f.read().split("### Use a trained model from Python", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_snippet_runs(finished, pngs, tmp_path, monkeypatch):
    """The README's code, run as written against a tiny experiment in the paths it names."""
    _, paths, _ = pngs
    code = readme_snippet()
    root = re.findall(r'Embedder.from_experiment\("([^"]+)"', code)[0]
    image = re.findall(r'"([^"]+\.jpg)"', code)[0]
    monkeypatch.chdir(tmp_path)
    shutil.copytree(finished, root)
    os.makedirs(os.path.dirname(image))
    shutil.copy(paths[0], image)  # a PNG under a .jpg name: decoded by its content, as TensorFlow does
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["gallery"].shape == (1, 8) and namespace["gallery"].dtype == np.float32
    assert namespace["queries"].shape == (2, 8)


def test_a_missing_best_checkpoint_is_named_in_the_apis_words(finished, image_set, tmp_path, capsys):
    """The API's error names its parameter (checkpoint='best'); the command's, its flag (issue 26)."""
    from trinet import Embedder
    from trinet.cli.embed import main as embed_main
    with pytest.raises(TrinetError, match=r"^checkpoint='best': .* has no best.h5"):
        Embedder.from_experiment(finished, "best")
    csv, images = image_set
    status = embed_main(["--experiment_root", str(finished), "--dataset", csv, "--image_root", images,
                         "--checkpoint", "best", "--filename", str(tmp_path / "e.h5")])
    assert status == 2 and "error: --checkpoint best: " in capsys.readouterr().err
