"""A trained model applied to a list of images, with test-time augmentation: the bottom of the embedding part.

Images (files, or uint8 arrays) are decoded and turned into views by compiled TensorFlow ops on a background
thread (in parallel with the model) and run through the model in batches; the results come block by block, so
memory stays bounded whatever the number of images. Above this module: `trinet.embedding.embedder.Embedder`
(the public face), and above that `trinet.embedding.writer` (the embedding files of embed.py).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import threading
import weakref
from typing import Callable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from trinet.core.errors import TrinetError, listing
from trinet.core.fileio import path_problem
from trinet.models.builder import ModelSpec, build_model, embedding_model, load_embedding_model
from trinet.pipeline.dataset import decodable
from trinet.pipeline.images import decode, embedding_views
from trinet.pipeline.views import NO_SCALES, scaled_size, view_names
from trinet.rundir import checkpoints, experiment

log = logging.getLogger("trinet.embed")


#: How the messages of `load_model` and `Embedder.from_experiment` name their options (`{}`: the value):
#: the Python API's parameters by default; the commands pass their flags (`CLI_NAMES`).
API_NAMES = {"checkpoint": "checkpoint={!r}", "net_size": "net_size=(height, width)"}
CLI_NAMES = {"checkpoint": "--checkpoint {}", "net_size": "--net_input_height/--net_input_width"}


def _report_step(root: str, path: str, checkpoint: str | None, settings: dict,
                 names: dict[str, str]) -> None:
    """Refuse checkpoint-0 (the untrained network) unless it was named; warn when the checkpoint used is
    not the end of training."""
    step, _ = checkpoints.read_info(path)
    total = settings.get("train_iterations")
    latest = max((s for s, _ in checkpoints.list_checkpoints(root)), default=step)
    name = os.path.basename(path).removesuffix(".h5")
    if step == 0 and checkpoint is None:
        model_file = os.path.isfile(os.path.join(root, experiment.MODEL_FILE))
        contents = experiment.describe_contents(root)
        raise TrinetError(f"The latest checkpoint of {root} is {name}, the untrained network (the run was "
                          f"stopped before its first checkpoint after the start; {contents}). "
                          "Train further (train.py --resume), or to use it anyway name it: "
                          f"{names['checkpoint'].format(0)}"
                          + (f" (or {names['checkpoint'].format(experiment.MODEL_FILE)})" if model_file
                             else ""))
    if isinstance(total, int) and step < total:
        where = ("the run is unfinished" if latest < total
                 else f"an earlier one than the end of training (checkpoint-{latest})")
        log.warning("Using %s of %d iterations of %s: %s.", name, total, root, where)


def load_model(root: str, checkpoint: str | None, settings: dict,
               names: dict[str, str] | None = None) -> tuple[keras.Model, str]:
    """The embedding model of an experiment: a trinet checkpoint (the latest by default) rebuilt from
    the experiment's settings, or a saved `model.keras`. Returns `(model, source path)`.

    The latest checkpoint is refused when it is checkpoint-0 (the untrained network, left by a run
    stopped early) unless it is named; a checkpoint before the end of training is warned of.

    Args:
        names: how messages name the options (`API_NAMES`, the default, or a command's `CLI_NAMES`).
    """
    names = names or API_NAMES
    if checkpoint is None and not checkpoints.list_checkpoints(root):
        keras_file = os.path.join(root, experiment.MODEL_FILE)
        problem = path_problem(keras_file, "file")
        if problem == "not found":
            raise experiment.no_model_yet(root)
        if problem is not None:
            raise TrinetError(f"No checkpoint in {root}, and {keras_file} is {problem}; expected the model "
                              "file written by train.py")
        checkpoint = keras_file
    if checkpoint is not None and checkpoint.endswith(".keras"):
        path = checkpoint if os.path.lexists(checkpoint) else os.path.join(root, checkpoint)
        problem = path_problem(path, "file")
        option = names["checkpoint"].format(checkpoint)
        if problem == "not found":
            raise TrinetError(f"{option}: no such model file")
        if problem is not None:
            raise TrinetError(f"{option}: {path} is {problem}; expected a model file")
        return load_embedding_model(path), path
    path = checkpoints.resolve(root, checkpoint, names["checkpoint"])
    missing = [k for k in ("model_name", "head_name", "embedding_dim") if settings.get(k) is None]
    if missing:
        raise TrinetError(f"Rebuilding the model of {path} needs {', '.join(missing)} from "
                          f"{os.path.join(root, experiment.ARGS_FILE)}, which lacks them.")
    _report_step(root, path, checkpoint, settings, names)
    return embedding_model(rebuild_model(root, path, settings)[0], local=True), path


def rebuild_model(root: str, path: str, settings: dict):
    """The training model (with its classifier, if the run had one) of the trinet checkpoint `path` of the
    experiment `root` whose args.json holds `settings`, its weights loaded. Returns `(model, the run's
    TrainSettings)`."""
    from trinet.config.settings import TrainSettings

    train_settings, _ = TrainSettings.from_saved(settings, os.path.join(root, experiment.ARGS_FILE))
    _, state = checkpoints.read_info(path)
    model = build_model(ModelSpec.from_settings(train_settings, int(state.get("num_classes", 0)),
                                                int(state.get("num_cameras", 0))))
    checkpoints.restore(path, {"model": model.weights})
    return model, train_settings


def _sizes(net_size: tuple[int, int], pre_crop_size: tuple[int, int], crop_mode: str | None,
           scales: Sequence[float]) -> list[tuple[tuple[int, int], tuple[int, int], tuple[int, int]]]:
    """Per scale: the net input size, the pre-crop size, and the size of its views."""
    out = []
    for scale in scales:
        net, pre = scaled_size(net_size, scale), scaled_size(pre_crop_size, scale)
        out.append((net, pre, pre if crop_mode == "avgpool" else net))
    return out


@functools.lru_cache(maxsize=16)
def prepare_fn(net_size: tuple[int, int], pre_crop_size: tuple[int, int], flip: bool, crop_mode: str | None,
               threads: int, scales: tuple[float, ...] = NO_SCALES
               ) -> Callable[[tf.Tensor], tuple[tf.Tensor, ...]]:
    """A compiled function `(b,) paths -> one (b * M, h_s, w_s, 3) float32 tensor of views (image-major)
    per scale`, decoding the b images once, in parallel (`threads` at a time). Cached: training's repeated
    validations (and clusterings) do not trace it again."""
    views = len(view_names(flip, crop_mode))
    sizes = _sizes(net_size, pre_crop_size, crop_mode, scales)

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
    def prepare(paths):
        def views_of(path):
            image = decode(path)
            return tuple(embedding_views(image, net, pre, flip, crop_mode) for net, pre, _ in sizes)

        spec = tuple(tf.TensorSpec((views, h, w, 3), tf.float32) for _, _, (h, w) in sizes)
        stacked = tf.map_fn(views_of, paths, fn_output_signature=spec, parallel_iterations=threads)
        return tuple(tf.reshape(t, (-1, h, w, 3)) for t, (_, _, (h, w)) in zip(stacked, sizes))

    return prepare


@functools.lru_cache(maxsize=16)
def prepare_arrays_fn(net_size: tuple[int, int], pre_crop_size: tuple[int, int], flip: bool,
                      crop_mode: str | None, scales: tuple[float, ...] = NO_SCALES
                      ) -> Callable[[Sequence[np.ndarray]], tuple[tf.Tensor, ...]]:
    """A function `b (H_i, W_i, 3) uint8 images -> one (b * M, h_s, w_s, 3) float32 tensor of views
    (image-major) per scale`, the views of each image those of its file (`decode` casts the same pixels).
    The images may differ in size. Cached: repeated calls (one query at a time) do not trace again."""
    sizes = _sizes(net_size, pre_crop_size, crop_mode, scales)

    @tf.function(input_signature=[tf.TensorSpec((None, None, 3), tf.uint8)])
    def views_of(image):
        image = tf.cast(image, tf.float32)
        return tuple(embedding_views(image, net, pre, flip, crop_mode) for net, pre, _ in sizes)

    def prepare(images: Sequence[np.ndarray]) -> tuple[tf.Tensor, ...]:
        per_image = [views_of(image) for image in images]
        return tuple(tf.concat([views[i] for views in per_image], axis=0) for i in range(len(sizes)))

    return prepare


def _is_paths(images: Sequence) -> bool:
    return len(images) == 0 or isinstance(images[0], str)


def _preparer(images: Sequence, net_size: tuple[int, int], pre_crop_size: tuple[int, int], flip: bool,
              crop_mode: str | None, threads: int, scales: Sequence[float] = NO_SCALES
              ) -> Callable[[Sequence], tuple[tf.Tensor, ...]]:
    """The function that makes the views of a block of `images`: paths (`prepare_fn`) or arrays."""
    scales = tuple(float(s) for s in scales)
    net_size, pre_crop_size = tuple(net_size), tuple(pre_crop_size)  # type: ignore[assignment]
    if not _is_paths(images):
        return prepare_arrays_fn(net_size, pre_crop_size, flip, crop_mode, scales)
    from_paths = prepare_fn(net_size, pre_crop_size, flip, crop_mode, threads, scales)
    return lambda block: from_paths(tf.constant(block))


_DONE = object()


def view_batches(images: Sequence[str] | Sequence[np.ndarray], *, images_per_batch: int, prefetch: int = 2,
                 net_size: tuple[int, int], pre_crop_size: tuple[int, int], flip: bool, crop_mode: str | None,
                 threads: int, scales: Sequence[float] = NO_SCALES) -> Iterator[tuple[tf.Tensor, ...]]:
    """Yield the views of successive blocks of `images_per_batch` images (paths, or uint8 `(H, W, 3)` RGB
    arrays), one `(b * M, h_s, w_s, 3)` tensor per scale, prepared by a background thread `prefetch`
    batches ahead, so that decoding overlaps the model.

    (A tf.data iterator would do the same, but on small CPU machines its presence made the model run a
    third slower in most runs: see benchmarks/bench_embed.py.) Errors of the preparation are raised here.
    """
    prepare = _preparer(images, net_size, pre_crop_size, flip, crop_mode, threads, scales)
    ready: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()

    def produce():
        try:
            for start in range(0, len(images), images_per_batch):
                if stop.is_set():
                    return
                ready.put(prepare(images[start:start + images_per_batch]))
            ready.put(_DONE)
        except BaseException as e:  # noqa: BLE001 (handed to the consumer)
            ready.put(e)

    worker = threading.Thread(target=produce, name="trinet-views", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting for room in the queue
            with contextlib.suppress(queue.Empty):
                ready.get_nowait()
            worker.join(timeout=0.05)


def _flat(outputs) -> tf.Tensor:
    """A model's outputs as one `(B, D)` float32 tensor: the embedding, or for a model with the local branch
    the embedding then its `(B, S, D_l)` local features flattened, `(B, D + S * D_l)` (`split_local`)."""
    if not isinstance(outputs, dict):
        return tf.cast(outputs, tf.float32)
    local = tf.cast(outputs["local"], tf.float32)
    return tf.concat([tf.cast(outputs["embedding"], tf.float32),
                      tf.reshape(local, (tf.shape(local)[0], -1))], axis=-1)


def split_local(flat: np.ndarray,
                local_shape: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray | None]:
    """`(..., D + S * D_l)` rows of `_flat` -> `(..., D)` embeddings and `(..., S, D_l)` local features (None
    without `local_shape`, when the rows are the embeddings)."""
    if local_shape is None:
        return flat, None
    size = local_shape[0] * local_shape[1]
    return flat[..., :-size], flat[..., -size:].reshape(*flat.shape[:-1], *local_shape)


_COMPILED: "weakref.WeakKeyDictionary[keras.Model, dict[bool, Callable]]" = weakref.WeakKeyDictionary()


def takes_cameras(model: keras.Model) -> bool:
    """Whether `model` takes `{"image", "camera"}` (a model trained with `--camera_embedding`)."""
    return isinstance(model.input, dict)


def _inputs(model: keras.Model, images, cameras):
    return {"image": images, "camera": cameras} if takes_cameras(model) else images


_IMAGES = tf.TensorSpec((None, None, None, 3), tf.float32)
_CAMERAS = tf.TensorSpec((None,), tf.int32)


def _compiled(model: keras.Model, jit_compile: bool = False) -> Callable:
    """`model` in inference mode as a compiled function of `(B, H, W, 3)` images (and `(B,)` int32 cameras,
    `None` for a model without) -> `(B, D)` (`_flat`; traced once per model), with XLA if `jit_compile`
    (which compiles once per input shape)."""
    functions = _COMPILED.setdefault(model, {})
    if jit_compile not in functions:
        @tf.function(input_signature=[_IMAGES, _CAMERAS], jit_compile=jit_compile)
        def run(images, cameras):
            return _flat(model(_inputs(model, images, cameras), training=False))
        functions[jit_compile] = run
    return functions[jit_compile]


def _replicated(model: keras.Model, strategy) -> Callable:
    """`model` in inference mode on every replica of `strategy`, each taking a consecutive share of the
    `(B, H, W, 3)` batch (the last ones may get fewer or no images); the `(B, D)` results (`_flat`) in
    order."""
    @tf.function(input_signature=[_IMAGES, _CAMERAS])
    def run(images, cameras):
        def share(images, cameras):
            ctx = tf.distribute.get_replica_context()
            size = -(-tf.shape(images)[0] // ctx.num_replicas_in_sync)  # ceil
            first = ctx.replica_id_in_sync_group * size
            return _flat(model(_inputs(model, images[first:first + size], cameras[first:first + size]),
                               training=False))
        results = strategy.run(share, args=(images, cameras))
        return tf.concat(strategy.experimental_local_results(results), axis=0)
    return run


def _padded(run: Callable, size: int) -> Callable:
    """`run` on batches zero-padded to `size` rows (the padding's rows dropped from the result), so that
    XLA sees one shape; the model treats rows independently in inference mode."""
    def run_padded(images: tf.Tensor, cameras: tf.Tensor) -> tf.Tensor:
        rows = int(images.shape[0])
        if rows == size:
            return run(images, cameras)
        return run(tf.pad(images, [[0, size - rows], [0, 0], [0, 0], [0, 0]]),
                   tf.pad(cameras, [[0, size - rows]]))[:rows]
    return run_padded


def embed_batches(model: keras.Model, paths: Sequence[str] | Sequence[np.ndarray], views: int, *,
                  images_per_batch: int, jit_compile: bool = False, strategy=None,
                  cameras: Sequence[int] | np.ndarray | None = None, **pipeline) -> Iterator[np.ndarray]:
    """Yield `(S * M, b, D)` float32 embeddings of successive blocks of images (paths or uint8 arrays, see
    `view_batches`; for a model with the local branch, rows of `_flat`): the M `views` of each of the S
    scales, scale after scale (each scale a separate run of the model, as its images have another size);
    with `jit_compile`, the model is compiled by XLA and every batch padded to `images_per_batch` images;
    with a `tf.distribute` `strategy`, each batch is split over its replicas. `cameras`: the camera of each
    image, which a model trained with `--camera_embedding` takes (each of its views with it).

    Raises:
        TrinetError: an image cannot be decoded (all such images are named); a model with the camera
            embedding is given no cameras.
    """
    if takes_cameras(model) and cameras is None:
        raise TrinetError("The model was trained with --camera_embedding and takes the camera of each image: "
                          "give the cameras (embed.py reads the `camera` column of --dataset, or its file "
                          "names in a release's naming; Embedder.embed(..., cameras=...))")
    camera_rows = np.zeros(len(paths), np.int32) if cameras is None else np.asarray(cameras, np.int32)
    if len(camera_rows) != len(paths):
        raise TrinetError(f"{len(camera_rows)} cameras for {len(paths)} images")
    run = _compiled(model, jit_compile) if strategy is None else _replicated(model, strategy)
    if jit_compile:
        run = _padded(run, images_per_batch * views)
    try:
        for number, batch in enumerate(view_batches(paths, images_per_batch=images_per_batch, **pipeline)):
            parts = []
            block = camera_rows[number * images_per_batch:(number + 1) * images_per_batch]
            for images in batch:
                emb = run(images, tf.constant(np.repeat(block, views))).numpy()
                parts.append(emb.reshape(-1, views, emb.shape[-1]).transpose(1, 0, 2))
            yield parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
    except tf.errors.OpError:
        if not _is_paths(paths):
            raise
        names = [str(p) for p in paths]
        bad = [p for p, ok in zip(names, decodable(names, pipeline.get("threads", 8))) if not ok]
        if not bad:
            raise
        raise TrinetError(f"{len(bad)} images cannot be decoded (corrupt or truncated): "
                          f"{listing(bad)}") from None
