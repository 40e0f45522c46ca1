"""The CMC protocols of open-reid: `market1501`, `cuhk03` and `allshots` (evaluate.py `--cmc`).

open-reid (Xiao et al., github.com/Cysu/open-reid, `reid/evaluation_metrics/ranking.py`) computes one CMC
function under three sets of switches and reports all three. For every protocol, a query ranks the gallery
entries its excluder keeps (the same person in the same camera, and junk, are ignored), and a query without
a valid match is skipped from the average.

* `market1501` (first_match_break): a query counts at the rank of its first match. trinet's CMC from
  before this option; what the Market-1501, DukeMTMC-reID and MSMT17 papers report.
* `cuhk03` (separate_camera_set, single_gallery_shot): the gallery of a query is restricted to the other
  cameras; of each identity there, one image is drawn at random (uniformly); the query counts at the rank
  of its drawn match among the drawn images. Repeated R times (open-reid: 10), each draw counting 1/R.
* `allshots` (no switch): every gallery entry the excluder keeps, every match counts: each of a query's n
  matches counts 1/n at its own rank among the non-matches, i.e. the number of non-matches ranked before
  it (open-reid's `k - j` for the j-th match at position k). So the curve at rank r is the mean fraction
  of a query's matches that come before its r-th non-match. It is not "any match within the top r".

Ties are pessimistic, as everywhere in `trinet.evaluation.metrics`: a non-match at the same distance as a
match is ranked before it (open-reid uses the order of `np.argsort`). The curve spans the whole gallery
(open-reid stops at rank 100).

The draws of `cuhk03` are reproducible with a seed and do not depend on how queries are blocked: one
`numpy.random.default_rng(seed)` serves the queries in order; for each evaluated query, the identities of
its restricted gallery are taken in sorted order (of the identity strings), the images of an identity in
gallery order, and one call `rng.integers(0, counts, size=(R, identities))` picks the image of each
identity in each draw. Queries without a valid match draw nothing.

numpy only.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class CmcProtocol:
    """One CMC protocol as open-reid's switches (see the module docstring).

    Attributes:
        separate_camera_set: a query's gallery is restricted to the other cameras (needs cameras).
        single_gallery_shot: one image per gallery identity, drawn at random, `--cmc_repeats` times.
        first_match_break: only the first match counts (else every match, each 1/n).
        description: one line for the help text.
    """

    separate_camera_set: bool
    single_gallery_shot: bool
    first_match_break: bool
    description: str


#: The CMC protocols by name: the one list of valid `--cmc` values.
CMC_PROTOCOLS: dict[str, CmcProtocol] = {
    "market1501": CmcProtocol(False, False, True, "the rank of the first match (the default)"),
    "cuhk03": CmcProtocol(True, True, False,
                          "other cameras only, one random image per gallery identity, --cmc_repeats draws"),
    "allshots": CmcProtocol(False, False, False,
                            "every gallery image; each of n matches counts 1/n at its rank among the "
                            "non-matches"),
}

#: open-reid's number of draws of the cuhk03 protocol.
DEFAULT_REPEATS = 10


def get_cmc_protocol(name: str) -> CmcProtocol:
    """The protocol called `name`; ValueError listing the valid names if there is none."""
    try:
        return CMC_PROTOCOLS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown CMC protocol {name!r}; expected one of {sorted(CMC_PROTOCOLS)}") from None


def all_matches_curve(num_matches: np.ndarray, negatives_before: np.ndarray, length: int) -> np.ndarray:
    """The `allshots` curve `(length,)` from the match ranks of `trinet.evaluation.metrics.MatchRanks`.

    Args:
        num_matches: `(Q,)` valid matches per query (0: skipped).
        negatives_before: `(T,)` for each match (query by query), the non-matches ranked before it.
    """
    num_matches = np.asarray(num_matches, np.int64)
    evaluated = int(np.count_nonzero(num_matches))
    if evaluated == 0:
        return np.full(length, np.nan)
    weights = np.repeat(1.0 / np.maximum(num_matches, 1), num_matches)
    hist = np.bincount(np.minimum(negatives_before, length), weights=weights, minlength=length + 1)
    return np.cumsum(hist[:length]) / evaluated


def single_shot_ranks(distances: np.ndarray, allowed: np.ndarray, query_codes: np.ndarray,
                      gallery_codes: np.ndarray, rng: np.random.Generator, repeats: int) -> np.ndarray:
    """The single-gallery-shot ranks of a block of queries, drawing from `rng` query by query.

    Args:
        distances: `(B, C)` distances of the queries to the gallery columns.
        allowed: `(B, C)` bool, the entries each query may rank (its restricted gallery).
        query_codes: `(B,)` int identities; gallery_codes: `(C,)` int identities (equal = match).
        rng: the generator, consumed as the module docstring says.
        repeats: R, draws per query.

    Returns:
        `(B, R)` int64: per draw, the drawn images of other identities at a distance <= the drawn
        match's (the 0-based rank); -1 in every column for a query without an allowed match.
    """
    gallery_codes = np.asarray(gallery_codes, np.int64)
    order = np.argsort(gallery_codes, kind="stable")  # by identity, then gallery order
    out = np.full((len(distances), repeats), -1, np.int64)
    for row in range(len(distances)):
        columns = order[allowed[row, order]]
        codes = gallery_codes[columns]
        mine = np.searchsorted(codes, query_codes[row])
        if mine == len(codes) or codes[mine] != query_codes[row]:
            continue
        starts = np.flatnonzero(np.concatenate([[True], codes[1:] != codes[:-1]]))
        counts = np.diff(np.append(starts, len(codes)))
        match_group = int(np.searchsorted(starts, mine))
        picks = starts + rng.integers(0, counts, size=(repeats, len(counts)))
        drawn = distances[row, columns[picks]]  # (R, identities)
        # The match itself is among those <= its own distance: subtract it.
        out[row] = np.count_nonzero(drawn <= drawn[:, match_group:match_group + 1], axis=1) - 1
    return out
