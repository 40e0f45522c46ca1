"""trinet-visualize: where a trained model looks, as activation maps over the images of a dataset.

    trinet-visualize --experiment_root exp/market --dataset data/market1501_query.csv --output exp/actmaps
    trinet-visualize --experiment_root exp/market --dataset data/market1501_query.csv --output exp/gradcam \\
        --against bounding_box_test/0002_c1s1_000451_03.jpg

Writes, per image, the image beside its activation map (torchreid's visactmap: the channel-wise energy of
the backbone's last feature map) and, with --against, beside the Grad-CAM of its embedding distance to that
image (`trinet.embedding.actmaps`), plus maps.npz with the maps themselves. Runs on the CPU.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from typing import Sequence

import numpy as np

from trinet.console import argtypes
from trinet.console.commands import import_tensorflow_quietly, run_main, setup_console_logging
from trinet.core.errors import TrinetError
from trinet.core.progress import Progress
from trinet.data.datasets import check_files, image_path, read_any, require_images

log = logging.getLogger("trinet.visualize")

#: The file of a visualize output folder that holds the maps (a folder with it may be written again).
MAPS_FILE = "maps.npz"

#: Pictures are scaled up to at least this height.
MIN_HEIGHT = 256


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trinet-visualize",
        description="Activation maps of a trained model over the images of a dataset: the channel-wise "
                    "energy of the backbone's last feature map (as torchreid's visactmap), and with "
                    "--against the Grad-CAM of the embedding distance to a chosen image. PNG pictures and "
                    "maps.npz.")
    p.add_argument("--experiment_root", required=True, type=argtypes.readable_directory,
                   help="The experiment folder written by train.py.")
    p.add_argument("--dataset", required=True, type=argtypes.readable_file,
                   help="A dataset CSV (`pid,path` rows), or a text file with one image path per line.")
    p.add_argument("--output", required=True, type=argtypes.writeable_directory, metavar="DIR",
                   help=f"Folder for the pictures and {MAPS_FILE}: new, empty, or an earlier output of this "
                        "command (replaced).")
    p.add_argument("--image_root", type=argtypes.readable_directory, default=None,
                   help="Folder the dataset's paths (and --against) are relative to. Default: the training "
                        "run's --image_root.")
    p.add_argument("--checkpoint", default=None,
                   help="Checkpoint of the run, as embed.py's: a step, a name, a path or model.keras. "
                        "Default: the latest.")
    p.add_argument("--num_images", type=argtypes.positive_int, default=16, metavar="N",
                   help="Images drawn, spread evenly over the dataset's rows. Default: %(default)s.")
    p.add_argument("--against", default=None, metavar="IMAGE",
                   help="Also draw Grad-CAM of each image's distance (the run's test metric) to this image, "
                        "e.g. a gallery image: where the image looks like it. A path relative to "
                        "--image_root, or an existing path.")
    p.add_argument("--quiet", action="store_true",
                   help="Print only warnings and errors: no progress or log messages.")
    return p


def _check_output(directory: str) -> None:
    if os.path.isdir(directory) and os.listdir(directory):
        if not os.path.isfile(os.path.join(directory, MAPS_FILE)):
            raise TrinetError(f"--output {directory} holds files but no {MAPS_FILE} of trinet-visualize: "
                              "choose a new or empty folder")
        for name in os.listdir(directory):
            if name == MAPS_FILE or name.endswith(".png"):
                os.remove(os.path.join(directory, name))


def _against(args: argparse.Namespace, image_root: str | None) -> str | None:
    if args.against is None:
        return None
    for candidate in (image_path(image_root, args.against), args.against):
        if os.path.isfile(candidate):
            return candidate
    raise TrinetError(f"--against {args.against}: no such image (looked under --image_root "
                      f"{image_root or '(none)'} and as given)")


def _picture(image: np.ndarray, overlays: list[np.ndarray]) -> np.ndarray:
    """The image and its overlays side by side, scaled up to MIN_HEIGHT, as BGR for OpenCV."""
    import cv2

    row = np.concatenate([np.uint8(np.clip(np.round(image), 0, 255))] + overlays, axis=1)
    factor = max(1, math.ceil(MIN_HEIGHT / row.shape[0]))
    row = cv2.resize(row, (row.shape[1] * factor, row.shape[0] * factor), interpolation=cv2.INTER_NEAREST)
    return row[..., ::-1]


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    setup_console_logging(args.quiet)
    _check_output(args.output)
    import_tensorflow_quietly()
    from trinet import Embedder
    from trinet.embedding import actmaps
    from trinet.evaluation.plots import write_image
    from trinet.losses.pairwise import cdist
    from trinet.rundir import experiment

    settings = experiment.read_settings(args.experiment_root)
    image_root = args.image_root or settings.get("image_root")
    dataset = require_images(check_files(read_any(args.dataset, image_root), skip_flag=None), args.dataset)
    against = _against(args, image_root)
    rows = np.unique(np.linspace(0, len(dataset) - 1, min(args.num_images, len(dataset))).astype(int))
    paths = [image_path(image_root, str(dataset.fids[i])) for i in rows]
    embedder = Embedder.from_experiment(args.experiment_root, checkpoint=args.checkpoint,
                                        names={"checkpoint": "--checkpoint {}"})
    model = actmaps.feature_model(embedder.model)
    metric = settings.get("test_metric") or settings.get("metric") or "euclidean"
    log.info("Activation maps of %d images with %s%s", len(paths), embedder.source,
             f", Grad-CAM of the {metric} distance to {against}" if against else "")
    target = None
    if against is not None:
        target = model(actmaps.load_images([against], embedder.net_size), training=False)[1].numpy()[0]
    os.makedirs(args.output, exist_ok=True)
    energies, cams = [], []
    with Progress(len(paths), "Activation maps", "images", quiet=args.quiet) as progress:
        for k, (row, path) in enumerate(zip(rows, paths)):
            images = actmaps.load_images([path], embedder.net_size)
            feature_maps = model(images, training=False)[0].numpy()
            energy = actmaps.energy_maps(feature_maps)
            energies.append(energy[0])
            overlays = [actmaps.overlay(images[0], actmaps.upsample(energy, embedder.net_size)[0])]
            if target is not None:
                cam = actmaps.grad_cam(model, images, target, lambda a, b: cdist(a, b, metric))
                cams.append(cam[0])
                overlays.append(actmaps.overlay(images[0], actmaps.upsample(cam, embedder.net_size)[0]))
            name = os.path.splitext(os.path.basename(str(dataset.fids[row])))[0]
            write_image(os.path.join(args.output, f"{k:04d}_{name}.png"), _picture(images[0], overlays))
            progress.update()
    arrays: dict[str, np.ndarray] = {"paths": np.array([str(dataset.fids[i]) for i in rows]), "rows": rows,
                                     "energy": np.stack(energies)}
    if cams:
        arrays.update(gradcam=np.stack(cams), against=np.array(against))
    np.savez(os.path.join(args.output, MAPS_FILE), **arrays)  # type: ignore[arg-type]
    log.info("%d pictures and %s written to %s", len(paths), MAPS_FILE, args.output)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The `trinet-visualize` command; returns the exit status."""
    return run_main(_run, argv)
