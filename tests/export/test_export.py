"""trinet-export: each format's file, run by its own runtime, equals the Embedder; bad input; nothing
unverified is ever left at --output."""

import dataclasses
import os
import re
import warnings

import numpy as np
import pytest

from trinet.core.errors import TrinetError
from trinet.export import formats
from trinet.export.command import main

#: The round-trip tolerance of the tests, as the export's default (see formats.TOLERANCE).
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def embedder(finished):
    from trinet import Embedder
    return Embedder.from_experiment(str(finished))


def export(finished, fmt, output, *extra):
    return main(["--experiment_root", str(finished), "--format", fmt, "--output", str(output), "--quiet",
                 *extra])


def run_file(fmt, path, endpoint, images):
    """`images` through the exported file's endpoint, with the format's runtime, as a user would."""
    if fmt == "saved_model":
        import tensorflow as tf
        name = "serving_default" if endpoint == "embed" else endpoint
        output = {"embed": "embedding", "embed_flip": "embedding_flip"}[endpoint]
        return tf.saved_model.load(path).signatures[name](images=tf.constant(images))[output].numpy()
    if fmt == "onnx":
        import onnxruntime
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["images"]
        output = {"embed": "embedding", "embed_flip": "embedding_flip"}[endpoint]
        return session.run([output], {"images": images})[0]
    import tensorflow as tf
    with warnings.catch_warnings():  # the interpreter moves to the ai_edge_litert package
        warnings.simplefilter("ignore")
        runner = tf.lite.Interpreter(model_path=path).get_signature_runner(endpoint)
    output = {"embed": "embedding", "embed_flip": "embedding_flip"}[endpoint]
    return runner(images=images)[output]


@pytest.mark.parametrize("fmt, name", [("saved_model", "serving"), ("tflite", "m.tflite"),
                                       pytest.param("onnx", "m.onnx", marks=pytest.mark.slow)])
def test_round_trip(finished, embedder, tmp_path, fmt, name, capsys):
    out = tmp_path / name
    assert export(finished, fmt, out, "--flip") == 0, capsys.readouterr().err
    assert os.path.isdir(out) if fmt == "saved_model" else os.path.isfile(out)
    assert sorted(os.listdir(tmp_path)) == [name]  # no temporary left beside it
    # images unlike the probes of the verification: another seed and size, a batch of one
    images = np.random.default_rng(11).integers(0, 256, (1, 50, 23, 3), dtype=np.uint8)
    for endpoint, options in [("embed", {}), ("embed_flip", {"flip": True, "aggregator": "mean"})]:
        reference = embedder.embed(images, **options)
        got = run_file(fmt, str(out), endpoint, images)
        assert got.shape == (1, 8) and got.dtype == np.float32
        assert np.max(np.abs(got - reference)) <= TOLERANCE, (fmt, endpoint)
    # the flip endpoint really is another function
    assert not np.allclose(embedder.embed(images), embedder.embed(images, flip=True, aggregator="mean"))


def test_a_failed_verification_leaves_nothing(embedder, tmp_path, monkeypatch):
    from trinet.export import publish, serving
    real = serving.endpoint_function

    def off_by_a_little(model, net_size, flip):
        fn = real(model, net_size, flip)
        return lambda images: fn(images) + 1e-3

    monkeypatch.setattr(serving, "endpoint_function", off_by_a_little)
    with pytest.raises(TrinetError, match=r"Verification failed: signature embed differs from the Embedder "
                                          r"\(embed.py\) by up to 0.001"):
        publish.export(embedder, "saved_model", str(tmp_path / "serving"))
    assert os.listdir(tmp_path) == []
    # within a looser tolerance, the same export is accepted
    diffs = publish.export(embedder, "saved_model", str(tmp_path / "serving"), tolerance=1e-2)
    assert 0.9e-3 < max(diffs.values()) < 1.1e-3 and os.listdir(tmp_path) == ["serving"]


def test_probe_images_are_larger_and_smaller_than_the_net_input():
    from trinet.export.publish import probe_images
    assert [p.shape for p in probe_images((32, 16))] == [(3, 49, 25, 3), (2, 24, 12, 3)]


@pytest.mark.parametrize("args, words", [
    (["--format", "saved_model", "--output", "{tmp}/exists"], "--output {tmp}/exists exists; remove it"),
    (["--format", "onnx", "--output", "{tmp}/no/m.onnx"], "its folder {tmp}/no is not found"),
    (["--format", "onnx", "--output", "{tmp}/m.tflite"], "the onnx export is a file whose name ends with"),
    (["--format", "saved_model", "--output", "{tmp}/m.onnx"], "ending with .onnx is for another format"),
])
def test_output_problems(finished, tmp_path, capsys, args, words):
    (tmp_path / "exists").mkdir()
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["--experiment_root", str(finished), *args]) == 2
    assert words.replace("{tmp}", str(tmp_path)) in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["exists"]


def test_command_line_errors(finished, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--experiment_root", str(tmp_path / "none"), "--format", "onnx", "--output", "m.onnx"])
    assert stop.value.code == 2 and "none" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--experiment_root", str(finished), "--format", "keras", "--output", "m.keras"])
    err = capsys.readouterr().err
    assert "invalid choice: 'keras'" in err and "onnx" in err and "tflite" in err
    assert main(["--experiment_root", str(tmp_path), "--format", "tflite", "--output",
                 str(tmp_path / "m.tflite")]) == 2
    # an empty folder: what it lacks, not a missing image size
    assert (f"{tmp_path} holds no model yet (args.json: no; checkpoints: none yet; model.keras: no)"
            in capsys.readouterr().err)
    assert not (tmp_path / "m.tflite").exists()


def test_unknown_format_and_missing_packages(monkeypatch):
    with pytest.raises(TrinetError, match=re.escape("Unknown export format 'keras'; expected one of "
                                                    "['onnx', 'saved_model', 'tflite']")):
        formats.get_format("keras")
    missing = dataclasses.replace(formats.FORMATS["onnx"], packages=("trinet_no_such_package",))
    monkeypatch.setitem(formats.FORMATS, "onnx", missing)
    with pytest.raises(TrinetError, match=re.escape("needs trinet_no_such_package (not installed): "
                                                    "pip install trinet[export]")):
        formats.get_format("onnx")


def test_a_folder_is_published_whole_or_not_at_all(tmp_path, monkeypatch):
    import errno

    from trinet.core.errors import WriteError
    from trinet.core.fileio import copy_folder_atomic
    source = tmp_path / "src"
    (source / "variables").mkdir(parents=True)
    (source / "saved_model.pb").write_bytes(b"graph")
    (source / "variables" / "data").write_bytes(b"weights")

    def full_disk(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "rename", full_disk)
    with pytest.raises(WriteError, match="out: No space left on device; nothing was written"):
        copy_folder_atomic(str(source), str(tmp_path / "out"))
    assert os.listdir(tmp_path) == ["src"]
    monkeypatch.undo()
    copy_folder_atomic(str(source), str(tmp_path / "out"))
    assert (tmp_path / "out" / "variables" / "data").read_bytes() == b"weights"
    assert sorted(os.listdir(tmp_path)) == ["out", "src"]


# Robustness, round 3 (issue 26)

def copy_of(finished, tmp_path, remove=()):
    import shutil
    root = tmp_path / "exp"
    shutil.copytree(finished, root)
    for name in remove:
        os.remove(root / name)
    return root


def test_an_untrained_checkpoint_is_exported_only_when_named(finished, image_set, tmp_path, capsys,
                                                             caplog):
    """Defect 5: in a run killed before its first checkpoint after checkpoint-0, trinet-export wrote and
    verified an export of the untrained network with exit 0."""
    from trinet import Embedder
    from trinet.cli.embed import main as embed_main
    root = copy_of(finished, tmp_path, ["checkpoint-2.h5", "checkpoint-4.h5", "model.keras"])
    out = tmp_path / "serving"
    assert export(root, "saved_model", out) == 2
    err = capsys.readouterr().err
    assert f"The latest checkpoint of {root} is checkpoint-0, the untrained network" in err
    assert err.rstrip().endswith("name it: --checkpoint 0") and not out.exists()
    with pytest.raises(TrinetError, match=r"to use it anyway name it: checkpoint=0$"):  # the API's words
        Embedder.from_experiment(root)
    csv, images = image_set
    assert embed_main(["--experiment_root", str(root), "--dataset", csv, "--image_root", images,
                       "--filename", str(tmp_path / "e.h5"), "--quiet"]) == 2
    assert "name it: --checkpoint 0" in capsys.readouterr().err and not (tmp_path / "e.h5").exists()
    caplog.clear()
    assert export(root, "saved_model", out, "--checkpoint", "0") == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert f"Using checkpoint-0 of 4 iterations of {root}: the run is unfinished." in warned
    assert out.is_dir()


def test_a_checkpoint_before_the_end_of_training_is_said_plainly(finished, tmp_path, caplog):
    from trinet import Embedder
    root = copy_of(finished, tmp_path, ["checkpoint-4.h5", "model.keras"])
    Embedder.from_experiment(root)
    Embedder.from_experiment(finished, 2)
    Embedder.from_experiment(finished)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == [f"Using checkpoint-2 of 4 iterations of {root}: the run is unfinished.",
                      f"Using checkpoint-2 of 4 iterations of {finished}: an earlier one than the end of "
                      "training (checkpoint-4)."]


def test_a_bare_model_file_needs_the_commands_size_flags(finished, tmp_path, capsys):
    """A folder without args.json: the message named the API's net_size=(height, width), not the flags."""
    import shutil
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(finished / "model.keras", bare / "model.keras")
    out = tmp_path / "m.tflite"
    assert export(bare, "tflite", out) == 2
    err = capsys.readouterr().err
    assert "(it has no args.json); pass --net_input_height/--net_input_width." in err
    assert "net_size" not in err
    assert export(bare, "tflite", out, "--net_input_height", "32", "--net_input_width", "16") == 0
    assert out.is_file()


def test_the_work_folder_lies_beside_the_output_where_a_killed_runs_is_removed(embedder, tmp_path,
                                                                               monkeypatch):
    """An export killed by SIGKILL left trinet-export-* (8 MB) in the system temp folder forever."""
    import subprocess
    import tempfile

    from trinet.export import publish
    system_tmp = tmp_path / "system_tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    out = tmp_path / "out" / "serving"
    out.parent.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = out.parent / f".serving.tmp-{dead.pid}-work"  # as a SIGKILL leaves it
    (stale / "saved_model").mkdir(parents=True)
    works = []
    real = formats.FORMATS["saved_model"]

    def build(model, net_size, endpoints, work):
        works.append(work)
        assert not stale.exists()  # removed before the build
        return real.build(model, net_size, endpoints, work)

    monkeypatch.setitem(formats.FORMATS, "saved_model", dataclasses.replace(real, build=build))
    publish.export(embedder, "saved_model", str(out))
    assert [os.path.dirname(w) for w in works] == [str(out.parent)]
    assert os.listdir(out.parent) == ["serving"] and os.listdir(system_tmp) == []


def test_a_full_disk_while_copying_a_folder_is_one_line(tmp_path, monkeypatch):
    """shutil.Error's list of (source, destination, message) tuples was printed as the message."""
    import errno
    import shutil

    from trinet.core.errors import WriteError
    from trinet.core.fileio import copy_folder_atomic
    source = tmp_path / "src"
    (source / "variables").mkdir(parents=True)
    (source / "saved_model.pb").write_bytes(b"graph")
    (source / "variables" / "data").write_bytes(b"weights")

    def full_disk(src, dst, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", full_disk)  # what copytree's copy2 calls
    with pytest.raises(WriteError) as info:
        copy_folder_atomic(str(source), str(tmp_path / "out"))
    assert str(info.value) == (f"Could not write {tmp_path / 'out'}: No space left on device (and 1 more "
                               "files); nothing was written.")
    assert os.listdir(tmp_path) == ["src"]


@pytest.mark.slow
def test_an_export_killed_by_sigkill_leaves_its_work_folder_beside_the_output(finished, tmp_path):
    """A real SIGKILL in the middle of the build; the next export removes what it left."""
    import signal
    import subprocess
    import sys

    out, system_tmp = tmp_path / "serving", tmp_path / "system_tmp"
    system_tmp.mkdir()
    code = ("import os, signal, sys\n"
            "from trinet.export import formats\n"
            "real = formats.FORMATS['saved_model']\n"
            "def build(model, net_size, endpoints, work):\n"
            "    real.build(model, net_size, endpoints, work)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            "import dataclasses\n"
            "formats.FORMATS['saved_model'] = dataclasses.replace(real, build=build)\n"
            "from trinet.export.command import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    env = dict(os.environ, TMPDIR=str(system_tmp), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", code, "--experiment_root", str(finished), "--format",
                           "saved_model", "--output", str(out), "--quiet"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    left = os.listdir(tmp_path)
    assert len(left) == 2 and re.fullmatch(r"\.serving\.tmp-\d+-work", sorted(left)[0]), left
    assert [n for n in os.listdir(system_tmp) if "trinet" in n] == []  # (TensorFlow's autograph writes there)
    assert export(finished, "saved_model", out) == 0
    assert sorted(os.listdir(tmp_path)) == ["serving", "system_tmp"]
