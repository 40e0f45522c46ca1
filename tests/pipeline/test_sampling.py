"""P x K sampling (numpy) and the tf.data training pipeline built on it."""

import math
from collections import Counter

import cv2
import numpy as np
import pytest

from trinet.core.errors import TrinetError
from trinet.pipeline.sampling import SAMPLERS, CameraPKSampler, PKSampler, element_seeds

# 7 identities with 1, 2, 3, 4, 5, 6, 9 images; rows grouped arbitrarily.
COUNTS = {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 9}
PIDS = np.array([pid for pid, n in COUNTS.items() for _ in range(n)])
PIDS = PIDS[np.random.default_rng(0).permutation(len(PIDS))]


def test_every_batch_has_p_identities_with_k_images_each():
    sampler = PKSampler(PIDS, batch_p=3, batch_k=4, seed=1)
    for index in range(40):
        rows = sampler.batch(index)
        assert rows.shape == (12,)
        blocks = PIDS[rows].reshape(3, 4)
        assert all(len(set(block)) == 1 for block in blocks)  # K images of one identity per block
        assert len({block[0] for block in blocks}) == 3  # P distinct identities
        assert np.array_equal(sampler.codes[rows], np.searchsorted(sampler.unique_pids, PIDS[rows]))
        for block_rows in rows.reshape(3, 4):
            pid = PIDS[block_rows[0]]
            uses = Counter(block_rows.tolist())
            if COUNTS[pid] >= 4:
                assert len(uses) == 4  # without replacement
            else:  # short identities repeat, each image at most ceil(K / count) times
                assert max(uses.values()) <= math.ceil(4 / COUNTS[pid])
                assert sum(uses.values()) == 4


def test_short_identity_shows_several_of_its_images():
    sampler = PKSampler(PIDS, batch_p=7, batch_k=4, seed=3)
    seen = set()
    for index in range(20):
        rows = sampler.batch(index)
        seen |= {r for r in rows if PIDS[r] == "c"}
    assert len(seen) == 3  # all three images of 'c' appear over time


def test_epochs_use_a_multiple_of_p_distinct_identities():
    sampler = PKSampler(PIDS, batch_p=3, batch_k=2, seed=5)
    assert sampler.batches_per_epoch == 2  # 7 // 3
    left_out = set()
    for epoch in range(6):
        identities = [PIDS[sampler.batch(epoch * 2 + b)[::2]] for b in range(2)]
        flat = np.concatenate(identities)
        assert len(flat) == 6 and len(set(flat)) == 6  # no identity twice in a pass
        left_out |= set(COUNTS) - set(flat)
    assert len(left_out) > 1  # a different identity is left out in different passes


def test_deterministic_in_seed_and_index():
    a, b = PKSampler(PIDS, 3, 4, seed=11), PKSampler(PIDS, 3, 4, seed=11)
    assert all(np.array_equal(a.batch(i), b.batch(i)) for i in range(10))
    # random access (a resumed run) gives the same batch as sequential iteration
    assert np.array_equal(a.batch(7), [rows for i, rows in b.batches(0, 8)][7])
    c = PKSampler(PIDS, 3, 4, seed=12)
    assert not all(np.array_equal(a.batch(i), c.batch(i)) for i in range(10))


def test_batch_p_larger_than_identities_is_an_error():
    with pytest.raises(TrinetError, match="--batch_p 8 is larger than the number of identities .* \\(7\\)"):
        PKSampler(PIDS, batch_p=8, batch_k=4, seed=0)


def test_element_seeds_are_distinct_across_batches():
    seeds = np.concatenate([element_seeds(5, i, 6) for i in range(3)])
    assert seeds.shape == (18, 2) and len({tuple(s) for s in seeds}) == 18 and (seeds[:, 0] == 5).all()


def _write(root, n_ids=4, per_id=3, size=(24, 12)):
    paths, pids = [], []
    for p in range(n_ids):
        for j in range(per_id):
            image = np.zeros((*size, 3), np.uint8)
            image[:, : size[1] // 2] = 40 * p  # left half encodes the identity, right half white
            image[:, size[1] // 2:] = 255
            path = str(root / f"{p}_{j}.png")
            cv2.imwrite(path, image)
            paths.append(path)
            pids.append(str(p))
    return paths, np.array(pids)


def test_training_dataset_batches_match_the_sampler(tmp_path):
    from trinet.pipeline.dataset import training_dataset
    paths, pids = _write(tmp_path)
    sampler = PKSampler(pids, 2, 3, seed=0)
    ds = training_dataset(paths, sampler, 5, 9, net_size=(24, 12), pre_crop_size=(24, 12), flip=False,
                          crop=False, threads=2)
    batches = list(ds)
    assert [int(b[0]) for b in batches] == [5, 6, 7, 8]
    for index, images, labels in batches:
        rows = sampler.batch(int(index))
        assert images.shape == (6, 24, 12, 3) and images.dtype == "float32"
        np.testing.assert_array_equal(labels.numpy(), sampler.codes[rows])
        # the left half's grey level is the identity; nothing flipped
        np.testing.assert_allclose(images.numpy()[:, 5, 2, 0], [40 * int(p) for p in pids[rows]], atol=2)


def test_augmentation_is_deterministic_and_flips_and_crops(tmp_path):
    from trinet.pipeline.dataset import training_dataset
    paths, pids = _write(tmp_path)
    sampler = PKSampler(pids, 2, 3, seed=3)

    def run():
        ds = training_dataset(paths, sampler, 0, 4, net_size=(20, 10), pre_crop_size=(24, 12), flip=True,
                              crop=True, threads=2)
        return np.concatenate([images.numpy() for _, images, _ in ds])

    first, second = run(), run()
    assert first.shape == (24, 20, 10, 3)
    np.testing.assert_array_equal(first, second)
    white_right = (first[:, :, -1, 0] > 200).all(axis=1)  # unflipped: white on the right
    assert white_right.any() and (~white_right).any()  # some flipped, some not


def test_undecodable_image_skips_only_its_batches(tmp_path):
    from trinet.pipeline.dataset import decodable, training_dataset
    paths, pids = _write(tmp_path)
    with open(paths[4], "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\ntruncated")
    sampler = PKSampler(pids, 2, 3, seed=0)
    holding = {i for i in range(12) if 4 in sampler.batch(i)}
    assert holding and len(holding) < 12
    ds = training_dataset(paths, sampler, 0, 12, net_size=(24, 12), pre_crop_size=(24, 12), flip=False,
                          crop=False, threads=2)
    got = [int(index) for index, _, _ in ds]
    assert got == [i for i in range(12) if i not in holding]
    np.testing.assert_array_equal(decodable(paths, threads=2), [i != 4 for i in range(len(paths))])


# ---------------------------------------------------------------------------------------------------------
# pk_camera: K images drawn across an identity's cameras


#: Per identity, the number of images in each camera: one camera; two cameras 1 + 5; three cameras 2 + 2 + 3;
#: one image only.
CAMERA_COUNTS = {"p": {7: 4}, "q": {1: 1, 2: 5}, "r": {1: 2, 3: 2, 4: 3}, "s": {5: 1}}
CAM_ROWS = [(pid, camera) for pid, cams in CAMERA_COUNTS.items()
            for camera, n in cams.items() for _ in range(n)]
CAM_ROWS = [CAM_ROWS[i] for i in np.random.default_rng(4).permutation(len(CAM_ROWS))]
CAM_PIDS = np.array([pid for pid, _ in CAM_ROWS])
CAMERAS = np.array([camera for _, camera in CAM_ROWS])


def reference_identity_rows(by_camera, k, rng):
    """A plain-loop reference of CameraPKSampler.identity_rows: `by_camera` lists the rows of each camera."""
    out = []
    while len(out) < k:
        order = rng.permutation(len(by_camera))  # the cameras in a random order, then each one's images
        queues = []
        for c in order:
            queues.append([by_camera[c][i] for i in rng.permutation(len(by_camera[c]))])
        round_ = 0
        while len(out) < k and any(round_ < len(q) for q in queues):
            for q in queues:
                if round_ < len(q) and len(out) < k:
                    out.append(q[round_])
            round_ += 1
    return out


@pytest.mark.parametrize("k", [2, 4, 7])
def test_pk_camera_spreads_each_identity_over_its_cameras(k):
    sampler = CameraPKSampler(CAM_PIDS, batch_p=2, batch_k=k, seed=7, columns={"camera": CAMERAS})
    for index in range(30):
        rows = sampler.batch(index)
        assert rows.shape == (2 * k,)
        for block in rows.reshape(2, k):
            pid = CAM_PIDS[block[0]]
            assert (CAM_PIDS[block] == pid).all()
            cams = Counter(CAMERAS[block].tolist())
            counts = CAMERA_COUNTS[pid]
            assert len(cams) == min(k, len(counts))  # as many cameras as K allows
            images = sum(counts.values())
            if images >= k:
                assert len(set(block.tolist())) == k  # distinct images while there are enough
            # taken in turns: a camera is used more often than another only when the other ran out
            for a, n in cams.items():
                for b, m in cams.items():
                    if n > m + 1:
                        assert m == counts[b] or images < k


def test_pk_camera_equals_a_plain_loop_reference():
    sampler = CameraPKSampler(CAM_PIDS, batch_p=4, batch_k=5, seed=2, columns={"camera": CAMERAS})
    for index in range(5):
        epoch, slot = divmod(index, sampler.batches_per_epoch)
        identities = sampler._epoch_order(epoch)[slot * 4:(slot + 1) * 4]
        rng = np.random.default_rng([2, 3, index])
        expected = []
        for identity in identities:
            pid = sampler.unique_pids[sampler._identities[identity]]
            by_camera = [[r for r in range(len(CAM_PIDS)) if CAM_PIDS[r] == pid and CAMERAS[r] == c]
                         for c in sorted(CAMERA_COUNTS[pid])]
            expected += reference_identity_rows(by_camera, 5, rng)
        assert sampler.batch(index).tolist() == expected


def test_pk_camera_is_deterministic_and_needs_cameras():
    a = SAMPLERS["pk_camera"](CAM_PIDS, 2, 4, 9, columns={"camera": CAMERAS})
    b = SAMPLERS["pk_camera"](CAM_PIDS, 2, 4, 9, (), columns={"camera": CAMERAS})
    assert all(np.array_equal(a.batch(i), b.batch(i)) for i in range(10))
    other = CameraPKSampler(CAM_PIDS, 2, 4, 10, columns={"camera": CAMERAS})
    assert not all(np.array_equal(a.batch(i), other.batch(i))
                   for i in range(10))
    with pytest.raises(TrinetError, match="--sampler pk_camera .* no camera column.*pid,path,camera"):
        SAMPLERS["pk_camera"](CAM_PIDS, 2, 4, 9)
    # An excluded (undecodable) row is never drawn.
    excluded = CameraPKSampler(CAM_PIDS, 2, 4, 9, excluded=[0, 1], columns={"camera": CAMERAS})
    assert not np.isin(np.concatenate([excluded.batch(i) for i in range(20)]), [0, 1]).any()


# Video: identity x tracklets, each tracklet (name, frames); rows shuffled, frame numbers not in row order.
CLIP_TRACKS = {"p": [("p1", 7), ("p2", 2)], "q": [("q1", 5)], "r": [("r1", 3), ("r2", 4), ("r3", 6)]}
_clip_rows = [(pid, name, frame) for pid, tracks in CLIP_TRACKS.items() for name, n in tracks
              for frame in range(10, 10 + 3 * n, 3)]
_clip_rows = [_clip_rows[i] for i in np.random.default_rng(1).permutation(len(_clip_rows))]
CLIP_PIDS = np.array([pid for pid, _, _ in _clip_rows])
CLIP_COLUMNS = {"tracklet": np.array([name for _, name, _ in _clip_rows]),
                "frame": np.array([frame for _, _, frame in _clip_rows], np.int64)}


@pytest.mark.parametrize("k, t", [(2, 4), (3, 3)])
def test_pk_clips_batches_hold_k_clips_of_t_frames_in_frame_order(k, t):
    """Each batch: P identities, each with K clips; a clip is T rows of one tracklet of the identity, in
    frame order, distinct while the tracklet has T frames (each repeated at most ceil(T / frames) times),
    and an identity's clips use distinct tracklets while it has K of them."""
    sampler = SAMPLERS["pk_clips"](CLIP_PIDS, 2, k, seed=3, columns=CLIP_COLUMNS, clip_length=t)
    assert sampler.batch_size == 2 * k * t and sampler.clip_length == t and sampler.batches_per_epoch == 1
    tracklets, frames = CLIP_COLUMNS["tracklet"], CLIP_COLUMNS["frame"]
    lengths = {name: n for tracks in CLIP_TRACKS.values() for name, n in tracks}
    seen = set()
    for index in range(30):
        rows = sampler.batch(index)
        assert rows.shape == (2 * k * t,)
        identities = [CLIP_PIDS[rows[i * k * t]] for i in range(2)]
        assert len(set(identities)) == 2
        for i, pid in enumerate(identities):
            clips = rows[i * k * t:(i + 1) * k * t].reshape(k, t)
            names = [tracklets[clip[0]] for clip in clips]
            owned = [name for name, _ in CLIP_TRACKS[pid]]
            assert set(names) <= set(owned)
            assert max(Counter(names).values()) == math.ceil(k / len(owned)) or len(set(names)) == k
            for clip, name in zip(clips, names):
                assert (CLIP_PIDS[clip] == pid).all() and (tracklets[clip] == name).all()
                assert (np.diff(frames[clip]) >= 0).all()
                assert max(Counter(clip.tolist()).values()) <= math.ceil(t / lengths[name])
                if lengths[name] >= t:
                    assert len(set(clip.tolist())) == t
            seen.update(identities)
    assert seen == set(CLIP_TRACKS)


def test_pk_clips_is_a_function_of_seed_and_index_and_leaves_out_excluded_rows():
    a = SAMPLERS["pk_clips"](CLIP_PIDS, 2, 2, 5, columns=CLIP_COLUMNS, clip_length=3)
    b = SAMPLERS["pk_clips"](CLIP_PIDS, 2, 2, 5, columns=CLIP_COLUMNS, clip_length=3)
    assert all(np.array_equal(a.batch(i), b.batch(i)) for i in (7, 0, 3))
    other = SAMPLERS["pk_clips"](CLIP_PIDS, 2, 2, 6, columns=CLIP_COLUMNS, clip_length=3)
    assert not all(np.array_equal(a.batch(i), other.batch(i)) for i in range(5))
    # every frame of tracklet p2 and one of q1 are undecodable
    gone = np.flatnonzero((CLIP_COLUMNS["tracklet"] == "p2") |
                          ((CLIP_COLUMNS["tracklet"] == "q1") & (CLIP_COLUMNS["frame"] == 13)))
    excluded = SAMPLERS["pk_clips"](CLIP_PIDS, 2, 2, 5, gone, CLIP_COLUMNS, clip_length=3)
    used = np.concatenate([excluded.batch(i) for i in range(30)])
    assert not set(used.tolist()) & set(gone.tolist())
    p_rows = used[CLIP_PIDS[used] == "p"]
    assert len(p_rows) and (CLIP_COLUMNS["tracklet"][p_rows] == "p1").all()


def test_pk_clips_needs_a_tracklet_column():
    with pytest.raises(TrinetError, match="--sampler pk_clips draws K tracklets .* no tracklet column"):
        SAMPLERS["pk_clips"](CLIP_PIDS, 2, 2, 0, columns={"frame": CLIP_COLUMNS["frame"]})


# -- many classes with few images (issue 23: SOP has 11,318 classes of about 5 images) ---------------------
def _many_classes(classes: int, seed: int = 0) -> np.ndarray:
    """Shuffled pids of `classes` classes of 1 to 8 images each (mean 4.5)."""
    rng = np.random.default_rng(seed)
    pids = np.repeat(np.arange(classes), rng.integers(1, 9, classes))
    return pids[rng.permutation(len(pids))]


def test_pk_with_100k_classes_smaller_than_k_is_fast_and_correct():
    """100,000 classes, most of them smaller than K = 8: every batch still has P classes of K images (a short
    class repeats its images, each at most ceil(K / count) times, as the original). Measured (2 shared
    cores): 0.2 s to build, 0.3 ms a batch; the bounds leave 50x for a loaded machine, and catch per-batch
    work in the number of classes (100k Python steps take > 20 ms)."""
    import time

    pids = _many_classes(100_000)
    counts = np.bincount(pids)
    start = time.process_time()
    sampler = PKSampler(pids, batch_p=32, batch_k=8, seed=2)
    assert time.process_time() - start < 10
    assert sampler.batches_per_epoch == 100_000 // 32
    start = time.process_time()
    for index in range(200):
        rows = sampler.batch(index)
        blocks = pids[rows].reshape(32, 8)
        assert (blocks == blocks[:, :1]).all() and len(set(blocks[:, 0])) == 32
        for block_rows in rows.reshape(32, 8):
            uses = Counter(block_rows.tolist())
            assert max(uses.values()) <= math.ceil(8 / counts[pids[block_rows[0]]])
    assert (time.process_time() - start) / 200 < 0.02


def test_class_balanced_visits_every_class_once_a_pass_with_one_image_each():
    pids = _many_classes(1000, seed=4)
    sampler = SAMPLERS["class_balanced"](pids, batch_p=10, batch_k=5, seed=3)
    assert sampler.batches_per_epoch == 1000 // 50 and not sampler.positives
    for epoch in range(2):
        seen = []
        for index in range(epoch * 20, (epoch + 1) * 20):
            rows = sampler.batch(index)
            assert rows.shape == (50,) and rows.dtype == np.int64
            assert len(set(pids[rows])) == 50  # distinct classes
            seen.extend(pids[rows])
        assert sorted(seen) == list(range(1000))  # every class once in the pass (1000 = 20 x 50)


def test_class_balanced_is_a_function_of_seed_and_index_and_draws_each_image():
    pids = np.repeat(np.arange(6), [1, 2, 3, 4, 5, 30])
    a = SAMPLERS["class_balanced"](pids, batch_p=2, batch_k=3, seed=7)
    b = SAMPLERS["class_balanced"](pids, batch_p=2, batch_k=3, seed=7)
    order = [a.batch(i) for i in range(300)]
    assert all(np.array_equal(b.batch(i), order[i]) for i in reversed(range(300)))  # any order: resumable
    assert not np.array_equal(SAMPLERS["class_balanced"](pids, 2, 3, seed=8).batch(0), order[0])
    rows = np.concatenate(order)
    assert set(rows[pids[rows] == 5]) == set(np.flatnonzero(pids == 5))  # a large class shows all its images
    # each class is drawn equally often (once a pass), whatever its size
    assert len(set(Counter(pids[rows]).values())) == 1


def test_class_balanced_leaves_out_excluded_rows_and_refuses_too_few_classes():
    pids = np.repeat(np.arange(6), 3)
    sampler = SAMPLERS["class_balanced"](pids, batch_p=1, batch_k=5, seed=1, excluded=[0, 1, 2, 3])
    rows = np.concatenate([sampler.batch(i) for i in range(20)])
    assert not set(rows) & {0, 1, 2, 3} and 0 not in set(pids[rows])  # class 0 has no image left
    with pytest.raises(TrinetError, match="6 distinct classes in a batch, but the training set has 5"):
        SAMPLERS["class_balanced"](pids, batch_p=2, batch_k=3, seed=1, excluded=[0, 1, 2])
