"""keras-hub backbones (`--model_name keras_hub --backbone_preset NAME_OR_DIR`): a keras-hub image backbone
as trinet's backbone, behind trinet's poolings and heads, with TransReID's recipe for ViTs.

A preset is a local folder (what keras-hub's `save_to_preset` writes: `config.json`, optionally
`model.weights.h5` and `image_converter.json`), or a remote name (a keras-hub preset such as
`vit_base_patch16_224_imagenet`, `kaggle://...`, `hf://...`). The architecture comes from the preset's
`config.json`; its weights are loaded only with `--initial_checkpoint preset` (else the network starts from
a seeded random initialisation). A local folder never touches the network. A remote preset is downloaded
once, when a run names it, into `$KERAS_HOME/hub_presets/<name>/` (config only, or with its weights under
`--initial_checkpoint preset`), and read from there by later runs, embed.py and --resume; offline, it is
refused at once with the command that writes the folder elsewhere.

How the families become a feature map `(B, h, w, D)`:
- `ViTBackbone` is rebuilt by trinet around the preset's encoder (`hub_layers.TokenEmbedding`): the patch
  convolution with `--patch_stride` (TransReID's 12 for 16-pixel patches: overlapping patches), position
  embeddings resized bicubically from the preset's grid to the grid of the net input (256x128 with stride
  12: 21x10; `hub_layers.resize_position_embedding`), and with `--camera_embedding` SIE's camera vectors.
- `DINOV2Backbone` and `CLIPVisionEncoder` take square inputs only: the net input is resized inside the
  model to the preset's square image size (`image_shape`), a documented distortion of the 2:1 crops.
- For these token families the backbone returns the patch tokens as a map `(B, h, w, D)` (raster order;
  `--pooling avg|max|gem`, PCB and the local branch work on it) and the class token `(B, D)`, which
  `--pooling token` takes as the pooled feature (TransReID's, with `--head_name bnneck`).
- Backbones whose output is already a map (ResNet, EfficientNet, MobileNet, ...) are used as they are.

The input is scaled inside the model as the preset's image converter says (its `scale` and `offset`;
without one, to [-1, 1]). keras-hub is imported only when a backbone is built (the `hub` extra).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import sys
from typing import TYPE_CHECKING, Any

from trinet.core.errors import TrinetError
from trinet.models.backbones.common import Backbone

if TYPE_CHECKING:
    import keras

#: The `--model_name` of keras-hub backbones.
NAME = "keras_hub"
#: What to do without keras-hub.
INSTALL = "pip install 'trinet[hub]'"
#: The preset files trinet reads.
CONFIG_FILE, WEIGHTS_FILE, CONVERTER_FILE = "config.json", "model.weights.h5", "image_converter.json"
#: Seconds to wait for the preset's server before reporting that we are offline.
DOWNLOAD_TIMEOUT = 15
#: The keras-hub classes rebuilt with TransReID's token embedding.
VIT_CLASSES = ("ViTBackbone",)
#: Token backbones that accept square inputs only (the net input is resized to the preset's square size).
SQUARE_CLASSES = ("DINOV2Backbone", "CLIPVisionEncoder")
#: SIE's lambda in TransReID.
CAMERA_SCALE = 3.0


def available() -> bool:
    """Whether keras-hub can be imported (checked without importing it: `train.py --help` stays cheap)."""
    if "keras_hub" in sys.modules:
        return sys.modules["keras_hub"] is not None  # None: an import that fails
    try:
        return importlib.util.find_spec("keras_hub") is not None
    except (ImportError, ValueError):
        return False


def is_local(preset: str) -> bool:
    """Whether `preset` names a local folder: an existing folder, or a path (a separator or a leading dot,
    and no `scheme://` of a remote preset such as `hf://` or `kaggle://`)."""
    if os.path.isdir(preset):
        return True
    return "://" not in preset and (os.sep in preset or preset.startswith("."))


def cache_folder(preset: str) -> str:
    """Where a remote preset is kept once downloaded: `$KERAS_HOME/hub_presets/<preset, sanitised>`."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "hub_presets", re.sub(r"[^A-Za-z0-9_.-]+", "_", preset).strip("_"))


def folder(preset: str) -> str | None:
    """The local folder of `preset`: the folder itself, or a remote preset's cache (None: not downloaded)."""
    if is_local(preset):
        return preset
    cached = cache_folder(preset)
    return cached if os.path.isfile(os.path.join(cached, CONFIG_FILE)) else None


def read_config(preset: str) -> dict[str, Any] | None:
    """The Keras config of `preset`'s backbone (its `config.json`), or None for a remote preset not yet
    downloaded.

    Raises:
        TrinetError: a local folder that does not exist or holds no readable `config.json`.
    """
    where = folder(preset)
    if where is None:
        return None
    path = os.path.join(where, CONFIG_FILE)
    if not os.path.isdir(where):
        raise TrinetError(f"--backbone_preset {preset}: no such folder (a local preset is a folder written "
                          "by "
                          "keras-hub's save_to_preset)")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise TrinetError(f"--backbone_preset {preset}: cannot read {path} ({e}); a preset folder holds the "
                          "config.json that keras-hub's save_to_preset writes") from None
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise TrinetError(f"--backbone_preset {preset}: {path} is not a keras-hub backbone config")
    return config


def family(config: dict[str, Any]) -> str:
    """'vit' (rebuilt with TransReID's token embedding), 'square' (square token backbones), or 'map' (any
    other backbone: its output must be a feature map)."""
    name = config["class_name"]
    return "vit" if name in VIT_CLASSES else "square" if name in SQUARE_CLASSES else "map"


def has_tokens(config: dict[str, Any]) -> bool:
    """Whether the backbone has a class token (`--pooling token`)."""
    kind = family(config)
    return kind == "square" or (kind == "vit" and bool(config["config"].get("use_class_token", True)))


def problems(s) -> Any:
    """Yield what is wrong with the keras-hub flags of the settings `s` (see
    `trinet.config.settings.TrainSettings`); a remote preset not yet downloaded is checked when built."""
    hub = s.model_name == NAME
    vit_flags = (("--patch_stride", s.patch_stride is not None), ("--camera_embedding", s.camera_embedding),
                 ("--layer_lr_decay", s.layer_lr_decay != 1.0))
    if not hub:
        if s.initial_checkpoint == "preset":
            yield ("--initial_checkpoint preset loads the weights of --backbone_preset (--model_name "
                   f"{NAME}), "
                   f"not of --model_name {s.model_name}")
        if s.backbone_preset is not None:
            yield f"--backbone_preset applies to --model_name {NAME} only, not to --model_name {s.model_name}"
        for flag, given in vit_flags:
            if given:
                yield (f"{flag} applies to the ViTs of --model_name {NAME} (a --backbone_preset of "
                       "keras-hub's "
                       f"ViTBackbone), not to --model_name {s.model_name}")
        if s.pooling == "token":
            yield (f"--pooling token takes a transformer's class token: --model_name {NAME} with a ViT, "
                   "DINOv2 "
                   f"or CLIP preset, not --model_name {s.model_name}")
        return
    if not available():
        yield f"--model_name {NAME} needs keras-hub, which is not installed: {INSTALL}"
        return
    if s.backbone_preset is None:
        yield (f"--model_name {NAME} needs --backbone_preset: a local preset folder (keras-hub's "
               "save_to_preset) or a keras-hub preset name")
        return
    if not 0 < s.layer_lr_decay <= 1:
        yield f"--layer_lr_decay must be in (0, 1] (1: off), got {s.layer_lr_decay}"
    if s.patch_stride is not None and s.patch_stride < 1:
        yield f"--patch_stride must be at least 1, got {s.patch_stride}"
    if s.camera_embedding_scale <= 0:
        yield f"--camera_embedding_scale must be > 0, got {s.camera_embedding_scale}"
    if s.camera_embedding:
        for flag, given in (("--teacher", s.teacher is not None), ("--mutual_models", s.mutual_models > 1),
                            ("--val_query", s.val_query is not None),
                            ("--val_identities/--val_fraction", s.holdout)):
            if given:
                yield (f"--camera_embedding does not go with {flag} yet (its model takes no camera); train "
                       "without one of them")
    if s.layer_lr_decay != 1.0:
        if s.new_layers_lr_multiplier != 1:
            yield (f"--layer_lr_decay {s.layer_lr_decay} and --new_layers_lr_multiplier "
                   f"{s.new_layers_lr_multiplier} both set the learning rates of groups of variables: use "
                   "one")
        if s.mixed_precision == "float16":
            yield (f"--layer_lr_decay {s.layer_lr_decay} (an optimizer per layer) does not go with "
                   "--mixed_precision float16 (one dynamic loss scale); use bfloat16")
        if s.freeze_backbone_iterations:
            yield (f"--layer_lr_decay {s.layer_lr_decay} does not go with --freeze_backbone_iterations yet; "
                   "use "
                   "one")
    if s.initial_checkpoint == "imagenet":
        yield (f"--initial_checkpoint imagenet: --model_name {NAME} takes the weights of its preset: "
               "--initial_checkpoint preset")
    if s.last_stride != 2:
        yield f"--last_stride 1 is not available for --model_name {NAME}"
    try:
        config = read_config(s.backbone_preset)
    except TrinetError as e:
        yield str(e)
        return
    if config is None:
        return  # a remote preset: checked when it is downloaded, before the run writes anything
    yield from config_problems(config, s.backbone_preset, s.patch_stride, s.camera_embedding,
                               s.layer_lr_decay, s.pooling)


def config_problems(config: dict[str, Any], preset: str, patch_stride: int | None, camera_embedding: bool,
                    layer_lr_decay: float, pooling: str) -> Any:
    """Yield what the preset's backbone (its `config`) cannot do of the flags given."""
    kind, name = family(config), config["class_name"]
    if kind != "vit":
        for flag, given in (("--patch_stride", patch_stride is not None),
                            ("--camera_embedding", camera_embedding),
                            ("--layer_lr_decay", layer_lr_decay != 1)):
            if given:
                yield (f"{flag} needs a ViT (keras-hub's ViTBackbone, whose tokens trinet embeds); "
                       f"--backbone_preset {preset} is a {name}")
    elif patch_stride is not None:
        patch = _pair(config["config"]["patch_size"])
        if patch_stride > min(patch):
            yield (f"--patch_stride {patch_stride} is larger than the patch size {patch[0]}x{patch[1]} of "
                   f"--backbone_preset {preset} (patches would leave gaps)")
    if pooling == "token" and not has_tokens(config):
        yield (f"--pooling token takes the class token of a transformer; --backbone_preset {preset} is a "
               f"{name}{' without a class token' if kind == 'vit' else ''}")


def _host(preset: str) -> str:
    """The server a remote preset comes from."""
    if preset.startswith("hf://"):
        return "huggingface.co"
    if preset.startswith("gs://"):
        return "storage.googleapis.com"
    return "www.kaggle.com"


def _offline_message(preset: str, weights: bool, reason: str) -> str:
    what = "load_weights=True" if weights else "load_weights=False"
    return (f"--backbone_preset {preset} is a remote keras-hub preset and could not be downloaded "
            f"({reason}). "
            "If this machine is offline, on one that is online run: python -c \"import keras_hub; "
            f"keras_hub.models.Backbone.from_preset('{preset}', {what}).save_to_preset('PRESET_DIR')\" and "
            f"pass --backbone_preset PRESET_DIR here (or copy PRESET_DIR to {cache_folder(preset)}).")


def download(preset: str, weights: bool) -> str:
    """Download the remote `preset` (its config; with `weights`, its weights too) into `cache_folder`;
    returns the folder. Offline, raises at once (a connection to the preset's server is tried first, for
    `DOWNLOAD_TIMEOUT` seconds at most).

    Raises:
        TrinetError: offline, or keras-hub could not fetch the preset (the message says what to do).
    """
    host = _host(preset)
    try:
        socket.create_connection((host, 443), timeout=DOWNLOAD_TIMEOUT).close()
    except OSError as e:
        raise TrinetError(_offline_message(preset, weights, f"{host} cannot be reached: {e}")) from None
    import keras_hub

    target = cache_folder(preset)
    partial = target + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        net = keras_hub.models.Backbone.from_preset(preset, load_weights=weights)
        net.save_to_preset(partial)
        try:
            keras_hub.layers.ImageConverter.from_preset(preset).save_to_preset(partial)
        except Exception:  # noqa: BLE001 (a preset without an image converter: the default scaling)
            pass
    except Exception as e:  # noqa: BLE001 (kagglehub, huggingface_hub and Keras errors all mean the same)
        shutil.rmtree(partial, ignore_errors=True)
        raise TrinetError(_offline_message(preset, weights, f"{type(e).__name__}: {e}")) from None
    if not weights:
        for name in os.listdir(partial):
            if name.startswith("model.weights"):
                os.remove(os.path.join(partial, name))  # random weights: never taken for the preset's
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.replace(partial, target)
    return target


def resolve(preset: str, weights: bool) -> str:
    """The local folder of `preset` with what the run needs (its config; with `weights` its weights),
    downloading a remote preset that lacks it (`download`).

    Raises:
        TrinetError: a local folder without weights when they are asked for; offline (see `download`).
    """
    where = folder(preset)
    if where is not None and (not weights or os.path.isfile(os.path.join(where, WEIGHTS_FILE))):
        read_config(preset)
        return where
    if is_local(preset):
        raise TrinetError(f"--initial_checkpoint preset: --backbone_preset {preset} holds no {WEIGHTS_FILE} "
                          "(save the preset with its weights, or leave --initial_checkpoint out to train "
                          "from a random initialisation)")
    return download(preset, weights)


def _converter(where: str) -> tuple[Any, Any]:
    """`(scale, offset)` of the preset's image converter (default: to [-1, 1])."""
    path = os.path.join(where, CONVERTER_FILE)
    if not os.path.isfile(path):
        return 1 / 127.5, -1.0
    with open(path, encoding="utf-8") as f:
        config = json.load(f).get("config", {})
    scale, offset = config.get("scale"), config.get("offset")
    return (1 / 127.5 if scale is None else scale), (0.0 if offset is None else offset)


def _keras_hub_net(config: dict[str, Any], weights_file: str | None) -> "keras.Model":
    """The preset's keras-hub backbone at its own input size, under the global dtype policy."""
    import keras
    import keras_hub  # noqa: F401  (registers the keras-hub classes)

    config = json.loads(json.dumps(config))
    config["config"].pop("dtype", None)  # the global policy (mixed precision) applies
    net = keras.saving.deserialize_keras_object(config)
    if weights_file is not None:
        net.load_weights(weights_file)
    return net


def _pair(value: Any) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, (list, tuple)) else (int(value), int(value))


def build(preset: str, weights: str | None = None, *, net_size: tuple[int, int] = (256, 128),
          patch_stride: int | None = None, num_cameras: int = 0,
          camera_scale: float = CAMERA_SCALE) -> "keras.Model":
    """The backbone of `preset`: raw RGB `(B, H, W, 3)` (with `num_cameras` > 0, `[images, cameras (B,)]`)
    -> a feature map `(B, h, w, D)`, or for token backbones `[map (B, h, w, D), class token (B, D)]`.

    Args:
        weights: None (random), 'preset' (the preset's weights), or a Keras weights file of the preset's
            keras-hub backbone.
        net_size: `(H, W)` of the net input: a ViT's patch grid and position embeddings are those of it.
        patch_stride: a ViT's patch stride (None: the patch size).
        num_cameras: a ViT's camera table (SIE; 0: none).
        camera_scale: SIE's lambda.

    Raises:
        TrinetError: the preset cannot be had, or cannot do what is asked (the message names the flags).
    """
    import keras

    where = resolve(preset, weights == "preset")
    config = read_config(where)
    assert config is not None
    for problem in config_problems(config, preset, patch_stride, num_cameras > 0, 1.0, "avg"):
        raise TrinetError(problem)
    weights_file = os.path.join(where, WEIGHTS_FILE) if weights == "preset" else weights
    net = _keras_hub_net(config, weights_file)
    scale, offset = _converter(where)
    image = keras.Input((None, None, 3), name="image")
    x = _preprocessing(scale, offset)(image)
    kind = family(config)
    if kind == "vit":
        return _vit(net, config, image, x, net_size, patch_stride, num_cameras, camera_scale,
                    loaded=weights is not None)
    from trinet.models.backbones.hub_layers import TokenSplit

    if kind == "square":
        side = int(config["config"]["image_shape"][0])
        x = keras.layers.Resizing(side, side, interpolation="bilinear", name="square_input")(x)
        tokens = net(x)
        if isinstance(tokens, dict):  # CLIP's encoder returns its sequence and pooled outputs
            tokens = tokens.get("sequence_output", next(iter(tokens.values())))
        patch = _pair(config["config"]["patch_size"])
        grid = (side // patch[0], side // patch[1])
        prefix = int(tokens.shape[1]) - grid[0] * grid[1]
        return keras.Model(image, TokenSplit(grid, prefix, name="token_split")(tokens), name="backbone")
    out = net(x)
    if len(out.shape) != 4:
        raise TrinetError(f"--backbone_preset {preset}: its {config['class_name']} returns "
                          f"{tuple(out.shape)}, "
                          "not a feature map (B, h, w, C) nor a known token layout; trinet takes ViT, DINOv2 "
                          "and CLIP token backbones and any backbone with a map output")
    return keras.Model(image, out, name="backbone")


def _preprocessing(scale: Any, offset: Any) -> "keras.layers.Layer":
    from trinet.models.backbones.hub_layers import ScaleOffset

    return ScaleOffset(scale, offset, name="preprocessing")


def _vit(net, config: dict[str, Any], image, x, net_size: tuple[int, int], patch_stride: int | None,
         num_cameras: int, camera_scale: float, loaded: bool) -> "keras.Model":
    """The preset's ViT with TransReID's token embedding before its encoder (see the module docstring)."""
    import keras
    import numpy as np

    from trinet.models.backbones.hub_layers import (TokenEmbedding, TokenSplit, patch_grid,
                                                    resize_position_embedding)

    c = config["config"]
    patch = _pair(c["patch_size"])
    stride = patch if patch_stride is None else (patch_stride, patch_stride)
    grid = patch_grid(net_size, patch, stride)
    if min(grid) < 1:
        raise TrinetError(f"--net_input_height/--net_input_width {net_size[0]}x{net_size[1]} is smaller than "
                          f"the ViT's patch {patch[0]}x{patch[1]}")
    use_class_token = bool(c.get("use_class_token", True))
    embedding = TokenEmbedding(int(c["hidden_dim"]), patch, stride, grid, use_class_token,
                               bool(c.get("use_patch_bias", True)), num_cameras, camera_scale,
                               name="token_embedding")
    inputs: Any = image
    if num_cameras:
        camera = keras.Input((), dtype="int32", name="camera")
        inputs = [image, camera]
        tokens = embedding([x, camera])
    else:
        tokens = embedding(x)
    if loaded:  # the preset's projection, class token and (resized) position embeddings
        source = net.get_layer("vit_patching_and_embedding")
        embedding.projection.set_weights(source.patch_embedding.get_weights())
        if use_class_token:
            embedding.class_token.assign(source.class_token.numpy())
        preset_size = c["image_shape"]
        preset_grid = (int(preset_size[0]) // patch[0], int(preset_size[1]) // patch[1])
        table = np.asarray(source.position_embedding.embeddings.numpy())
        embedding.position_embedding.assign(
            resize_position_embedding(table, preset_grid, grid, embedding.prefix)[None])
    from trinet.models.backbones.hub_encoder import ViTEncoder

    source_encoder = net.get_layer("vit_encoder")
    options = {k: v for k, v in source_encoder.get_config().items() if k not in ("dtype", "name")}
    encoder = ViTEncoder(**options, name="vit_encoder")
    tokens = encoder(tokens)
    encoder.set_weights(source_encoder.get_weights())  # the preset's, or its seeded initialisation
    if not use_class_token:
        token_map = keras.layers.Reshape((*grid, int(c["hidden_dim"])), name="token_map")(tokens)
        return keras.Model(inputs, token_map, name="backbone")
    return keras.Model(inputs, TokenSplit(grid, 1, name="token_split")(tokens), name="backbone")


def layer_depths(backbone: "keras.Model") -> tuple[dict[str, int], int]:
    """`({variable path: depth}, L)` of a rebuilt ViT backbone for layer-wise learning-rate decay: the token
    embedding is depth 0, transformer block i (1-based) depth i, the final norm depth L + 1 (as the head).

    Raises:
        TrinetError: `backbone` has no transformer blocks (not a keras-hub ViT).
    """
    depths: dict[str, int] = {}
    blocks = 0
    for variable in backbone.weights:
        found = re.search(r"transformer_block_(\d+)/", variable.path)
        if found:
            depths[variable.path] = int(found.group(1))
            blocks = max(blocks, int(found.group(1)))
        elif variable.path.startswith("token_embedding/"):
            depths[variable.path] = 0
    if not blocks:
        raise TrinetError("--layer_lr_decay needs a backbone of transformer layers (a keras-hub ViT preset)")
    for variable in backbone.weights:
        depths.setdefault(variable.path, blocks + 1)
    return depths, blocks


def _unused(*args: Any, **kwargs: Any) -> "keras.Model":
    raise TrinetError(f"--model_name {NAME} is built by trinet.models.backbones.hub.build (with its preset)")


#: The entry of this family (its build needs the preset: `build_backbone` calls `build`).
BACKBONES: dict[str, Backbone] = {NAME: Backbone(_unused, 0)}


def make_tiny_vit_preset(target: str, image_size: tuple[int, int] = (32, 32), patch_size: int = 8,
                         num_layers: int = 2, num_heads: int = 2, hidden_dim: int = 32, mlp_dim: int = 64,
                         seed: int = 0) -> str:
    """Write a small keras-hub ViT (random weights of `seed`) as a local preset folder `target` (keras-hub's
    `save_to_preset`): the from-scratch ViT of tests and `benchmarks/make_tiny_vit_preset.py`. Returns
    `target`."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    net = keras_hub.models.ViTBackbone(image_shape=(*image_size, 3), patch_size=patch_size,
                                       num_layers=num_layers, num_heads=num_heads, hidden_dim=hidden_dim,
                                       mlp_dim=mlp_dim)
    net.save_to_preset(target)
    return target
