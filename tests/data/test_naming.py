"""Release naming: each pattern accepts its release's names and the evaluation reads the same person and
camera from them as the converters."""

import re

import pytest

from trinet.data import naming

#: A real-looking name of each release, its person and its camera.
NAMES = {
    "market1501": [("0002_c1s1_000451_03.jpg", "0002", 1), ("-1_c3s2_012345_00.jpg", "-1", 3),
                   ("0000_c6s4_002202_05.jpg", "0000", 6)],
    "duke": [("0005_c2_f0046985.jpg", "0005", 2)],
    "cuhk03": [("0001_c1_1.png", "0001", 1), ("1467_c2_9.png", "1467", 2)],
    "msmt17": [("0000_000_01_0303morning_0015_0.jpg", "0000", 1),
               ("3059_012_15_0113noon_0957_1_ex.jpg", "3059", 15)],
    # VIPeR: the camera is the folder; the pair shares its number, not its angle.
    "viper": [("cam_a/000_45.bmp", "000", 1), ("cam_b/000_90.bmp", "000", 2),
              ("cam_b/873_180.bmp", "873", 2)],
    # CUHK01: images 001-002 from camera 1, 003-004 from camera 2.
    "cuhk01": [("0001001.png", "0001", 1), ("0001002.png", "0001", 1), ("0971003.png", "0971", 2),
               ("0971004.png", "0971", 2)],
}


@pytest.mark.parametrize("name", sorted(naming.NAMINGS))
def test_official_and_loose_patterns_agree_on_person_and_camera(name):
    rule = naming.NAMINGS[name]
    for file_name, pid, camera in NAMES[name] + [(rule.example, None, None)]:
        strict = rule.match(file_name)
        loose = re.fullmatch(rule.loose, file_name.rsplit(".", 1)[0])
        assert strict is not None and loose is not None, file_name
        assert strict["pid"] == loose["pid"] and rule.camera(strict["camera"]) == rule.camera(loose["cam"])
        if pid is not None:
            assert (strict["pid"], rule.camera(strict["camera"])) == (pid, camera)


@pytest.mark.parametrize("name, file_name", [
    ("market1501", "0002_c7s1_000451_03.jpg"),  # Market-1501 has 6 cameras
    ("market1501", "0002_c1s1_000451_03.png"),
    ("duke", "5_c2_f0046985.jpg"),
    ("cuhk03", "0001_c3_1.png"),  # a camera pair
    ("msmt17", "0000_000_16_0303morning_0015_0.jpg"),
    ("viper", "000_45.bmp"),  # the camera folder is part of the name
    ("viper", "cam_c/000_45.bmp"),
    ("cuhk01", "0001005.png"),  # four images per person
])
def test_official_patterns_refuse_names_of_no_release(name, file_name):
    assert naming.NAMINGS[name].match(file_name) is None


def test_market_name_follows_the_market_naming():
    name = naming.market_name(naming.JUNK_PID, 2, 6, 451, 3)
    assert name == "-1_c2s6_000451_03.jpg"
    assert naming.MARKET1501.match(name)["pid"] == naming.JUNK_PID
    assert naming.MARKET_LABELS == {"-1": "junk", "0000": "distractor"}


def test_tail_keeps_the_folders_the_naming_includes():
    assert naming.VIPER.tail("VIPeR/cam_b/012_90.bmp") == "cam_b/012_90.bmp"
    assert naming.VIPER.tail("C:\\data\\VIPeR\\cam_a\\012_0.bmp") == "cam_a/012_0.bmp"
    assert naming.CUHK01.tail("campus/0001001.png") == "0001001.png"
    assert naming.CUHK01.camera("002") == 1 and naming.CUHK01.camera("003") == 2
    assert naming.CUHK01.camera("005") is None
