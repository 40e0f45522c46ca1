"""Bad input, one row per case: each gets a clear message (file, line or flag; what is allowed) and
the right exit status, before any long work where it can be checked up front. Inputs that merely look
unusual (grayscale, RGBA, PNG, tiny images, single-image identities) work."""

import errno
import json
import os

import cv2
import h5py
import numpy as np
import pytest

from conftest import TINY, write_image_set
from trinet.cli import embed, evaluate, train
from trinet.data.embeddings import hdf5
from trinet.rundir import checkpoints


def status(main, argv):
    """The exit status of a command-line main, whether returned or raised by argparse."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as e:
        return e.code


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A folder with a good dataset and one broken or unusual thing per case."""
    root = tmp_path_factory.mktemp("bad_input")
    good = write_image_set(str(root), identities=6, per_identity=5)
    lines = open(good).read().splitlines()
    f = {"root": root, "good": good}

    def csv(name, rows):
        path = root / name
        path.write_text("\n".join(rows) + "\n")
        return path

    f["malformed"] = csv("malformed.csv", lines[:3] + ["0001,images/a.jpg,extra"] + lines[3:])
    f["missing"] = csv("missing.csv", lines + ["0009,images/not_there.jpg", "0009,images/gone.jpg"])
    # unusual but valid images, a single-image identity, an empty file and a text file
    odd = root / "odd"
    odd.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for pid in range(4):
        colour = rng.integers(0, 256, 3)
        kinds = [("gray.png", (32, 16)), ("rgba.png", (40, 20)), ("tiny.jpg", (4, 2)), ("big.bmp", (70, 30))]
        for j, (kind, size) in enumerate(kinds):
            image = np.clip(colour + rng.normal(0, 20, (*size, 3)), 0, 255).astype(np.uint8)
            if kind.startswith("gray"):
                image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            if kind.startswith("rgba"):
                image = np.dstack([image, np.full(size, 200, np.uint8)])
            cv2.imwrite(str(odd / f"{pid}_{kind}"), image)
            rows.append(f"{pid},odd/{pid}_{kind}")
    cv2.imwrite(str(odd / "solo.jpg"), np.full((32, 16, 3), 99, np.uint8))
    (odd / "empty.jpg").write_bytes(b"")
    (odd / "notes.jpg").write_text("this is not an image")
    f["odd"] = csv("odd.csv", rows + ["solo,odd/solo.jpg", "0,odd/empty.jpg", "1,odd/notes.jpg"])
    f["odd_clean"] = csv("odd_clean.csv", rows)
    # a truncated JPEG: a valid header, so only decoding finds it
    data = open(os.path.join(root, "images", "0000_00.jpg"), "rb").read()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    f["truncated"] = csv("truncated.csv", lines + ["0000,truncated.jpg"])
    # every image of identity 0000 truncated: batches that draw it fail to decode during training
    for j in range(5):
        data = open(os.path.join(root, "images", f"0000_{j:02d}.jpg"), "rb").read()
        (root / f"cut_{j}.jpg").write_bytes(data[: len(data) // 3])
    f["runtime_bad"] = csv("runtime_bad.csv", [f"0000,cut_{j}.jpg" for j in range(5)] + lines[5:])
    return f


def train_args(f, root, csv, *extra):
    return ["--experiment_root", root, "--train_set", csv, "--image_root", f["root"], *TINY,
            "--train_iterations", "4", "--checkpoint_frequency", "2", *extra]


def test_malformed_csv_row(files, tmp_path, capsys):
    assert status(train.main, train_args(files, tmp_path / "e", files["malformed"])) == 2
    assert f"{files['malformed']}:4: expected 2 columns `pid,path`, found 3" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()  # refused before the experiment root was created


def test_missing_images(files, tmp_path, capsys):
    assert status(train.main, train_args(files, tmp_path / "e", files["missing"])) == 2
    err = capsys.readouterr().err
    assert "2 of 32 images not found" in err and "images/not_there.jpg, images/gone.jpg" in err
    assert "--skip_missing" in err


def test_missing_images_skipped_on_request(files, tmp_path, caplog):
    assert status(train.main, train_args(files, tmp_path / "e", files["missing"], "--skip_missing",
                                         "--train_iterations", "1")) == 0
    assert "Dropping them (--skip_missing)" in caplog.text


def test_unusual_images_work_and_bad_files_are_skipped_with_a_warning(files, tmp_path, caplog):
    root = tmp_path / "e"
    assert status(train.main, train_args(files, root, files["odd"], "--batch_p", "2")) == 0
    log = open(root / "train.log").read()
    assert ("2 of 19 images are empty or not an image file (JPEG, PNG, BMP or GIF): "
            "odd/empty.jpg, odd/notes.jpg") in log
    assert "1 identities have a single image (solo)" in log
    assert "Training finished after 4 iterations" in log
    out = tmp_path / "odd.h5"
    assert status(embed.main, ["--experiment_root", root, "--dataset", files["odd_clean"], "--filename", out,
                               "--flip_augment", "--crop_augment", "five", "--aggregator", "mean",
                               "--quiet"]) == 0
    with h5py.File(out) as f:
        assert f["emb"].shape == (16, 8) and np.isfinite(f["emb"][()]).all()


def test_bad_files_refused_up_front_on_request(files, tmp_path, capsys):
    assert status(train.main, train_args(files, tmp_path / "e", files["odd"], "--on_bad_image", "error")) == 2
    err = capsys.readouterr().err
    assert "2 of 19 images are empty or not an image file" in err and "--on_bad_image skip" in err


def test_truncated_jpeg_found_by_validate_images(files, tmp_path, capsys, caplog):
    assert status(train.main, train_args(files, tmp_path / "a", files["truncated"], "--validate_images",
                                         "--on_bad_image", "error")) == 2
    err = capsys.readouterr().err
    assert "1 of 31 images are empty, not an image file, or not decodable: truncated.jpg" in err
    assert status(train.main, train_args(files, tmp_path / "b", files["truncated"], "--validate_images",
                                         "--train_iterations", "1")) == 0
    assert "not decodable: truncated.jpg. Skipping them." in caplog.text


def test_undecodable_images_during_training_skip_their_batches(files, tmp_path):
    root = tmp_path / "e"
    assert status(train.main, train_args(files, root, files["runtime_bad"], "--train_iterations", "6")) == 0
    log = open(root / "train.log").read()
    assert "could not decode" in log and "--validate_images" in log
    assert "Training finished after 6 iterations" in log
    state = checkpoints.read_info(str(root / "checkpoint-6.h5"))[1]
    assert state["skipped_batches"] >= 1 and state["next_batch"] == 6 + state["skipped_batches"]


def test_batch_p_larger_than_identities(files, tmp_path, capsys):
    assert status(train.main, train_args(files, tmp_path / "e", files["good"], "--batch_p", "9")) == 2
    assert "--batch_p 9 is larger than the number of identities in" in capsys.readouterr().err


@pytest.mark.parametrize("content, words", [(None, "args.json not found"),
                                            ("{not json", "args.json is damaged: Expecting"),
                                            ("[1, 2]", "expected a JSON object of arguments"),
                                            ('{"batch_p": "many"}',
                                             "setting 'batch_p' has the value 'many'; expected int")])
def test_resume_with_missing_or_damaged_args_json(tmp_path, capsys, content, words):
    root = tmp_path / "e"
    root.mkdir()
    if content is not None:
        (root / "args.json").write_text(content)
    assert status(train.main, ["--experiment_root", root, "--resume"]) == 2
    assert words in capsys.readouterr().err


def test_experiment_root_that_cannot_be_written(files, tmp_path, capsys):
    assert status(train.main, train_args(files, "/proc/trinet-experiment", files["good"])) == 2
    err = capsys.readouterr().err
    assert "/proc/trinet-experiment" in err and ("not writable" in err or "Cannot create" in err)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert status(train.main, train_args(files, blocker / "exp", files["good"])) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_full_disk_while_writing_a_checkpoint_keeps_the_previous_one(files, tmp_path, capsys, monkeypatch):
    original = checkpoints._write_variables
    calls = []

    def failing(group, variables):
        calls.append(group.name)
        if len(calls) > 2:  # checkpoint-0 (model, optimizer) succeeds, the next one fails midway
            original(group, list(variables)[:3])
            raise OSError(errno.ENOSPC, "No space left on device")
        original(group, variables)

    monkeypatch.setattr(checkpoints, "_write_variables", failing)
    root = tmp_path / "e"
    assert status(train.main, train_args(files, root, files["good"])) == 2
    err = capsys.readouterr().err
    assert "Could not write the checkpoint of iteration 2" in err and "No space left on device" in err
    assert f"The previous checkpoint ({root / 'checkpoint-0.h5'}) is intact" in err
    assert checkpoints.latest_checkpoint(str(root)) == str(root / "checkpoint-0.h5")
    assert sorted(n for n in os.listdir(root) if "checkpoint" in n) == ["checkpoint-0.h5"]  # no temp files


def test_full_disk_while_writing_embeddings(files, tmp_path, capsys, monkeypatch, finished):
    def failing(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(hdf5.EmbeddingWriter, "write", failing)
    out = tmp_path / "out.h5"
    assert status(embed.main, ["--experiment_root", finished, "--dataset", files["good"], "--image_root",
                               files["root"], "--filename", out, "--quiet"]) == 2
    assert f"Could not write {out}: No space left on device; nothing was written" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation")
    names = ["0001_c1s1_000001_00.jpg", "0001_c2s1_000002_00.jpg", "0002_c1s1_000003_00.jpg",
             "0002_c3s1_000004_00.jpg"]
    csv = root / "set.csv"
    csv.write_text("".join(f"{n[:4]},{n}\n" for n in names))
    emb = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    hdf5.write_embeddings(str(root / "good.h5"), emb)
    with h5py.File(root / "no_emb.h5", "w") as f:
        f["embeddings"] = emb
    hdf5.write_embeddings(str(root / "three.h5"), emb[:3])
    nan = emb.copy()
    nan[2, 5] = np.nan
    hdf5.write_embeddings(str(root / "nan.h5"), nan)
    hdf5.write_embeddings(str(root / "dim16.h5"), np.zeros((4, 16), np.float32))
    (root / "text.h5").write_text("not hdf5")
    return root


@pytest.mark.parametrize("gallery, words", [
    ("no_emb.h5", "has no dataset 'emb'; it holds ['embeddings']"),
    ("three.h5", "has 3 embeddings but"),
    ("nan.h5", "1 rows hold NaN or infinite values (first: row 2)"),
    ("dim16.h5", "have dimension 8 but the gallery embeddings"),
    ("text.h5", "is not a readable HDF5 file"),
    ("absent.h5", "Embedding file not found"),
])
def test_bad_embedding_files(evaluation, capsys, gallery, words):
    argv = ["--excluder", "market1501", "--query_dataset", evaluation / "set.csv", "--query_embeddings",
            evaluation / "good.h5", "--gallery_dataset", evaluation / "set.csv", "--gallery_embeddings",
            evaluation / gallery]
    assert status(evaluate.main, argv) == 2
    err = capsys.readouterr().err
    assert words in err and (gallery in err or "dimension" in words)


def test_good_evaluation_for_contrast(evaluation, tmp_path):
    out = tmp_path / "r.json"
    argv = ["--excluder", "market1501", "--query_dataset", evaluation / "set.csv", "--query_embeddings",
            evaluation / "good.h5", "--gallery_dataset", evaluation / "set.csv", "--gallery_embeddings",
            evaluation / "good.h5", "--filename", out, "--quiet"]
    assert status(evaluate.main, argv) == 0
    assert json.load(open(out))["num_queries"] == 4


# Issue 26: export and search name their own flags, and say what an experiment folder lacks.

def tiny_index(tmp_path, dim=8):
    pytest.importorskip("faiss")
    from trinet.data.datasets import Dataset
    from trinet.search.index import build_index, save_index
    rows = Dataset(np.full(20, "0001"), np.array([f"g/{i}.jpg" for i in range(20)]))
    vectors = np.random.default_rng(0).standard_normal((20, dim)).astype(np.float32)
    save_index(str(tmp_path / "index"), build_index(vectors, rows))
    return str(tmp_path / "index")


def command_argv(command, root, tmp_path, image_set):
    csv, images = image_set
    image = os.path.join(images, open(csv).readline().split(",")[1].strip())
    if command == "export":
        return ["--experiment_root", root, "--format", "saved_model", "--output", tmp_path / "serving"]
    if command == "embed":
        return ["--experiment_root", root, "--dataset", csv, "--image_root", images, "--filename",
                tmp_path / "e.h5"]
    return ["query", "--index", tiny_index(tmp_path), "--images", image, "--experiment_root", root,
            "--filename", tmp_path / "r.json"]


def command_main(command):
    if command == "export":
        from trinet.export.command import main
    elif command == "embed":
        main = embed.main
    else:
        from trinet.cli.search import main
    return main


@pytest.mark.parametrize("command", ["export", "embed", "search"])
def test_an_empty_experiment_folder_says_what_it_lacks(tmp_path, image_set, capsys, command):
    """Unfinished or empty experiment folders: what is there and what is missing, not an image size."""
    root = tmp_path / "exp"
    root.mkdir()
    (root / "args.json").write_text(json.dumps({"net_input_height": 32, "net_input_width": 16}))
    assert status(command_main(command), command_argv(command, root, tmp_path, image_set)) == 2
    err = capsys.readouterr().err
    assert f"{root} holds no model yet (args.json: yes; checkpoints: none yet; model.keras: no)" in err
    assert err.count("\n") == 1 and not (tmp_path / "serving").exists()


@pytest.mark.parametrize("command, words", [
    ("export", "(it has no args.json); pass --net_input_height/--net_input_width."),
    ("search", "(it has no args.json); pass an --experiment_root with its args.json."),
])
def test_a_bare_model_file_is_asked_for_in_the_commands_words(finished, tmp_path, image_set, capsys, command,
                                                              words):
    """Python API words given to a CLI user: trinet-export said "pass net_size=(height, width)"."""
    import shutil
    root = tmp_path / "bare"
    root.mkdir()
    shutil.copy(finished / "model.keras", root / "model.keras")
    assert status(command_main(command), command_argv(command, root, tmp_path, image_set)) == 2
    err = capsys.readouterr().err
    assert words in err and "net_size" not in err


def test_search_names_its_view_flags_not_the_apis(finished, tmp_path, image_set, capsys):
    from trinet.cli.search import main
    argv = command_argv("search", finished, tmp_path, image_set)
    assert status(main, [*argv, "--flip_augment"]) == 2
    err = capsys.readouterr().err
    assert "need an --aggregator to combine them; add --aggregator mean or normalized_mean" in err
    assert "aggregator=" not in err
    assert status(main, [*argv, "--checkpoint", "model.keras.none"]) == 2  # another option, its flag
    assert "Checkpoint 'model.keras.none' not found" in capsys.readouterr().err
