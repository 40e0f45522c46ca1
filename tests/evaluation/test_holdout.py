"""Validation identities held out of a training set (--val_identities, --val_fraction, convert.py's
--val_identities): the split of hand-built rows under each protocol, its rules on a generated Market-1501 set,
determinism, and the errors."""

import numpy as np
import pytest

from trinet.core.errors import TrinetError
from trinet.evaluation.excluders import get_excluder
from trinet.evaluation.holdout import hold_out
from trinet.evaluation.metrics import evaluate

#: Identity 0001: cameras 1 (two images) and 2; 0002: camera 1 only; 0003: camera 3, and 4 (two images);
#: 0004: cameras 1 and 2, one image each; and a junk image.
FIDS = ["0001_c1s1_000001_00.jpg", "0001_c1s1_000002_00.jpg", "0001_c2s1_000003_00.jpg",
        "0002_c1s1_000001_00.jpg", "0002_c1s1_000002_00.jpg",
        "0003_c3s1_000001_00.jpg", "0003_c4s1_000001_00.jpg", "0003_c4s1_000002_00.jpg",
        "0004_c1s1_000001_00.jpg", "0004_c2s1_000001_00.jpg", "-1_c1s1_000001_00.jpg"]
PIDS = [name.split("_")[0] for name in FIDS]


def test_a_camera_protocol_keeps_one_query_per_camera_that_has_a_match_in_another():
    """0002 (one camera) and 0004 (one image per camera: a query in each leaves no gallery) cannot be
    validated; 0001 and 0003 keep the query of their single-image camera, whose matches are in the other
    camera. The query of their two-image camera would only match its own camera: it stays in the gallery."""
    for seed in range(5):
        split = hold_out(FIDS, PIDS, "market1501", seed=seed, identities=2)
        assert split.identities == ("0001", "0003")
        assert split.query.tolist() == [2, 5]
        assert split.gallery.tolist() == [0, 1, 6, 7]
        assert split.train.tolist() == [3, 4, 8, 9, 10]  # the junk image stays in training
    with pytest.raises(TrinetError, match=r"--val_identities 3: only 2 of the 5 training identities can be "
                                          r"validated under the market1501 protocol"):
        hold_out(FIDS, PIDS, "market1501", seed=0, identities=3)


def test_without_cameras_one_query_per_identity_and_for_query_equal_gallery_all_images():
    for seed in range(4):  # those with two images or more (not the single junk image) can be held out
        split = hold_out(FIDS, PIDS, "none", seed=seed, identities=3)
        assert sorted(PIDS[i] for i in split.query) == list(split.identities)  # one query each
        assert "-1" not in split.identities
        held = [i for i, pid in enumerate(PIDS) if pid in split.identities]
        assert sorted(split.query.tolist() + split.gallery.tolist()) == held
    same = hold_out(FIDS, PIDS, "diagonal", seed=0, identities=2)
    assert same.query.tolist() == same.gallery.tolist()
    assert {PIDS[i] for i in same.query} == set(same.identities)
    assert len(same.query) == sum(PIDS.count(p) for p in same.identities)


def test_the_draw_depends_on_the_seed_only():
    fids = [f"{p:04d}_c{c}s1_{f:06d}_00.jpg" for p in range(1, 41) for c in (1, 2, 3) for f in range(3)]
    pids = [name[:4] for name in fids]
    a = hold_out(fids, pids, "market1501", seed=3, identities=10)
    b = hold_out(list(fids), list(pids), "market1501", seed=3, identities=10)
    assert a.identities == b.identities
    for x, y in zip((a.train, a.query, a.gallery), (b.train, b.query, b.gallery)):
        np.testing.assert_array_equal(x, y)
    others = {hold_out(fids, pids, "market1501", seed=s, identities=10).identities for s in range(4, 8)}
    assert len(others | {a.identities}) > 1
    fraction = hold_out(fids, pids, "market1501", seed=3, fraction=0.25)
    assert len(fraction.identities) == 10


def test_on_a_market_set_the_split_follows_the_protocol_and_every_query_is_valid():
    rng = np.random.default_rng(0)
    fids, pids = [], []
    for person in range(1, 61):
        for camera in rng.choice(np.arange(1, 7), size=rng.integers(1, 5), replace=False):
            for frame in range(rng.integers(1, 4)):
                fids.append(f"{person:04d}_c{camera}s1_{person * 100 + frame:06d}_00.jpg")
                pids.append(f"{person:04d}")
    split = hold_out(fids, pids, "market1501", seed=1, identities=20)
    fids, pids = np.array(fids), np.array(pids)
    held = set(split.identities)
    assert len(held) == 20
    assert {pids[i] for i in split.train}.isdisjoint(held)  # disjoint identities
    assert {pids[i] for i in split.query} == held == {pids[i] for i in split.gallery}
    assert np.intersect1d(split.query, split.gallery).size == 0
    every = np.concatenate([split.train, split.query, split.gallery])
    assert sorted(every.tolist()) == list(range(len(fids)))
    cameras = [(pids[i], fids[i][6]) for i in split.query]
    assert len(cameras) == len(set(cameras))  # at most one query per identity and camera
    # every query has a valid match: the evaluation counts all of them
    exclusion = get_excluder("market1501")(fids[split.query], fids[split.gallery])
    emb = rng.normal(size=(len(fids), 4))
    results = evaluate(emb[split.query], emb[split.gallery], pids[split.query], pids[split.gallery],
                       exclusion)
    assert results.num_evaluated == len(split.query)


@pytest.mark.parametrize("excluder, kwargs, words", [
    ("market1501", dict(identities=3), "--flag 3: only 2 of the 5 training identities"),
    ("none", dict(identities=4), "--flag 4: 5 training identities leave fewer than 2 for training"),
    ("cuhk99", dict(identities=1), "--flag: Unknown excluder 'cuhk99'"),
    ("duke", dict(identities=1), "do not follow the DukeMTMC-reID naming"),
])
def test_errors_name_the_flag_and_what_is_possible(excluder, kwargs, words):
    rows = 10 if excluder == "duke" else len(FIDS)  # Duke has no junk label
    with pytest.raises(TrinetError) as error:
        hold_out(FIDS[:rows], PIDS[:rows], excluder, seed=0, flag="--flag", **kwargs)
    assert words in str(error.value)


def test_the_camera_excluder_holds_out_as_the_names_do():
    """With the cameras as a column (any naming), the split equals the market1501 split of the names."""
    cameras = np.array([int(name.split("_c")[1][0]) for name in FIDS])
    renamed = [f"person_{i}.png" for i in range(len(FIDS))]
    for seed in range(3):
        by_name = hold_out(FIDS, PIDS, "market1501", seed=seed, identities=2)
        by_column = hold_out(renamed, PIDS, "camera", seed=seed, identities=2, cameras=cameras)
        assert by_column.identities == by_name.identities
        for part in ("train", "query", "gallery"):
            assert getattr(by_column, part).tolist() == getattr(by_name, part).tolist()
    with pytest.raises(TrinetError, match="camera` column"):
        hold_out(renamed, PIDS, "camera", seed=0, identities=2)
