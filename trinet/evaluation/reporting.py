"""Reporting an evaluation: the printed summary, the results JSON and the rank-list pictures.

numpy only: the pictures import OpenCV (through `trinet.evaluation.plots`) when drawn, and nothing imports
TensorFlow.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from trinet import __version__
from trinet.core.errors import listing
from trinet.core.fileio import make_directory
from trinet.core.progress import Progress
from trinet.data.datasets import Dataset, image_path
from trinet.evaluation.excluders import Exclusion
from trinet.evaluation.metrics import Results, ranked_list

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
            f"| AP: {'Market-1501' if results.market_ap else 'scikit-learn'} | CMC: {results.cmc_protocol}")


def results_json(results: Results, query: Dataset, gallery: Dataset, exclusion: Exclusion,
                 settings: Mapping[str, Any]) -> dict:
    """The results file of evaluate.py `--filename`: the metrics, per-query AP with the query path, the
    skipped queries, and `settings` (what was evaluated, how) as given."""
    evaluated = results.evaluated
    out = {
        "mAP": results.mean_ap,
        "mINP": results.mean_inp,
        "CMC": results.cmc.tolist(),
        "cmc_protocol": results.cmc_protocol,
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


class RankPictures:
    """Writes rank-list pictures (see `plots.rank_picture`) into a folder and collects the image files
    that are missing or unreadable, which are drawn as crossed boxes; `warn()` names them once."""

    def __init__(self, directory: str):
        make_directory(directory)
        self.directory = directory
        self.unreadable: list[str] = []

    def _load(self, path: str) -> np.ndarray | None:
        from trinet.evaluation.plots import read_image

        image = read_image(path)
        if image is None:
            self.unreadable.append(path)
        return image

    def write(self, number: int, query_file: str, gallery_files: Sequence[str],
              matches: Sequence[bool | None], captions: Sequence[str]) -> str:
        """Draw one query (image file `query_file`) beside its ranked gallery images; returns the file
        written, `rank_NNNNN_<query name>.png` with `number` (the query's row)."""
        from trinet.evaluation.plots import rank_picture, write_image

        picture = rank_picture(self._load(query_file), [self._load(f) for f in gallery_files], matches,
                               captions)
        name = os.path.splitext(os.path.basename(query_file))[0]
        path = os.path.join(self.directory, f"rank_{number:05d}_{name}.png")
        write_image(path, picture)
        return path

    def warn(self, hint: str = "check --image_root") -> None:
        if self.unreadable:
            log.warning("%d images are missing or unreadable and are drawn as crossed boxes (%s): %s",
                        len(self.unreadable), hint, listing(self.unreadable))


def spread(count: int, total: int) -> np.ndarray:
    """At most `count` positions of `range(total)`, spread evenly (first and last included)."""
    return np.unique(np.linspace(0, total - 1, min(count, total)).astype(int)) if total else np.zeros(0, int)


def show_ranks(directory: str, image_root: str, query: Dataset, gallery: Dataset, exclusion: Exclusion,
               distances: Callable[[slice, np.ndarray], np.ndarray], results: Results, count: int,
               quiet: bool) -> list[str]:
    """Write pictures of `count` evaluated queries (spread evenly) beside their top-SHOW_RANKS gallery
    images into `directory`, framed green for a match and red for a miss; returns the files written.

    Args:
        distances: `(rows, gallery columns) -> (R, C)` distances, e.g. `EmbeddingDistances` or a re-ranker.
    """
    pictures = RankPictures(directory)
    evaluated = np.flatnonzero(results.evaluated)
    chosen = evaluated[spread(count, len(evaluated))]
    columns = np.arange(len(gallery))
    written = []
    with Progress(len(chosen), "Drawing rank lists", "queries", quiet=quiet) as progress:
        for i in chosen:
            row = distances(slice(i, i + 1), columns)[0]
            matches = gallery.pids == query.pids[i]
            top = ranked_list(row, matches, exclusion.mask(slice(i, i + 1))[0], SHOW_RANKS)
            written.append(pictures.write(
                int(i), image_path(image_root, query.fids[i]), [image_path(image_root, gallery.fids[j])
                                                                for j in top],
                list(matches[top]), [f"{k + 1}: {row[j]:.3g}" for k, j in enumerate(top)]))
            progress.update()
    pictures.warn()
    return written
