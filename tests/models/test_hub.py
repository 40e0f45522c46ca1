"""keras-hub backbones (`--model_name keras_hub`) and TransReID's recipe: the position-embedding resize
against a numpy reference, the camera embedding (SIE), the ViT rebuilt around a preset's encoder against
keras-hub's own model, the square path of DINOv2, layer-wise learning-rate decay, the flags' refusals, the
offline refusal of a remote preset, and a tiny ViT preset end to end (train, resume bit for bit, embed,
export). No test touches the network: presets are written here from tiny random configs."""

import os
import shutil
import socket
import sys
import time

import numpy as np
import pytest

from conftest import assert_same_checkpoints, write_image_set
from trinet.config.settings import TrainSettings
from trinet.core.errors import TrinetError
from trinet.models.backbones import hub
from trinet.models.heads import HEADS

needs_hub = pytest.mark.skipif(not hub.available(), reason="keras-hub is not installed (pip install "
                                                           "'trinet[hub]')")

#: The tiny ViT of these tests: 32x32 images in 8x8 patches, 2 blocks of width 16.
TINY_VIT = dict(image_size=(32, 32), patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32)


@pytest.fixture(scope="module")
def vit_preset(tmp_path_factory):
    """A local preset folder of a tiny random keras-hub ViT (with its weights)."""
    pytest.importorskip("keras_hub")
    return hub.make_tiny_vit_preset(str(tmp_path_factory.mktemp("presets") / "tiny_vit"), **TINY_VIT)


# -- position embeddings ---------------------------------------------------------------------------------


def _cubic(x, a=-0.75):
    """Keys' cubic convolution kernel."""
    x = abs(x)
    if x <= 1:
        return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
    if x < 2:
        return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
    return 0.0


def _bicubic_numpy(grid, target):
    """A straightforward bicubic resize `(h, w, C) -> (H, W, C)` as PyTorch's (TransReID's): half-pixel
    centres, Keys' a = -0.75, indices clamped at the edges."""
    h, w, _ = grid.shape
    out = np.zeros((*target, grid.shape[2]))
    for i in range(target[0]):
        y = (i + 0.5) * h / target[0] - 0.5
        for j in range(target[1]):
            x = (j + 0.5) * w / target[1] - 0.5
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            for m in range(y0 - 1, y0 + 3):
                for n in range(x0 - 1, x0 + 3):
                    weight = _cubic(y - m) * _cubic(x - n)
                    out[i, j] += weight * grid[min(max(m, 0), h - 1), min(max(n, 0), w - 1)]
    return out


def test_resize_position_embedding_matches_a_numpy_bicubic_reference_and_keeps_the_class_token():
    from trinet.models.backbones.hub_layers import resize_position_embedding

    rng = np.random.default_rng(0)
    table = rng.normal(size=(1 + 3 * 2, 4)).astype(np.float32)
    resized = resize_position_embedding(table, (3, 2), (5, 4))
    assert resized.shape == (1 + 5 * 4, 4)
    np.testing.assert_array_equal(resized[0], table[0])  # the class token's row is kept
    expected = _bicubic_numpy(table[1:].reshape(3, 2, 4).astype(np.float64), (5, 4))
    np.testing.assert_allclose(resized[1:].reshape(5, 4, 4), expected, atol=1e-6)
    # the preset's grid unchanged, batched or not
    np.testing.assert_array_equal(resize_position_embedding(table[None], (3, 2), (3, 2))[0], table)


def test_resize_position_embedding_preserves_a_constant():
    from trinet.models.backbones.hub_layers import resize_position_embedding

    table = np.full((1 + 14 * 14, 3), 0.25, np.float32)
    table[0] = -1.0
    resized = resize_position_embedding(table, (14, 14), (21, 10))  # ViT-B/16 at 224 -> 256x128, stride 12
    np.testing.assert_allclose(resized[1:], 0.25, atol=1e-6)
    assert resized.shape == (1 + 21 * 10, 3) and resized[0, 0] == -1.0
    with pytest.raises(ValueError, match="not 1 \\+ 3 x 3"):
        resize_position_embedding(table, (3, 3), (2, 2))


def test_patch_grid_of_transreid():
    from trinet.models.backbones.hub_layers import patch_grid

    assert patch_grid((256, 128), (16, 16), (12, 12)) == (21, 10)  # TransReID's 210 patches
    assert patch_grid((256, 128), (16, 16), (16, 16)) == (16, 8)


# -- the camera embedding --------------------------------------------------------------------------------


@needs_hub
def test_the_camera_embedding_changes_the_tokens_only_through_the_camera():
    """Same image, two cameras: every token moves by exactly lambda * (e_a - e_b); same camera: the same
    tokens. The camera vectors start non-zero (TransReID's truncated normal), so cameras differ from the
    first step."""
    import keras

    from trinet.models.backbones.hub_layers import TokenEmbedding

    keras.utils.set_random_seed(0)
    layer = TokenEmbedding(8, (4, 4), (2, 2), (3, 3), num_cameras=3, camera_scale=3.0)
    image = np.random.default_rng(1).uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    images = np.repeat(image, 3, axis=0)
    tokens = np.asarray(layer([images, np.array([0, 2, 0], np.int32)]))
    assert tokens.shape == (3, 1 + 9, 8)
    np.testing.assert_array_equal(tokens[0], tokens[2])
    table = layer.camera_embedding.numpy()
    assert np.all(np.abs(table) > 0) and np.all(np.abs(table) <= 2 * 0.02)
    np.testing.assert_allclose(tokens[1] - tokens[0], np.broadcast_to(3.0 * (table[2] - table[0]), (10, 8)),
                               atol=1e-6)
    assert not np.allclose(tokens[1], tokens[0])


# -- building from presets --------------------------------------------------------------------------------


@needs_hub
def test_the_rebuilt_vit_equals_keras_hubs_at_the_presets_size(vit_preset):
    """At the preset's own input size and patch stride, trinet's ViT (token embedding, keras-hub's encoder
    with the erf GELU) computes what keras-hub's ViTBackbone computes, from the preset's weights."""
    import keras
    import keras_hub

    from trinet.models.backbones.hub_layers import ScaleOffset

    backbone = hub.build(vit_preset, "preset", net_size=(32, 32))
    images = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    feature_map, token = backbone(images)
    reference = keras_hub.models.Backbone.from_preset(vit_preset)
    tokens = np.asarray(reference(ScaleOffset()(images)))  # keras-hub's ViT takes [-1, 1] images
    np.testing.assert_allclose(np.asarray(token), tokens[:, 0], atol=1e-5)
    np.testing.assert_allclose(np.asarray(feature_map), tokens[:, 1:].reshape(2, 4, 4, 16), atol=1e-5)
    assert keras.ops.shape(feature_map) == (2, 4, 4, 16)


@needs_hub
def test_overlapping_patches_on_a_person_crop_resize_the_presets_position_embeddings(vit_preset):
    """256x128-like crops (32x16 here) with stride 4 for 8x8 patches: a 7x3 grid, whose position embeddings
    are the preset's 4x4 ones resized; a random start has them of the same shape."""
    from trinet.models.backbones.hub_layers import resize_position_embedding

    import keras_hub

    backbone = hub.build(vit_preset, "preset", net_size=(32, 16), patch_stride=4)
    feature_map, token = backbone(np.zeros((1, 32, 16, 3), np.float32))
    assert tuple(feature_map.shape) == (1, 7, 3, 16) and tuple(token.shape) == (1, 16)
    preset = keras_hub.models.Backbone.from_preset(vit_preset).get_layer("vit_patching_and_embedding")
    table = preset.position_embedding.embeddings.numpy()
    np.testing.assert_allclose(backbone.get_layer("token_embedding").position_embedding.numpy()[0],
                               resize_position_embedding(table, (4, 4), (7, 3)), atol=1e-7)
    random = hub.build(vit_preset, None, net_size=(32, 16), patch_stride=4)
    assert random.get_layer("token_embedding").position_embedding.shape == (1, 1 + 21, 16)


@needs_hub
def test_square_token_backbones_take_a_resized_square_input(tmp_path):
    """DINOv2 rejects 2:1 inputs: trinet resizes the net input to the preset's square size inside the model
    and returns its patch tokens as the map, its class token as the token."""
    import keras
    import keras_hub
    import tensorflow as tf

    from trinet.models.backbones.hub_layers import ScaleOffset

    keras.utils.set_random_seed(0)
    net = keras_hub.models.DINOV2Backbone(patch_size=8, num_layers=1, hidden_dim=16, num_heads=2,
                                          intermediate_dim=32, image_shape=(32, 32, 3),
                                          position_embedding_shape=(32, 32, 3))
    net.save_to_preset(str(tmp_path / "dino"))
    backbone = hub.build(str(tmp_path / "dino"), "preset", net_size=(32, 16))
    images = np.random.default_rng(3).uniform(0, 255, (2, 32, 16, 3)).astype(np.float32)
    feature_map, token = backbone(images)
    assert tuple(feature_map.shape) == (2, 4, 4, 16) and tuple(token.shape) == (2, 16)
    square = tf.image.resize(ScaleOffset()(images), (32, 32), method="bilinear")
    tokens = np.asarray(keras_hub.models.Backbone.from_preset(str(tmp_path / "dino"))(square))
    np.testing.assert_allclose(np.asarray(token), tokens[:, 0], atol=1e-5)
    np.testing.assert_allclose(np.asarray(feature_map), tokens[:, 1:].reshape(2, 4, 4, 16), atol=1e-5)
    with pytest.raises(TrinetError, match="--patch_stride needs a ViT"):
        hub.build(str(tmp_path / "dino"), None, net_size=(32, 16), patch_stride=4)


@needs_hub
def test_a_local_folder_without_weights_is_refused_for_preset_weights(tmp_path, vit_preset):
    bare = tmp_path / "bare"
    shutil.copytree(vit_preset, bare)
    os.remove(bare / hub.WEIGHTS_FILE)
    with pytest.raises(TrinetError, match="holds no model.weights.h5"):
        hub.build(str(bare), "preset")
    assert hub.build(str(bare), None, net_size=(32, 16)) is not None  # the architecture alone is enough


# -- offline and without keras-hub ------------------------------------------------------------------------


def _offline(monkeypatch, tmp_path):
    """No network: every connection fails at once; an empty Keras home."""
    def refuse(*args, **kwargs):
        raise OSError("Network is unreachable (test)")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


def test_a_remote_preset_is_refused_at_once_offline(monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    start = time.perf_counter()
    with pytest.raises(TrinetError) as error:
        hub.resolve("vit_base_patch16_224_imagenet", weights=True)
    message = str(error.value)
    assert time.perf_counter() - start < 1
    assert "--backbone_preset vit_base_patch16_224_imagenet is a remote keras-hub preset" in message
    assert ("from_preset('vit_base_patch16_224_imagenet', load_weights=True).save_to_preset('PRESET_DIR')"
            in message)
    assert "--backbone_preset PRESET_DIR" in message
    assert hub.cache_folder("vit_base_patch16_224_imagenet") in message
    assert not os.path.exists(tmp_path / "keras_home" / "hub_presets")


@needs_hub
def test_train_py_refuses_a_remote_preset_offline_before_writing(monkeypatch, tmp_path, capsys):
    from trinet.cli.train import main

    _offline(monkeypatch, tmp_path)
    csv = write_image_set(str(tmp_path / "data"), identities=3, per_identity=2)
    root = tmp_path / "exp"
    assert main(["--experiment_root", str(root), "--train_set", csv, "--image_root", str(tmp_path / "data"),
                 "--model_name", "keras_hub", "--backbone_preset", "hf://google/vit-base-patch16-224",
                 "--batch_p", "2", "--batch_k", "2", "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "hf://google/vit-base-patch16-224 is a remote keras-hub preset" in err and "huggingface.co" in err
    assert not os.path.exists(root) or not os.listdir(root)


def test_the_flag_says_how_to_install_keras_hub_when_it_cannot_be_imported(monkeypatch, tmp_path, capsys):
    from trinet.cli.train import main

    monkeypatch.setitem(sys.modules, "keras_hub", None)  # `import keras_hub` fails
    assert not hub.available()
    with pytest.raises(SystemExit):
        main(["--experiment_root", str(tmp_path / "e"), "--train_set", __file__, "--model_name", "keras_hub",
              "--backbone_preset", str(tmp_path)])
    assert "--model_name keras_hub needs keras-hub, which is not installed: pip install 'trinet[hub]'" in \
        capsys.readouterr().err


# -- flags refused at parse time ----------------------------------------------------------------------------


@needs_hub
@pytest.mark.parametrize("changes, words", [
    (dict(model_name="lunet", patch_stride=12), "--patch_stride applies to the ViTs of --model_name "
                                                "keras_hub"),
    (dict(model_name="lunet", pooling="token"), "--pooling token takes a transformer's class token"),
    (dict(model_name="lunet", backbone_preset="x"), "--backbone_preset applies to --model_name keras_hub "
                                                    "only"),
    (dict(model_name="lunet", initial_checkpoint="preset"), "--initial_checkpoint preset loads the weights"),
    (dict(), "--model_name keras_hub needs --backbone_preset"),
    (dict(PRESET=True, patch_stride=9), "--patch_stride 9 is larger than the patch size 8x8"),
    (dict(PRESET=True, initial_checkpoint="imagenet"), "takes the weights of its preset: "
                                                       "--initial_checkpoint"),
    (dict(PRESET=True, layer_lr_decay=0.7, new_layers_lr_multiplier=10.0),
     "--layer_lr_decay 0.7 and --new_layers_lr_multiplier 10.0"),
    (dict(PRESET=True, layer_lr_decay=0.7, mixed_precision="float16"), "does not go with --mixed_precision"),
    (dict(PRESET=True, camera_embedding=True, val_query="q.csv", val_gallery="g.csv",
          val_excluder="market1501"),
     "--camera_embedding does not go with --val_query"),
    (dict(PRESET=True, camera_embedding=True, mutual_models=2, mutual_logits_weight=0.0),
     "--camera_embedding does not go with --mutual"),
    (dict(PRESET=True, last_stride=1), "--last_stride 1 is not available for --model_name keras_hub"),
    (dict(backbone_preset="/no/such/folder"), "--backbone_preset /no/such/folder: no such folder"),
])
def test_flag_combinations_are_refused(vit_preset, changes, words):
    changes = dict(changes)
    if changes.pop("PRESET", False):
        changes["backbone_preset"] = vit_preset
    settings = TrainSettings(train_set="t.csv", **{"model_name": "keras_hub", **changes})
    with pytest.raises(TrinetError, match=None) as error:
        settings.validate()
    assert words in str(error.value)


@needs_hub
def test_a_map_backbone_refuses_the_vit_flags(tmp_path):
    import keras_hub

    net = keras_hub.models.ResNetBackbone(input_conv_filters=[64], input_conv_kernel_sizes=[3],
                                          stackwise_num_filters=[64], stackwise_num_blocks=[1],
                                          stackwise_num_strides=[1], block_type="basic_block",
                                          image_shape=(None, None, 3))
    net.save_to_preset(str(tmp_path / "resnet"))
    for changes, words in ((dict(camera_embedding=True), "--camera_embedding needs a ViT"),
                           (dict(pooling="token"), "--pooling token takes the class token")):
        with pytest.raises(TrinetError, match=words):
            TrainSettings(train_set="t", model_name="keras_hub", backbone_preset=str(tmp_path / "resnet"),
                          **changes).validate()
    backbone = hub.build(str(tmp_path / "resnet"), "preset")
    assert len(backbone(np.zeros((1, 32, 16, 3), np.float32)).shape) == 4  # a map, used as it is


# -- layer-wise learning-rate decay ------------------------------------------------------------------------


@needs_hub
def test_layer_lr_decay_gives_each_depth_its_factor(vit_preset):
    """decay^(L + 1 - d) for the token embedding (d = 0) and block d; the final norm and the new layers at 1;
    every trainable variable in exactly one group."""
    from trinet.training.trainer import Trainer

    s = TrainSettings(model_name="keras_hub", backbone_preset=vit_preset, head_name="bnneck", batch_p=3,
                      batch_k=3, net_input_height=32, net_input_width=16, seed=1, layer_lr_decay=0.5,
                      optimizer="sgd", momentum=0.0, learning_rate=0.1, decay_start_iteration=-1)
    trainer = Trainer(s, 4)
    updates = trainer.updates("all")
    grouped = [v.path for _, group in updates for v in group]
    assert sorted(grouped) == sorted(v.path for v in trainer.model.trainable_variables)
    factors = {}
    for optimizer, group in updates[1:]:
        depths = {0 if p.startswith("token_embedding/") else int(p.split("block_")[1].split("/")[0])
                  for p in (v.path for v in group)}
        assert len(depths) == 1
        factors[depths.pop()] = float(optimizer.learning_rate) / 0.1
    np.testing.assert_allclose([factors[d] for d in (0, 1, 2)], [0.125, 0.25, 0.5], rtol=1e-6)
    assert float(updates[0][0].learning_rate) == pytest.approx(0.1)
    assert any("vit_encoder/ln" in v.path for v in updates[0][1])


# -- end to end ----------------------------------------------------------------------------------------------


def _train(root, csv, images, preset, *extra):
    from trinet.cli.train import main

    return main(["--experiment_root", str(root), "--train_set", csv, "--image_root", images,
                 "--model_name", "keras_hub", "--backbone_preset", preset, "--batch_p", "3", "--batch_k", "3",
                 "--net_input_height", "32", "--net_input_width", "16", "--loading_threads", "2",
                 "--seed", "4", "--train_iterations", "4", "--checkpoint_frequency", "2", *extra])


def _rewound_resume(root, tmp_path):
    """Resume a copy of the finished `root` from checkpoint-2; returns the copy."""
    from trinet.cli.train import main

    copy = tmp_path / "resumed"
    shutil.copytree(root, copy)
    os.remove(copy / "checkpoint-4.h5")
    os.remove(copy / "model.keras")
    assert main(["--experiment_root", str(copy), "--resume"]) == 0
    return copy


@needs_hub
@pytest.mark.slow
def test_a_tiny_vit_preset_trains_resumes_bit_for_bit_embeds_and_exports(tmp_path, vit_preset):
    """TransReID's ViT recipe on a local preset (overlapping patches, class token, BNNeck, triplet + id):
    it trains, resumes bit for bit, embeds the same from its checkpoint and model.keras, and its SavedModel,
    ONNX and TFLite exports verify against the Embedder."""
    from trinet import Embedder
    from trinet.export.command import main as export_main

    csv = write_image_set(str(tmp_path / "data"), identities=4, per_identity=3)
    images = str(tmp_path / "data")
    root = tmp_path / "exp"
    assert _train(root, csv, images, vit_preset, "--patch_stride", "4", "--pooling", "token", "--head_name",
                  "bnneck", "--id_loss_weight", "1", "--initial_checkpoint", "preset") == 0
    resumed = _rewound_resume(root, tmp_path)
    assert_same_checkpoints(root / "checkpoint-4.h5", resumed / "checkpoint-4.h5")
    paths = [os.path.join(images, f"images/{pid:04d}_00.jpg") for pid in range(4)]
    from_checkpoint = Embedder.from_experiment(str(root)).embed(paths)
    from_model = Embedder.from_experiment(str(root), "model.keras").embed(paths)
    np.testing.assert_allclose(from_model, from_checkpoint, atol=1e-5)
    assert from_checkpoint.shape == (4, 16)
    for fmt, name in (("saved_model", "serving"), ("onnx", "m.onnx"), ("tflite", "m.tflite")):
        assert export_main(["--experiment_root", str(root), "--format", fmt, "--output", str(tmp_path / name),
                            "--quiet"]) == 0, fmt


@needs_hub
@pytest.mark.slow
def test_the_camera_embedding_trains_resumes_and_embeds_with_the_camera(tmp_path, vit_preset, capsys):
    """--camera_embedding (and --layer_lr_decay) on a CSV with a camera column: bit-for-bit resume; embed.py
    passes each image's camera (the same images under other cameras embed differently); a CSV without
    cameras is refused at embed time, and so is an export."""
    from trinet import Embedder
    from trinet.cli.embed import main as embed_main
    import h5py
    from trinet.export.command import main as export_main

    data = tmp_path / "data"
    plain = write_image_set(str(data), identities=4, per_identity=3)
    rows = open(plain).read().split()
    with open(data / "cams.csv", "w") as f:
        f.write("pid,path,camera\n" + "".join(f"{row},{i % 3}\n" for i, row in enumerate(rows)))
    with open(data / "cams_swapped.csv", "w") as f:
        f.write("pid,path,camera\n" + "".join(f"{row},{(i + 1) % 3}\n" for i, row in enumerate(rows)))
    root = tmp_path / "exp"
    assert _train(root, str(data / "cams.csv"), str(data), vit_preset, "--camera_embedding", "--pooling",
                  "token", "--head_name", "bnneck", "--id_loss_weight", "1", "--layer_lr_decay", "0.7") == 0
    resumed = _rewound_resume(root, tmp_path)
    assert_same_checkpoints(root / "checkpoint-4.h5", resumed / "checkpoint-4.h5")

    out = {}
    for name in ("cams", "cams_swapped"):
        assert embed_main(["--experiment_root", str(root), "--dataset", str(data / f"{name}.csv"),
                           "--filename", f"{name}.h5", "--quiet"]) == 0
        with h5py.File(root / f"{name}.h5") as f:
            out[name] = f["emb"][()]
    assert not np.allclose(out["cams"], out["cams_swapped"], atol=1e-4)
    embedder = Embedder.from_experiment(str(root), "model.keras")
    paths = [str(data / row.split(",")[1]) for row in rows]
    cameras = np.arange(len(rows)) % 3
    np.testing.assert_allclose(embedder.embed(paths, cameras=cameras), out["cams"], atol=1e-5)
    with pytest.raises(TrinetError, match="trained with --camera_embedding"):
        embedder.embed(paths)
    capsys.readouterr()
    assert embed_main(["--experiment_root", str(root), "--dataset", plain, "--filename", "x.h5"]) == 2
    assert "has no `camera` column and its file names follow no release's naming" in capsys.readouterr().err
    assert export_main(["--experiment_root", str(root), "--format", "saved_model", "--output",
                        str(tmp_path / "serving")]) == 2
    assert "exports serve images only" in capsys.readouterr().err


# -- devices, precision and the recipe --------------------------------------------------------------------


@needs_hub
def test_bfloat16_computes_the_vit_in_bfloat16_with_float32_variables(vit_preset):
    import keras
    import tensorflow as tf

    from trinet.training.trainer import Trainer

    s = TrainSettings(model_name="keras_hub", backbone_preset=vit_preset, head_name="bnneck", batch_p=3,
                      batch_k=3, net_input_height=32, net_input_width=16, seed=2, id_loss_weight=1.0,
                      patch_stride=4, pooling="token", mixed_precision="bfloat16")
    trainer = Trainer(s, 3)
    embedding = trainer.model.get_layer("backbone").get_layer("token_embedding")
    assert embedding.compute_dtype == "bfloat16" and embedding.position_embedding.dtype == "float32"
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (9, 32, 16, 3)).astype(np.float32))
    labels = tf.constant(np.repeat(np.arange(3), 3).astype(np.int32))
    losses = [float(trainer.step(i)(images, labels)["loss"]) for i in range(3)]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert keras.config.dtype_policy().name == "float32"


@needs_hub
@pytest.mark.slow
def test_mirrored_with_cross_replica_mining_reproduces_one_device(tmp_path, vit_preset):
    """The ViT under --distribute mirrored (two logical CPU devices, tests/scripts/replicated_steps.py)
    with --cross_replica_mining takes the steps one device takes (no batch norm in the backbone)."""
    import json
    import subprocess

    from conftest import REPO, SCRIPTS

    def steps(name, **changes):
        out = tmp_path / f"{name}.npz"
        env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
        settings = dict(model_name="keras_hub", backbone_preset=vit_preset, patch_stride=4, pooling="token",
                        batch_norm="keras", **changes)
        script = os.path.join(SCRIPTS, "replicated_steps.py")
        subprocess.run([sys.executable, script, json.dumps(settings), "3", str(out)], check=True, env=env)
        return dict(np.load(out))

    one = steps("one")
    two = steps("two", distribute="mirrored", cross_replica_mining=True, sync_batchnorm=True)
    assert int(two["replicas"]) == 2 and int(one["replicas"]) == 1
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-4)
    for path in (p for p in one if p.startswith("var:token_embedding")):
        np.testing.assert_allclose(two[path], one[path], rtol=1e-3, atol=1e-6, err_msg=path)


@needs_hub
def test_the_transreid_recipe_passes_flags_that_train_py_accepts(tmp_path):
    """experiments/transreid_market1501_train.sh with a stand-in for python that records its commands:
    the training command validates (on a tiny ViT with TransReID's 16-pixel patches), then embed and
    evaluate."""
    import subprocess

    from conftest import REPO
    from trinet.cli.train import build_parser, resolve_settings

    preset = hub.make_tiny_vit_preset(str(tmp_path / "vit16"), (32, 32), 16, 1, 2, 16, 32)
    for split in ("train", "query", "test"):
        (tmp_path / f"market1501_{split}.csv").write_text("pid,path,camera\n0001,a.jpg,1\n")
    (tmp_path / "images").mkdir()
    log = tmp_path / "calls.txt"
    fake = tmp_path / "python"
    fake.write_text(f"#!/usr/bin/env bash\nprintf '%s\\n' \"$@\" > {log}.$$\necho \"{log}.$$\" >> {log}\n")
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake), "PRESET": preset, "CSV_PREFIX": str(tmp_path / "market1501")}
    subprocess.run(["bash", os.path.join(REPO, "experiments", "transreid_market1501_train.sh"),
                    str(tmp_path / "images"), str(tmp_path / "exp")], check=True, env=env)
    calls = [open(name).read().split("\n")[:-1] for name in open(log).read().split()]
    names = [os.path.basename(call[0]) for call in calls]
    assert names == ["train.py", "embed.py", "embed.py", "evaluate.py"]
    settings = resolve_settings(build_parser(), calls[0][1:])
    sie = (settings.patch_stride, settings.camera_embedding, settings.camera_embedding_scale)
    assert sie == (12, True, 3.0)
    head = (settings.pooling, settings.head_name, settings.initial_checkpoint)
    assert head == ("token", "bnneck", "preset")
    assert (settings.batch_p, settings.batch_k, settings.learning_rate, settings.train_iterations) == \
        (16, 4, 0.008, 24240)


@needs_hub
@pytest.mark.parametrize("head", sorted(HEADS))
def test_every_head_trains_on_the_vits_token_map(vit_preset, head):
    """Every head (with the classifier) on a ViT: one step moves the loss; PCB's stripes and the local
    branch take the rows of the patch-token map (7 with stride 4 at 32x16)."""
    import tensorflow as tf

    from trinet.training.trainer import Trainer

    extra = dict(num_stripes=7) if head == "pcb" else dict(local_branch=True, local_stripes=7)
    s = TrainSettings(train_set="t.csv", model_name="keras_hub", backbone_preset=vit_preset, head_name=head,
                      embedding_dim=8,
                      batch_p=3, batch_k=3, net_input_height=32, net_input_width=16, seed=3,
                      id_loss_weight=1.0, patch_stride=4, **extra)
    s.validate()
    trainer = Trainer(s, 3)
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (9, 32, 16, 3)).astype(np.float32))
    labels = tf.constant(np.repeat(np.arange(3), 3).astype(np.int32))
    losses = [float(trainer.step(i)(images, labels)["loss"]) for i in range(2)]
    assert np.all(np.isfinite(losses)) and losses[1] != losses[0]
    with pytest.raises(TrinetError, match="larger than the height of the feature map"):
        Trainer(s.replace(**({"num_stripes": 8} if head == "pcb" else {"local_stripes": 8})), 3)
