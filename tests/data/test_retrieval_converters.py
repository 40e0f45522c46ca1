"""The converters of the retrieval benchmarks (CUB-200-2011, Cars196, SOP, In-Shop) on fake releases."""

from __future__ import annotations

import os

import numpy as np
import pytest

from trinet.cli.convert import main
from trinet.core.errors import TrinetError
from trinet.data.converters import registry
from trinet.data.datasets import load_dataset

JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 12


def touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(JPEG)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def make_cub200(parent, classes=(1, 2, 100, 101, 150, 200)) -> str:
    """CUB_200_2011 with two images of each of `classes`, listed out of order."""
    root = os.path.join(parent, "CUB_200_2011")
    images, labels = [], []
    number = 0
    for c in reversed(classes):
        for k in range(2):
            number += 1
            path = f"{c:03d}.Bird_{c}/Bird_{c}_{k:04d}_{number}.jpg"
            touch(os.path.join(root, "images", path))
            images.append(f"{number} {path}")
            labels.append(f"{number} {c}")
    write(os.path.join(root, "images.txt"), "\n".join(images) + "\n")
    write(os.path.join(root, "image_class_labels.txt"), "\n".join(labels) + "\n")
    write(os.path.join(root, "train_test_split.txt"), "".join(f"{i + 1} {i % 2}\n" for i in range(number)))
    return root


def make_cars196(parent, classes=(1, 98, 99, 196, 5)) -> str:
    """The all-images Stanford Cars release: car_ims/ and a cars_annos.mat struct array (scipy.io.savemat)."""
    from scipy.io import savemat

    root = os.path.join(parent, "stanford_cars")
    dtype = [("relative_im_path", "O"), ("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"),
             ("bbox_y2", "O"), ("class", "O"), ("test", "O")]
    entries = []
    for i, c in enumerate(classes):
        path = f"car_ims/{i + 1:06d}.jpg"
        touch(os.path.join(root, path))
        entries.append((path, 1, 2, 30, 40, np.uint8(c), np.uint8(i % 2)))
    annotations = np.array([entries], dtype=dtype)  # MATLAB's 1 x N struct array
    savemat(os.path.join(root, "cars_annos.mat"),
            {"annotations": annotations, "class_names": np.array([["A"] * 196], dtype=object)})
    return root


def make_sop(parent) -> str:
    root = os.path.join(parent, "Stanford_Online_Products")
    lists = {"Ebay_train.txt": [(1, 1, "bicycle_final/111085122871_0.JPG"),  # (class, super-class, path)
                                (1, 1, "bicycle_final/111085122871_1.JPG"),
                                (2, 2, "chair_final/111265328556_0.JPG")],
             "Ebay_test.txt": [(11319, 1, "bicycle_final/251952414262_0.JPG"),
                               (11319, 1, "bicycle_final/251952414262_1.JPG"),
                               (11320, 3, "sofa_final/400676282848_0.JPG"),
                               (11320, 3, "sofa_final/400676282848_1.JPG")]}
    start = 1
    for name, rows in lists.items():
        lines = ["image_id class_id super_class_id path"]
        for i, (class_id, super_id, path) in enumerate(rows):
            touch(os.path.join(root, path))
            lines.append(f"{start + i} {class_id} {super_id} {path}")
        start += len(rows)
        write(os.path.join(root, name), "\n".join(lines) + "\n")
    return root


def make_inshop(parent, flat=False) -> str:
    """In-Shop: Eval/list_eval_partition.txt and Img/img/ (or, `flat`, both in the root)."""
    root = os.path.join(parent, "In-shop Clothes Retrieval Benchmark")
    rows = [("img/WOMEN/Dresses/id_00000002/02_1_front.jpg", "id_00000002", "train"),
            ("img/WOMEN/Dresses/id_00000002/02_2_side.jpg", "id_00000002", "train"),
            ("img/MEN/Denim/id_00000080/01_1_front.jpg", "id_00000080", "query"),
            ("img/MEN/Denim/id_00000080/01_2_side.jpg", "id_00000080", "gallery"),
            ("img/MEN/Denim/id_00000080/01_3_back.jpg", "id_00000080", "gallery"),
            ("img/WOMEN/Skirts/id_00000101/03_1_front.jpg", "id_00000101", "query")]
    for path, _, _ in rows:
        touch(os.path.join(root, path if flat else "Img/" + path))
    text = f"{len(rows)}\nimage_name item_id evaluation_status\n" + "".join(
        f"{path}   {item}   {status}\n" for path, item, status in rows)
    write(os.path.join(root, "list_eval_partition.txt" if flat else "Eval/list_eval_partition.txt"), text)
    return root


MAKERS = {"cub200": make_cub200, "cars196": make_cars196, "sop": make_sop, "inshop": make_inshop}


def test_cub200_splits_classes_1_to_100_and_101_to_200(tmp_path):
    conversion = registry.convert("cub200", make_cub200(tmp_path))
    assert [pid for pid, _ in conversion.rows["train"]] == ["001", "001", "002", "002", "100", "100"]
    assert [pid for pid, _ in conversion.rows["test"]] == ["101", "101", "150", "150", "200", "200"]
    assert conversion.rows["train"][0] == ("001", "images/001.Bird_1/Bird_1_0000_11.jpg")
    assert set(conversion.rows) == {"train", "test"}
    assert conversion.warnings[0].startswith("cub200 train: 6 images of 3 identities, the official release "
                                             "has 5,864 of 100")


def test_cub200_bad_lists(tmp_path):
    root = make_cub200(tmp_path)
    labels = os.path.join(root, "image_class_labels.txt")
    with open(labels, "a") as f:
        f.write("99 3\n")
    with pytest.raises(TrinetError, match="list different image ids, e.g. 99"):
        registry.convert("cub200", root)
    write(labels, "1 201\n" + "".join(f"{i} 5\n" for i in range(2, 13)))
    with pytest.raises(TrinetError, match="classes 201 are outside 1-200"):
        registry.convert("cub200", root)
    write(labels, "1 x\n" + "".join(f"{i} 5\n" for i in range(2, 13)))
    with pytest.raises(TrinetError, match=r"image_class_labels.txt \(image 1\): the class id 'x' is not"):
        registry.convert("cub200", root)
    write(labels, "1 5\n1 6\n")
    with pytest.raises(TrinetError, match=r"image_class_labels.txt:2: image id 1 is listed twice"):
        registry.convert("cub200", root)
    with pytest.raises(TrinetError, match=f"Did you mean {root}"):
        registry.convert("cub200", str(tmp_path / "CUB_200_2011" / "images"))
    os.remove(os.path.join(root, "images.txt"))
    with pytest.raises(TrinetError, match="missing images.txt"):
        registry.convert("cub200", root)


def test_cars196_reads_the_mat_file(tmp_path):
    conversion = registry.convert("cars196", make_cars196(tmp_path))
    assert conversion.rows["train"] == [("001", "car_ims/000001.jpg"), ("098", "car_ims/000002.jpg"),
                                        ("005", "car_ims/000005.jpg")]
    assert conversion.rows["test"] == [("099", "car_ims/000003.jpg"), ("196", "car_ims/000004.jpg")]


def test_cars196_refuses_the_devkit_annotations_and_missing_images(tmp_path):
    from scipy.io import savemat

    root = make_cars196(tmp_path)
    os.remove(os.path.join(root, "car_ims", "000004.jpg"))
    with pytest.raises(TrinetError, match=r"1 of 5 listed images not found .*car_ims/000004.jpg"):
        registry.convert("cars196", root)
    dtype = [("bbox_x1", "O"), ("fname", "O"), ("class", "O")]
    savemat(os.path.join(root, "cars_annos.mat"), {"annotations": np.array([[(1, "00001.jpg", 3)]], dtype)})
    with pytest.raises(TrinetError, match="not the devkit's cars_train_annos.mat"):
        registry.convert("cars196", root)
    write(os.path.join(root, "cars_annos.mat"), "not a mat file")
    with pytest.raises(TrinetError, match="not a readable MATLAB file"):
        registry.convert("cars196", root)


def test_sop_uses_the_class_id_column(tmp_path):
    conversion = registry.convert("sop", make_sop(tmp_path))
    assert conversion.rows["train"] == [("1", "bicycle_final/111085122871_0.JPG"),
                                        ("1", "bicycle_final/111085122871_1.JPG"),
                                        ("2", "chair_final/111265328556_0.JPG")]
    assert {pid for pid, _ in conversion.rows["test"]} == {"11319", "11320"}


def test_sop_bad_lines_and_shared_classes(tmp_path):
    root = make_sop(tmp_path)
    test_list = os.path.join(root, "Ebay_test.txt")
    good = open(test_list).read()
    write(test_list, good + "9 1 1 bicycle_final/111085122871_0.JPG\n")
    with pytest.raises(TrinetError, match=r"classes 1 are in both Ebay_train.txt and Ebay_test.txt"):
        registry.convert("sop", root)
    write(test_list, good + "9 x 1 a.JPG\n")
    with pytest.raises(TrinetError, match=r"Ebay_test.txt:6: the class_id 'x' is not a positive integer"):
        registry.convert("sop", root)
    write(test_list, good + "9 1 a.JPG\n")
    with pytest.raises(TrinetError, match=r"Ebay_test.txt:6: expected `image_id class_id super_class_id"):
        registry.convert("sop", root)


@pytest.mark.parametrize("flat", [False, True])
def test_inshop_query_and_gallery(tmp_path, flat):
    conversion = registry.convert("inshop", make_inshop(tmp_path, flat))
    prefix = "" if flat else "Img/"
    folder = prefix + "img/WOMEN/Dresses/id_00000002"
    assert conversion.rows["train"] == [("id_00000002", f"{folder}/02_1_front.jpg"),
                                        ("id_00000002", f"{folder}/02_2_side.jpg")]
    assert [pid for pid, _ in conversion.rows["query"]] == ["id_00000080", "id_00000101"]
    assert conversion.rows["test"] == [("id_00000080", prefix + "img/MEN/Denim/id_00000080/01_2_side.jpg"),
                                       ("id_00000080", prefix + "img/MEN/Denim/id_00000080/01_3_back.jpg")]
    assert conversion.csv_name("test") == "inshop_gallery.csv"


def test_inshop_bad_status_and_missing_list(tmp_path):
    root = make_inshop(tmp_path)
    path = os.path.join(root, "Eval", "list_eval_partition.txt")
    with open(path, "a") as f:
        f.write("img/a.jpg id_1 val\n")
    with pytest.raises(TrinetError, match=r"partition.txt:9: expected .*'gallery', 'query', 'train'"):
        registry.convert("inshop", root)
    os.remove(path)
    with pytest.raises(TrinetError, match="missing Eval/list_eval_partition.txt"):
        registry.convert("inshop", root)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_convert_writes_the_csvs_and_prints_the_protocol(name, tmp_path, capsys):
    release = MAKERS[name](tmp_path / "release")
    out = tmp_path / "csv"
    assert main([name, release, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    converter = registry.CONVERTERS[name]
    assert sorted(os.listdir(out)) == sorted(converter.csv_names.values())
    for split in converter.splits:
        dataset = load_dataset(str(out / converter.csv_names[split]), release)  # the images exist
        assert len(dataset) == len(registry.convert(name, release).rows[split])
    protocol = converter.protocol
    assert f"--excluder {protocol.excluder}" in printed
    assert f"--metrics recall@{','.join(map(str, protocol.ks))} map_at_r r_precision" in printed
    if name == "inshop":
        assert "--excluder none" in printed
        assert "inshop_query.csv against gallery inshop_gallery.csv" in printed
    else:
        test_csv = str(out / f"{name}_test.csv")
        assert f"--query_dataset {test_csv} --gallery_dataset {test_csv}" in printed
        assert "each query leaving itself out" in printed and " nmi" in printed


def test_a_retrieval_conversion_evaluates_with_its_printed_protocol(tmp_path, capsys):
    """cub200 CSVs -> tiny embeddings -> evaluate.py with the protocol's flags."""
    from trinet.cli.evaluate import main as evaluate
    from trinet.data.embeddings.hdf5 import write_embeddings

    release = make_cub200(tmp_path / "release")
    out = tmp_path / "csv"
    assert main(["cub200", release, "--out", str(out)]) == 0
    capsys.readouterr()
    test = load_dataset(str(out / "cub200_test.csv"), release)
    emb = np.eye(len(test), dtype=np.float32)
    emb[:, 0] += test.pids.astype(float)  # same class, nearer
    write_embeddings(str(tmp_path / "test.h5"), emb, pids=list(test.pids), fids=list(test.fids))
    protocol = registry.CONVERTERS["cub200"].protocol
    assert evaluate(["--excluder", protocol.excluder, "--query_dataset", str(out / "cub200_test.csv"),
                     "--query_embeddings", str(tmp_path / "test.h5"), "--gallery_dataset",
                     str(out / "cub200_test.csv"), "--gallery_embeddings", str(tmp_path / "test.h5"),
                     "--metrics", *protocol.metrics.split(), "--quiet"]) == 0
    assert "Recall@1: 100.00% Recall@2: 100.00%" in capsys.readouterr().out
