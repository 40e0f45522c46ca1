"""Verification: is a query-gallery pair the same person? The ROC, TAR at FAR, EER and a distance threshold.

A pair is accepted as "same person" when its distance is <= a threshold. Over the kept query-gallery pairs
(those the excluder does not ignore; the valid matches are the positives, every other kept pair a negative):
  * TAR (true accept rate) = accepted positives / positives, FAR (false accept rate) = accepted negatives /
    negatives; the ROC is TAR against FAR for every threshold, as `sklearn.metrics.roc_curve(is_match,
    -distance, drop_intermediate=False)` gives it.
  * TAR at FAR f is the highest TAR of a threshold whose FAR is <= f, and that threshold (the largest
    distance seen among the pairs that keeps FAR <= f) is the one recommended for a target FAR.
  * EER (equal error rate) is where the straight segments between ROC points cross FAR = FRR (1 - TAR).

The pairs are collected in the evaluation's own pass over the distances (`PairCollector`, an observer of
`trinet.evaluation.metrics.rank_queries`), so memory stays bounded: when there are more than `max_pairs`
negatives (or positives), a uniform sample of exactly `max_pairs` of them is kept. The sample takes the
pairs with the smallest keys, a pair's key being splitmix64's mixer of the XOR of its query's and its gallery
image's seeded keys: a function of the pair alone, so the sample is the same whatever the block size, and
the same seed gives the same sample (two pairs share a key with a chance of about pairs^2 / 2^64).

numpy only.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from trinet.evaluation.metrics import Block

#: The false accept rates whose TAR is reported.
FARS = (1e-2, 1e-3, 1e-4)

#: The default target FAR of the recommended threshold.
DEFAULT_TARGET_FAR = 1e-3

#: At most this many negatives (and, separately, positives) are kept; beyond, a uniform sample of this
#: size (FAR 1e-4 is then read from about 400 negatives). 4M pairs hold 48 MB (distance and key), twice
#: that while blocks are merged.
DEFAULT_MAX_PAIRS = 1 << 22

#: Points of the ROC stored in the results JSON (log-spaced in FAR; the full curve may have millions).
ROC_POINTS = 200

#: Bins of the stored histograms of positive and negative distances.
HISTOGRAM_BINS = 60

#: Entries of a block handled at a time while collecting (bounds the temporary index arrays).
_CHUNK_ENTRIES = 1 << 22

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's mixer of uint64 values (a bijection of the 64-bit integers), in a new array."""
    with np.errstate(over="ignore"):
        z = z ^ (z >> np.uint64(30))
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
        return z


def pair_keys(ids: np.ndarray, seed: int) -> np.ndarray:
    """`(N,)` uint64 pseudo-random keys of `(N,)` integer ids: `mix(id + (seed + 1) x golden)`, so distinct
    ids never share a key."""
    with np.errstate(over="ignore"):
        return mix(np.asarray(ids, dtype=np.uint64) + _GOLDEN * np.uint64(seed + 1))


class BottomK:
    """The values of the `limit` smallest keys offered so far (a uniform sample when keys are random).

    Memory is at most twice `limit` entries: the buffer is cut back to `limit` whenever it grows past that.
    """

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError(f"limit must be >= 1. Received: limit={limit}")
        self.limit = limit
        self.offered = 0
        self._keys: list[np.ndarray] = []
        self._values: list[np.ndarray] = []
        self._held = 0
        self._bound: np.uint64 | None = None  # keys >= bound can no longer enter

    @property
    def bound(self) -> np.uint64 | None:
        """Keys >= this can no longer enter (None while fewer than `limit` were kept)."""
        return self._bound

    def add(self, keys: np.ndarray, values: np.ndarray, offered: int | None = None) -> None:
        """Offer `keys` and their values; `offered` counts the candidates when the caller already left out
        those at or beyond `bound` (default: `len(keys)`)."""
        self.offered += len(keys) if offered is None else offered
        if self._bound is not None:
            keep = keys < self._bound
            keys, values = keys[keep], values[keep]
        if not len(keys):
            return
        self._keys.append(keys)
        self._values.append(np.asarray(values, dtype=np.float32))
        self._held += len(keys)
        if self._held > 2 * self.limit:
            self._compact()

    def _compact(self) -> None:
        keys = np.concatenate(self._keys) if self._keys else np.zeros(0, np.uint64)
        values = np.concatenate(self._values) if self._values else np.zeros(0, np.float32)
        if len(keys) > self.limit:
            chosen = np.argpartition(keys, self.limit - 1)[:self.limit]
            keys, values = keys[chosen], values[chosen]
            self._bound = keys.max()
        self._keys, self._values, self._held = [keys], [values], len(keys)

    @property
    def sampled(self) -> bool:
        return self.offered > self.limit

    def values(self) -> np.ndarray:
        """The kept values, float64, in increasing order."""
        self._compact()
        return np.sort(self._values[0].astype(np.float64))


@dataclasses.dataclass(frozen=True)
class Pairs:
    """The distances of the kept query-gallery pairs (or of a uniform sample of them).

    Attributes:
        positives, negatives: `(P,)` and `(N,)` float64 distances of the (sampled) positive and negative
            pairs, in increasing order.
        num_positives, num_negatives: how many kept pairs there are in all.
        seed: the seed of the sample.
    """

    positives: np.ndarray
    negatives: np.ndarray
    num_positives: int
    num_negatives: int
    seed: int = 0

    @property
    def sampled(self) -> bool:
        return len(self.positives) < self.num_positives or len(self.negatives) < self.num_negatives


class PairCollector:
    """An `on_block` observer of `rank_queries` that keeps the distances of the kept pairs (a uniform sample
    of `max_pairs` positives and of `max_pairs` negatives when there are more).

    Args:
        num_gallery: the gallery size (pairs are numbered `query x num_gallery + gallery`).
        max_pairs: the most positives, and the most negatives, kept.
        seed: the seed of the sample.
    """

    def __init__(self, num_gallery: int, max_pairs: int = DEFAULT_MAX_PAIRS, seed: int = 0):
        if max_pairs < 1:
            raise ValueError(f"max_pairs must be >= 1. Received: max_pairs={max_pairs}")
        self.num_gallery, self.seed = num_gallery, seed
        self._gallery_keys = pair_keys(np.arange(num_gallery, dtype=np.uint64) | np.uint64(1 << 63), seed)
        self._positives, self._negatives = BottomK(max_pairs), BottomK(max_pairs)

    def __call__(self, block: Block) -> None:
        dist = block.distances
        query_keys = pair_keys(np.arange(block.rows.start, block.rows.stop, dtype=np.uint64), seed=self.seed)
        gallery_keys = self._gallery_keys[block.columns]
        self._positives.add(mix(query_keys[block.match_rows] ^ gallery_keys[block.match_cols]),
                            dist[block.match_rows, block.match_cols])
        status = block.status()
        step = max(1, _CHUNK_ENTRIES // max(1, dist.shape[1]))
        for start in range(0, len(dist), step):
            negative = status[start:start + step] == 0
            keys = mix(query_keys[start:start + step, None] ^ gallery_keys[None, :])
            offered = int(np.count_nonzero(negative))
            bound = self._negatives.bound
            if bound is not None:
                negative &= keys < bound
            chosen = np.flatnonzero(negative)
            self._negatives.add(keys.ravel()[chosen], dist[start:start + step].ravel()[chosen], offered)

    def pairs(self) -> Pairs:
        return Pairs(self._positives.values(), self._negatives.values(), self._positives.offered,
                     self._negatives.offered, self.seed)


def _sorted(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values if len(values) < 2 or bool(np.all(values[1:] >= values[:-1])) else np.sort(values)


def roc(positives: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The full ROC of accepting distances <= t: `(far, tar, thresholds)`, one point per distinct distance
    (ascending) after a first point (0, 0) at threshold -inf, as `sklearn.metrics.roc_curve(is_match,
    -distance, drop_intermediate=False)` (whose thresholds are the negated distances)."""
    pos, neg = _sorted(positives), _sorted(negatives)
    if not len(pos) or not len(neg):
        raise ValueError(f"the ROC needs positives and negatives. Received: {len(pos)} positives, "
                         f"{len(neg)} negatives")
    pooled = np.concatenate([pos, neg])
    pooled.sort(kind="mergesort")  # two sorted runs: merged
    thresholds = np.concatenate([[-np.inf], pooled[np.concatenate([[True], pooled[1:] != pooled[:-1]])]])
    far = np.searchsorted(neg, thresholds, side="right") / len(neg)
    tar = np.searchsorted(pos, thresholds, side="right") / len(pos)
    return far, tar, thresholds


def tar_at_far(positives: np.ndarray, negatives: np.ndarray, far: float) -> tuple[float, float | None]:
    """The highest TAR whose FAR is <= `far`, and its threshold (the largest distance among the pairs with
    FAR <= `far`; None when even the smallest distance is a negative that would exceed `far`)."""
    if not 0 < far <= 1:
        raise ValueError(f"far must be in (0, 1]. Received: far={far}")
    pos, neg = _sorted(positives), _sorted(negatives)
    allowed = math.floor(far * len(neg) + 1e-9)  # false accepts allowed; the epsilon absorbs 0.29 * 100
    if allowed >= len(neg):
        return 1.0, float(max(pos[-1], neg[-1]))
    bound = neg[allowed]  # accepting it (or anything beyond) makes one false accept too many
    below_pos = int(np.searchsorted(pos, bound, side="left"))
    below_neg = int(np.searchsorted(neg, bound, side="left"))
    candidates = ([pos[below_pos - 1]] if below_pos else []) + ([neg[below_neg - 1]] if below_neg else [])
    return below_pos / len(pos), (float(max(candidates)) if candidates else None)


def equal_error_rate(far: np.ndarray, tar: np.ndarray, thresholds: np.ndarray) -> tuple[float, float]:
    """EER and its threshold from a full ROC (`roc`): where the segments between ROC points cross
    FAR = FRR (= 1 - TAR), linearly interpolated; the threshold is the first distance where FAR >= FRR."""
    diff = far - (1.0 - tar)  # from -1 at -inf to +1 at the largest distance
    i = int(np.argmax(diff >= 0))
    if i == 0:
        return float(far[0]), float(thresholds[0])
    fraction = diff[i - 1] / (diff[i - 1] - diff[i])
    return float(far[i - 1] + fraction * (far[i] - far[i - 1])), float(thresholds[i])


def _roc_points(far: np.ndarray, tar: np.ndarray, thresholds: np.ndarray, floor: float) -> list[int]:
    """At most about ROC_POINTS indices of the ROC, log-spaced in FAR from `floor` to 1, ends included."""
    grid = np.logspace(math.log10(floor), 0, ROC_POINTS)
    chosen = np.searchsorted(far, grid, side="right") - 1
    return sorted(set(np.clip(chosen, 0, len(far) - 1).tolist()) | {0, len(far) - 1})


def histograms(positives: np.ndarray, negatives: np.ndarray, bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    """The histograms of positive and negative distances over shared bins, as fractions of each kind, and
    their overlap (the sum of the smaller fraction of each bin: 0 = separated, 1 = the same)."""
    pooled = np.concatenate([positives, negatives])
    low, high = float(pooled.min()), float(pooled.max())
    edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    pos = np.histogram(positives, edges)[0] / max(1, len(positives))
    neg = np.histogram(negatives, edges)[0] / max(1, len(negatives))
    return {"edges": edges.tolist(), "positive": pos.tolist(), "negative": neg.tolist(),
            "overlap": float(np.minimum(pos, neg).sum())}


def _label(far: float) -> str:
    return f"{far:.0e}".replace("e-0", "e-")


def verification_json(pairs: Pairs, target_far: float = DEFAULT_TARGET_FAR,
                      fars: Sequence[float] = FARS) -> dict[str, Any]:
    """The `verification` section of the results JSON: counts, TAR at each FAR with its threshold, EER, the
    recommended threshold for `target_far`, a thinned ROC and the distance histograms."""
    far, tar, thresholds = roc(pairs.positives, pairs.negatives)
    eer, eer_threshold = equal_error_rate(far, tar, thresholds)
    resolution = 1.0 / len(pairs.negatives)
    at = {}
    for f in fars:
        value, threshold = tar_at_far(pairs.positives, pairs.negatives, f)
        at[_label(f)] = {"far": f, "tar": value, "threshold": threshold, "resolved": f >= resolution}
    target_tar, target_threshold = tar_at_far(pairs.positives, pairs.negatives, target_far)
    points = _roc_points(far, tar, thresholds, min(resolution, min(fars)))
    return {
        "num_positive_pairs": pairs.num_positives,
        "num_negative_pairs": pairs.num_negatives,
        "sampled": pairs.sampled,
        "sampled_positive_pairs": len(pairs.positives),
        "sampled_negative_pairs": len(pairs.negatives),
        "seed": pairs.seed,
        "far_resolution": resolution,
        "tar_at_far": at,
        "eer": eer,
        "eer_threshold": eer_threshold,
        "target_far": target_far,
        "recommended_threshold": target_threshold,
        "tar_at_target_far": target_tar,
        "accept": "distance <= threshold",
        "roc": {"far": far[points].tolist(), "tar": tar[points].tolist(),
                "threshold": [None if not np.isfinite(t) else float(t) for t in thresholds[points]]},
        "histograms": histograms(pairs.positives, pairs.negatives),
    }


def verification_summary(section: dict[str, Any]) -> str:
    """The line printed after an evaluation with --verification."""
    tars = " ".join(f"TAR@FAR={label}: {v['tar']:.2%}" for label, v in section["tar_at_far"].items())
    threshold = section["recommended_threshold"]
    shown = "none (accepts nothing)" if threshold is None else f"{threshold:.4g}"
    sampled = (f", a sample of {section['sampled_negative_pairs']:,} negatives (seed {section['seed']})"
               if section["sampled"] else "")
    return (f"verification: {tars} | EER: {section['eer']:.2%} | threshold at FAR {section['target_far']:g}: "
            f"{shown} (TAR {section['tar_at_target_far']:.2%}) | {section['num_positive_pairs']:,} positive "
            f"and {section['num_negative_pairs']:,} negative pairs{sampled}")


def read_threshold(path: str) -> tuple[float, str, dict[str, Any]]:
    """The recommended threshold stored by evaluate.py --verification in the results JSON `path`, the
    metric it is a distance of, and the `verification` section.

    Raises:
        TrinetError: the file is unreadable or not such a results file, has no verification section, was
            evaluated on distances a search does not compute (re-ranked, local), or its threshold accepts
            nothing.
    """
    import json

    from trinet.core.errors import TrinetError

    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, ValueError) as e:
        raise TrinetError(f"Cannot read the evaluation results {path}: {e}") from None
    section = results.get("verification") if isinstance(results, dict) else None
    if not isinstance(section, dict) or "recommended_threshold" not in section:
        raise TrinetError(f"{path} holds no verification thresholds: write it with evaluate.py "
                          "--verification --filename")
    settings = results.get("settings", {})
    changed = [flag for flag, on in (("--rerank", settings.get("rerank")),
                                     ("--local_distance_weight", settings.get("local_distance_weight")))
               if on]
    if changed:
        raise TrinetError(f"{path} was evaluated with {' and '.join(changed)}: its threshold is on distances "
                          "a search does not compute; evaluate without them")
    threshold = section["recommended_threshold"]
    if threshold is None:
        raise TrinetError(f"{path}: at FAR {section.get('target_far')} no threshold accepts any pair (the "
                          "nearest pair is a negative); evaluate with a larger --target_far")
    return float(threshold), str(settings.get("metric", "euclidean")), section
