"""The Python API of a trained model: `Embedder` embeds image files or uint8 arrays.

    from trinet import Embedder
    embedder = Embedder.from_experiment("runs/demo/experiment")        # the latest checkpoint
    emb = embedder.embed(["a.jpg", "b.jpg"], flip=True, aggregator="mean")  # (2, D) float32

embed.py writes its files through the same `Embedder.blocks`, so both give the same numbers: the same
views (`trinet.pipeline.images.embedding_views`) and aggregators (`trinet.pipeline.views.AGGREGATORS`).
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Sequence

import keras
import numpy as np

from trinet.core.errors import TrinetError, listing
from trinet.core.fileio import path_problem
from trinet.embedding.inference import API_NAMES, embed_batches, load_model, split_local, takes_cameras
from trinet.models.builder import global_part, local_shape
from trinet.models.distribute import make_strategy, scope
from trinet.pipeline.views import AGGREGATORS, NO_SCALES, check_views
from trinet.rundir import checkpoints, experiment

#: What `Embedder.embed` accepts, in words for the messages.
ACCEPTED = "a list of image paths, a list of (H, W, 3) uint8 RGB arrays, or an (N, H, W, 3) uint8 array"


def _size(settings: dict, prefix: str) -> tuple[int, int] | None:
    height, width = settings.get(f"{prefix}_height"), settings.get(f"{prefix}_width")
    return (int(height), int(width)) if height and width else None


def check_images(images: Any) -> list[str] | list[np.ndarray] | np.ndarray:
    """`images` as `Embedder.embed` takes them: a list of existing paths, a list of `(H, W, 3)` uint8
    arrays, or an `(N, H, W, 3)` uint8 array.

    Raises:
        TrinetError: anything else (the message names what was received), or files that are missing.
    """
    if isinstance(images, (str, os.PathLike)):
        raise TrinetError(f"Expected {ACCEPTED}; received the single path {os.fspath(images)!r}: pass "
                          "[path].")
    if isinstance(images, np.ndarray):
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            hint = " (one image: pass image[None])" if images.ndim == 3 else ""
            raise TrinetError(f"Expected {ACCEPTED}; received an array of shape {images.shape} and dtype "
                              f"{images.dtype}{hint}.")
        if images.shape[0] and 0 in images.shape[1:3]:
            raise TrinetError(f"The images are empty: shape {images.shape}.")
        return images
    try:
        items = list(images)
    except TypeError:
        raise TrinetError(f"Expected {ACCEPTED}; received {type(images).__name__}.") from None
    if all(isinstance(i, (str, os.PathLike)) for i in items):
        paths = [os.fspath(i) for i in items]
        problems = [f"{p} ({problem})" for p in paths if (problem := path_problem(p, "file"))]
        if problems:
            raise TrinetError(f"{len(problems)} of {len(paths)} images are not readable files: "
                              f"{listing(problems)}")
        return paths
    for index, image in enumerate(items):
        if not isinstance(image, np.ndarray):
            raise TrinetError(f"Expected {ACCEPTED}; item {index} is a {type(image).__name__} (paths and "
                              "arrays cannot be mixed).")
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise TrinetError(f"Expected {ACCEPTED}; item {index} has shape {image.shape} and dtype "
                              f"{image.dtype} (convert grayscale or RGBA images to RGB, floats to uint8).")
    return items


class Embedder:
    """A trained embedding model with the image sizes it was trained at.

    Args:
        model: the embedding model, `(B, h, w, 3)` float32 RGB in [0, 255] -> `(B, D)`, or (a model trained
            with --local_branch) -> `{"embedding": (B, D), "local": (B, S, D_l)}`. `Embedder.model` is then
            its embedding part; `blocks_with_local` gives the local features too.
        net_size: `(height, width)` the images are resized to.
        pre_crop_size: `(height, width)` for crop views (`crops=`); default `net_size`.
        source: where the weights came from (a checkpoint or model file), for messages.
    """

    def __init__(self, model: keras.Model, net_size: tuple[int, int],
                 pre_crop_size: tuple[int, int] | None = None, *, source: str = "", strategy=None):
        self.model, self.strategy = global_part(model), strategy
        self._full = model
        #: `(S, D_l)` of the model's local features, or None when it has none.
        self.local_shape = local_shape(model)
        self.net_size = (int(net_size[0]), int(net_size[1]))
        pre_crop_size = pre_crop_size or net_size
        self.pre_crop_size = (int(pre_crop_size[0]), int(pre_crop_size[1]))
        self.source = source

    @classmethod
    def from_experiment(cls, root: str, checkpoint: str | int | None = None, *,
                        net_size: tuple[int, int] | None = None,
                        pre_crop_size: tuple[int, int] | None = None, distribute: str = "none",
                        names: dict[str, str] | None = None) -> Embedder:
        """The model of the experiment folder `root` written by train.py.

        Args:
            checkpoint: as embed.py's `--checkpoint`: a step (25000), a name (checkpoint-25000), a path,
                `best` or `model.keras`. Default: the latest checkpoint (or model.keras without any); a
                latest checkpoint-0 (the untrained network of a run stopped early) is refused unless
                named, and a checkpoint before the end of training is warned of.
            net_size, pre_crop_size: override the sizes of the experiment's args.json (needed without it).
            distribute: 'none', or 'mirrored' to split each batch over every local GPU (or logical CPU
                device) with `tf.distribute.MirroredStrategy`; the embeddings are the same.
            names: how error messages name these options (see `trinet.embedding.inference.API_NAMES`): a
                command passes its flags; default: the parameters of this method.

        Raises:
            TrinetError: `root` is no folder, it has no checkpoint or model file (the message says what it
                holds), or the sizes are unknown.
        """
        names = {**API_NAMES, **(names or {})}
        root = os.fspath(root)
        problem = path_problem(root, "folder")
        if problem is not None:
            raise TrinetError(f"The experiment root {root} is {problem}; expected the folder written by "
                              "train.py.")
        settings = experiment.read_settings(root)
        model_file = os.path.join(root, experiment.MODEL_FILE)
        if checkpoint is None and not checkpoints.list_checkpoints(root) and not os.path.isfile(model_file):
            raise experiment.no_model_yet(root)
        net_size = net_size or _size(settings, "net_input")
        if net_size is None:
            why = (f"its {experiment.ARGS_FILE} lacks net_input_height/net_input_width" if settings
                   else f"it has no {experiment.ARGS_FILE}")
            raise TrinetError(f"The net input size of {root} is not known ({why}); pass {names['net_size']}.")
        pre_crop_size = pre_crop_size or _size(settings, "pre_crop")
        if distribute not in ("none", "mirrored"):
            raise TrinetError(f"distribute={distribute!r}; expected 'none' or 'mirrored'")
        strategy = make_strategy(distribute)
        with scope(strategy):  # the variables are mirrored on every device
            model, source = load_model(root, None if checkpoint is None else str(checkpoint), settings, names)
        return cls(model, net_size, pre_crop_size, source=source, strategy=strategy)

    @property
    def fingerprint(self) -> str:
        """The SHA-256 of the model's weights (`trinet.data.shards.fingerprint_arrays`): equal for embeddings
        of the same model, stored with the embedding files (and search indexes) to tell models apart."""
        from trinet.data.shards import fingerprint_arrays
        return fingerprint_arrays(w.numpy() for w in self._full.weights)

    @property
    def takes_cameras(self) -> bool:
        """Whether the model takes the camera of each image (trained with `--camera_embedding`)."""
        return takes_cameras(self._full)

    @property
    def dim(self) -> int:
        """D, the embedding dimension."""
        return int(self.model.output.shape[-1])

    def view_names(self, flip: bool = False, crops: str | None = None, aggregator: str | None = None,
                   scales: Sequence[float] = NO_SCALES) -> list[str]:
        """The names of the views of each image (`views.check_views`, which raises on bad combinations)."""
        return check_views(flip, crops, aggregator, self.net_size, self.pre_crop_size, scales, api=True)

    def blocks(self, images: Any, *, flip: bool = False, crops: str | None = None,
               aggregator: str | None = None, batch_size: int = 256, threads: int = 8,
               jit_compile: bool = False, scales: Sequence[float] = NO_SCALES,
               cameras: Sequence[int] | np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Embed `images` block by block: yields `(b, D)` embeddings and the `(M, b, D)` ones of the M
        views (of all scales).

        The arguments are those of `embed` (`jit_compile`: the model compiled by XLA, for GPUs); they
        are checked before this returns.
        """
        blocks = self.blocks_with_local(images, flip=flip, crops=crops, aggregator=aggregator,
                                        batch_size=batch_size, threads=threads, jit_compile=jit_compile,
                                        scales=scales, cameras=cameras)
        return ((emb, emb_aug) for emb, emb_aug, _ in blocks)

    def blocks_with_local(self, images: Any, *, flip: bool = False, crops: str | None = None,
                          aggregator: str | None = None, batch_size: int = 256, threads: int = 8,
                          jit_compile: bool = False, scales: Sequence[float] = NO_SCALES,
                          cameras: Sequence[int] | np.ndarray | None = None
                          ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """As `blocks`, with a third item: the `(b, S, D_l)` local features of a model with the local branch
        (None without): with several views, combined by the same aggregator, stripe by stripe (mean: the
        mean of the views' stripe features; normalized_mean: that mean, each stripe L2-normalised)."""
        names = self.view_names(flip, crops, aggregator, scales)
        images = check_images(images)
        combine = AGGREGATORS[aggregator] if aggregator else (lambda views: views[0])
        per_batch = max(1, batch_size // len(names))
        batches = embed_batches(self._full, images, len(names) // len(scales), images_per_batch=per_batch,
                                net_size=self.net_size, pre_crop_size=self.pre_crop_size, flip=flip,
                                crop_mode=crops, threads=threads, jit_compile=jit_compile,
                                strategy=self.strategy, scales=tuple(float(s) for s in scales),
                                cameras=cameras)
        shape = self.local_shape

        def split(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
            emb_aug, local_aug = split_local(flat, shape)
            if local_aug is None or shape is None:
                return combine(emb_aug), emb_aug, None
            # (M, b, S, D_l): the aggregator sees (M, b * S, D_l)
            local = combine(local_aug.reshape(len(local_aug), -1, shape[1])).reshape(-1, *shape)
            return combine(emb_aug), emb_aug, local
        return (split(flat) for flat in batches)

    def embed(self, images: Sequence[str] | Sequence[np.ndarray] | np.ndarray, *, flip: bool = False,
              crops: str | None = None, aggregator: str | None = None, batch_size: int = 256,
              threads: int = 8, scales: Sequence[float] = NO_SCALES,
              cameras: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """The `(N, D)` float32 embeddings of `images`, as embed.py writes them.

        Args:
            images: a list of image paths (JPEG, PNG, BMP, GIF), a list of `(H, W, 3)` uint8 RGB arrays
                of any sizes, or an `(N, H, W, 3)` uint8 array; each is resized as embed.py does.
            flip: also embed the mirror image (embed.py's `--flip_augment`).
            crops: None, `center`, `five` or `avgpool` (embed.py's `--crop_augment`).
            aggregator: how several views are combined: `mean` or `normalized_mean` (required with
                several views, not allowed with one).
            batch_size: views per batch through the network.
            threads: images decoded in parallel.
            scales: embed each view also at other sizes: the net input size (and pre-crop size) times
                each scale (embed.py's `--scales`; `trinet.pipeline.views`). Several views need an aggregator.
            cameras: the camera number of each image, for a model trained with `--camera_embedding`
                (`takes_cameras`); ignored by other models.

        Raises:
            TrinetError: bad images or view options (the message says what is allowed).
        """
        out = [emb for emb, _ in self.blocks(images, flip=flip, crops=crops, aggregator=aggregator,
                                             batch_size=batch_size, threads=threads, scales=scales,
                                             cameras=cameras)]
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def embed_tracklets(self, tracklets: Sequence[Sequence[Any]], *, pooling: str = "mean",
                        frames_per_tracklet: int | None = None, flip: bool = False, crops: str | None = None,
                        aggregator: str | None = None, batch_size: int = 256, threads: int = 8,
                        scales: Sequence[float] = NO_SCALES) -> np.ndarray:
        """The `(T, D)` float32 embeddings of T tracklets, as embed.py --pool_by tracklet writes them: each
        tracklet's frames embedded as `embed` does and pooled by `pooling` (`mean` or `max`), for trackers.

        Args:
            tracklets: T lists of images (paths, or `(H, W, 3)` uint8 RGB arrays), each in frame order.
            frames_per_tracklet: embed this many frames of each tracklet, evenly spaced
                (`trinet.data.tracklets.frame_choice`); default all.
            the others: as `embed`.

        Raises:
            TrinetError: an empty tracklet, an unknown pooling, or what `embed` refuses.
        """
        from trinet.core.pooling import TEMPORAL_POOLINGS, RunningPool
        from trinet.data.tracklets import frame_choice

        if pooling not in TEMPORAL_POOLINGS:
            raise TrinetError(f"pooling={pooling!r}; expected one of {sorted(TEMPORAL_POOLINGS)}")
        empty = [i for i, tracklet in enumerate(tracklets) if len(tracklet) == 0]
        if empty:
            raise TrinetError(f"Tracklets {listing(empty)} have no frames; each needs one.")
        chosen = [[tracklet[i] for i in frame_choice(len(tracklet), frames_per_tracklet)]
                  for tracklet in tracklets]
        owners = np.repeat(np.arange(len(chosen)), [len(c) for c in chosen])
        out = np.zeros((len(chosen), self.dim), np.float32)
        if not len(chosen):
            return out
        frames = [frame for c in chosen for frame in c]
        position, current, pool = 0, 0, RunningPool(pooling)
        for emb, _ in self.blocks(frames, flip=flip, crops=crops, aggregator=aggregator,
                                  batch_size=batch_size, threads=threads, scales=scales):
            block = owners[position:position + len(emb)]
            for owner in np.unique(block):
                if owner != current:
                    out[current], current, pool = pool.result(), int(owner), RunningPool(pooling)
                pool.add(emb[block == owner])
            position += len(emb)
        out[current] = pool.result()
        return out
