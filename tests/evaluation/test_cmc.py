"""trinet.evaluation.cmc: open-reid's CMC protocols (market1501, cuhk03, allshots) on hand-written cases."""

import numpy as np
import pytest

from trinet.evaluation import metrics
from trinet.evaluation.cmc import CMC_PROTOCOLS, all_matches_curve, get_cmc_protocol
from trinet.evaluation.excluders import EXCLUDERS
from trinet.evaluation.metrics import evaluate, single_shot_cmc


def name(pid: str, cam: int, index: int) -> str:
    return f"{pid}_c{cam}s1_{index:06d}_01.jpg"


def dense(matrix):
    """A `DistanceFn` of a dense `(Q, G)` matrix."""
    matrix = np.asarray(matrix, np.float64)
    return lambda rows, columns: matrix[rows][:, columns].copy()


def run(matrix, query, gallery, cmc, **kwargs):
    """`evaluate` of `(pid, cam)` queries and gallery entries under the market1501 excluder."""
    q_names = [name(p, c, i) for i, (p, c) in enumerate(query)]
    g_names = [name(p, c, 100 + i) for i, (p, c) in enumerate(gallery)]
    exclusion = EXCLUDERS["market1501"](q_names, g_names)
    return evaluate(None, None, [p for p, _ in query], [p for p, _ in gallery], exclusion,
                    distances=dense(matrix), cmc=cmc, **kwargs)


def test_registry_is_open_reids_three_switch_sets():
    assert sorted(CMC_PROTOCOLS) == ["allshots", "cuhk03", "market1501"]
    switches = {n: (p.separate_camera_set, p.single_gallery_shot, p.first_match_break)
                for n, p in CMC_PROTOCOLS.items()}
    assert switches == {"allshots": (False, False, False), "cuhk03": (True, True, False),
                        "market1501": (False, False, True)}
    with pytest.raises(ValueError, match=r"Unknown CMC protocol 'viper'; expected one of \['allshots'"):
        get_cmc_protocol("viper")


def test_allshots_by_hand():
    # Query 1: m .1, n .2, m .3, n .4, m .5 -> non-matches before each match: 0, 1, 2 (each counts 1/3).
    # Query 2: n .1, n .2, m .3, n .9 -> 2 (counts 1).
    query = [("0001", 1), ("0002", 1)]
    gallery = [("0001", 2), ("0003", 2), ("0001", 3), ("0003", 3), ("0001", 2),
               ("0002", 2)]
    matrix = [[.1, .2, .3, .4, .5, .9],
              [.1, .9, .9, .2, .9, .3]]
    # Query 2 ranks: .1 (0001), .2 (0003), .3 (match), then .9 x3: non-matches before the match: 2.
    results = run(matrix, query, gallery, "allshots")
    np.testing.assert_allclose(results.cmc, [(1 / 3 + 0) / 2, (2 / 3 + 0) / 2, 1, 1, 1, 1])
    assert results.cmc_protocol == "allshots"
    market = run(matrix, query, gallery, "market1501")
    np.testing.assert_allclose(market.cmc, [1 / 2, 1 / 2, 1, 1, 1, 1])
    assert market.cmc_protocol == "market1501"
    # mAP does not depend on the protocol.
    np.testing.assert_array_equal(results.aps, market.aps)


def test_allshots_ties_are_pessimistic_and_skipped_queries_do_not_count():
    # One match at .2 tied with a non-match: one non-match before it. A query without match: skipped.
    curve = all_matches_curve(np.array([1, 0]), np.array([1]), 3)
    np.testing.assert_allclose(curve, [0, 1, 1])
    query = [("0001", 1), ("0009", 1)]
    gallery = [("0002", 2), ("0001", 2), ("0002", 3)]
    results = run([[.2, .2, .5], [.1, .2, .3]], query, gallery, "allshots")
    np.testing.assert_allclose(results.cmc, [0, 1, 1])
    assert np.isnan(all_matches_curve(np.array([0]), np.array([], np.int64), 2)).all()


def test_cuhk03_separates_cameras_one_image_per_identity():
    # Query 0001 in camera 1. Gallery: 0001 c1 (same person, same camera: ignored by the excluder),
    # 0002 c1 .1 (kept by market1501, dropped by the camera separation), 0003 c2 .2, 0001 c2 .3.
    query = [("0001", 1)]
    gallery = [("0001", 1), ("0002", 1), ("0003", 2), ("0001", 2)]
    matrix = [[.05, .1, .2, .3]]
    np.testing.assert_allclose(run(matrix, query, gallery, "market1501").cmc, [0, 0, 1, 1])
    np.testing.assert_allclose(run(matrix, query, gallery, "allshots").cmc, [0, 0, 1, 1])
    # One image per identity in camera 2: every draw gives 0003 .2 before 0001 .3.
    np.testing.assert_allclose(run(matrix, query, gallery, "cuhk03").cmc, [0, 1, 1, 1])


def test_cuhk03_draw_expectation_by_hand():
    # In camera 2: the match at .5, and person 0002 with images at .2 and .8. Half of the draws pick .2
    # (match at rank 2), half .8 (rank 1): top-1 -> 1/2.
    query = [("0001", 1)]
    gallery = [("0002", 2), ("0001", 2), ("0002", 2)]
    results = run([[.2, .5, .8]], query, gallery, "cuhk03", cmc_repeats=4000, seed=3)
    assert results.cmc[0] == pytest.approx(0.5, abs=0.03)  # 4 standard deviations (0.0079)
    assert results.cmc[1] == 1


def reference_single_shot(matrix, query, gallery, repeats, seed):
    """open-reid's cuhk03 CMC written out: per query, the gallery in other cameras (junk left out),
    identities in sorted order, each image of an identity in gallery order, one `integers` call."""
    rng = np.random.default_rng(seed)
    hist = np.zeros(len(gallery))
    evaluated = 0
    for i, (qp, qc) in enumerate(query):
        valid = [j for j, (p, c) in enumerate(gallery) if c != qc and p != "-1"]
        if not any(gallery[j][0] == qp for j in valid):
            continue
        ids = sorted({gallery[j][0] for j in valid})
        members = [[j for j in valid if gallery[j][0] == p] for p in ids]
        draws = rng.integers(0, [len(m) for m in members], size=(repeats, len(ids)))
        for r in range(repeats):
            chosen = [members[k][draws[r, k]] for k in range(len(ids))]
            match = chosen[ids.index(qp)]
            rank = sum(1 for j in chosen if j != match and matrix[i][j] <= matrix[i][match])
            hist[rank] += 1 / repeats
        evaluated += 1
    return np.cumsum(hist) / evaluated


@pytest.mark.parametrize("seed", [0, 7])
def test_cuhk03_random_draws_equal_the_reference_whatever_the_blocks(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    pids = ["0001", "0002", "0003", "0004"]
    gallery = [(pids[rng.integers(4)], int(rng.integers(1, 4))) for _ in range(22)] + [("-1", 2), ("0001", 1)]
    query = [(pids[rng.integers(4)], int(rng.integers(1, 4))) for _ in range(7)] + [("0005", 1)]
    matrix = rng.integers(0, 6, size=(len(query), len(gallery))).astype(float)  # many ties
    expected = reference_single_shot(matrix, query, gallery, 5, seed)
    results = run(matrix, query, gallery, "cuhk03", cmc_repeats=5, seed=seed)
    np.testing.assert_allclose(results.cmc, expected)
    monkeypatch.setattr(metrics, "MAX_BLOCK_ENTRIES", 5)  # one query per block
    np.testing.assert_allclose(run(matrix, query, gallery, "cuhk03", cmc_repeats=5, seed=seed).cmc, expected)
    other = run(matrix, query, gallery, "cuhk03", cmc_repeats=5, seed=seed + 1).cmc
    assert not np.allclose(other, expected)


def test_cuhk03_needs_cameras():
    exclusion = EXCLUDERS["none"](["a.jpg"], ["b.jpg"])
    with pytest.raises(ValueError, match="separates cameras"):
        single_shot_cmc(dense([[1.0]]), ["1"], ["1"], exclusion, length=1)
