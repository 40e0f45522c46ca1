"""The training engine: the recipe's flags end to end, exact resume with every option on, old experiments,
validation during training, parse-time refusals, undecodable images and the experiment lock."""

import json
import os
import shutil
import socket
import subprocess

import h5py
import numpy as np
import pytest

from conftest import ACROSS_BUILDS, FIXTURES, TINY, assert_same_checkpoints, train, write_image_set
from trinet.cli import embed, train as train_cli
from trinet.rundir import checkpoints

FIXTURE = os.path.join(FIXTURES, "v1_experiment")

#: Every option of the recipe switched on (on the TINY LuNet run).
RECIPE = ["--id_loss_weight", "1", "--label_smoothing", "0.1", "--head_name", "bnneck", "--test_metric",
          "cosine", "--last_stride", "1", "--pooling", "gem", "--warmup_iterations", "2", "--warmup_factor",
          "0.1", "--lr_schedule", "multistep", "--lr_milestones", "4", "--optimizer", "sgd", "--momentum",
          "0.9",
          "--nesterov", "--weight_decay", "0.0005", "--learning_rate", "0.01", "--random_erasing_prob", "0.5",
          "--pad_crop", "2", "--center_loss_weight", "0.0005", "--freeze_backbone_iterations", "2",
          "--margin", "0.3", "--new_layers_lr_multiplier", "10"]


def status(argv):
    try:
        return train_cli.main([str(a) for a in argv])
    except SystemExit as e:
        return e.code


@pytest.fixture(scope="module")
def val_set(tmp_path_factory):
    """`(query csv, gallery csv, image root)`: two images of each of 6 identities as queries, 3 in the
    gallery."""
    root = str(tmp_path_factory.mktemp("val"))
    rows = open(write_image_set(root, identities=6, per_identity=5, seed=7)).read().splitlines()
    query = os.path.join(root, "query.csv")
    gallery = os.path.join(root, "gallery.csv")
    with open(query, "w") as q, open(gallery, "w") as g:
        for i, row in enumerate(rows):
            (q if i % 5 < 2 else g).write(row + "\n")
    return query, gallery, root


def val_flags(val_set, frequency=3):
    query, gallery, root = val_set
    return ["--val_query", query, "--val_gallery", gallery, "--val_image_root", root, "--val_excluder",
            "none",
            "--val_frequency", str(frequency)]


def state(path):
    return checkpoints.read_info(str(path))[1]


@pytest.mark.parametrize("flags, words", [
    (["--batch_k", "1"], "--batch_k must be at least 2 with the triplet loss"),
    (["--test_feature", "before"], "--test_feature before applies to --head_name bnneck only"),
    (["--last_stride", "1", "--model_name", "mobilenet_v2"], "--last_stride 1 is not available for "
                                                             "--model_name mobilenet_v2"),
    (["--label_smoothing", "0.1"], "--label_smoothing 0.1 needs the identification loss (--id_loss_weight"),
    (["--sampler", "random"], "--sampler random gives batches without guaranteed positives"),
    (["--triplet_loss_weight", "0"], "--triplet_loss_weight and --id_loss_weight are both 0"),
    (["--lr_schedule", "multistep"], "--lr_schedule multistep needs --lr_milestones"),
    (["--lr_milestones", "5"], "--lr_milestones applies to --lr_schedule multistep only"),
    (["--nesterov"], "--nesterov applies to --optimizer sgd only"),
    (["--weight_decay", "0.1"], "is not used by --optimizer adam; use --optimizer adamw"),
    (["--warmup_iterations", "50", "--train_iterations", "10"], "--warmup_iterations 50 must be smaller"),
    (["--val_query", __file__], "--val_query and --val_gallery go together"),
    (["--val_identities", "2"], "--val_identities needs --val_excluder"),
    (["--val_identities", "2", "--val_fraction", "0.5", "--val_excluder", "none"], "both say how many"),
    (["--val_fraction", "1", "--val_excluder", "none"], "--val_fraction must be between 0 and 1"),
    (["--val_identities", "2", "--val_query", __file__, "--val_gallery", __file__, "--val_excluder", "none"],
     "use one or the other"),
    (["--val_excluder", "none"], "--val_excluder none needs --val_query and --val_gallery, or --val_ident"),
    (["--pooling", "mean"], "argument --pooling: invalid choice: 'mean'"),
])
def test_invalid_combinations_are_refused_at_parse_time(tmp_path, image_set, capsys, flags, words):
    assert status(["--experiment_root", tmp_path / "e", "--train_set", image_set[0], *flags]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_full_recipe_trains_logs_every_term_and_resumes_bit_for_bit(tmp_path, image_set, val_set):
    """Every option on (with validation): a run killed after its checkpoint at 3 and resumed ends with the
    same weights, optimizer state, centres and best model as the uninterrupted run."""
    reference = tmp_path / "reference"
    assert train(reference, image_set, *RECIPE, *val_flags(val_set), "--train_iterations", "6",
                 "--checkpoint_frequency", "3", "--detailed_logs") == 0
    log = open(reference / "train.log").read()
    assert "objective: 1 x triplet + 1 x id + 0.0005 x center" in log
    assert "(triplet " in log and ", id " in log and ", center " in log
    assert "Training only the new layers" in log
    assert "validation at iter 3: mAP" in log and "validation at iter 6: mAP" in log
    args = json.load(open(reference / "args.json"))
    assert args["head_name"] == "bnneck" and args["test_feature"] == "after" and args["lr_milestones"] == [4]
    final = state(reference / "checkpoint-6.h5")
    assert final["num_classes"] == 6 and final["best"]["step"] in (3, 6)
    assert (reference / "best.h5").exists()

    resumed = tmp_path / "resumed"
    shutil.copytree(reference, resumed)
    for name in ("checkpoint-6.h5", "model.keras", "best.h5"):  # as if killed right after checkpoint 3
        os.remove(resumed / name)
    if state(reference / "checkpoint-3.h5")["best"]["step"] == 3:
        shutil.copy(reference / "best.h5", resumed / "best.h5")  # best.h5 of iteration 3 existed then
    assert train_cli.main(["--experiment_root", str(resumed), "--resume"]) == 0
    groups = assert_same_checkpoints(reference / "checkpoint-6.h5", resumed / "checkpoint-6.h5")
    assert groups == ["model", "optimizer", "training"]
    assert state(resumed / "checkpoint-6.h5") == final
    np.testing.assert_array_equal(np.load(resumed / "detailed_losses.npy"),
                                  np.load(reference / "detailed_losses.npy"))

    # the best checkpoint embeds; the embedding is the BN feature (256-d), stored with the test metric
    out = tmp_path / "best.h5"
    assert embed.main(["--experiment_root", str(reference), "--dataset", val_set[0], "--image_root",
                       val_set[2], "--checkpoint", "best", "--filename", str(out)]) == 0
    with h5py.File(out) as f:
        assert f["emb"].shape == (12, 256) and f.attrs["checkpoint"].endswith("best.h5")
        assert f.attrs["metric"] == "cosine"  # --test_metric travels with the embeddings


def test_freezing_trains_only_the_new_layers_first(tmp_path, image_set):
    root = tmp_path / "e"
    assert train(root, image_set, "--id_loss_weight", "1", "--head_name", "bnneck",
                 "--freeze_backbone_iterations", "2", "--train_iterations", "3", "--checkpoint_frequency",
                 "2") == 0

    def arrays(path):
        with h5py.File(path) as f:
            return {f["model"][k].attrs["path"]: f["model"][k][()] for k in f["model"]}
    start, frozen, end = (arrays(root / f"checkpoint-{i}.h5") for i in (0, 2, 3))
    kernels = [p for p in start if p.endswith("/kernel")]
    backbone = [p for p in kernels if not p.startswith("head_")]
    assert backbone and all(np.array_equal(start[p], frozen[p]) for p in backbone)
    assert not np.array_equal(start["head_classifier/kernel"], frozen["head_classifier/kernel"])
    assert any(not np.array_equal(frozen[p], end[p]) for p in backbone)  # trained after iteration 2


def test_identification_only_with_random_batches(tmp_path, image_set):
    root = tmp_path / "e"
    assert train(root, image_set, "--triplet_loss_weight", "0", "--id_loss_weight", "1", "--sampler",
                 "random",
                 "--batch_k", "1", "--batch_p", "6", "--train_iterations", "3") == 0
    log = open(root / "train.log").read()
    assert "objective: 1 x id" in log and "Training finished after 3 iterations" in log


def _v1_copy(tmp_path, name: str, **args_changes):
    """A copy of the v1 fixture whose args.json points at the copy's data (and holds `args_changes`)."""
    root = tmp_path / name
    shutil.copytree(FIXTURE, root)
    args_path = root / "exp" / "args.json"
    args = json.load(open(args_path))
    args.update(train_set=str(root / "train.csv"), image_root=str(root), **args_changes)
    args_path.write_text(json.dumps(args))
    return root


def test_identities_held_out_for_validation_never_train_and_resume_the_same(tmp_path, image_set):
    """--val_identities 2: the run trains on the other 4 identities (4 classes), validates on the 2 held out
    (one query each under `none`), keeps best.h5, and resumes with the same identities held out: a run
    killed after its checkpoint at 2 ends as the uninterrupted one."""
    from trinet.data.datasets import read_csv
    from trinet.evaluation.holdout import hold_out
    flags = ["--id_loss_weight", "1", "--val_identities", "2", "--val_excluder", "none", "--val_frequency",
             "2", "--train_iterations", "4", "--checkpoint_frequency", "2", "--detailed_logs"]
    reference = tmp_path / "reference"
    assert train(reference, image_set, *flags) == 0
    log = open(reference / "train.log").read()
    assert "Validation: 2 identities held out of the training set (--val_identities 2), 4 remain" in log
    assert "Validation: 2 queries, 8 gallery images (none excluder" in log
    assert "validation at iter 4: mAP" in log and (reference / "best.h5").exists()
    final = state(reference / "checkpoint-4.h5")
    assert final["num_classes"] == 4
    dataset = read_csv(*image_set)
    held = hold_out(dataset.fids, dataset.pids, "none", seed=4, identities=2).identities  # TINY's --seed 4
    trained = {name.decode().split("/")[1][:4] for name in np.load(reference / "detailed_fids.npy").ravel()}
    assert trained and trained.isdisjoint(held) and len(trained | set(held)) == 6

    resumed = tmp_path / "resumed"
    shutil.copytree(reference, resumed)
    for name in ("checkpoint-4.h5", "model.keras", "best.h5"):  # as if killed right after checkpoint 2
        os.remove(resumed / name)
    if state(reference / "checkpoint-2.h5")["best"]["step"] == 2:
        shutil.copy(reference / "best.h5", resumed / "best.h5")
    assert train_cli.main(["--experiment_root", str(resumed), "--resume"]) == 0
    assert_same_checkpoints(reference / "checkpoint-4.h5", resumed / "checkpoint-4.h5")
    assert state(resumed / "checkpoint-4.h5") == final


def test_too_few_identities_to_hold_out_fail_before_anything_is_written(tmp_path, image_set, capsys):
    assert train(tmp_path / "e", image_set, "--val_identities", "5", "--val_excluder", "none") == 2
    err = capsys.readouterr().err
    assert "--val_identities 5: 6 training identities leave fewer than 2 for training" in err
    assert not (tmp_path / "e").exists()


def test_an_experiment_of_the_previous_version_resumes_and_embeds(tmp_path):
    """tests/fixtures/v1_experiment was written by trinet before the engine (format 1, args.json without the
    new settings), stopped after its checkpoint at 2 of 4 iterations. The embeddings of the old code are
    stored beside it.

    It resumes to the end bit for bit the same whether or not it stops again on the way (a copy stopped at
    iteration 3, then resumed), and ends where the old code's uninterrupted run ended (`ACROSS_BUILDS`)."""
    root = _v1_copy(tmp_path, "v1")
    images = sorted(os.listdir(root / "images"))[:3]
    listing = root / "three.txt"
    listing.write_text("".join(f"images/{name}\n" for name in images))

    def embedding(checkpoint):
        out = tmp_path / f"emb-{checkpoint}.h5"
        assert embed.main(["--experiment_root", str(root / "exp"), "--dataset", str(listing), "--image_root",
                           str(root), "--checkpoint", checkpoint, "--filename", str(out)]) == 0
        with h5py.File(out) as f:
            return f["emb"][()]
    np.testing.assert_allclose(embedding("2"), np.load(root / "expected_checkpoint2_emb.npy"), rtol=1e-5,
                               atol=1e-6)
    assert train_cli.main(["--experiment_root", str(root / "exp"), "--resume"]) == 0
    # stopped again at 3 (as a run of --train_iterations 3), then resumed to 4: the same checkpoint-4
    twice = _v1_copy(tmp_path, "v1-twice", train_iterations=3)
    assert train_cli.main(["--experiment_root", str(twice / "exp"), "--resume"]) == 0
    args_path = twice / "exp" / "args.json"
    args_path.write_text(json.dumps({**json.load(open(args_path)), "train_iterations": 4}))
    assert train_cli.main(["--experiment_root", str(twice / "exp"), "--resume"]) == 0
    assert_same_checkpoints(root / "exp" / "checkpoint-4.h5", twice / "exp" / "checkpoint-4.h5")
    # the resumed model.keras on the same inputs as the old code's uninterrupted run
    from trinet.models.builder import load_embedding_model
    from trinet.pipeline.images import decode, resize
    batch = np.stack([resize(decode(str(root / "images" / name)), (32, 16)).numpy() for name in images])
    final = load_embedding_model(str(root / "exp" / "model.keras"))(batch, training=False)
    np.testing.assert_allclose(final, np.load(root / "expected_final_emb.npy"), **ACROSS_BUILDS)
    np.testing.assert_allclose(embedding("4"), final, rtol=1e-5, atol=1e-6)
    # and it still serves as the initial checkpoint of a new run (backbone and same head)
    csv, image_root = str(root / "train.csv"), str(root)
    assert train(tmp_path / "new", (csv, image_root), "--train_iterations", "1", "--initial_checkpoint",
                 str(root / "exp"), "--batch_p", "2", "--batch_k", "2", "--embedding_dim", "8") == 0


def truncate(root, *names):
    """Cut image files to a third: a valid header, so only decoding finds them."""
    for name in names:
        path = os.path.join(root, "images", name)
        data = open(path, "rb").read()
        open(path, "wb").write(data[:len(data) // 3])


def train_on(tmp_path, identities, per_identity, broken, *flags):
    """Train TINY on a fresh image set with the `broken` images truncated; `(exit status, experiment)`."""
    root = str(tmp_path / "data")
    csv = write_image_set(root, identities=identities, per_identity=per_identity)
    truncate(root, *broken)
    exp = tmp_path / "e"
    return status(["--experiment_root", exp, "--train_set", csv, "--image_root", root, *TINY, *flags]), exp


def test_a_run_of_undecodable_batches_ends_with_an_error_naming_the_files(tmp_path, capsys):
    """Every batch holds an image that fails to decode (every image of one of the 2 identities, P = 2):
    training stops with a clear error instead of hanging."""
    broken = [f"0000_{j:02d}.jpg" for j in range(3)]
    code, exp = train_on(tmp_path, 2, 3, broken, "--batch_p", "2", "--batch_k", "2", "--train_iterations",
                         "5")
    assert code == 2
    err = capsys.readouterr().err
    assert "No batch could be formed from batch 0 on: each holds an image that fails to decode" in err
    assert "images/0000_00.jpg, images/0000_01.jpg, images/0000_02.jpg" in err
    assert "No batch could be formed" in open(exp / "train.log").read()  # the log says why the run ended


def test_undecodable_images_are_named_and_left_out(tmp_path):
    code, exp = train_on(tmp_path, 4, 4, ["0001_02.jpg"], "--batch_p", "4", "--batch_k", "2",
                         "--train_iterations", "6")
    assert code == 0
    log = open(exp / "train.log").read()
    assert "could not decode images/0001_02.jpg" in log and "left out from now on (1 so far)" in log
    assert log.count("could not decode") == 1  # it is never drawn again
    assert state(exp / "checkpoint-6.h5")["excluded_rows"] == [6]


def test_a_second_writer_is_refused_while_the_first_runs(finished, tmp_path, capsys):
    root = tmp_path / "e"
    shutil.copytree(finished, root)
    first = subprocess.Popen(["sleep", "60"])  # stands for a first train.py still running there
    try:
        owner = {"pid": first.pid, "host": socket.gethostname(), "since": "2026-11-30 10:00:00 UTC",
                 "command": "train.py"}
        (root / ".trinet.lock").write_text(json.dumps(owner))
        assert train_cli.main(["--experiment_root", str(root), "--resume"]) == 2
        err = capsys.readouterr().err
        assert "is in use by" in err and str(first.pid) in err and "train.py" in err
    finally:
        first.kill()
        first.wait()
    assert train_cli.main(["--experiment_root", str(root), "--resume"]) == 0  # its owner is gone: broken
    assert not (root / ".trinet.lock").exists()


def test_initial_weights_that_are_not_weights_fail_before_anything_is_written(tmp_path, image_set, capsys):
    bogus = tmp_path / "weights.h5"
    bogus.write_text("not a weights file")
    root = tmp_path / "e"
    assert train(root, image_set, "--initial_checkpoint", str(bogus)) == 2
    assert f"--initial_checkpoint {bogus} is not a Keras weights file that fits the backbone" in \
        capsys.readouterr().err
    assert not root.exists()  # so the corrected command is not refused as "not empty"


def test_a_single_identity_gets_advice_that_trinet_accepts(tmp_path, capsys):
    root = str(tmp_path / "data")
    csv = write_image_set(root, identities=1, per_identity=4)
    assert status(["--experiment_root", tmp_path / "e", "--train_set", csv, "--image_root", root, *TINY]) == 2
    err = capsys.readouterr().err
    assert "a batch needs at least 2 identities" in err and "--batch_p 1" not in err


def test_resume_with_partial_relative_or_empty_args_json(finished, tmp_path, capsys, caplog, monkeypatch):
    root = tmp_path / "e"
    shutil.copytree(finished, root)
    args = json.load(open(root / "args.json"))
    for new in ("pooling", "sampler", "id_loss_weight", "lr_schedule"):  # as written by an older version
        del args[new]
    (root / "args.json").write_text(json.dumps(args))
    caplog.clear()
    assert train_cli.main(["--experiment_root", str(root), "--resume"]) == 0
    assert "predates 4 settings (id_loss_weight, lr_schedule, pooling, sampler)" in caplog.text
    assert "added since" not in caplog.text and caplog.text.count("WARNING") == 0

    args["train_set"] = os.path.relpath(args["train_set"], "/")  # relative to a folder we are not in
    (root / "args.json").write_text(json.dumps(args))
    monkeypatch.chdir(tmp_path)
    assert train_cli.main(["--experiment_root", str(root), "--resume"]) == 2
    assert "a relative path, from the folder the run was started in" in capsys.readouterr().err
    monkeypatch.chdir("/")
    assert train_cli.main(["--experiment_root", str(root), "--resume"]) == 0  # from there it works

    (root / "args.json").write_text("{}")
    assert train_cli.main(["--experiment_root", str(root), "--resume"]) == 2
    assert "holds none of the run's settings" in capsys.readouterr().err


def test_a_run_killed_after_its_last_checkpoint_writes_the_model_on_resume(finished, tmp_path, caplog):
    root = tmp_path / "e"
    shutil.copytree(finished, root)
    os.remove(root / "model.keras")  # killed between the last checkpoint and model.keras
    caplog.clear()
    assert train_cli.main(["--experiment_root", str(root), "--resume"]) == 0
    assert (root / "model.keras").is_file()
    assert "Training finished after 4 iterations; the embedding model is in" in caplog.text


def test_new_layers_learn_at_their_multiple_of_the_rate(tmp_path, image_set):
    """Plain SGD, one step from the same start: the new layers move 10 times as far, the backbone the same."""
    def first_update(multiplier):
        root = tmp_path / f"m{multiplier}"
        assert train(root, image_set, "--id_loss_weight", "1", "--head_name", "bnneck", "--optimizer", "sgd",
                     "--momentum", "0", "--learning_rate", "0.01", "--train_iterations", "1",
                     "--new_layers_lr_multiplier", str(multiplier)) == 0

        def arrays(path):
            with h5py.File(path) as f:
                return {f["model"][k].attrs["path"]: f["model"][k][()] for k in f["model"]}
        start, end = arrays(root / "checkpoint-0.h5"), arrays(root / "checkpoint-1.h5")
        return {p: end[p] - start[p] for p in start if p.endswith("kernel") or p.endswith("gamma")}
    one, ten = first_update(1), first_update(10)
    new = [p for p in one if p.startswith("head_")]
    backbone = [p for p in one if not p.startswith("head_")]
    assert "head_classifier/kernel" in new and backbone
    for p in new:
        np.testing.assert_allclose(ten[p], 10 * one[p], rtol=1e-4, atol=3e-6, err_msg=p)  # float32 ulp at 1
    for p in backbone:
        np.testing.assert_allclose(ten[p], one[p], rtol=1e-4, atol=3e-7, err_msg=p)
    assert np.abs(one["head_classifier/kernel"]).max() > 0


def test_validation_sets_are_checked_before_anything_is_written(tmp_path, image_set, val_set, capsys):
    query, gallery, root = val_set
    broken = tmp_path / "gallery.csv"
    broken.write_text(open(gallery).read() + "0001,images/not_there.jpg\n")
    exp = tmp_path / "e"
    assert train(exp, image_set, "--val_query", query, "--val_gallery", str(broken), "--val_image_root", root,
                 "--val_excluder", "none") == 2
    err = capsys.readouterr().err
    assert "not_there.jpg" in err and "--skip_missing" not in err  # no flag of train.py skips them
    assert not exp.exists()


def test_validation_sets_without_a_valid_match_are_refused_up_front(tmp_path, image_set, val_set, capsys):
    """Defect 7 of issue 26: found only at the first validation, after --val_frequency iterations."""
    query, gallery, root = val_set
    rows = open(query).read().splitlines()
    mine = tmp_path / "query.csv"  # only identities that the gallery does not have
    mine.write_text("".join(row.replace(row.split(",")[0], "0099", 1) + "\n" for row in rows))
    exp = tmp_path / "e"
    assert train(exp, image_set, "--val_query", str(mine), "--val_gallery", gallery, "--val_image_root", root,
                 "--val_excluder", "none", "--val_frequency", "1", "--train_iterations", "2") == 2
    err = capsys.readouterr().err
    assert (f"None of the {len(rows)} validation queries (--val_query {mine}, --val_gallery {gallery}) has a "
            "valid match") in err
    assert "--val_excluder none" in err and not exp.exists()
