"""Dataset CSV parsing and validation: every error names the file (and line) and what is allowed."""

import os

import numpy as np
import pytest

from trinet.core.errors import TrinetError
from trinet.data.datasets import (check_files, find_non_images, image_format, load_dataset, read_any,
                                  read_csv, read_image_list)
from trinet.data.datasets import write_csv, write_dataset


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_rows_without_header_keep_string_identities(tmp_path):
    path = write(tmp_path, "a.csv",
                 "0002,bounding_box_train/0002_c1s1_000451_03.jpg\n-1,x/-1_c1.jpg\n0000,y.jpg\n")
    ds = read_csv(path)
    assert list(ds.pids) == ["0002", "-1", "0000"]
    assert list(ds.fids) == ["bounding_box_train/0002_c1s1_000451_03.jpg", "x/-1_c1.jpg", "y.jpg"]
    assert len(ds) == 3 and ds.source == path


def test_header_line_is_accepted_and_skipped(tmp_path):
    ds = read_csv(write(tmp_path, "a.csv", "pid,path\n7,a.jpg\n"))
    assert list(ds.pids) == ["7"] and list(ds.fids) == ["a.jpg"]


def test_header_only_counts_on_the_first_row(tmp_path):
    ds = read_csv(write(tmp_path, "a.csv", "7,a.jpg\npid,path\n"))
    assert list(ds.pids) == ["7", "pid"]


def test_quoted_paths_may_contain_commas(tmp_path):
    ds = read_csv(write(tmp_path, "a.csv", '1,"dir, with comma/img.jpg"\n'))
    assert list(ds.fids) == ["dir, with comma/img.jpg"]


def test_blank_lines_whitespace_and_byte_order_mark(tmp_path):
    ds = read_csv(write(tmp_path, "a.csv", "\ufeff 1 , a.jpg \n\n2,b.jpg\n\n"))
    assert list(ds.pids) == ["1", "2"] and list(ds.fids) == ["a.jpg", "b.jpg"]


@pytest.mark.parametrize("text, line, words", [
    ("1,a.jpg\n2,b.jpg,extra\n", 2, "expected 2 columns `pid,path`, found 3"),
    ("1,a.jpg\n\n3\n", 3, "expected 2 columns `pid,path`, found 1"),
    ("1,a.jpg\n2,\n", 2, "empty image path"),
    (",a.jpg\n", 1, "empty identity"),
])
def test_malformed_rows_name_file_and_line(tmp_path, text, line, words):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(TrinetError) as e:
        read_csv(path)
    assert f"{path}:{line}:" in str(e.value) and words in str(e.value)


def test_empty_dataset_is_an_error(tmp_path):
    for text in ("", "pid,path\n", "\n\n"):
        path = write(tmp_path, "empty.csv", text)
        with pytest.raises(TrinetError, match="empty"):
            read_csv(path)


def test_missing_file_and_directory_and_binary(tmp_path):
    with pytest.raises(TrinetError, match="not found"):
        read_csv(str(tmp_path / "nope.csv"))
    with pytest.raises(TrinetError, match="is a directory"):
        read_csv(str(tmp_path))
    path = tmp_path / "bin.csv"
    path.write_bytes(b"1,\xff\xfe\x00a.jpg\n")
    with pytest.raises(TrinetError, match="not a UTF-8 text file"):
        read_csv(str(path))


def test_missing_images_are_counted_and_listed(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "ok.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    rows = "1,ok.jpg\n" + "".join(f"{i},missing{i}.jpg\n" for i in range(8))
    path = write(tmp_path, "d.csv", rows)
    with pytest.raises(TrinetError) as e:
        load_dataset(path, str(tmp_path / "img"))
    message = str(e.value)
    assert "8 of 9 images not found" in message
    assert "missing0.jpg, missing1.jpg, missing2.jpg, missing3.jpg, missing4.jpg, ... (3 more)" in message
    assert message.endswith(". Check --image_root.")  # baselines (load_dataset) has no --skip_missing
    with pytest.raises(TrinetError, match=r"Check --image_root, or pass --skip_missing to drop them\.$"):
        check_files(read_csv(path, str(tmp_path / "img")))  # as train.py calls it


def test_skip_missing_drops_them_and_keeps_order(tmp_path):
    (tmp_path / "b.jpg").write_bytes(b"x")
    (tmp_path / "d.jpg").write_bytes(b"x")
    ds = load_dataset(write(tmp_path, "d.csv", "1,a.jpg\n2,b.jpg\n3,c.jpg\n4,d.jpg\n"), str(tmp_path),
                      skip_missing=True)
    assert list(ds.pids) == ["2", "4"] and list(ds.fids) == ["b.jpg", "d.jpg"]


def test_skip_missing_with_nothing_left_is_an_error(tmp_path):
    with pytest.raises(TrinetError, match="No image is left"):
        load_dataset(write(tmp_path, "d.csv", "1,a.jpg\n"), str(tmp_path), skip_missing=True)


def test_image_root_must_be_a_directory(tmp_path):
    path = write(tmp_path, "d.csv", "1,a.jpg\n")
    with pytest.raises(TrinetError, match="not a directory"):
        check_files(read_csv(path, str(tmp_path / "nowhere")))


def test_plain_image_lists_keep_commas_and_have_no_identities(tmp_path):
    ds = read_image_list(write(tmp_path, "list.txt", "a/b,c.jpg\n\n  d.png \n"))
    assert list(ds.fids) == ["a/b,c.jpg", "d.png"] and list(ds.pids) == ["", ""]
    assert list(read_any(str(tmp_path / "list.txt")).fids) == ["a/b,c.jpg", "d.png"]
    assert list(read_any(write(tmp_path, "x.CSV", "1,a.jpg\n")).pids) == ["1"]
    with pytest.raises(TrinetError, match="empty"):
        read_image_list(write(tmp_path, "e.txt", "\n"))


def test_image_signatures(tmp_path):
    samples = {"a.jpg": b"\xff\xd8\xff\xe0rest", "b.png": b"\x89PNG\r\n\x1a\nrest", "c.bmp": b"BMxxxx",
               "d.gif": b"GIF89a..", "e.jpg": b"", "f.jpg": b"<html>not an image</html>"}
    for name, data in samples.items():
        (tmp_path / name).write_bytes(data)
    assert [image_format(str(tmp_path / n)) for n in samples] == ["jpeg", "png", "bmp", "gif", None, None]
    assert image_format(str(tmp_path / "missing.jpg")) is None
    ds = read_csv(write(tmp_path, "d.csv", "".join(f"1,{n}\n" for n in samples)), str(tmp_path))
    np.testing.assert_array_equal(find_non_images(ds), [False, False, False, False, True, True])


def test_absolute_paths_ignore_the_image_root(tmp_path):
    target = tmp_path / "abs.jpg"
    target.write_bytes(b"x")
    ds = read_csv(write(tmp_path, "d.csv", f"1,{target}\n"), "/somewhere/else")
    assert ds.paths() == [str(target)] and os.path.isfile(ds.paths()[0])


def test_write_csv_is_read_back_row_for_row(tmp_path):
    path = str(tmp_path / "set.csv")
    pids, fids = ["0002", "-1", "market1501/0002"], ["a/b.jpg", "with,comma.jpg", 'quote".jpg']
    write_csv(path, pids, fids)
    dataset = read_csv(path)
    assert dataset.pids.tolist() == pids and dataset.fids.tolist() == fids
    assert open(path).read().splitlines()[0] == "0002,a/b.jpg"
    with pytest.raises(ValueError):
        write_csv(str(tmp_path / "other.csv"), pids, fids[:2])
    assert sorted(os.listdir(tmp_path)) == ["set.csv"]  # no partial file, no temporary left


# ---------------------------------------------------------------------------------------------------------
# Metadata columns (a header naming them)


def test_header_names_columns_in_any_order(tmp_path):
    text = "Camera,path,frame,PID,tracklet\n3,a.jpg,10,0002,t1\n3,b.jpg,2,0002,t1\n1,c.jpg,0,0005,t2\n"
    ds = read_csv(write(tmp_path, "a.csv", text))
    assert list(ds.pids) == ["0002", "0002", "0005"] and list(ds.fids) == ["a.jpg", "b.jpg", "c.jpg"]
    assert ds.cameras.tolist() == [3, 3, 1] and ds.cameras.dtype == np.int64
    assert ds.frames.tolist() == [10, 2, 0] and ds.tracklets.tolist() == ["t1", "t1", "t2"]
    assert ds.queries is None and ds.lines.tolist() == [2, 3, 4]
    assert list(ds.columns()) == ["camera", "tracklet", "frame"]


def test_without_header_there_are_no_columns(tmp_path):
    ds = read_csv(write(tmp_path, "a.csv", "1,a.jpg\n\n2,b.jpg\n"))
    assert ds.cameras is None and ds.tracklets is None and ds.frames is None and ds.columns() == {}
    assert ds.lines.tolist() == [1, 3] and ds.where(1) == f"{ds.source}:3"


def test_subset_keeps_the_columns_row_for_row(tmp_path):
    ds = read_csv(write(tmp_path, "a.csv", "pid,path,camera\n1,a.jpg,4\n2,b.jpg,5\n3,c.jpg,6\n"))
    part = ds.subset(np.array([True, False, True]))
    assert part.fids.tolist() == ["a.jpg", "c.jpg"] and part.cameras.tolist() == [4, 6]
    assert part.lines.tolist() == [2, 4]


@pytest.mark.parametrize("text, line, words", [
    ("pid,path,camera\n1,a.jpg,2\n2,b.jpg\n", 3, "expected 3 columns `pid,path,camera`, found 2"),
    ("pid,path,camera\n1,a.jpg,\n", 2, "empty camera"),
    ("pid,path,camera\n1,a.jpg,c2\n", 2, "camera 'c2' is not an integer >= 0"),
    ("pid,path,camera\n1,a.jpg,-1\n", 2, "camera '-1' is not an integer >= 0"),
    ("pid,path,frame\n1,a.jpg,1.5\n", 2, "frame '1.5' is not an integer"),
    ("\n\npid,path,tracklet\n1,a.jpg,\n", 4, "empty tracklet"),
    ("\npid,path,cam\n1,a.jpg,1\n", 2, "unknown column(s) 'cam'"),
    ("pid,path,camera,camera\n", 1, "named twice"),
    ("path,camera\na.jpg,1\n", 1, "names no pid column"),
    ("1,a.jpg,3\n", 1, "need a header line naming them"),
    ("pid,path,tracklet\n1,a.jpg,t\n2,b.jpg,t\n", 3, "tracklet 't' has rows of two identities: 1 ("),
    ("pid,path,camera,tracklet\n1,a.jpg,1,t\n1,b.jpg,2,t\n", 3, "tracklet 't' has rows of two cameras"),
])
def test_bad_columns_name_file_and_line(tmp_path, text, line, words):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(TrinetError) as e:
        read_csv(path)
    assert f"{path}:{line}:" in str(e.value) and words in str(e.value)


def test_a_header_without_rows_is_empty(tmp_path):
    with pytest.raises(TrinetError, match="empty"):
        read_csv(write(tmp_path, "a.csv", "pid,path,camera\n\n"))


def test_write_csv_with_columns_writes_a_header_and_reads_back(tmp_path):
    path = str(tmp_path / "out.csv")
    write_csv(path, ["1", "2"], ["a,1.jpg", "b.jpg"], columns={"frame": [7, 8], "camera": [1, 2]})
    assert open(path).read() == 'pid,path,camera,frame\n1,"a,1.jpg",1,7\n2,b.jpg,2,8\n'
    ds = read_csv(path)
    assert ds.cameras.tolist() == [1, 2] and ds.frames.tolist() == [7, 8]
    write_dataset(str(tmp_path / "again.csv"), ds)
    assert open(tmp_path / "again.csv").read() == open(path).read()
    with pytest.raises(ValueError, match="Unknown dataset column"):
        write_csv(path, ["1"], ["a.jpg"], columns={"cam": [1]})
