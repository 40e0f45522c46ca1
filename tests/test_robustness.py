"""Faults outside training: a full disk while writing, rows that do not belong to their CSV, two writers
on one experiment root, leftovers of killed runs, and messages that must name the real problem."""

import contextlib
import errno
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from conftest import REPO
from trinet.cli import evaluate
from trinet.core import fileio
from trinet.core.errors import TrinetError, WriteError
from trinet.data.embeddings import csvfile, formats, hdf5
from trinet.data.embeddings.writer import EmbeddingFileWriter

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@contextlib.contextmanager
def file_size_limit(size):
    """Writes past `size` bytes fail with EFBIG ("File too large"), as on a full disk, but for this
    process only. Keep the block short: any file this process writes meanwhile is limited too."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def hidden(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith("."))


# Defect 1: a failing write never publishes a broken file and never replaces a good one.

def test_atomic_write_on_a_full_disk_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    fileio.write_json_atomic(str(path), {"mAP": 0.5})
    monkeypatch.setattr(os, "fsync", no_space)  # delayed allocation: the disk fills at the flush
    with pytest.raises(WriteError, match=f"Could not write {path}: No space left on device; the previous "
                                         "file there is unchanged"):
        fileio.write_json_atomic(str(path), {"mAP": 0.9})
    assert json.loads(path.read_text()) == {"mAP": 0.5} and hidden(tmp_path) == []


def test_atomic_path_names_the_file_when_the_writer_fails(tmp_path):
    """As `model.keras` is written: a library writes the temporary path and fails with ENOSPC."""
    path = tmp_path / "model.keras"
    with pytest.raises(WriteError) as info:
        with fileio.atomic_path(str(path)) as tmp:
            open(tmp, "wb").write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert str(info.value) == f"Could not write {path}: No space left on device; nothing was written."
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, TrinetError)
    assert os.listdir(tmp_path) == []


def test_hdf5_write_failure_neither_crashes_nor_publishes(tmp_path):
    """A real failed write under HDF5 (the file size limit of a child process): HDF5 used to crash the
    process (SIGSEGV) and the half-written file replaced the good one."""
    code = textwrap.dedent("""
        import resource, signal, sys
        import numpy as np
        from trinet.data.embeddings import hdf5
        path = sys.argv[1]
        hdf5.write_embeddings(path, np.ones((3, 4), np.float32))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, resource.RLIM_INFINITY))
        try:
            hdf5.write_embeddings(path, np.ones((2000, 64), np.float32), fids=[str(i) for i in range(2000)])
        except Exception as e:
            print(type(e).__name__, e)
    """)
    path = tmp_path / "emb.h5"
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": REPO})
    assert done.returncode == 0, done.stderr
    assert done.stdout == (f"WriteError Could not write {path}: File too large; the previous file there is "
                           "unchanged.\n")
    assert hdf5.read_embeddings(str(path)).shape == (3, 4) and hidden(tmp_path) == []


@pytest.mark.parametrize("failing", ["write", "close"])
def test_embedding_writer_that_fails_keeps_the_previous_file(tmp_path, monkeypatch, failing):
    path = tmp_path / "emb.h5"
    hdf5.write_embeddings(str(path), np.ones((3, 4), np.float32))
    close = h5py.File.close

    def close_then_fail(self):
        close(self)
        raise OSError(errno.ENOSPC, "No space left on device")

    if failing == "close":
        monkeypatch.setattr(h5py.File, "close", close_then_fail)
    else:
        monkeypatch.setattr(hdf5.EmbeddingWriter, "write", no_space)
    with pytest.raises(WriteError, match="No space left on device; the previous file there is unchanged"):
        hdf5.write_embeddings(str(path), np.full((5, 4), 2, np.float32))
    monkeypatch.undo()
    np.testing.assert_array_equal(hdf5.read_embeddings(str(path)), np.ones((3, 4)))
    assert hidden(tmp_path) == []


def test_csv_embeddings_whose_close_fails_keep_the_previous_file(tmp_path):
    path = tmp_path / "emb.csv"
    path.write_text("a.jpg,1,2\n")
    fids = [f"images/{i:04d}.jpg" for i in range(20)]
    with pytest.raises(WriteError, match=f"Could not write {path}: File too large; the previous file"):
        with file_size_limit(100):
            with csvfile.CsvWriter(str(path), fids) as writer:
                writer.write(np.ones((20, 8), np.float32))  # buffered: the failure comes at the close
    assert path.read_text() == "a.jpg,1,2\n" and hidden(tmp_path) == []


@pytest.mark.parametrize("output_format", sorted(formats.EMBEDDING_FORMATS))
def test_every_embedding_format_publishes_only_a_complete_file(tmp_path, output_format):
    path, fids = tmp_path / f"emb.{output_format}", ["a.jpg", "b.jpg", "c.jpg"]
    emb = np.arange(12, dtype=np.float32).reshape(3, 4)
    with pytest.raises(KeyboardInterrupt):
        with formats.open_writer(output_format, str(path), fids=fids, dim=4) as writer:
            writer.write(emb[:2])
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []
    attrs = {"metric": "cosine"}
    with formats.open_writer(output_format, str(path), fids=fids, dim=4, attrs=attrs) as writer:
        assert isinstance(writer, EmbeddingFileWriter)
        writer.write(emb[:2])
        assert not path.exists()
        writer.write(emb[2:])
    assert os.listdir(tmp_path) == [path.name]
    if output_format == "csv":
        assert path.read_text().splitlines() == ["a.jpg,0,1,2,3", "b.jpg,4,5,6,7", "c.jpg,8,9,10,11"]
    else:
        np.testing.assert_array_equal(hdf5.read_embeddings(str(path), fids=fids), emb)
        assert hdf5.read_metric(str(path)) == "cosine"


def test_an_unknown_embedding_format_is_refused_with_the_valid_ones():
    expected = r"Unknown embedding file format 'npy'; expected one of \['csv', 'h5'\]"
    with pytest.raises(ValueError, match=expected):
        formats.open_writer("npy", "emb.npy", fids=["a.jpg"], dim=4)


def test_a_full_disk_while_saving_model_keras_names_the_file(image_set, tmp_path, monkeypatch, capsys):
    import keras

    from conftest import train

    monkeypatch.setattr(keras.Model, "save", no_space)
    root = tmp_path / "e"
    assert train(root, image_set, "--train_iterations", "1", "--checkpoint_frequency", "1") == 2
    assert (f"error: Could not write {root / 'model.keras'}: No space left on device. The checkpoints are "
            "intact; free space, then run again with --resume to write it." in capsys.readouterr().err)
    assert [n for n in os.listdir(root) if ".tmp-" in n or n == "model.keras"] == []


@pytest.fixture
def split(tmp_path):
    """A Market-style query/gallery pair of CSVs and embedding files, in matching order."""
    rng = np.random.default_rng(0)
    cells = [(p, c) for p in (1, 2, 3) for c in (1, 2, 3)]
    fids = [f"{p:04d}_c{c}s1_{i:06d}_00.jpg" for i, (p, c) in enumerate(cells)]
    pids = [f[:4] for f in fids]
    emb = (np.repeat(np.eye(3, 6) * 4, 3, axis=0) + rng.normal(0, 1, (9, 6))).astype(np.float32)
    csv = tmp_path / "set.csv"
    csv.write_text("".join(f"{p},{f}\n" for p, f in zip(pids, fids)))
    h5 = tmp_path / "set.h5"
    hdf5.write_embeddings(str(h5), emb, pids=pids, fids=fids)
    return dict(csv=csv, h5=h5, fids=fids, pids=pids, emb=emb, tmp=tmp_path)


def evaluate_argv(split, gallery_h5=None, *extra):
    return [str(a) for a in ["--excluder", "market1501", "--query_dataset", split["csv"],
                             "--query_embeddings", split["h5"], "--gallery_dataset", split["csv"],
                             "--gallery_embeddings", gallery_h5 or split["h5"], "--quiet", *extra]]


@pytest.mark.parametrize("flag, name", [("--filename", "results.json"), ("--plot", "cmc.png")])
def test_evaluate_on_a_full_disk_names_the_file(split, monkeypatch, capsys, flag, name):
    out = split["tmp"] / name
    out.write_bytes(b"previous")
    monkeypatch.setattr(os, "fsync", no_space)
    assert evaluate.main(evaluate_argv(split, None, flag, out)) == 2
    err = capsys.readouterr().err
    assert err == (f"error: Could not write {out}: No space left on device; the previous file there is "
                   "unchanged.\n")
    assert out.read_bytes() == b"previous" and hidden(split["tmp"]) == []


def test_evaluate_names_a_folder_it_cannot_create(split, monkeypatch, capsys):
    out = split["tmp"] / "ranks"
    monkeypatch.setattr(os, "makedirs", no_space)
    assert evaluate.main(evaluate_argv(split, None, "--show_ranks", out, "--image_root", split["tmp"])) == 2
    err = capsys.readouterr().err
    assert err == f"error: Could not create the directory {out}: No space left on device\n"


# Defect 7 and partial files: metrics are never computed on rows that do not belong to the CSV.

def test_rows_in_another_order_are_reordered_by_their_paths(split, capsys, caplog):
    order = np.random.default_rng(1).permutation(9)
    shuffled = split["tmp"] / "shuffled.h5"
    hdf5.write_embeddings(str(shuffled), split["emb"][order], pids=np.array(split["pids"])[order],
                          fids=np.array(split["fids"])[order])
    np.testing.assert_array_equal(hdf5.read_embeddings(str(shuffled), fids=split["fids"]), split["emb"])
    assert f"{shuffled}: the rows are in another order than its dataset" in caplog.text
    assert evaluate.main(evaluate_argv(split)) == 0
    expected = capsys.readouterr().out
    assert evaluate.main(evaluate_argv(split, shuffled)) == 0
    captured = capsys.readouterr()
    assert captured.out == expected
    assert f"{shuffled}: the rows are in another order than {split['csv']}" in captured.err
    assert "reordered by their stored image paths" in captured.err


def test_rows_of_another_csv_are_refused(split, capsys):
    other = split["tmp"] / "other.h5"
    fids = list(split["fids"])
    fids[4] = "0002_c9s1_000099_00.jpg"
    hdf5.write_embeddings(str(other), split["emb"], pids=split["pids"], fids=fids)
    assert evaluate.main(evaluate_argv(split, other)) == 2
    err = capsys.readouterr().err
    assert f"error: {other}: the image paths stored with the embeddings are not those of {split['csv']}" \
        in err
    assert "(1 of 9 rows differ; row 5: '0002_c2s1_000004_00.jpg' in the CSV, '0002_c9s1_000099_00.jpg' in " \
           "the file)" in err
    assert "mAP" not in capsys.readouterr().out


def test_partial_or_empty_embedding_files_are_refused(split, capsys):
    partial = split["tmp"] / "partial.h5"
    with h5py.File(partial, "w") as f:  # what the old writer published when the disk filled
        f.create_dataset("emb", (9, 6), np.float32, chunks=(3, 6))[:4] = split["emb"][:4]
    assert evaluate.main(evaluate_argv(split, partial)) == 2
    assert (f"{partial}: rows 5 to 9 (of 9) are all zeros: the file was not written to the end"
            in capsys.readouterr().err)
    complete = split["tmp"] / "complete.h5"  # zero rows are accepted in a file marked complete
    hdf5.write_embeddings(str(complete), np.concatenate([split["emb"][:4], np.zeros((5, 6), np.float32)]))
    assert hdf5.read_embeddings(str(complete))[4:].sum() == 0
    empty = split["tmp"] / "empty.h5"
    with h5py.File(empty, "w") as f:
        f.create_dataset("emb", (0, 6), np.float32)
    with pytest.raises(TrinetError, match=r"empty.h5 holds no embeddings \(shape \(0, 6\)\)"):
        hdf5.read_embeddings(str(empty))


# Defect 6 (embed): a bad --filename is refused up front, not with a traceback after the work.

def test_embed_filename_that_is_a_folder_or_below_a_file(tmp_path, capsys):
    from trinet.cli import embed

    root = tmp_path / "exp"  # no args.json: the check must come before anything is read from it
    root.mkdir()
    (tmp_path / "list.txt").write_text("a.jpg\n")
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    for filename, words in ((tmp_path, f"'{tmp_path}' is a directory, expected a file name"),
                            (blocker / "out.h5", f"'{blocker}' is not a directory ('{blocker}' is a file)")):
        argv = ["--experiment_root", str(root), "--dataset", str(tmp_path / "list.txt"), "--filename",
                str(filename)]
        assert embed.main(argv) == 2
        assert capsys.readouterr().err == f"error: --filename {filename}: {words}\n"


def test_embed_names_an_args_json_that_is_a_folder(tmp_path, capsys):
    from trinet.cli import embed

    (tmp_path / "args.json").mkdir()
    (tmp_path / "list.txt").write_text("a.jpg\n")
    assert embed.main(["--experiment_root", str(tmp_path), "--dataset", str(tmp_path / "list.txt")]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {tmp_path / 'args.json'} is a directory; expected the settings file written by "
                   "train.py\n")


# Misleading messages: a folder or a link loop is not "not found"; encodings name the line.

def test_folders_and_link_loops_are_named_as_such(tmp_path):
    import argparse

    from trinet.console import argtypes
    from trinet.data.datasets import check_files, read_csv

    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "file").write_text("x")
    cases = [(argtypes.readable_file, tmp_path / "folder.csv", "is a directory; expected a file"),
             (argtypes.readable_file, loop, "is a symbolic link loop; expected a file"),
             (argtypes.readable_directory, tmp_path / "file", "is a file; expected a directory"),
             (argtypes.readable_directory, loop, "is a symbolic link loop; expected a directory")]
    for check, path, words in cases:
        with pytest.raises(argparse.ArgumentTypeError, match=words):
            check(str(path))
    with pytest.raises(TrinetError, match=f"Dataset path {loop} is a symbolic link loop; expected a CSV"):
        read_csv(str(loop))
    with pytest.raises(TrinetError, match=f"Embedding file {loop} is a symbolic link loop"):
        hdf5.read_embeddings(str(loop))
    with pytest.raises(TrinetError, match=f"Embedding file {tmp_path / 'folder.csv'} is a directory"):
        hdf5.read_embeddings(str(tmp_path / "folder.csv"))
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").mkdir()
    (tmp_path / "images" / "b.jpg").symlink_to("b.jpg")
    (tmp_path / "d.csv").write_text("1,images/a.jpg\n1,images/b.jpg\n2,images/c.jpg\n")
    with pytest.raises(TrinetError) as info:
        check_files(read_csv(str(tmp_path / "d.csv"), str(tmp_path)))
    assert str(info.value) == (
        f"{tmp_path / 'd.csv'}: 1 of 3 images not found under image root {tmp_path}: images/c.jpg; 2 of 3 "
        f"image paths are not files under image root {tmp_path}: images/a.jpg (a directory), images/b.jpg (a "
        "symbolic link loop). Check --image_root, or pass --skip_missing to drop them.")


def test_an_encoding_error_names_the_line_of_a_large_file(tmp_path):
    from trinet.data.datasets import read_csv

    path = tmp_path / "big.csv"
    rows = [f"{i % 50},images/{i:06d}.jpg" for i in range(20000)]
    rows[14999] = "7,images/caf\xe9.jpg"
    path.write_bytes("\n".join(rows).encode("latin-1"))
    with pytest.raises(TrinetError, match=r"big.csv:15000: not a UTF-8 text file \(invalid continuation byte "
                                          r"at byte 13 of line 15000, near b'7,images/caf\\xe9.jpg'\)"):
        read_csv(str(path))


# Conflicting data: one image under two identities; EXIF orientation.

def test_an_image_under_two_identities_is_named(tmp_path, caplog):
    from trinet.data.datasets import read_csv

    path = tmp_path / "d.csv"
    path.write_text("pid,path\n1,a.jpg\n1,b.jpg\n2,a.jpg\n2,c.jpg\n2,c.jpg\n")
    read_csv(str(path))
    assert f"{path}: 1 rows list an image under a second identity, so one of the two labels is wrong: " \
           "a.jpg as 1 (line 2) and 2 (line 4)" in caplog.text
    assert "c.jpg" not in caplog.text  # listed twice under one identity: harmless


def jpeg_with_orientation(path, image, orientation):
    """Write `image` as a JPEG whose EXIF says to rotate it (6: 90 degrees clockwise)."""
    import struct

    import cv2

    data = cv2.imencode(".jpg", image)[1].tobytes()
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)  # tag Orientation, SHORT, 1 value
    tiff = b"MM\x00\x2a\x00\x00\x00\x08\x00\x01" + entry + bytes(4)
    exif = b"Exif\x00\x00" + tiff
    path.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + data[2:])


def test_exif_orientation_is_ignored_by_training_embedding_and_rank_pictures(tmp_path):
    import cv2
    import tensorflow as tf

    from trinet.tools.baselines import pixel_embeddings
    from trinet.data.datasets import Dataset
    from trinet.pipeline.images import decode
    from trinet.evaluation.plots import read_image

    image = np.zeros((32, 16, 3), np.uint8)
    image[:8] = 255  # a white top band
    path = tmp_path / "rotated.jpg"
    jpeg_with_orientation(path, image, 6)
    assert cv2.imread(str(path)).shape == (16, 32, 3)  # OpenCV's default applies the orientation
    decoded = decode(tf.constant(str(path))).numpy()
    shown = read_image(str(path))
    assert decoded.shape == shown.shape == (32, 16, 3)
    assert decoded[:8].mean() > 200 and shown[:8].mean() > 200 and shown[-8:].mean() < 50
    pixels = pixel_embeddings(Dataset(np.array(["1"]), np.array([str(path)])), (32, 16)).reshape(32, 16, 3)
    assert pixels[:8].mean() > 0.8 and pixels[-8:].mean() < 0.2  # the pixel baseline agrees


# Re-ranking parameters larger than the data.

@pytest.mark.parametrize("k1, k2, words", [
    (20, 6, "k1=20 asks for the 21 nearest neighbours of each image but there are only 18 images (Q=9 + "
            "G=9)"),
    (10, 6, "k1=10 is larger than the gallery (G=9)"),
    (4, 30, "k2=30 is larger than the 18 images (Q=9 + G=9); it acts as k2=18"),
])
def test_rerank_parameters_larger_than_the_data_are_named(split, capsys, k1, k2, words):
    assert evaluate.main(evaluate_argv(split, None, "--rerank", "--k1", k1, "--k2", k2)) == 0
    err = capsys.readouterr().err
    assert f"--rerank: {words}" in err and "Lower --k1/--k2" in err
    assert evaluate.main(evaluate_argv(split, None, "--rerank", "--k1", 3, "--k2", 2)) == 0
    assert "--rerank" not in capsys.readouterr().err


# Leftovers of killed runs.

def dead_pid():
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = dead_pid()
    live = subprocess.Popen(["sleep", "30"])
    try:
        names = [f".emb.h5.tmp-{dead}", f".model.keras.tmp-{dead}.keras", f".emb.h5.tmp-{live.pid}",
                 f".emb.h5.tmp-{os.getpid()}", "emb.h5", ".hidden", f"emb.tmp-{dead}"]
        for name in names:
            (tmp_path / name).write_text("x")
        (tmp_path / f".demo.tmp-{dead}-old").mkdir()  # a folder, as demo.py renders into
        (tmp_path / f".demo.tmp-{dead}-old" / "a.jpg").write_text("x")
        assert fileio.remove_stale_temporaries(str(tmp_path), "demo") == [f".demo.tmp-{dead}-old"]
        removed = fileio.remove_stale_temporaries(str(tmp_path))
        assert removed == [f".emb.h5.tmp-{dead}", f".model.keras.tmp-{dead}.keras"]
        assert sorted(os.listdir(tmp_path)) == sorted(names[2:])
    finally:
        live.kill()
        live.wait()


def test_embed_removes_temporaries_of_killed_runs_and_suggests_only_its_flags(
        finished, image_set, tmp_path, capsys, caplog):
    from trinet.cli import embed

    csv, images = image_set
    dead = dead_pid()
    (tmp_path / f".out.h5.tmp-{dead}").write_bytes(b"left by a SIGKILL")
    (tmp_path / "dir.keras").mkdir()
    argv = ["--experiment_root", str(finished), "--dataset", csv, "--image_root", images, "--filename",
            str(tmp_path / "out.h5")]
    assert embed.main(argv) == 0
    assert f"Removed 1 temporary files left by killed runs: .out.h5.tmp-{dead}" in caplog.text
    assert sorted(os.listdir(tmp_path)) == ["dir.keras", "out.h5"]
    assert embed.main(argv + ["--checkpoint", str(tmp_path / "dir.keras")]) == 2
    assert f"--checkpoint {tmp_path / 'dir.keras'}: {tmp_path / 'dir.keras'} is a directory; expected a " \
           "model file" in capsys.readouterr().err
    (tmp_path / "missing.csv").write_text("1,images/nope.jpg\n")
    assert embed.main(argv[:2] + ["--dataset", str(tmp_path / "missing.csv")] + argv[4:]) == 2
    err = capsys.readouterr().err
    assert "1 of 1 images not found" in err and "--skip_missing" not in err
