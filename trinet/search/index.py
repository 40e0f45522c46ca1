"""Nearest-neighbour search in a gallery of embeddings with faiss: an exact index or approximate ones.

An index folder (written by `save_index`, read by `load_index`) holds the faiss index, the gallery's
`pid,path` rows (`gallery.csv`; the excluders read persons and cameras from the paths) and
`manifest.json` (kind, parameters, metric, dimension, row count, the model's fingerprint, and the size and
SHA-256 of the two other files). The folder is written under a temporary name and renamed when complete; it
is created new, or replaces only an older index (never a folder with anything else). `load_index` checks
the manifest's keys and types, the parameters against what faiss accepts, and the files' checksums: a
changed byte is an error naming the file, never a silently wrong result.

faiss computes squared L2 distances; `SEARCH_METRICS` turns them into trinet's `euclidean` (with the
epsilon of `trinet.core.distances`) or `sqeuclidean`. The other metrics of `trinet.core.distances` are
refused. The flat index is exact; the approximate kinds return distances computed on compressed vectors.

faiss (the `search` extra: `pip install trinet[search]`) is imported when an index is built or read,
so importing this module is cheap and never needs it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
from typing import Any, Callable, Mapping

import numpy as np

from trinet import __version__
from trinet.core.distances import EUCLIDEAN_EPSILON
from trinet.core.errors import TrinetError, WriteError, listing
from trinet.core.fileio import (file_sha256, make_directory, path_problem, publish_folder,
                                remove_stale_temporaries, temporary_name, write_json_atomic)
from trinet.data.datasets import Dataset, read_csv, write_dataset
from trinet.evaluation.excluders import Exclusion

log = logging.getLogger(__name__)

#: What to install when faiss is missing.
FAISS_HINT = "pip install 'trinet[search]' (or: pip install faiss-cpu)"

#: The files of an index folder.
MANIFEST, INDEX_FILE, GALLERY_FILE = "manifest.json", "index.faiss", "gallery.csv"

#: What the manifest of an index folder says it is, and the layout version (1: no checksums).
FORMAT, FORMAT_VERSION = "trinet-index", 2


def import_faiss() -> Any:
    """The faiss module; TrinetError saying what to install when it is missing."""
    try:
        import faiss
    except ImportError as e:
        raise TrinetError(f"trinet-search needs faiss, which is not installed ({e}): {FAISS_HINT}") from None
    return faiss


def _euclidean(squared: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(squared, 0.0) + EUCLIDEAN_EPSILON)


def _sqeuclidean(squared: np.ndarray) -> np.ndarray:
    return np.maximum(squared, 0.0)


#: The metrics an index can rank by exactly: name -> squared L2 `(Q, K)` -> distances as
#: `trinet.core.distances`.
SEARCH_METRICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "euclidean": _euclidean,
    "sqeuclidean": _sqeuclidean,
}


def check_metric(metric: str, source: str) -> str:
    """`metric` if an index can rank by it; TrinetError naming `source` (a file or flag) otherwise."""
    if metric not in SEARCH_METRICS:
        raise TrinetError(f"{source}: the {metric} distance cannot be searched with faiss's L2 indexes; "
                          f"trinet-search supports {', '.join(sorted(SEARCH_METRICS))}. For exact rankings "
                          f"under {metric} use evaluate.py.")
    return metric


@dataclasses.dataclass(frozen=True)
class Parameter:
    """A parameter of an index kind: a command-line flag `--name`, stored in the manifest.

    `search` parameters may be changed at query time; `None` as default means "chosen from the gallery
    size" (see the kind's `resolve`).
    """

    name: str
    default: int | None
    help: str
    search: bool = False
    minimum: int = 1
    maximum: int | None = None  # faiss's own limit, or where it stops working

    def allowed(self) -> str:
        return f"{self.minimum} or more" if self.maximum is None else f"{self.minimum} to {self.maximum}"


def _auto_nlist(count: int) -> int:
    # About 4 sqrt(N) lists (faiss's guideline), with at least 39 training vectors per list.
    return max(1, min(int(4 * math.sqrt(count)), count // 39))


def _nlist(params: dict[str, Any], count: int) -> int:
    return params["nlist"] or _auto_nlist(count)


def flag_name(name: str, value: Any) -> str:
    """How a command names the parameter `name` given as `value` in its messages: `--name value`."""
    return f"--{name} {value}"


def api_name(name: str, value: Any) -> str:
    """How the Python API (`build_index(params=...)`, `search(overrides=...)`) names it: `name=value`."""
    return f"{name}={value!r}"


def check_parameters(kind: str, params: Mapping[str, Any], count: int, dim: int,
                     named: Callable[[str, Any], str] = api_name) -> None:
    """Check the resolved parameters of an index of `kind` over `count` vectors of dimension `dim`
    against what faiss accepts, before anything is built (faiss crashes on some: hnsw with M = 1).

    Args:
        named: how a message names a parameter and its value (`flag_name`, `api_name`, or one naming a
            manifest's key).

    Raises:
        TrinetError: a parameter of the wrong type or outside its range (the message names it and the
            allowed range), or one that does not fit the others or the gallery.
    """
    spec = get_kind(kind)
    for parameter in spec.parameters:
        value = params.get(parameter.name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TrinetError(f"{named(parameter.name, value)}: expected an integer, found "
                              f"{type(value).__name__}")
        if value < parameter.minimum or (parameter.maximum is not None and value > parameter.maximum):
            raise TrinetError(f"{named(parameter.name, value)} is out of range: --index {kind} allows "
                              f"{parameter.allowed()} ({parameter.help})")
    if "nlist" in params and params["nlist"] > count:
        raise TrinetError(f"{named('nlist', params['nlist'])} is larger than the gallery ({count} vectors); "
                          "the inverted lists are trained on the gallery and need at least one vector each. "
                          "Lower it (allowed: 1 to the gallery size).")
    if "pq_m" in params:
        m, nbits = params["pq_m"], params["pq_nbits"]
        if dim % m:
            raise TrinetError(f"{named('pq_m', m)} must divide the embedding dimension {dim} (each of the "
                              f"{m} codes covers an equal share of it); allowed: "
                              f"{', '.join(str(d) for d in range(1, dim + 1) if dim % d == 0)}")
        if count < 2 ** nbits:
            raise TrinetError(f"--index ivfpq with {named('pq_nbits', nbits)} trains {2 ** nbits} centroids "
                              "per code and needs at least that many gallery vectors; the gallery has "
                              f"{count}. Use --index flat (exact, and fast enough for small galleries) or "
                              "lower pq_nbits.")
    if "ef_construction" in params and params["ef_construction"] < params["hnsw_m"]:
        raise TrinetError(f"{named('ef_construction', params['ef_construction'])} is smaller than "
                          f"{named('hnsw_m', params['hnsw_m'])}; the candidate list while building must hold "
                          "at least the links of a vector (allowed: ef_construction >= hnsw_m)")


def _training_sample(vectors: np.ndarray, size: int) -> np.ndarray:
    """At most `size` rows of `vectors`, chosen at random but reproducibly."""
    if len(vectors) <= size:
        return vectors
    rows = np.sort(np.random.default_rng(0).choice(len(vectors), size, replace=False))
    return vectors[rows]


def _build_flat(faiss: Any, vectors: np.ndarray, params: dict[str, Any]) -> Any:
    return faiss.IndexFlatL2(vectors.shape[1])


def _build_ivf(faiss: Any, vectors: np.ndarray, params: dict[str, Any], code: str) -> Any:
    nlist = params["nlist"]
    index = faiss.index_factory(vectors.shape[1], f"IVF{nlist},{code}")
    index.train(_training_sample(vectors, max(64 * nlist, 10000)))
    return index


def _build_ivfsq(faiss: Any, vectors: np.ndarray, params: dict[str, Any]) -> Any:
    return _build_ivf(faiss, vectors, params, "SQ8")


def _build_ivfpq(faiss: Any, vectors: np.ndarray, params: dict[str, Any]) -> Any:
    return _build_ivf(faiss, vectors, params, f"PQ{params['pq_m']}x{params['pq_nbits']}")


def _build_hnsw(faiss: Any, vectors: np.ndarray, params: dict[str, Any]) -> Any:
    index = faiss.IndexHNSWFlat(vectors.shape[1], params["hnsw_m"])
    index.hnsw.efConstruction = params["ef_construction"]
    return index


def _resolve_ivf(params: dict[str, Any], count: int) -> dict[str, Any]:
    return {**params, "nlist": _nlist(params, count)}


def _search_flat(faiss: Any, params: Mapping[str, Any], selector: Any) -> Any:
    return faiss.SearchParameters(sel=selector) if selector is not None else None


def _search_ivf(faiss: Any, params: Mapping[str, Any], selector: Any) -> Any:
    nprobe = min(params["nprobe"], params["nlist"])
    return faiss.SearchParametersIVF(sel=selector, nprobe=nprobe) if selector is not None else \
        faiss.SearchParametersIVF(nprobe=nprobe)


def _search_hnsw(faiss: Any, params: Mapping[str, Any], selector: Any) -> Any:
    if selector is None:
        return faiss.SearchParametersHNSW(efSearch=params["ef_search"])
    return faiss.SearchParametersHNSW(sel=selector, efSearch=params["ef_search"])


def _widen_ivf(params: dict[str, Any], depth: int) -> dict[str, Any] | None:
    # Fewer results than asked: the probed lists ran out; probe twice as many (at most all).
    if params["nprobe"] >= params["nlist"]:
        return None
    return {**params, "nprobe": min(params["nlist"], 2 * params["nprobe"])}


def _widen_hnsw(params: dict[str, Any], depth: int) -> dict[str, Any] | None:
    if params["ef_search"] >= 2 * depth:
        return None
    return {**params, "ef_search": max(2 * params["ef_search"], depth)}


@dataclasses.dataclass(frozen=True)
class IndexKind:
    """A kind of index: its parameters and how it is built, searched and widened.

    Attributes:
        build: `(faiss, (N, D) float32 gallery, params) -> untrained-or-trained empty faiss index`.
        search_parameters: `(faiss, params, selector or None) -> faiss SearchParameters or None`.
        resolve: fills the parameters chosen from the gallery size `(params, N) -> params`.
        widen: parameters that return more candidates after a search gave fewer than `depth`, or None.
    """

    description: str
    build: Callable[[Any, np.ndarray, dict[str, Any]], Any]
    search_parameters: Callable[[Any, Mapping[str, Any], Any], Any]
    parameters: tuple[Parameter, ...] = ()
    resolve: Callable[[dict[str, Any], int], dict[str, Any]] = lambda params, count: params
    widen: Callable[[dict[str, Any], int], dict[str, Any] | None] = lambda params, depth: None
    exact: bool = False

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.parameters}


_NLIST = Parameter("nlist", None, "Inverted lists (k-means cells) of the ivf indexes. Default: about "
                   "4 sqrt(N), at most N/39 (N gallery vectors).")
_NPROBE = Parameter("nprobe", 16, "Lists an ivf index scans per query: more is slower and more accurate.",
                    search=True)

#: The index kinds by name: the one list of valid `--index` values.
INDEX_KINDS: dict[str, IndexKind] = {
    "flat": IndexKind("exact: every gallery vector compared with every query (4 D bytes per vector)",
                      _build_flat, _search_flat, exact=True),
    "ivfsq": IndexKind("approximate: inverted lists of 8-bit scalar-quantized vectors (D bytes per vector, "
                       "a quarter of flat)", _build_ivfsq, _search_ivf, (_NLIST, _NPROBE), _resolve_ivf,
                       _widen_ivf),
    "ivfpq": IndexKind("approximate: inverted lists of product-quantized vectors (pq_m bytes per vector at "
                       "8 bits; smallest, least accurate)", _build_ivfpq, _search_ivf,
                       (_NLIST, _NPROBE, Parameter("pq_m", 32, "ivfpq: codes per vector (must divide D)."),
                        # faiss refuses more than 24 bits; its training fails from 16 on
                        Parameter("pq_nbits", 8, "ivfpq: bits per code.", maximum=12)), _resolve_ivf,
                       _widen_ivf),
    "hnsw": IndexKind("approximate: a graph over the full vectors (more memory than flat, fast queries)",
                      _build_hnsw, _search_hnsw,
                      # M = 1 crashes faiss (a segmentation fault)
                      (Parameter("hnsw_m", 32, "hnsw: links per vector.", minimum=2),
                       Parameter("ef_construction", 80, "hnsw: candidate list size while building."),
                       Parameter("ef_search", 64, "hnsw: candidate list size per query: more is slower and "
                                 "more accurate.", search=True)),
                      widen=_widen_hnsw),
}

#: Every parameter flag of the index kinds (one entry per name).
PARAMETERS: dict[str, Parameter] = {p.name: p for kind in INDEX_KINDS.values() for p in kind.parameters}


def get_kind(name: str) -> IndexKind:
    """The index kind called `name`; TrinetError listing the valid names if there is none."""
    try:
        return INDEX_KINDS[name]
    except (KeyError, TypeError):
        raise TrinetError(f"Unknown index kind {name!r}; expected one of {sorted(INDEX_KINDS)}") from None


def kind_parameters(kind: str, given: Mapping[str, Any], count: int) -> dict[str, Any]:
    """The parameters of an index of `kind` over `count` vectors: the `given` values (None: not given)
    over the defaults. TrinetError for a parameter given that the kind does not have."""
    spec = get_kind(kind)
    own = spec.defaults()
    foreign = sorted(name for name, value in given.items() if value is not None and name not in own)
    if foreign:
        owners = {name: sorted(k for k, s in INDEX_KINDS.items() if name in s.defaults()) for name in foreign}
        raise TrinetError(f"--index {kind} takes no " + "; ".join(
            f"--{name} (it applies to --index {' / '.join(owners[name])})" for name in foreign))
    params = {**spec.defaults(), **{k: v for k, v in given.items() if v is not None}}
    return spec.resolve(params, count)


@dataclasses.dataclass
class GalleryIndex:
    """A faiss index over a gallery, and what it was built from.

    Attributes:
        index: the faiss index; its ids are the gallery rows.
        kind: a name in `INDEX_KINDS`; params: its parameters (resolved).
        metric: a name in `SEARCH_METRICS`; gallery: the `(G,)` rows (pids and paths).
        sources: where the gallery came from (CSV and embedding file), for the manifest.
        model_fingerprint: the fingerprint of the model that embedded the gallery (see
            `trinet.data.shards.fingerprint_arrays`; embed.py stores it with the embeddings), or None if
            unknown.
    """

    index: Any
    kind: str
    params: dict[str, Any]
    metric: str
    gallery: Dataset
    sources: dict[str, str] = dataclasses.field(default_factory=dict)
    model_fingerprint: str | None = None

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def manifest(self) -> dict[str, Any]:
        """What `manifest.json` holds (the files' sizes and checksums are added by `save_index`)."""
        faiss = import_faiss()
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": self.kind,
                "parameters": self.params, "metric": self.metric, "dim": self.dim, "count": len(self.gallery),
                "exact": INDEX_KINDS[self.kind].exact, "sources": self.sources,
                "model_fingerprint": self.model_fingerprint,
                "faiss_version": faiss.__version__, "trinet_version": __version__}


def build_index(vectors: np.ndarray, gallery: Dataset, kind: str = "flat", metric: str = "euclidean",
                params: Mapping[str, Any] | None = None, *, sources: Mapping[str, str] | None = None,
                model_fingerprint: str | None = None, block: int = 1 << 16,
                progress: Callable[[int], None] | None = None,
                named: Callable[[str, Any], str] = api_name) -> GalleryIndex:
    """An index of `kind` over the `(G, D)` gallery embeddings (row i is `gallery`'s row i).

    Args:
        params: the kind's parameters (None values and missing ones: the defaults); checked by
            `check_parameters` (whose messages name them with `named`) before anything is built.
        block: vectors added at a time; `progress` is called with the count of each block.
    """
    faiss = import_faiss()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(gallery):
        raise ValueError(f"vectors must be (G, D) with G = {len(gallery)} rows. Received: {vectors.shape}")
    check_metric(metric, "the gallery embeddings")
    resolved = kind_parameters(kind, params or {}, len(vectors))
    check_parameters(kind, resolved, len(vectors), vectors.shape[1], named)
    index = INDEX_KINDS[kind].build(faiss, vectors, resolved)
    for start in range(0, len(vectors), block):
        index.add(vectors[start:start + block])
        if progress is not None:
            progress(len(vectors[start:start + block]))
    return GalleryIndex(index, kind, resolved, metric, gallery, dict(sources or {}), model_fingerprint)


def _read_json(path: str) -> Any:
    import json

    with open(path, encoding="utf-8") as f:
        return json.load(f)


def is_index_folder(directory: str) -> bool:
    """Whether `directory` holds a trinet index (of any version): its manifest says so."""
    try:
        manifest = _read_json(os.path.join(directory, MANIFEST))
    except (OSError, ValueError):
        return False
    # the first format had no "format" key; its manifests are told by their keys
    return isinstance(manifest, dict) and (manifest.get("format") == FORMAT or (
        manifest.get("format_version") == 1 and {"kind", "index_bytes"} <= set(manifest)))


def check_index_folder(directory: str, what: str | None = None) -> bool:
    """Check that an index may be written to `directory`: it does not exist, is an empty folder, or holds
    a trinet index and nothing else (which the new one replaces). Returns whether an index is there.

    Args:
        what: how messages name the folder (e.g. "--output DIR"); default: its path.

    Raises:
        TrinetError: `directory` is a file, or a folder with anything else (a user's files are never
            overwritten: the message names the folder and some of its entries).
    """
    what = what or directory
    if not os.path.lexists(directory):
        return False
    problem = path_problem(directory, "folder")
    if problem is not None or os.path.islink(directory):
        raise TrinetError(f"{what} is {problem or 'a symbolic link'}; an index is written into a new folder "
                          "(or over an older index). Choose another folder.")
    entries = sorted(os.listdir(directory))
    if not entries:
        return False
    if not is_index_folder(directory):
        raise TrinetError(f"{what} is a folder that holds no trinet index (no {MANIFEST} written by "
                          f"trinet-search index) but {len(entries)} other entries ({listing(entries)}); an "
                          "index is written only into a new or empty folder, or over an older index, so that "
                          "nothing else is ever overwritten. Choose another folder.")
    foreign = [e for e in entries if e not in (MANIFEST, INDEX_FILE, GALLERY_FILE)]
    if foreign:
        raise TrinetError(f"{what} holds a trinet index and also {listing(foreign)}, which replacing the "
                          "index would delete; move them away or choose another folder.")
    return True


def _write_faiss_index(faiss: Any, index: Any, path: str, directory: str) -> None:
    """Write `index` to `path` through a Python file: a failed write or close (a full disk) raises an
    `OSError`. faiss's own `write_index(index, path)` only prints a failed close and returns, which would
    leave a truncated file."""
    with open(path, "wb") as f:
        def write(block: bytes) -> None:
            f.write(block)

        writer = faiss.PyCallbackIOWriter(write, 1 << 20)
        try:
            faiss.write_index(index, writer)
        except RuntimeError as e:  # anything else faiss refuses
            raise WriteError(f"Could not write {directory}: faiss could not write the index "
                             f"({str(e).splitlines()[-1][-200:]}); nothing was written.") from None
        finally:
            del writer  # flushes its last block


def save_index(directory: str, gallery_index: GalleryIndex) -> None:
    """Write the index folder `directory`, which must be new, empty or hold an older index (see
    `check_index_folder`): the files are written in a temporary folder next to it, with their checksums
    in `manifest.json`, then published in one step (`trinet.core.fileio.publish_folder`). A failure (a full
    disk) or a kill at any moment leaves the folder as it was.

    Raises:
        TrinetError: `directory` holds anything but an index. WriteError: a file could not be written.
    """
    faiss = import_faiss()
    check_index_folder(directory)
    parent = os.path.dirname(os.path.abspath(directory))
    make_directory(parent)
    remove_stale_temporaries(parent, os.path.basename(os.path.abspath(directory)))
    tmp = temporary_name(directory)
    try:
        os.mkdir(tmp)
        _write_faiss_index(faiss, gallery_index.index, os.path.join(tmp, INDEX_FILE), directory)
        # with the gallery's camera column, if any, for --excluder camera
        write_dataset(os.path.join(tmp, GALLERY_FILE), gallery_index.gallery)
        paths = {name: os.path.join(tmp, name) for name in (INDEX_FILE, GALLERY_FILE)}
        files = {name: {"bytes": os.path.getsize(path), "sha256": file_sha256(path)}
                 for name, path in paths.items()}
        write_json_atomic(os.path.join(tmp, MANIFEST), {**gallery_index.manifest(), "files": files})
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise WriteError(f"Could not write {directory}: {e.strerror or e}; nothing was written.", e) \
                from None
        raise
    try:
        check_index_folder(directory)  # again: the build took a while
    except TrinetError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish_folder(tmp, directory, replace=True)  # what is there now is an empty folder or an older index


#: The keys of a manifest: name -> (the types allowed, required).
_MANIFEST_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "format": ((str,), True), "format_version": ((int,), True), "kind": ((str,), True),
    "parameters": ((dict,), True), "metric": ((str,), True), "dim": ((int,), True), "count": ((int,), True),
    "files": ((dict,), True), "exact": ((bool,), False), "sources": ((dict,), False),
    "model_fingerprint": ((str, type(None)), False), "faiss_version": ((str,), False),
    "trinet_version": ((str,), False),
}


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "an integer",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _expected(kinds: tuple[type, ...]) -> str:
    return " or ".join(_json_type(k()) if k is not type(None) else "null" for k in kinds)


def _check_type(path: str, key: str, value: Any, kinds: tuple[type, ...]) -> None:
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise TrinetError(f"{path}: {key} is {_json_type(value)} ({value!r:.40}); expected "
                          f"{_expected(kinds)}. "
                          "The manifest was changed after it was written: build the index again.")


def read_manifest(directory: str) -> dict[str, Any]:
    """The manifest of an index folder, checked as `args.json` is (each key's type, the parameters'
    ranges): TrinetError if the folder or a complete index is missing, or the manifest is not one."""
    problem = path_problem(directory, "folder")
    if problem is not None:
        raise TrinetError(f"Index folder {directory} is {problem}; build one with: trinet-search index "
                          "--gallery_dataset CSV --gallery_embeddings H5 --output DIR")
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        raise TrinetError(f"{directory} holds no complete index (no {MANIFEST}; an interrupted build leaves "
                          "none): build it again with trinet-search index")
    try:
        manifest = _read_json(path)
    except (OSError, ValueError) as e:
        raise TrinetError(f"{path} is not a readable manifest ({e}); build the index again") from None
    if not isinstance(manifest, dict):
        raise TrinetError(f"{path} holds {_json_type(manifest)}; expected an object (the manifest of an "
                          "index). Build the index again.")
    if manifest.get("format_version") != FORMAT_VERSION or manifest.get("format") != FORMAT:
        raise TrinetError(f"{path} is not a manifest of this version (format {manifest.get('format')!r} "
                          f"version {manifest.get('format_version')!r}, expected {FORMAT!r} version "
                          f"{FORMAT_VERSION}); build the index again with this trinet")
    missing = [key for key, (_, required) in _MANIFEST_KEYS.items() if required and key not in manifest]
    if missing:
        raise TrinetError(f"{path} lacks the keys {', '.join(missing)}; build the index again")
    for key, (kinds, _) in _MANIFEST_KEYS.items():
        if key in manifest:
            _check_type(path, key, manifest[key], kinds)
    if manifest["kind"] not in INDEX_KINDS:
        raise TrinetError(f"{path}: kind is {manifest['kind']!r}; expected one of {sorted(INDEX_KINDS)}")
    check_metric(manifest["metric"], path)
    for key in ("dim", "count"):
        if manifest[key] < (1 if key == "dim" else 0):
            raise TrinetError(f"{path}: {key} is {manifest[key]}; expected a positive integer")
    params, own = manifest["parameters"], INDEX_KINDS[manifest["kind"]].defaults()
    if set(params) != set(own):
        raise TrinetError(f"{path}: the parameters of an index of kind {manifest['kind']} are "
                          f"{', '.join(sorted(own)) or 'none'}; found {', '.join(sorted(params)) or 'none'}")
    check_parameters(manifest["kind"], params, manifest["count"], manifest["dim"],
                     lambda name, value: f"{path}: parameters.{name} = {value!r}")
    for name in (INDEX_FILE, GALLERY_FILE):
        entry = manifest["files"].get(name)
        _check_type(path, f"files.{name}", entry, (dict,))
        _check_type(path, f"files.{name}.bytes", entry.get("bytes"), (int,))
        _check_type(path, f"files.{name}.sha256", entry.get("sha256"), (str,))
    return manifest


def _verify_file(directory: str, name: str, expected: Mapping[str, Any]) -> str:
    """The path of the file `name` of an index folder, checked against its size and checksum."""
    path = os.path.join(directory, name)
    problem = path_problem(path, "file")
    if problem is not None:
        raise TrinetError(f"{path} is {problem}; build the index again")
    size = os.path.getsize(path)
    if size != expected["bytes"]:
        raise TrinetError(f"{path} has {size} bytes, but its manifest says {expected['bytes']}: it is not "
                          "the file that was written (truncated or replaced?); build the index again")
    if file_sha256(path) != expected["sha256"]:
        raise TrinetError(f"{path} is corrupt: it fails its checksum (SHA-256 in {MANIFEST}); its bytes "
                          "changed after it was written. Build the index again.")
    return path


def load_index(directory: str) -> GalleryIndex:
    """Read an index folder written by `save_index`, its files checked against their checksums.

    Raises:
        TrinetError: the folder, its manifest or files are missing, damaged, or do not agree with each
            other.
    """
    manifest = read_manifest(directory)
    faiss = import_faiss()
    index_path = _verify_file(directory, INDEX_FILE, manifest["files"][INDEX_FILE])
    gallery_path = _verify_file(directory, GALLERY_FILE, manifest["files"][GALLERY_FILE])
    try:
        index = faiss.read_index(index_path)
    except RuntimeError as e:
        raise TrinetError(f"{index_path} cannot be read by faiss {faiss.__version__} (written by faiss "
                          f"{manifest.get('faiss_version')}): {str(e).splitlines()[-1][-200:]}; build the "
                          "index again") from None
    gallery = read_csv(gallery_path)
    if index.ntotal != manifest["count"] or len(gallery) != manifest["count"] or index.d != manifest["dim"]:
        raise TrinetError(f"{directory}: the index holds {index.ntotal} vectors of dimension {index.d} and "
                          f"{GALLERY_FILE} {len(gallery)} rows, but the manifest says {manifest['count']} of "
                          f"dimension {manifest['dim']}; build the index again")
    sources = {str(k): str(v) for k, v in manifest.get("sources", {}).items()}
    return GalleryIndex(index, manifest["kind"], dict(manifest["parameters"]), manifest["metric"], gallery,
                        sources, manifest.get("model_fingerprint"))


@dataclasses.dataclass(frozen=True)
class Hits:
    """The top-k gallery entries of each query, best first.

    Attributes:
        indices: `(Q, K)` int64 gallery rows; -1 where a query has fewer than K results.
        distances: `(Q, K)` float32 under the index's metric; NaN where `indices` is -1.
    """

    indices: np.ndarray
    distances: np.ndarray

    def within(self, max_distance: float) -> "Hits":
        """Only the results at a distance <= `max_distance` (the others become -1 / NaN); as the results
        are best first, what stays is a prefix of each row."""
        far = ~(self.distances <= max_distance)  # NaN (no result) stays out
        return Hits(np.where(far, -1, self.indices), np.where(far, np.nan, self.distances).astype(np.float32))


def search(gallery_index: GalleryIndex, queries: np.ndarray, k: int, exclusion: Exclusion | None = None, *,
           overrides: Mapping[str, Any] | None = None, batch_size: int = 1024,
           progress: Callable[[int], None] | None = None) -> Hits:
    """The `k` nearest gallery entries of each of the `(Q, D)` queries that `exclusion` does not ignore.

    Entries ignored for every query (junk) are kept out of the search by a faiss selector; each block
    of queries asks for `k` plus the most entries any of its queries ignores by key (same person and
    camera), so an exact index always finds `k` results when the gallery has them. When an approximate
    index returns too few, it is searched again with wider parameters (more lists, a longer candidate
    list) for those queries.

    Args:
        overrides: search-time parameters (e.g. `nprobe`, `ef_search`) replacing the stored ones.
    """
    faiss = import_faiss()
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != gallery_index.dim:
        raise ValueError(f"queries must be (Q, {gallery_index.dim}). Received: {queries.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1. Received: k={k}")
    kind = INDEX_KINDS[gallery_index.kind]
    params = {**gallery_index.params, **{k_: v for k_, v in (overrides or {}).items() if v is not None}}
    count = gallery_index.index.ntotal
    check_parameters(gallery_index.kind, params, count, gallery_index.dim)
    if exclusion is None:
        exclusion = Exclusion.nothing(len(queries), count)
    if exclusion.shape != (len(queries), count):
        raise ValueError(f"the exclusion is for {exclusion.shape} queries x gallery, the search for "
                         f"{(len(queries), count)}")
    ignored = np.flatnonzero(exclusion.gallery_ignored).astype(np.int64)
    selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(ignored)) if len(ignored) else None
    eligible = count - len(ignored)
    keyed = bool((exclusion.query_keys >= 0).any())  # else no pairs to list (indexing the gallery keys costs)
    indices = np.full((len(queries), k), -1, np.int64)
    distances = np.full((len(queries), k), np.nan, np.float32)
    for start in range(0, len(queries), batch_size):
        rows = np.arange(start, min(start + batch_size, len(queries)))
        by_key = np.bincount(exclusion.pairs(rows)[0], minlength=len(rows)) if keyed else np.zeros(0, int)
        pending, depth, current = rows, min(eligible, k + int(by_key.max(initial=0))), params
        while len(pending) and depth > 0:
            found_d, found_i = gallery_index.index.search(
                queries[pending], depth, params=kind.search_parameters(faiss, current, selector))
            short = _keep(pending, found_i, found_d, exclusion, k, indices, distances)
            pending = pending[short]
            if not len(pending):
                break
            exhausted = (found_i[short] < 0).any(axis=1)
            if depth < eligible and not exhausted.all():
                depth = min(eligible, 2 * depth)
            else:
                widened = kind.widen(current, depth)
                if widened is None:
                    break
                current = widened
        if len(pending):
            log.warning("%d queries have fewer than %d results: the %s index returned no more (gallery %d, "
                        "%d ignored for every query)", len(pending), k, gallery_index.kind, count,
                        len(ignored))
        if progress is not None:
            progress(len(rows))
    converted = SEARCH_METRICS[gallery_index.metric](distances)
    return Hits(indices, np.where(indices >= 0, converted, np.nan).astype(np.float32))


def _keep(rows: np.ndarray, found_i: np.ndarray, found_d: np.ndarray, exclusion: Exclusion, k: int,
          indices: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """Store the first `k` results of each query `rows` that it does not ignore (by distance, then
    gallery row) into `indices` / `distances` (squared L2); returns `(R,)` bool, the rows still short."""
    keys = exclusion.query_keys[rows][:, None]
    found_keys = np.where(found_i >= 0, exclusion.gallery_keys[np.maximum(found_i, 0)], -1)
    valid = (found_i >= 0) & ~((keys >= 0) & (found_keys == keys))
    # Per row: the valid results first, by distance, then gallery row.
    order = np.lexsort((found_i, found_d, ~valid), axis=-1)[:, :k]
    chosen = np.take_along_axis(valid, order, axis=1)
    width = order.shape[1]
    indices[rows, :width] = np.where(chosen, np.take_along_axis(found_i, order, axis=1), -1)
    distances[rows, :width] = np.where(chosen, np.take_along_axis(found_d, order, axis=1), np.nan)
    return valid.sum(axis=1) < k
