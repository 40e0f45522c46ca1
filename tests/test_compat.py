"""Public paths keep working across versions: the package root, `trinet.layers`, the commands run as modules,
and an experiment written by the version before the package was split into part folders.

tests/fixtures/v2_experiment was written by trinet at commit b23e194 (the flat package), on the v1 fixture's
images:

    train.py --experiment_root exp --train_set train.csv --image_root . --model_name lunet --embedding_dim 8
        --batch_p 2 --batch_k 2 --net_input_height 32 --net_input_width 16 --pre_crop_height 36
        --pre_crop_width 18 --flip_augment --crop_augment --seed 7 --pooling gem --head_name bnneck
        --id_loss_weight 1 --optimizer sgd --momentum 0 --train_iterations 2 --checkpoint_frequency 2
    python -m trinet.export --experiment_root exp --format saved_model --output exp/export

`expected_emb.npy`: embed.py's embeddings of three images (`IMAGES`) from checkpoint-2;
`expected_export_emb.npy`: the export's `embed` signature on the same images as uint8 arrays;
`expected_resumed_emb.npy`: embed.py after `--resume` with `train_iterations` 3, all with the old code. Its
`model.keras` names the layers' old modules (`trinet.layers`, `trinet.pooling`); Keras finds them by their
registered names (`trinet>...`).
"""

import json
import os
import shutil
import subprocess
import sys

import cv2
import h5py
import numpy as np
import pytest

from conftest import ACROSS_BUILDS, FIXTURES, REPO

V2 = os.path.join(FIXTURES, "v2_experiment")
IMAGES = ["images/0000_00.jpg", "images/0001_01.jpg", "images/0003_02.jpg"]


def python(code: str) -> str:
    """Run `code` in a fresh interpreter (nothing of trinet imported before it); returns its stdout."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def v2(tmp_path):
    """A copy of the v2 fixture whose args.json points at the copy's data."""
    root = tmp_path / "v2"
    shutil.copytree(V2, root)
    args_path = root / "exp" / "args.json"
    args_path.write_text(json.dumps({**json.load(open(args_path)), "train_set": str(root / "train.csv"),
                                     "image_root": str(root)}))
    return root


def uint8_images(root) -> np.ndarray:
    """`IMAGES` of `root` as an `(3, 32, 16, 3)` uint8 RGB batch."""
    return np.stack([cv2.imread(os.path.join(root, name))[:, :, ::-1] for name in IMAGES])


def embed_file(root, tmp_path, *flags) -> np.ndarray:
    from trinet.cli import embed
    listing = tmp_path / "three.txt"
    listing.write_text("".join(f"{name}\n" for name in IMAGES))
    out = tmp_path / f"emb{len(list(tmp_path.glob('emb*.h5')))}.h5"
    assert embed.main(["--experiment_root", str(root / "exp"), "--dataset", str(listing), "--image_root",
                       str(root), "--filename", str(out), "--quiet", *flags]) == 0
    with h5py.File(out) as f:
        return f["emb"][()]


def test_the_package_root_and_trinet_layers_without_tensorflow_first():
    out = python("import sys, trinet; print('tensorflow' in sys.modules, trinet.__version__); "
                 "from trinet import Embedder; print(Embedder.__module__)")
    assert out.split() == ["False", __import__("trinet").__version__, "trinet.embedding.embedder"]
    import trinet.layers
    from trinet.models import layers, pooling
    assert trinet.layers.FusedBatchNormalization is layers.FusedBatchNormalization
    assert trinet.layers.GeneralizedMeanPooling is pooling.GeneralizedMeanPooling
    assert set(trinet.layers.__all__) <= set(dir(trinet.layers))


@pytest.mark.parametrize("module, usage", [("trinet.demo", "python -m trinet.demo"),
                                           ("trinet.export", "trinet-export")])
def test_the_commands_run_as_modules(module, usage):
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO})
    assert done.returncode == 0 and done.stdout.startswith(f"usage: {usage}"), done.stderr


def test_a_model_keras_of_the_flat_package_loads_in_a_fresh_process_after_importing_trinet_layers():
    """The README's promise: `keras.saving.load_model(path, safe_mode=True)` once `trinet.layers` is imported
    (the file names the old modules of GeM pooling and the fused batch norm)."""
    with open(os.path.join(V2, "exp", "model.keras"), "rb") as f:
        assert f.read(2) == b"PK"  # a zip, whose config.json names the modules
    import zipfile
    config = zipfile.ZipFile(os.path.join(V2, "exp", "model.keras")).read("config.json").decode()
    assert '"module": "trinet.pooling"' in config and '"module": "trinet.layers"' in config
    out = python(f"""
import json, keras, numpy as np, tensorflow as tf
import trinet.layers
model = keras.saving.load_model({os.path.join(V2, 'exp', 'model.keras')!r}, safe_mode=True)
# decoded as embed.py decodes (TensorFlow's JPEG decoder; the images have the input size already)
paths = [{V2!r} + '/' + name for name in {IMAGES!r}]
images = tf.stack([tf.io.decode_jpeg(tf.io.read_file(path), channels=3) for path in paths])
images = tf.cast(images, tf.float32)
out = model(images, training=False)
print(json.dumps(np.asarray(out['embedding'] if isinstance(out, dict) else out).tolist()))
""")
    np.testing.assert_allclose(np.array(json.loads(out)), np.load(os.path.join(V2, "expected_emb.npy")),
                               rtol=1e-5, atol=1e-6)


def test_an_experiment_of_the_flat_package_embeds_and_resumes(v2, tmp_path):
    expected = np.load(v2 / "expected_emb.npy")
    np.testing.assert_allclose(embed_file(v2, tmp_path), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(embed_file(v2, tmp_path, "--checkpoint", "model.keras"), expected, rtol=1e-5,
                               atol=1e-6)
    from trinet import Embedder
    np.testing.assert_allclose(Embedder.from_experiment(str(v2 / "exp")).embed([str(v2 / n) for n in IMAGES]),
                               expected, rtol=1e-5, atol=1e-6)
    from trinet.cli import train
    args_path = v2 / "exp" / "args.json"
    args_path.write_text(json.dumps({**json.load(open(args_path)), "train_iterations": 3}))
    assert train.main(["--experiment_root", str(v2 / "exp"), "--resume"]) == 0
    resumed = embed_file(v2, tmp_path)
    assert (v2 / "exp" / "checkpoint-3.h5").exists()
    np.testing.assert_allclose(resumed, np.load(v2 / "expected_resumed_emb.npy"), **ACROSS_BUILDS)
    assert not np.allclose(resumed, expected)  # it trained on


def test_an_export_of_the_flat_package_runs_and_equals_the_embedder(v2):
    from trinet import Embedder
    from trinet.export.formats import FORMATS, TOLERANCE
    images = uint8_images(v2)
    runners = FORMATS["saved_model"].run(str(v2 / "exp" / "export"), ("embed",))
    reference = Embedder.from_experiment(str(v2 / "exp")).embed(images)
    assert len(runners) == 2  # the `embed` signature and serving_default
    for name, _, run in runners:
        out = run(images)
        np.testing.assert_allclose(out, np.load(v2 / "expected_export_emb.npy"), rtol=1e-5, atol=1e-6,
                                   err_msg=name)
        assert np.abs(out - reference).max() <= TOLERANCE * max(1.0, np.abs(reference).max()), name
