"""An export written, verified against the `Embedder`, then published: nothing unverified reaches --output.

The export is built in a temporary folder beside --output (where a killed run's is found and removed by the
next run); each of its endpoints is run with the format's own runtime on probe images and compared with
`Embedder.embed` (= embed.py); only then is it copied to --output in one step (`trinet.core.fileio`). A
failure at any point leaves nothing at --output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from typing import Iterator

import numpy as np

from trinet.core.errors import TrinetError
from trinet.core.fileio import (atomic_path, copy_folder_atomic, make_directory, remove_stale_temporaries,
                                temporary_name)
from trinet.embedding.embedder import Embedder
from trinet.export.formats import TOLERANCE, Format, Runners, check_output, get_format
from trinet.export.serving import ENDPOINTS

log = logging.getLogger("trinet.export")


def probe_images(net_size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """Two batches of seeded random uint8 images, `(3, 1.5 h + 1, 1.5 w + 1, 3)` and `(2, 0.75 h, 0.75 w,
    3)`: larger and smaller than the net input `(h, w)`, so the resize inside is checked both ways."""
    rng = np.random.default_rng(seed)
    (h, w) = net_size
    shapes = [(3, h * 3 // 2 + 1, w * 3 // 2 + 1, 3), (2, max(1, h * 3 // 4), max(1, w * 3 // 4), 3)]
    return [rng.integers(0, 256, shape, dtype=np.uint8) for shape in shapes]


def verify(runners: Runners, embedder: Embedder, tolerance: float = TOLERANCE) -> dict[str, float]:
    """Compare each runner with `embedder` on the probe images; returns the max abs difference of each.

    Raises:
        TrinetError: a runner's result has another shape, is not finite, or differs by more than
            `tolerance * max(1, max |reference|)`.
    """
    diffs = {}
    for what, endpoint, run in runners:
        worst = 0.0
        for images in probe_images(embedder.net_size):
            reference = embedder.embed(images, **ENDPOINTS[endpoint].embed_options)
            result = np.asarray(run(images))
            if result.shape != reference.shape or not np.all(np.isfinite(result)):
                raise TrinetError(f"Verification failed: {what} gives shape {result.shape} (finite: "
                                  f"{bool(np.all(np.isfinite(result)))}) for images of shape {images.shape}; "
                                  f"expected {reference.shape}.")
            diff = float(np.max(np.abs(result - reference), initial=0.0))
            scale = max(1.0, float(np.max(np.abs(reference), initial=0.0)))
            if diff > tolerance * scale:
                raise TrinetError(f"Verification failed: {what} differs from the Embedder (embed.py) by up "
                                  f"to {diff:.3g} on images of shape {images.shape}, more than the tolerance "
                                  f"{tolerance:g} x {scale:.3g}.")
            worst = max(worst, diff)
        diffs[what] = worst
    return diffs


@contextlib.contextmanager
def _root_logger_kept() -> Iterator[None]:
    """TensorFlow's SavedModel writer logs through absl, which calls `logging.basicConfig()` when the root
    logger has no handler: every later line of the command would print twice. A handler that drops
    everything keeps the root logger as it was."""
    root = logging.getLogger()
    guard = None if root.handlers else logging.NullHandler()
    if guard is not None:
        root.addHandler(guard)
    try:
        yield
    finally:
        if guard is not None:
            root.removeHandler(guard)


def _publish(artifact: str, output: str, fmt: Format) -> None:
    if fmt.suffix:
        with atomic_path(output) as tmp, open(artifact, "rb") as src, open(tmp, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
    else:
        copy_folder_atomic(artifact, output)


def export(embedder: Embedder, fmt_name: str, output: str, *, flip: bool = False,
           tolerance: float = TOLERANCE) -> dict[str, float]:
    """Write `embedder`'s model as `fmt_name` (see `FORMATS`) to `output`, verified; returns the max abs
    difference from the Embedder of each endpoint checked.

    Endpoints: `embed`, and with `flip` also `embed_flip` (see `trinet.export.serving.ENDPOINTS`).

    Raises:
        TrinetError: an unknown format, a missing optional package, a bad `output`, a failed conversion
            or verification. Nothing is then left at `output`.
    """
    fmt = get_format(fmt_name)
    check_output(output, fmt_name)
    parent = os.path.dirname(os.path.abspath(output))
    remove_stale_temporaries(parent, os.path.basename(os.path.abspath(output)))
    endpoints = ("embed", "embed_flip") if flip else ("embed",)
    # The work folder lies beside --output, named as a temporary of it: a run killed by SIGKILL leaves it
    # where the next run's remove_stale_temporaries finds it (not in the system's temp folder forever).
    work = temporary_name(output) + "-work"
    try:
        make_directory(work)
        with _root_logger_kept():
            log.info("Building the %s export (endpoints %s) of %s.", fmt_name, ", ".join(endpoints),
                     embedder.source)
            artifact = fmt.build(embedder.model, embedder.net_size, endpoints, work)
            log.info("Verifying it against the Embedder (tolerance %g).", tolerance)
            diffs = verify(fmt.run(artifact, endpoints), embedder, tolerance)
            for what, diff in diffs.items():
                log.info("  %s: max |difference| %.3g", what, diff)
            _publish(artifact, output, fmt)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return diffs
