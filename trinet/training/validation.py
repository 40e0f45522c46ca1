"""Validation during training: embed a query and a gallery set with the current weights and evaluate.

The sets are given as CSVs (--val_query, --val_gallery), or held out of the training set (--val_identities,
--val_fraction; `trinet.evaluation.holdout`). They are read and checked when training starts (before
anything is written), also that some query has a valid match under the excluder. Each
validation embeds every image once (resized to the net input size, no test-time augmentation) with
the inference model and evaluates with trinet's own metrics under the given excluder and the run's
test metric. The best model is chosen by `SCORE`, fast-reid's criterion.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from trinet.core.errors import TrinetError
from trinet.data.datasets import Dataset, check_files, read_csv, require_images
from trinet.evaluation.excluders import get_excluder
from trinet.evaluation.holdout import hold_out

log = logging.getLogger("trinet.train")

#: What "best" means: the mean of mAP and rank-1 (fast-reid's `(mAP + rank-1) / 2`).
SCORE = "(mAP + rank-1) / 2"


@dataclasses.dataclass(frozen=True)
class Scores:
    """The validation metrics of one model (fractions in [0, 1])."""

    mean_ap: float
    mean_inp: float
    rank1: float

    @property
    def score(self) -> float:
        """The criterion of the best checkpoint, `SCORE`."""
        return (self.mean_ap + self.rank1) / 2

    def as_dict(self) -> dict[str, float]:
        return {"mAP": self.mean_ap, "mINP": self.mean_inp, "rank1": self.rank1, "score": self.score}


def _load(path: str, image_root: str | None, flag: str) -> Dataset:
    """A validation CSV whose images all exist and are image files (there is no flag to skip any)."""
    return require_images(check_files(read_csv(path, image_root), skip_flag=None), f"{flag} {path}")


def hold_out_validation(dataset: Dataset, excluder: str, *, seed: int, identities: int | None = None,
                        fraction: float | None = None) -> tuple[Dataset, Dataset, Dataset]:
    """`(training set, validation query, validation gallery)`: `identities` (or the `fraction`) of the
    identities of `dataset` held out and split by the protocol of `excluder` (`trinet.evaluation.holdout`)."""
    flag = "--val_identities" if identities is not None else "--val_fraction"
    split = hold_out(dataset.fids, dataset.pids, excluder, seed=seed, identities=identities,
                     fraction=fraction, flag=flag, cameras=dataset.cameras)

    def rows(indices: np.ndarray) -> Dataset:
        keep = np.zeros(len(dataset), bool)
        keep[indices] = True
        return dataset.subset(keep)
    log.info("Validation: %d identities held out of the training set (%s), %d remain for training.",
             len(split.identities), f"{flag} {identities if identities is not None else fraction}",
             len(np.unique(dataset.pids[split.train])))
    return rows(split.train), rows(split.query), rows(split.gallery)


class Validator:
    """Checks the validation sets `query` and `gallery` under `excluder` (`sources` names them in messages);
    `evaluate(embedding_model)` returns the `Scores`. `Validator.from_csv` reads them from CSVs."""

    def __init__(self, query: Dataset, gallery: Dataset, excluder: str, metric: str, *,
                 net_size: tuple[int, int], batch_size: int = 64, threads: int = 4,
                 sources: str = "the held-out identities"):
        self.query, self.gallery = query, gallery
        try:
            self.exclusion = get_excluder(excluder)(self.query, self.gallery)
        except ValueError as e:
            raise TrinetError(f"--val_excluder {excluder} ({sources}): {e}") from None
        self._check_matches(sources, excluder)
        self.metric, self.net_size, self.batch_size, self.threads = metric, net_size, batch_size, threads
        log.info("Validation: %d queries, %d gallery images (%s excluder, %s distance); best = %s.",
                 len(self.query), len(self.gallery), excluder, metric, SCORE)

    @classmethod
    def from_csv(cls, query_csv: str, gallery_csv: str, image_root: str | None, excluder: str, metric: str,
                 **options) -> "Validator":
        """The validator of the CSVs `query_csv` and `gallery_csv` (--val_query, --val_gallery)."""
        query = _load(query_csv, image_root, "--val_query")
        gallery = _load(gallery_csv, image_root, "--val_gallery")
        return cls(query, gallery, excluder, metric, sources=f"--val_query {query_csv}, --val_gallery "
                   f"{gallery_csv}", **options)

    def _check_matches(self, sources: str, excluder: str) -> None:
        """Refuse validation sets in which no query has a valid match (a gallery image of its identity
        that the excluder keeps): up front, not at the first validation after many iterations."""
        from trinet.evaluation.metrics import rank_queries

        def no_distances(rows: slice, columns: np.ndarray) -> np.ndarray:
            return np.zeros((rows.stop - rows.start, len(columns)), np.float32)  # only the matches count

        ranks = rank_queries(no_distances, self.query.pids, self.gallery.pids, self.exclusion)
        matched = int(np.count_nonzero(ranks.num_matches))
        if matched == 0:
            raise TrinetError(f"None of the {len(self.query)} validation queries ({sources}) has a valid "
                              f"match in the validation gallery under --val_excluder {excluder}: each query "
                              "needs a gallery image of its identity that the excluder keeps. Check the "
                              "identities of the two sets and the excluder.")
        if matched < len(self.query):
            log.warning("%d of %d validation queries (%s) have no valid match in the validation gallery "
                        "under --val_excluder %s; they are skipped by every validation.",
                        len(self.query) - matched, len(self.query), sources, excluder)

    def _embed(self, model, dataset: Dataset) -> np.ndarray:
        from trinet.embedding.inference import embed_batches

        blocks = embed_batches(model, dataset.paths(), 1, images_per_batch=self.batch_size,
                               net_size=self.net_size, pre_crop_size=self.net_size, flip=False,
                               crop_mode=None, threads=self.threads)
        return np.concatenate([block[0] for block in blocks])

    def evaluate(self, model) -> Scores:
        """Scores of the inference `model` `(B, H, W, 3) -> (B, D)`."""
        from trinet.evaluation.metrics import evaluate

        results = evaluate(self._embed(model, self.query), self._embed(model, self.gallery), self.query.pids,
                           self.gallery.pids, self.exclusion, metric=self.metric)
        if results.num_evaluated == 0:
            raise TrinetError("None of the validation queries has a valid match in the validation gallery "
                              "under --val_excluder: check the identities and the excluder.")
        return Scores(results.mean_ap, results.mean_inp, results.top(1))
