"""embed.py --shard I/N and --merge: the split, the merge equal to one process, the merge's checks;
embed.py --jit_compile."""

import argparse
import os
import shutil

import h5py
import numpy as np
import pytest

from trinet.cli.embed import main
from trinet.console import argtypes
from trinet.core.errors import TrinetError
from trinet.data.shards import check_shard, fingerprint_arrays, fingerprint_strings, shard_range


@pytest.mark.parametrize("rows, count", [(10, 3), (30, 2), (7, 7), (1000, 13), (5, 1)])
def test_shards_are_contiguous_balanced_and_cover_the_rows_in_order(rows, count):
    ranges = [shard_range(rows, i, count) for i in range(count)]
    assert ranges[0][0] == 0 and ranges[-1][1] == rows
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    sizes = [stop - start for start, stop in ranges]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_shard_range_by_hand():
    assert [shard_range(10, i, 3) for i in range(3)] == [(0, 3), (3, 6), (6, 10)]
    with pytest.raises(ValueError, match="0..2"):
        shard_range(10, 3, 3)


@pytest.mark.parametrize("text, words", [
    ("3/2", "3/2: the shard index I must be in 0..1"),
    ("2/2", "2/2: the shard index I must be in 0..1"),
    ("0/0", "0/0: the shard count N must be at least 1"),
    ("-1/2", "-1/2: expected I/N"),
    ("1", "1: expected I/N"),
    ("a/b", "a/b: expected I/N"),
])
def test_bad_shard_values(text, words):
    with pytest.raises(argparse.ArgumentTypeError, match=words):
        argtypes.shard(text)


def test_shard_values():
    assert argtypes.shard("0/1") == (0, 1) and argtypes.shard(" 3 / 4 ") == (3, 4)


def test_more_shards_than_rows():
    with pytest.raises(TrinetError, match="--shard 2/40: d.csv has only 30 rows; use at most 30 shards"):
        check_shard(2, 40, 30, "d.csv")


def test_fingerprints_tell_apart_order_content_and_splits():
    assert fingerprint_strings(["a", "b"]) == fingerprint_strings(["a", "b"])
    assert len({fingerprint_strings(v) for v in (["a", "b"], ["b", "a"], ["ab"], ["a", "b", ""])}) == 4
    one = np.arange(4, dtype=np.float32)
    assert fingerprint_arrays([one]) != fingerprint_arrays([one.reshape(2, 2)])
    assert fingerprint_arrays([one]) != fingerprint_arrays([one.astype(np.float64)])
    assert fingerprint_arrays([one]) != fingerprint_arrays([one + np.float32(1e-7)])


def test_the_padded_function_sees_one_shape():
    import tensorflow as tf

    from trinet.embedding.inference import _padded

    shapes = []

    def run(images, cameras):
        shapes.append((tuple(images.shape), tuple(cameras.shape)))
        return images[:, 0, 0, :] * 2.0 + tf.cast(cameras, tf.float32)[:, None]

    padded = _padded(run, 4)
    images = tf.reshape(tf.range(2 * 3 * 2 * 3, dtype=tf.float32), (2, 3, 2, 3))
    cameras = tf.constant([5, 7], tf.int32)
    np.testing.assert_array_equal(padded(images, cameras).numpy(),
                                  images.numpy()[:, 0, 0, :] * 2.0 + np.array([[5.0], [7.0]]))
    padded(tf.zeros((4, 3, 2, 3)), tf.zeros((4,), tf.int32))
    assert shapes == [((4, 3, 2, 3), (4,)), ((4, 3, 2, 3), (4,))]


#: 2 views, 5 images per batch: the 15 rows of each of 2 shards are whole batches, as in one process, so
#: every image meets the same batch shape and the float results can be compared byte for byte.
FLAGS = ["--flip_augment", "--aggregator", "mean", "--batch_size", "10", "--loading_threads", "2", "--quiet"]


def embed(finished, dataset, *extra):
    return main(["--experiment_root", str(finished), "--dataset", str(dataset), *FLAGS, *extra])


@pytest.fixture(scope="module")
def sharded(finished, image_set, tmp_path_factory):
    """`(folder, single-process file, [shard 0, shard 1])`, embedded once for the module."""
    csv, _ = image_set
    out = tmp_path_factory.mktemp("sharded")
    assert embed(finished, csv, "--filename", str(out / "one.h5")) == 0
    assert embed(finished, csv, "--shard", "1/2", "--filename", str(out / "s1.h5")) == 0
    assert embed(finished, csv, "--shard", "0/2", "--filename", str(out / "s0.h5")) == 0
    return out, out / "one.h5", [out / "s0.h5", out / "s1.h5"]


def merge(finished, dataset, shards, filename, *extra):
    return main(["--experiment_root", str(finished), "--dataset", str(dataset), "--filename", str(filename),
                 "--quiet", *extra, "--merge", *map(str, shards)])


def test_two_shards_merged_equal_one_process(finished, image_set, sharded, tmp_path):
    csv, _ = image_set
    _, one, shards = sharded
    with h5py.File(shards[1]) as f:
        assert f["emb"].shape == (15, 8) and f["emb_aug"].shape == (2, 15, 8)
        assert (f.attrs["shard_index"], f.attrs["shard_count"], f.attrs["shard_start"],
                f.attrs["shard_stop"], f.attrs["shard_dataset_rows"]) == (1, 2, 15, 30, 30)
        assert f["fids"][0].decode() == "images/0003_00.jpg"
    merged = tmp_path / "merged.h5"
    assert merge(finished, csv, shards[::-1], merged) == 0  # any order on the command line
    with h5py.File(one) as a, h5py.File(merged) as b:
        keys = ["augmentation_types", "emb", "emb_aug", "fids", "pids"]
        assert sorted(a.keys()) == sorted(b.keys()) == keys
        for key in a.keys():
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
            same = (a[key][()].tolist() == b[key][()].tolist() if a[key].dtype == object
                    else a[key][()].tobytes() == b[key][()].tobytes())  # emb, emb_aug: byte for byte
            assert same, key
        assert dict(a.attrs) == dict(b.attrs)
    # the CSV format from the shards equals one process's CSV
    assert merge(finished, csv, shards, tmp_path / "merged.csv") == 0
    assert embed(finished, csv, "--filename", str(tmp_path / "one.csv")) == 0
    assert (tmp_path / "merged.csv").read_text() == (tmp_path / "one.csv").read_text()


def test_default_shard_filename(finished, image_set, tmp_path):
    csv, _ = image_set
    root = tmp_path / "exp"
    shutil.copytree(finished, root)
    assert embed(root, csv, "--shard", "1/15") == 0
    assert os.path.exists(root / "train_embeddings_shard1of15.h5")


def copy_with(path, tmp_path, name, change):
    target = tmp_path / name
    shutil.copy(path, target)
    with h5py.File(target, "a") as f:
        change(f)
    return target


def test_merge_errors(finished, image_set, sharded, tmp_path, capsys):
    csv, _ = image_set
    folder, one, (s0, s1) = sharded
    out = tmp_path / "m.h5"

    def refused(shards, *words, dataset=csv, extra=()):
        assert merge(finished, dataset, shards, out, *extra) == 2
        err = capsys.readouterr().err
        for w in words:
            assert w in err, (w, err)
        assert not out.exists() and [n for n in os.listdir(tmp_path) if n.startswith(".m.h5")] == []

    refused([s0], "--merge: shard 1 of 2 is missing; give each of the 2 shard files once")
    twin = tmp_path / "twin.h5"
    shutil.copy(s0, twin)
    refused([s0, s1, twin], f"shard 0 is given 2 times ({s0}, {twin})")
    refused([twin, s0], "shard 0 is given 2 times", "shard 1 of 2 is missing")
    # another dataset: the same images, one row fewer / in another order
    rows = open(csv).read().splitlines()
    for name, lines in (("short.csv", rows[:-1]), ("reordered.csv", rows[1:] + rows[:1])):
        (tmp_path / name).write_text("\n".join(lines) + "\n")
        refused([s0, s1], f"{s0} is a shard of another dataset", dataset=tmp_path / name)
    # another model: shard 1 of the checkpoint at step 2
    other = folder / "s1_step2.h5"
    if not other.exists():
        assert embed(finished, csv, "--shard", "1/2", "--checkpoint", "2", "--filename", str(other)) == 0
    refused([s0, other], "the shards differ in their model (its weights)", str(s0), str(other))
    # other settings
    aggregator = copy_with(s1, tmp_path, "agg.h5", lambda f: f.attrs.modify("aggregator", "normalized_mean"))
    refused([s0, aggregator],
            "the shards differ in their attribute 'aggregator': 'mean' in", "'normalized_mean' in")
    refused([s0, copy_with(s1, tmp_path, "size.h5", lambda f: f.attrs.modify("shard_net_size", "64x32"))],
            "attribute 'shard_net_size': '32x16'")
    # incomplete shard files
    refused([s0, copy_with(s1, tmp_path, "unmarked.h5", lambda f: f.attrs.__delitem__("rows_written"))],
            "(shard 1/2) is incomplete: it should hold rows 15-30 (15 rows) but holds 15 rows, not marked "
            "written; embed that shard again")
    cut = tmp_path / "cut.h5"
    cut.write_bytes(s1.read_bytes()[:3000])
    refused([s0, cut], f"--merge: {cut} is not a readable HDF5 file")
    refused([s0, tmp_path / "nope.h5"], "shard file", "nope.h5 is not found")
    refused([s0, one], f"--merge: {one} is not a shard file (it lacks the attributes shard_index")
    # shard bookkeeping that does not fit the dataset
    refused([s0, copy_with(s1, tmp_path, "moved.h5", lambda f: f.attrs.modify("shard_start", 14))],
            "says it is shard 1/2 of rows 14-30, but of 30 rows that is rows 15-30")
    # flags that --merge takes from the shards
    refused([s0, s1], "--merge takes the model and settings from the shard files; remove --flip_augment",
            extra=["--flip_augment"])


def test_shard_refuses_csv_and_too_many_shards(finished, image_set, tmp_path, capsys):
    csv, _ = image_set
    assert embed(finished, csv, "--shard", "0/2", "--filename", str(tmp_path / "s.csv")) == 2
    assert "--shard writes HDF5" in capsys.readouterr().err
    assert embed(finished, csv, "--shard", "3/31", "--filename", str(tmp_path / "s.h5")) == 2
    err = capsys.readouterr().err
    assert "--shard 3/31: " in err and "has only 30 rows; use at most 30 shards" in err
    with pytest.raises(SystemExit):
        embed(finished, csv, "--shard", "3/2")
    assert "argument --shard: 3/2: the shard index I must be in 0..1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        embed(finished, csv, "--shard", "0/2", "--merge", "x.h5")
    assert "not allowed with argument" in capsys.readouterr().err


def test_jit_compile_agrees(finished, image_set, tmp_path):
    """XLA may fuse and reorder float operations: the embeddings agree to 1e-5 (values are O(1))."""
    csv, _ = image_set
    # 4 images per batch: the last of the 30 images' batches holds 2, padded to 4
    for name, extra in (("plain.h5", []), ("xla.h5", ["--jit_compile"])):
        assert main(["--experiment_root", str(finished), "--dataset", csv, "--batch_size", "4", "--quiet",
                     "--loading_threads", "2", "--filename", str(tmp_path / name), *extra]) == 0
    with h5py.File(tmp_path / "plain.h5") as a, h5py.File(tmp_path / "xla.h5") as b:
        assert b["emb"].shape == (30, 8)
        np.testing.assert_allclose(b["emb"][()], a["emb"][()], rtol=1e-5, atol=1e-5)
        assert a["fids"][()].tolist() == b["fids"][()].tolist()
