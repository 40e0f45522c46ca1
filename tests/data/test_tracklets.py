"""Tracklets grouped from the tracklet column, ordered by frame, and their evenly spaced frames."""

import pytest

from trinet.core.errors import TrinetError
from trinet.data.datasets import read_csv
from trinet.data.tracklets import frame_choice, group_tracklets, tracklet_dataset


def test_grouping_orders_by_frame_and_keeps_first_appearance(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("pid,path,camera,tracklet,frame\n"
                    "2,b/3.jpg,1,tb,3\n"
                    "1,a/9.jpg,2,ta,9\n"
                    "2,b/1.jpg,1,tb,1\n"
                    "1,a/2.jpg,2,ta,2\n"
                    "2,b/2.jpg,1,tb,2\n"
                    "5,c/1.jpg,4,tc,1\n")
    dataset = read_csv(str(path))
    tracklets = group_tracklets(dataset)
    assert tracklets.names.tolist() == ["tb", "ta", "tc"] and len(tracklets) == 3
    assert [dataset.fids[rows].tolist() for rows in tracklets.rows] == [
        ["b/1.jpg", "b/2.jpg", "b/3.jpg"], ["a/2.jpg", "a/9.jpg"], ["c/1.jpg"]]
    one = tracklet_dataset(dataset, tracklets)
    assert one.pids.tolist() == ["2", "1", "5"] and one.cameras.tolist() == [1, 2, 4]
    assert one.fids.tolist() == ["b/1.jpg", "a/2.jpg", "c/1.jpg"] and one.lines.tolist() == [4, 5, 7]
    assert one.tracklets.tolist() == ["tb", "ta", "tc"]


def test_without_frames_the_csv_order_counts(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("pid,path,tracklet\n1,x.jpg,t\n1,a.jpg,t\n")
    dataset = read_csv(str(path))
    assert dataset.fids[group_tracklets(dataset).rows[0]].tolist() == ["x.jpg", "a.jpg"]


def test_without_a_tracklet_column_the_flag_is_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("1,x.jpg\n")
    with pytest.raises(TrinetError, match="--query_dataset .* `tracklet` column.*has none"):
        group_tracklets(read_csv(str(path)), "--query_dataset")


@pytest.mark.parametrize("count, wanted, expected", [
    (10, 4, [1, 3, 6, 8]), (3, 3, [0, 1, 2]), (3, 8, [0, 1, 2]), (5, None, [0, 1, 2, 3, 4]), (900, 1, [450]),
])
def test_frame_choice_is_evenly_spaced(count, wanted, expected):
    assert frame_choice(count, wanted).tolist() == expected


def test_frame_choice_is_distinct_and_in_range():
    for count in range(1, 40):
        for wanted in range(1, count + 1):
            chosen = frame_choice(count, wanted)
            assert len(set(chosen.tolist())) == wanted and chosen.min() >= 0 and chosen.max() < count
