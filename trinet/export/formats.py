"""The export formats: one registry, from name to how the format is built and run.

Cheap to import (TensorFlow and the converters are imported when a format is used), so that the command
line takes `choices=sorted(FORMATS)`. ONNX and TFLite are converted from the SavedModel: tf2onnx's
`--saved-model` path and `tf.lite.TFLiteConverter.from_saved_model` (their Keras-model entry points do not
work with Keras 3).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
import warnings
from typing import Any, Callable

import numpy as np

from trinet.core.errors import TrinetError
from trinet.core.fileio import path_problem

#: A built export, run: `(what is run, for messages; the endpoint it equals; (B, H, W, 3) uint8 -> (B, D)
#: float32)` for each of its endpoints.
Runners = list[tuple[str, str, Callable[[np.ndarray], np.ndarray]]]
#: The pip extra that installs the optional converters and runtimes.
EXTRA = "pip install trinet[export]"
#: The verification's default tolerance: max |export - Embedder| <= TOLERANCE * max(1, max |Embedder|).
#: The runtimes differ from TensorFlow only by float32 rounding in another order of summation: measured
#: 0 (SavedModel), about 1e-7 (ONNX, TFLite) for the tests' LuNet, and 7e-6 (ONNX) and 1.3e-5 (TFLite)
#: for a ResNet-50 at 128x64 whose embeddings reach 16, under 1e-6 relative. 1e-4 relative leaves a
#: hundredfold margin and is still far below the distances that matter for retrieval; a wrong resize,
#: channel order or weight is off by orders of magnitude more.
TOLERANCE = 1e-4


@dataclasses.dataclass(frozen=True)
class Format:
    """How an export format is built (in a work folder) and run (to verify it).

    `build(model, net_size, endpoints, work) -> path` writes the export under `work` and returns its path;
    `run(path, endpoints) -> Runners` loads it with its own runtime.
    """

    help: str
    suffix: str  # the --output name ends with it; "" for a folder
    packages: tuple[str, ...]
    build: Callable[[Any, tuple[int, int], tuple[str, ...], str], str]
    run: Callable[[str, tuple[str, ...]], Runners]


def _build_saved_model(model, net_size, endpoints, work) -> str:
    from trinet.export.serving import write_saved_model
    path = os.path.join(work, "saved_model")
    write_saved_model(model, net_size, path, {e: [e] for e in endpoints})
    return path


def _run_saved_model(path, endpoints) -> Runners:
    import tensorflow as tf

    from trinet.export.serving import ENDPOINTS, INPUT
    loaded = tf.saved_model.load(path)

    def runner(signature_name: str, endpoint: str) -> Callable[[np.ndarray], np.ndarray]:
        signature, output = loaded.signatures[signature_name], ENDPOINTS[endpoint].output
        return lambda images: signature(**{INPUT: tf.constant(images)})[output].numpy()

    runners = [(f"signature {e}", e, runner(e, e)) for e in endpoints]
    return runners + [("signature serving_default", endpoints[0], runner("serving_default", endpoints[0]))]


def _build_tflite(model, net_size, endpoints, work) -> str:
    import tensorflow as tf
    saved = _build_saved_model(model, net_size, endpoints, work)
    converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=list(endpoints))
    path = os.path.join(work, "model.tflite")
    with open(path, "wb") as f:
        f.write(converter.convert())
    return path


def _run_tflite(path, endpoints) -> Runners:
    import tensorflow as tf

    from trinet.export.serving import ENDPOINTS, INPUT
    with warnings.catch_warnings():  # tf.lite.Interpreter warns that it moves to the ai_edge_litert package
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=path)

    def runner(name: str) -> Callable[[np.ndarray], np.ndarray]:
        signature, output = interpreter.get_signature_runner(name), ENDPOINTS[name].output
        return lambda images: signature(**{INPUT: images})[output]

    return [(f"signature runner {e}", e, runner(e)) for e in endpoints]


def _build_onnx(model, net_size, endpoints, work) -> str:
    from trinet.export.serving import write_saved_model
    saved = os.path.join(work, "saved_model")
    # one graph: a single signature with an output per endpoint
    write_saved_model(model, net_size, saved, {"serving_default": list(endpoints)})
    path = os.path.join(work, "model.onnx")
    command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", saved, "--tag", "serve",
               "--signature_def", "serving_default", "--output", path]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not os.path.isfile(path):
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise TrinetError(f"tf2onnx could not convert the SavedModel (exit status {done.returncode}):\n"
                          f"{tail}")
    return path


def _run_onnx(path, endpoints) -> Runners:
    import onnxruntime

    from trinet.export.serving import ENDPOINTS, INPUT
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])

    def runner(name: str) -> Callable[[np.ndarray], np.ndarray]:
        output = ENDPOINTS[name].output
        return lambda images: session.run([output], {INPUT: images})[0]

    return [(f"output {ENDPOINTS[e].output}", e, runner(e)) for e in endpoints]


#: The export formats by name.
FORMATS: dict[str, Format] = {
    "saved_model": Format("a TensorFlow SavedModel folder (TF Serving, tf.saved_model.load): signatures "
                          "serving_default = embed, and embed_flip with --flip", "", (),
                          _build_saved_model, _run_saved_model),
    "onnx": Format("an .onnx file (onnxruntime): input images, outputs embedding, and embedding_flip with "
                   "--flip", ".onnx", ("tf2onnx", "onnx", "onnxruntime"), _build_onnx, _run_onnx),
    "tflite": Format("a .tflite file (LiteRT, tf.lite.Interpreter): signature runners embed, and embed_flip "
                     "with --flip", ".tflite", (), _build_tflite, _run_tflite),
}


def get_format(name: str) -> Format:
    """The format `name`, its optional packages checked.

    Raises:
        TrinetError: an unknown name (the valid ones are listed), or a package of the format is missing.
    """
    if name not in FORMATS:
        raise TrinetError(f"Unknown export format {name!r}; expected one of {sorted(FORMATS)}")
    fmt = FORMATS[name]
    missing = [p for p in fmt.packages if importlib.util.find_spec(p) is None]
    if missing:
        raise TrinetError(f"The {name} export needs {', '.join(missing)} (not installed): {EXTRA} "
                          f"(or pip install {' '.join(fmt.packages)}).")
    return fmt


def check_output(output: str, fmt_name: str) -> str:
    """`output` if an export in `fmt_name` may be written there.

    Raises:
        TrinetError: it exists (an export never replaces anything), its folder is missing or not
            writable, or its name does not fit the format (another format's suffix, or not its own).
    """
    fmt = FORMATS[fmt_name]
    if os.path.lexists(output):
        raise TrinetError(f"--output {output} exists; remove it or choose another path (an export never "
                          "replaces anything).")
    parent = os.path.dirname(os.path.abspath(output))
    problem = path_problem(parent, "folder")
    if problem is not None:
        raise TrinetError(f"--output {output}: its folder {parent} is {problem}.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise TrinetError(f"--output {output}: its folder {parent} is not writable.")
    name = os.path.basename(output.rstrip(os.sep)).lower()
    if fmt.suffix and not name.endswith(fmt.suffix):
        raise TrinetError(f"--output {output}: the {fmt_name} export is a file whose name ends with "
                          f"{fmt.suffix}.")
    others = sorted(f.suffix for f in FORMATS.values() if f.suffix and f.suffix != fmt.suffix)
    if any(name.endswith(suffix) for suffix in others):
        raise TrinetError(f"--output {output}: a name ending with {os.path.splitext(name)[1]} is for another "
                          f"format, not {fmt_name} ({fmt.help.split(' (')[0]}).")
    return output
