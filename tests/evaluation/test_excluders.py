"""trinet.evaluation.excluders: parsing of the official file names and the masks they give."""

import numpy as np
import pytest

from trinet.core.errors import TrinetError
from trinet.evaluation.excluders import EXCLUDERS, RULES, Exclusion, KeyIndex, get_excluder

#: Real file names of each dataset's official release: (name, person, camera).
EXAMPLES = {
    "market1501": [("bounding_box_test/0002_c1s1_000451_03.jpg", 2, 1),
                   ("query/1501_c6s4_001902_01.jpg", 1501, 6),
                   ("bounding_box_test/-1_c1s1_000401_03.jpg", -1, 1),
                   ("bounding_box_test/0000_c1s1_000151_01.jpg", 0, 1)],
    "duke": [("query/0005_c2_f0046985.jpg", 5, 2), ("bounding_box_test/7140_c8_f0168316.jpg", 7140, 8)],
    "msmt17": [("test/0000/0000_000_01_0303morning_0015_0.jpg", 0, 1),
               ("test/3059/3059_023_15_0113noon_0917_1.jpg", 3059, 15)],
    "cuhk03": [("detected/query/0003_c1_22.png", 3, 1),
               ("labeled/bounding_box_test/1467_c2_05.png", 1467, 2)],
    "viper": [("cam_a/000_45.bmp", 0, 1), ("VIPeR/cam_b/000_90.bmp", 0, 2), ("cam_b/873_180.bmp", 873, 2)],
    "cuhk01": [("campus/0001001.png", 1, 1), ("campus/0001002.png", 1, 1), ("0971003.png", 971, 2),
               ("campus/0971004.png", 971, 2)],
}


@pytest.mark.parametrize("name", sorted(RULES))
def test_parsing_of_official_names(name):
    paths, persons, cameras = zip(*EXAMPLES[name])
    got_persons, got_cameras = RULES[name].parse(paths, "query")
    assert got_persons.tolist() == list(persons)
    assert got_cameras.tolist() == list(cameras)


@pytest.mark.parametrize("name, foreign", [
    ("market1501", "0005_c2_f0046985.jpg"),          # a Duke name
    ("duke", "0002_c1s1_000451_03.jpg"),             # a Market name
    ("msmt17", "0003_c1_22.png"),                    # a CUHK03-NP name
    ("cuhk03", "0000_000_01_0303morning_0015_0.jpg"),  # an MSMT17 name
    ("market1501", "img_0002.jpg"),
])
def test_foreign_names_are_errors_naming_file_and_pattern(name, foreign):
    good = EXAMPLES[name][0][0]
    with pytest.raises(TrinetError) as info:
        EXCLUDERS[name]([good], [good, "gallery/" + foreign])
    message = str(info.value)
    assert "1 gallery file names" in message and repr("gallery/" + foreign) in message
    assert "entry 2" in message and RULES[name].example in message and repr(RULES[name].regex) in message


def test_error_lists_a_few_and_counts_the_rest():
    with pytest.raises(TrinetError, match=r"5 query file names.*entry 1.*entry 2.*entry 3.*\(2 more\)"):
        EXCLUDERS["duke"]([f"bad{i}.jpg" for i in range(5)], ["0005_c2_f0046985.jpg"])


def test_market1501_mask_same_person_same_camera_and_junk():
    query = ["query/0002_c1s1_000451_03.jpg", "query/0007_c2s3_070952_01.jpg"]
    gallery = ["bounding_box_test/0002_c1s1_000551_01.jpg",   # 0: same person, same camera -> ignored
               "bounding_box_test/0002_c2s1_000801_01.jpg",   # 1: same person, other camera -> kept
               "bounding_box_test/-1_c1s1_000401_03.jpg",     # 2: junk -> ignored for everyone
               "bounding_box_test/0000_c1s1_000151_01.jpg",   # 3: distractor, query's camera -> kept
               "bounding_box_test/0007_c2s3_071052_02.jpg",   # 4: person 7, camera 2
               "bounding_box_test/0007_c1s3_071052_02.jpg"]   # 5: person 7, camera 1
    exclusion = EXCLUDERS["market1501"](query, gallery)
    expected = np.array([[1, 0, 1, 0, 0, 0],
                         [0, 0, 1, 0, 1, 0]], bool)
    np.testing.assert_array_equal(exclusion.mask(), expected)
    np.testing.assert_array_equal(exclusion.gallery_ignored, [0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(exclusion.mask(slice(1, 2)), expected[1:])


def test_persons_compare_as_numbers_and_cameras_do_not_mix_persons():
    # Person 12 camera 3 and person 123 camera ... must not collide in the integer keys.
    query = ["0012_c3_f0000001.jpg"]
    gallery = ["0012_c3_f0000002.jpg", "012_c3_f0000003.jpg", "0123_c3_f0000004.jpg", "0012_c4_f0000005.jpg"]
    np.testing.assert_array_equal(EXCLUDERS["duke"](query, gallery).mask(), [[1, 1, 0, 0]])


def test_msmt17_camera_is_the_third_field():
    query = ["0000_000_01_0303morning_0015_0.jpg"]
    gallery = ["0000_001_01_0303morning_0016_0.jpg",   # same camera 01 -> ignored
               "0000_002_07_0303noon_0041_1.jpg",      # camera 07 -> kept
               "0001_000_01_0303morning_0015_0.jpg"]   # other person -> kept
    np.testing.assert_array_equal(EXCLUDERS["msmt17"](query, gallery).mask(), [[1, 0, 0]])


def test_cuhk03_np():
    query = ["detected/query/0003_c1_22.png"]
    gallery = ["detected/bounding_box_test/0003_c1_23.png", "detected/bounding_box_test/0003_c2_01.png"]
    np.testing.assert_array_equal(EXCLUDERS["cuhk03"](query, gallery).mask(), [[1, 0]])


def test_viper_camera_is_the_folder_and_cuhk01_pairs_images_into_cameras():
    # VIPeR: the same file name in cam_a/ and cam_b/ is the same person in two cameras.
    exclusion = EXCLUDERS["viper"](["cam_a/005_45.bmp"], ["cam_a/005_45.bmp", "cam_b/005_45.bmp",
                                                          "cam_a/007_0.bmp"])
    np.testing.assert_array_equal(exclusion.mask(), [[1, 0, 0]])
    np.testing.assert_array_equal(exclusion.gallery_cameras, [0, 1, 0])
    # CUHK01: images 001/002 are camera 1, 003/004 camera 2.
    exclusion = EXCLUDERS["cuhk01"](["campus/0003001.png"], ["campus/0003002.png", "campus/0003003.png",
                                                             "campus/0003004.png", "campus/0004002.png"])
    np.testing.assert_array_equal(exclusion.mask(), [[1, 0, 0, 0]])
    np.testing.assert_array_equal(exclusion.query_cameras, [0])
    np.testing.assert_array_equal(exclusion.gallery_cameras, [0, 1, 1, 0])
    with pytest.raises(TrinetError, match=r"regex .* on the name with its last 1 folder\(s\)"):
        EXCLUDERS["viper"](["005_45.bmp"], ["cam_b/005_45.bmp"])
    with pytest.raises(TrinetError, match="1 gallery file names do not follow the CUHK01 naming"):
        EXCLUDERS["cuhk01"](["0003001.png"], ["0003005.png"])


def test_diagonal_ignores_only_the_same_path():
    files = ["a/x.jpg", "b/x.jpg", "a/y.jpg"]
    exclusion = EXCLUDERS["diagonal"](files, files + ["c/z.jpg"])
    np.testing.assert_array_equal(exclusion.mask(), np.eye(3, 4, dtype=bool))


def test_none_ignores_nothing():
    assert not EXCLUDERS["none"](["a.jpg", "b.jpg"], ["c.jpg"]).mask().any()


@pytest.mark.parametrize("name", sorted(EXCLUDERS))
def test_every_excluder_gives_a_consistent_exclusion(name):
    names = [path for path, _, _ in EXAMPLES.get(name, EXAMPLES["market1501"])]
    query, gallery = names[:2], names + names[:1]
    exclusion = get_excluder(name)(query, gallery)
    assert isinstance(exclusion, Exclusion) and exclusion.shape == (2, len(gallery))
    mask = exclusion.mask()
    assert mask.shape == (2, len(gallery)) and mask.dtype == bool
    # The sparse pairs plus the always-ignored columns are exactly the dense mask.
    rebuilt = np.zeros_like(mask)
    rows, cols = exclusion.pairs()
    rebuilt[rows, cols] = True
    rebuilt |= exclusion.gallery_ignored
    np.testing.assert_array_equal(rebuilt, mask)


def test_key_index_pairs_equal_brute_force():
    rng = np.random.default_rng(0)
    gallery_keys, query_keys = rng.integers(-1, 6, 40), rng.integers(-1, 8, 15)
    rows, cols = KeyIndex(gallery_keys).pairs(query_keys)
    expected = np.nonzero((query_keys[:, None] == gallery_keys[None]) & (query_keys[:, None] >= 0))
    np.testing.assert_array_equal(rows, expected[0])
    np.testing.assert_array_equal(cols, expected[1])


def test_unknown_excluder_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown excluder 'mars'.*'cuhk01', 'cuhk03', 'diagonal', 'duke'"):
        get_excluder("mars")


def test_registry_names():
    assert sorted(EXCLUDERS) == ["cuhk01", "cuhk03", "diagonal", "duke", "market1501", "msmt17", "none",
                                 "viper"]
