"""Reporting an evaluation: the printed summary, the results JSON and the rank-list pictures.

numpy only: the pictures import OpenCV (through `trinet.plots`) when drawn, and nothing imports TensorFlow.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Mapping

import numpy as np

from trinet import __version__
from trinet.datasets import Dataset, image_path
from trinet.errors import listing
from trinet.fileio import make_directory
from trinet.excluders import Exclusion
from trinet.metrics import Results, ranked_list
from trinet.progress import Progress

log = logging.getLogger(__name__)

#: The CMC ranks printed and stored as `top-k`.
TOP_K = (1, 5, 10)

#: Gallery images shown per query by `show_ranks`.
SHOW_RANKS = 10


def summary(results: Results, gallery: Dataset, exclusion: Exclusion) -> str:
    """The two lines printed after an evaluation: the metrics, then what was evaluated."""
    tops = " ".join(f"top-{k}: {results.top(k):.2%}" for k in TOP_K)
    ignored = int(exclusion.gallery_ignored.sum())
    return (f"mAP: {results.mean_ap:.2%} | mINP: {results.mean_inp:.2%} | {tops}\n"
            f"{results.num_evaluated} of {results.num_queries} queries evaluated, {results.num_skipped} "
            f"skipped (no valid match) | gallery: {len(gallery)} images, {ignored} ignored for every query "
            f"| AP: {'Market-1501' if results.market_ap else 'scikit-learn'}")


def results_json(results: Results, query: Dataset, gallery: Dataset, exclusion: Exclusion,
                 settings: Mapping[str, Any]) -> dict:
    """The results file of evaluate.py `--filename`: the metrics, per-query AP with the query path, the
    skipped queries, and `settings` (what was evaluated, how) as given."""
    evaluated = results.evaluated
    out = {
        "mAP": results.mean_ap,
        "mINP": results.mean_inp,
        "CMC": results.cmc.tolist(),
        **{f"top-{k}": results.top(k) for k in TOP_K},
        "aps": [{"query": str(fid), "ap": float(ap)}
                for fid, ap in zip(query.fids[evaluated], results.aps[evaluated])],
        "ap_definition": "market1501" if results.market_ap else "sklearn",
        "num_queries": results.num_queries,
        "num_evaluated": results.num_evaluated,
        "num_skipped": results.num_skipped,
        "skipped_queries": [str(fid) for fid in query.fids[~evaluated]],
        "num_gallery": len(gallery),
        "num_gallery_ignored": int(exclusion.gallery_ignored.sum()),
        "settings": dict(settings),
        "trinet_version": __version__,
    }
    return out


def show_ranks(directory: str, image_root: str, query: Dataset, gallery: Dataset, exclusion: Exclusion,
               distances: Callable[[slice, np.ndarray], np.ndarray], results: Results, count: int,
               quiet: bool) -> list[str]:
    """Write pictures of `count` evaluated queries (spread evenly) beside their top-SHOW_RANKS gallery
    images into `directory`, framed green for a match and red for a miss; returns the files written.

    Args:
        distances: `(rows, gallery columns) -> (R, C)` distances, e.g. `EmbeddingDistances` or a re-ranker.
    """
    from trinet.plots import rank_picture, read_image, write_image

    make_directory(directory)
    evaluated = np.flatnonzero(results.evaluated)
    chosen = evaluated[np.unique(np.linspace(0, len(evaluated) - 1, min(count, len(evaluated))).astype(int))]
    columns = np.arange(len(gallery))
    written, unreadable = [], []

    def load(fid: str) -> np.ndarray | None:
        image = read_image(image_path(image_root, fid))
        if image is None:
            unreadable.append(image_path(image_root, fid))
        return image

    with Progress(len(chosen), "Drawing rank lists", "queries", quiet=quiet) as progress:
        for i in chosen:
            row = distances(slice(i, i + 1), columns)[0]
            matches = gallery.pids == query.pids[i]
            top = ranked_list(row, matches, exclusion.mask(slice(i, i + 1))[0], SHOW_RANKS)
            picture = rank_picture(load(query.fids[i]), [load(gallery.fids[j]) for j in top], matches[top],
                                   [f"{k + 1}: {row[j]:.3g}" for k, j in enumerate(top)])
            name = os.path.splitext(os.path.basename(query.fids[i]))[0]
            path = os.path.join(directory, f"rank_{i:05d}_{name}.png")
            write_image(path, picture)
            written.append(path)
            progress.update()
    if unreadable:
        log.warning("%d images are missing or unreadable and are drawn as crossed boxes (check "
                    "--image_root): %s", len(unreadable), listing(unreadable))
    return written
