"""trinet.evaluation.excluders: parsing of the official file names and the masks they give."""

import numpy as np
import pytest

from trinet.core.errors import TrinetError
from trinet.data.datasets import Dataset, read_csv
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
    examples = EXAMPLES.get(name, EXAMPLES["market1501"])
    rows = examples[:2] + examples + examples[:1]
    dataset = Dataset(np.array([f"{p:04d}" if p >= 0 else "-1" for _, p, _ in rows]),
                      np.array([path for path, _, _ in rows]), cameras=np.array([c for _, _, c in rows]))
    query, gallery = dataset.subset(np.arange(2)), dataset.subset(np.arange(2, len(rows)))
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
    assert sorted(EXCLUDERS) == ["camera", "cuhk01", "cuhk03", "diagonal", "duke", "market1501", "msmt17",
                                 "none", "viper"]


# ---------------------------------------------------------------------------------------------------------
# The camera column


def market_dataset(names, cameras=None, source="<memory>"):
    """A Dataset of Market-1501 names with the persons of the names as identities."""
    pids = [RULES["market1501"].naming.match(name.rsplit("/", 1)[-1])["pid"] for name in names]
    cameras = None if cameras is None else np.array(cameras, np.int64)
    return Dataset(np.array(pids), np.array(names), source, cameras=cameras,
                   lines=np.arange(1, len(names) + 1) + 1)


def test_camera_excluder_equals_market1501_on_market_names():
    rng = np.random.default_rng(3)
    names = [f"{rng.choice(['-1', '0000', '0002', '0007', '0011'])}_c{rng.integers(1, 7)}s1_"
             f"{i:06d}_01.jpg" for i in range(60)]
    cameras = [int(name.split("_c")[1][0]) for name in names]
    query, gallery = market_dataset(names[:20], cameras[:20]), market_dataset(names[20:], cameras[20:])
    by_column = EXCLUDERS["camera"](query, gallery)
    by_name = EXCLUDERS["market1501"](query.fids, gallery.fids)
    np.testing.assert_array_equal(by_column.mask(), by_name.mask())
    assert by_name.mask().any() and not by_name.mask().all()
    # The same cameras, coded alike (equal codes = same camera), for the cuhk03 CMC protocol.
    for column, names_ in ((by_column.query_cameras, by_name.query_cameras),
                           (by_column.gallery_cameras, by_name.gallery_cameras)):
        np.testing.assert_array_equal(column, names_)


def test_camera_excluder_by_hand_for_any_naming(tmp_path):
    (tmp_path / "q.csv").write_text("pid,path,camera\nalice,frontdoor/a1.png,0\nbob,b1.png,3\n")
    (tmp_path / "g.csv").write_text("camera,pid,path\n"
                                    "0,alice,x/1.png\n"   # 0: alice, her camera -> ignored for query 0
                                    "2,alice,x/2.png\n"   # 1: alice, another camera -> kept
                                    "3,alice,x/3.png\n"   # 2: bob's camera, other person -> kept
                                    "3,bob,x/4.png\n"     # 3: bob, his camera -> ignored for query 1
                                    "1,-1,x/5.png\n")     # 4: junk -> ignored for everyone
    exclusion = EXCLUDERS["camera"](read_csv(str(tmp_path / "q.csv")), read_csv(str(tmp_path / "g.csv")))
    assert exclusion.mask().tolist() == [[True, False, False, False, True], [False, False, False, True, True]]


def test_camera_excluder_needs_the_column(tmp_path):
    (tmp_path / "q.csv").write_text("1,a.jpg\n")
    query = read_csv(str(tmp_path / "q.csv"))
    with pytest.raises(TrinetError,
                       match=r"camera` column of the query CSV, but .*q.csv has none.*pid,path,camera"):
        EXCLUDERS["camera"](query, market_dataset(["0002_c1s1_000451_03.jpg"], [1]))
    with pytest.raises(TrinetError, match="gallery CSV, but the file names has none"):
        EXCLUDERS["camera"](market_dataset(["0002_c1s1_000451_03.jpg"], [1]), ["0002_c1s1_000451_03.jpg"])


def test_release_excluder_checks_the_camera_column_against_the_names(tmp_path):
    names = ["0002_c1s1_000451_03.jpg", "0002_c2s1_000451_03.jpg", "0007_c3s1_000451_03.jpg"]
    good = market_dataset(names, [1, 2, 3], "g.csv")
    plain = EXCLUDERS["market1501"](names[:1], names)
    checked = EXCLUDERS["market1501"](good.subset(np.arange(1)), good)
    np.testing.assert_array_equal(checked.mask(), plain.mask())
    bad = market_dataset(names, [1, 5, 3], "g.csv")
    with pytest.raises(TrinetError) as info:
        EXCLUDERS["market1501"](good.subset(np.arange(1)), bad)
    message = str(info.value)
    assert "1 rows of g.csv" in message
    assert "g.csv:3: camera 5 but '0002_c2s1_000451_03.jpg' is camera 2" in message
    assert "--excluder camera" in message
    # VIPeR's cameras come from its folders (a -> 1, b -> 2), and the column is checked against those.
    viper = Dataset(np.array(["000", "000"]), np.array(["cam_a/000_45.bmp", "cam_b/000_90.bmp"]), "v.csv",
                    cameras=np.array([1, 1]), lines=np.array([2, 3]))
    with pytest.raises(TrinetError, match="v.csv:3: camera 1 but 'cam_b/000_90.bmp' is camera 2"):
        EXCLUDERS["viper"](viper, viper)
