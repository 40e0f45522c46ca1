"""The video re-id converters (MARS, iLIDS-VID, PRID2011, DukeMTMC-VideoReID) on fake release layouts
generated here, the MARS info files written with scipy.io.savemat."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy.io import savemat

from test_converters import load_script, make_files, read_lines
from trinet.console.commands import run_main
from trinet.core.errors import TrinetError
from trinet.data.converters import registry
from trinet.data.datasets import read_csv
from trinet.data.tracklets import group_tracklets

#: MARS tracklets: (folder, person name, pid in the info file, camera, tracklet, frames).
MARS_TRAIN = [("bbox_train", "0001", 1, 1, 1, 3), ("bbox_train", "0001", 1, 2, 1, 2),
              ("bbox_train", "0002", 2, 1, 1, 2)]
MARS_TEST = [("bbox_test", "0003", 3, 1, 1, 2), ("bbox_test", "0003", 3, 2, 1, 3),
             ("bbox_test", "00-1", -1, 1, 1, 1), ("bbox_test", "0000", 0, 3, 1, 2),
             ("bbox_test", "0004", 4, 1, 1, 1), ("bbox_test", "0004", 4, 4, 2, 2)]
MARS_QUERY = [1, 5]  # 1-based, among the test tracklets


def make_mars(parent, query=MARS_QUERY) -> str:
    root = os.path.join(parent, "MARS")
    names = {}
    for split, tracks in (("train", MARS_TRAIN), ("test", MARS_TEST)):
        info, listed = [], []
        for folder, person, pid, camera, tracklet, frames in tracks:
            start = len(listed) + 1
            for frame in range(1, frames + 1):
                name = f"{person}C{camera}T{tracklet:04d}F{frame:03d}.jpg"
                listed.append(name)
                make_files(root, [f"{folder}/{person}/{name}"])
            info.append([start, len(listed), pid, camera])
        names[split] = listed
        os.makedirs(os.path.join(root, "info"), exist_ok=True)
        with open(os.path.join(root, "info", f"{split}_name.txt"), "w") as f:
            f.write("\n".join(listed) + "\n")
        savemat(os.path.join(root, "info", f"tracks_{split}_info.mat"),
                {f"track_{split}_info": np.array(info, np.float64)})
    savemat(os.path.join(root, "info", "query_IDX.mat"), {"query_IDX": np.array([query], np.float64)})
    return root


def make_ilidsvid(parent, persons=4) -> str:
    root = os.path.join(parent, "iLIDS-VID-release")
    for person in range(1, persons + 1):
        for camera in (1, 2):
            make_files(root, [f"i-LIDS-VID/sequences/cam{camera}/person{person:03d}/"
                              f"cam{camera}_person{person:03d}_{frame:05d}.png"
                              for frame in range(10 * person, 10 * person + 2 + camera)])
    splits = np.array([np.random.RandomState(t).permutation(persons) + 1 for t in range(10)], np.float64)
    os.makedirs(os.path.join(root, "train-test people splits"))
    savemat(os.path.join(root, "train-test people splits", "train_test_splits_ilidsvid.mat"),
            {"ls_set": splits})
    return root


def make_prid2011(parent) -> str:
    root = os.path.join(parent, "prid_2011")
    # persons 1-4 in both cameras, 5 only in camera a, 6 only in camera b
    for camera, persons in (("a", (1, 2, 3, 4, 5)), ("b", (1, 2, 3, 4, 6))):
        for person in persons:
            make_files(root, [f"multi_shot/cam_{camera}/person_{person:04d}/{frame:04d}.png"
                              for frame in range(1, 4)])
    make_files(root, ["single_shot/cam_a/person_0001.png", "multi_shot/cam_a/Thumbs.db"])
    return root


def make_duke_video(parent) -> str:
    root = os.path.join(parent, "DukeMTMC-VideoReID")
    names = ["train/0001/0001/0001_C6_F0017_X30001.jpg", "train/0001/0001/0001_C6_F0018_X30001.jpg",
             "train/0001/0002/0001_C7_F0100_X30001.jpg", "train/0002/0005/0002_C1_F0001_X30001.jpg",
             "query/0005/0001/0005_C1_F0040_X10001.jpg", "query/0005/0001/0005_C1_F0041_X10001.jpg",
             "gallery/0005/0007/0005_C2_F0300_X20001.jpg", "gallery/0005/0001/0005_C1_F0040_X10001.jpg",
             "gallery/0009/0003/0009_C4_F0011_X20001.jpg"]
    return make_files(root, names)


VIDEO_MIMICS = {"mars": make_mars, "ilidsvid": make_ilidsvid, "prid2011": make_prid2011,
                "duke-video": make_duke_video}


def tracks_of(path):
    """{tracklet: (pid, camera, [paths in frame order])} of a written CSV."""
    dataset = read_csv(str(path))
    out = {}
    tracklets = group_tracklets(dataset)
    for name, rows in zip(tracklets.names, tracklets.rows):
        out[str(name)] = (str(dataset.pids[rows[0]]), int(dataset.cameras[rows[0]]),
                          dataset.fids[rows].tolist())
    return out


def convert(name, tmp_path, *extra):
    release = VIDEO_MIMICS[name](tmp_path / "release")
    out = tmp_path / "csv"
    assert run_main(load_script("convert").main, [name, release, "--out", str(out), *extra]) == 0
    return out


def test_mars_uses_the_info_files_and_the_query_indices(tmp_path, capsys):
    out = convert("mars", tmp_path)
    stdout = capsys.readouterr().out
    assert read_lines(out / "mars_train.csv")[:3] == [
        "pid,path,camera,tracklet,frame",
        "0001,bbox_train/0001/0001C1T0001F001.jpg,1,0001C1T0001,1",
        "0001,bbox_train/0001/0001C1T0001F002.jpg,1,0001C1T0001,2"]
    query, gallery = tracks_of(out / "mars_query.csv"), tracks_of(out / "mars_test.csv")
    assert {t: v[:2] for t, v in query.items()} == {"0003C1T0001": ("0003", 1), "0004C1T0001": ("0004", 1)}
    # The gallery is the other test tracklets, junk (-1) and distractors (0000) among them.
    assert {t: v[:2] for t, v in gallery.items()} == {
        "0003C2T0001": ("0003", 2), "00-1C1T0001": ("-1", 1), "0000C3T0001": ("0000", 3),
        "0004C4T0002": ("0004", 4)}
    assert len(gallery["0003C2T0001"][2]) == 3
    assert ("mars_test.csv: 8 rows, 2 identities, 1 junk rows (pid -1), 2 distractor rows (pid 0000), "
            "4 tracklets") in stdout


def test_mars_info_file_errors(tmp_path):
    release = make_mars(tmp_path, query=[1, 7])
    with pytest.raises(TrinetError, match=r"query_IDX.mat: the query indices must lie in 1-6"):
        registry.convert("mars", release)
    savemat(os.path.join(release, "info", "tracks_test_info.mat"),
            {"track_test_info": np.array([[1, 2, 5, 1]], np.float64)})
    with pytest.raises(TrinetError, match=r"tracks_test_info.mat: tracklet 1 is person 5, camera 1, but its "
                                          r"frame 0003C1T0001F001.jpg is not"):
        registry.convert("mars", release)
    savemat(os.path.join(release, "info", "tracks_test_info.mat"), {"other": np.zeros((1, 4))})
    with pytest.raises(TrinetError, match=r"no variable 'track_test_info'; it holds \['other'\]"):
        registry.convert("mars", release)
    os.remove(os.path.join(release, "info", "query_IDX.mat"))
    with pytest.raises(TrinetError, match=r"missing info/query_IDX.mat"):
        registry.convert("mars", release)


def test_ilidsvid_trials_follow_the_split_file(tmp_path):
    release = make_ilidsvid(tmp_path)
    for trial in (0, 3):
        conversion = registry.convert("ilidsvid", release, trial)
        permutation = np.random.RandomState(trial).permutation(4) + 1
        test = sorted(f"{p:03d}" for p in permutation[:2])
        train = sorted(f"{p:03d}" for p in permutation[2:])
        assert sorted({pid for pid, _ in conversion.rows["query"]}) == test
        assert sorted({pid for pid, _ in conversion.rows["train"]}) == train
        assert all("/cam1/" in path for _, path in conversion.rows["query"])
        assert all("/cam2/" in path for _, path in conversion.rows["test"])
    out = convert("ilidsvid", tmp_path, "--trial", "2")
    tracks = tracks_of(out / "ilidsvid_trial2_test.csv")
    assert all(camera == 2 and len(paths) == 4 for _, camera, paths in tracks.values())
    assert read_lines(out / "ilidsvid_trial2_query.csv")[0] == "pid,path,camera,tracklet,frame"
    with pytest.raises(TrinetError, match=r"--trial 10: the iLIDS-VID protocol has the trials 0 to 9"):
        registry.convert("ilidsvid", release, 10)


def test_ilidsvid_person_in_one_camera_is_an_error(tmp_path):
    release = make_ilidsvid(tmp_path)
    make_files(release, ["i-LIDS-VID/sequences/cam1/person009/cam1_person009_00001.png"])
    with pytest.raises(TrinetError, match=r"1 are in one only: 009"):
        registry.convert("ilidsvid", release)


def test_prid2011_splits_the_persons_of_both_cameras(tmp_path, capsys):
    out = convert("prid2011", tmp_path, "--trial", "1")
    query, gallery = tracks_of(out / "prid2011_trial1_query.csv"), tracks_of(out / "prid2011_trial1_test.csv")
    train = tracks_of(out / "prid2011_trial1_train.csv")
    persons = sorted({pid for pid, _, _ in query.values()})
    assert persons == sorted({pid for pid, _, _ in gallery.values()}) and len(persons) == 2
    assert sorted(persons + sorted({pid for pid, _, _ in train.values()})) == ["0001", "0002", "0003", "0004"]
    assert len(train) == 4  # both cameras of the two training persons
    assert {camera for _, camera, _ in query.values()} == {1} and {c for _, c, _ in gallery.values()} == {2}
    assert "cam_b/person_0006" not in str(train) and "person_0005" not in str(query)
    assert list(query.values())[0][2][0].endswith("/0001.png")
    assert "skipped 1 clutter file(s): Thumbs.db" in capsys.readouterr().out


def test_duke_video_frames_and_tracklets(tmp_path):
    out = convert("duke-video", tmp_path)
    assert read_lines(out / "dukevideo_train.csv")[:2] == [
        "pid,path,camera,tracklet,frame", "0001,train/0001/0001/0001_C6_F0017_X30001.jpg,6,0001/0001,17"]
    assert tracks_of(out / "dukevideo_test.csv")["0005/0007"][:2] == ("0005", 2)


def test_bad_frame_names_are_listed(tmp_path):
    release = make_duke_video(tmp_path)
    make_files(release, ["query/0005/0001/frame.jpg"])
    with pytest.raises(TrinetError, match=r"1 file\(s\) do not follow the DukeMTMC-VideoReID naming .*"
                                          r"query/0005/0001/frame.jpg"):
        registry.convert("duke-video", release)


def test_video_pipeline_end_to_end_without_a_model(tmp_path):
    """The converted MARS query and gallery, pooled tracklet files written by hand, evaluate.py --excluder
    camera: the query's own-camera tracklets are ignored, junk too."""
    from trinet.cli.evaluate import main
    from trinet.data.embeddings.hdf5 import EmbeddingWriter

    out = convert("mars", tmp_path)
    files = {}
    for split in ("query", "test"):
        tracks = tracks_of(out / f"mars_{split}.csv")
        names = list(tracks)
        emb = np.array([[float(tracks[n][0].lstrip("0") or 0) if tracks[n][0] != "-1" else 3.0, 1.0]
                        for n in names], np.float32)
        path = tmp_path / f"{split}.h5"
        with EmbeddingWriter(str(path), len(names), 2, pids=[tracks[n][0] for n in names],
                             fids=[tracks[n][2][0] for n in names],
                             extra={"tracklets": np.array(names)}) as writer:
            writer.write(emb)
        files[split] = str(path)
    results = tmp_path / "r.json"
    assert main(["--excluder", "camera", "--query_dataset", str(out / "mars_query.csv"), "--query_embeddings",
                 files["query"], "--gallery_dataset", str(out / "mars_test.csv"), "--gallery_embeddings",
                 files["test"], "--filename", str(results), "--quiet"]) == 0
    import json
    data = json.loads(results.read_text())
    # Query 0003 (at 3) finds its camera-2 tracklet first (the junk at 3 is ignored); 0004 finds 0004 cam 4.
    assert data["mAP"] == pytest.approx(1.0) and data["num_gallery_ignored"] == 1
