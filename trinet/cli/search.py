"""trinet-search: find the nearest gallery images of queries with a faiss index (exact or approximate).

    trinet-search index --gallery_dataset data/market1501_test.csv \\
        --gallery_embeddings exp/market1501_test_embeddings.h5 --output exp/gallery_index
    trinet-search query --index exp/gallery_index --query_dataset data/market1501_query.csv \\
        --query_embeddings exp/market1501_query_embeddings.h5 --top_k 10 --excluder market1501 \\
        --filename exp/search.json
    trinet-search query --index exp/gallery_index --experiment_root exp --images photo1.jpg photo2.jpg \\
        --top_k 5 --filename matches.csv

Needs faiss (`pip install trinet[search]`). Building and searching with embedding files needs no
TensorFlow; only `query --images` loads the model (through `trinet.Embedder`).
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Sequence

import numpy as np

from trinet.console.argtypes import (nonnegative_float, positive_int, readable_directory, writeable_directory,
                                     writeable_file)
from trinet.console.commands import run_main, setup_console_logging
from trinet.core.distances import METRICS
from trinet.core.errors import TrinetError
from trinet.core.progress import Progress
from trinet.data.datasets import Dataset, image_path, read_csv
from trinet.data.embeddings.hdf5 import MODEL_ATTRIBUTE, read_attribute, read_embeddings, read_metric
from trinet.evaluation.excluders import EXCLUDERS, Exclusion
from trinet.pipeline.views import AGGREGATORS, CROP_MODES
from trinet.search.index import (FAISS_HINT, INDEX_KINDS, PARAMETERS, SEARCH_METRICS, GalleryIndex, Hits,
                                 build_index, check_index_folder, check_metric, flag_name, import_faiss,
                                 load_index, save_index, search)
from trinet.search.output import RESULT_FORMATS, records, result_format, show_hits, write_results

log = logging.getLogger(__name__)


def results_file(text: str) -> str:
    """argparse type: a writable file name ending in .json or .csv."""
    writeable_file(text)
    try:
        result_format(text)
    except TrinetError:
        raise argparse.ArgumentTypeError(
            f"expected a file name ending in one of {sorted(RESULT_FORMATS)}, got {text!r}") from None
    return text


def k_list(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated positive integers, e.g. `1,10,100` (sorted, without repeats)."""
    from trinet.evaluation.retrieval import parse_metrics

    try:
        return parse_metrics([f"recall@{text}"]).ks
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers such as 1,10,100, got "
                                         f"{text!r}") from None


def _kind_help() -> str:
    return "; ".join(f"{name}: {kind.description}" for name, kind in INDEX_KINDS.items())


def _owners(name: str) -> str:
    return ", ".join(k for k, kind in INDEX_KINDS.items() if name in kind.defaults())


def _add_index_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gallery_dataset", required=True,
                   help="Path to the gallery dataset CSV file (`pid,path` rows).")
    p.add_argument("--gallery_embeddings", required=True,
                   help="Path to the HDF5 file with the gallery embeddings (one row per CSV row).")
    p.add_argument("--output", required=True, type=writeable_directory, metavar="DIR",
                   help="Folder to write the index into: a new or empty folder, or an older index, which "
                        "is replaced (a folder holding anything else is refused). It holds the index, the "
                        "gallery's rows and manifest.json (with their checksums), and appears complete or "
                        "not at all.")
    p.add_argument("--index", default="flat", choices=sorted(INDEX_KINDS),
                   help=f"Kind of index. {_kind_help()}. Default: %(default)s (exact).")
    p.add_argument("--metric", default=None, choices=sorted(METRICS),
                   help="Distance between embeddings. Default: the metric stored with the embeddings, or "
                        f"euclidean. Only {' and '.join(sorted(SEARCH_METRICS))} can be searched.")
    group = p.add_argument_group("parameters of the approximate indexes (stored with the index)")
    for name, parameter in PARAMETERS.items():
        default = "" if parameter.default is None else f" Default: {parameter.default}."
        group.add_argument(f"--{name}", type=positive_int, default=None,
                           help=f"{parameter.help}{default} Allowed: {parameter.allowed()} (checked with "
                                f"the others before building). Only for --index {_owners(name)}.")
    p.add_argument("--quiet", action="store_true",
                   help="Print only warnings and errors: no progress or log messages.")


def _add_query_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", required=True, metavar="DIR",
                   help="Index folder written by trinet-search index.")
    p.add_argument("--query_dataset", default=None,
                   help="Path to the query dataset CSV file (`pid,path` rows); with --query_embeddings.")
    p.add_argument("--query_embeddings", default=None,
                   help="Path to the HDF5 file with the query embeddings (one row per CSV row).")
    p.add_argument("--images", nargs="+", default=None, metavar="PATH",
                   help="Query images, embedded with the model of --experiment_root (instead of "
                        "--query_dataset/--query_embeddings; needs TensorFlow).")
    p.add_argument("--experiment_root", type=readable_directory, default=None,
                   help="Training run whose model embeds --images.")
    p.add_argument("--checkpoint", default=None,
                   help="With --images: checkpoint of the run (a step, a name or a path). Default: the "
                        "latest.")
    p.add_argument("--flip_augment", action="store_true",
                   help="With --images: also embed the mirror image (as the gallery was embedded).")
    p.add_argument("--crop_augment", choices=CROP_MODES, default=None,
                   help="With --images: test-time crops, as embed.py's --crop_augment.")
    p.add_argument("--aggregator", choices=sorted(AGGREGATORS), default=None,
                   help="With --images: how the views' embeddings are combined, as embed.py's --aggregator.")
    p.add_argument("--top_k", type=positive_int, default=10,
                   help="Number of results per query. Default: %(default)s.")
    threshold = p.add_mutually_exclusive_group()
    threshold.add_argument("--max_distance", type=nonnegative_float, default=None, metavar="D",
                           help="Return only the results at a distance <= D (the index's metric), so a query "
                                "may get fewer than --top_k results, or none: a same-person decision.")
    threshold.add_argument("--threshold_from", default=None, metavar="JSON",
                           help="As --max_distance, with the threshold that evaluate.py --verification "
                                "recommended for its --target_far, read from its results JSON (--filename); "
                                "its metric must be the index's.")
    p.add_argument("--excluder", default="none", choices=sorted(EXCLUDERS),
                   help="Gallery entries each query ignores, as evaluate.py's --excluder (market1501 etc.: "
                        "the query's person seen by the query's camera, and junk; camera: by the CSVs' "
                        "camera column); --top_k results are "
                        "still returned. Default: %(default)s.")
    p.add_argument("--filename", required=True, type=results_file,
                   help="Results file: .json (a list of {query, results: [{path, pid, distance}]}, best "
                        "first) or .csv (query,rank,path,pid,distance rows). Written when complete.")
    for name, parameter in PARAMETERS.items():
        if parameter.search:
            p.add_argument(f"--{name}", type=positive_int, default=None,
                           help=f"{parameter.help} Default: the value stored with the index. Only for "
                                f"--index {_owners(name)}.")
    p.add_argument("--recall_at", type=k_list, default=None, metavar="K[,K...]",
                   help="Also print the Recall@K of the search for these K (e.g. 1,10,100,1000): the "
                        "fraction of queries with an entry of their identity among their K results (the "
                        "excluder applied, before --max_distance; a query whose identity has no kept "
                        "gallery entry is skipped; ties: a non-match at the first match's distance counts "
                        "first). Each query is searched to the largest K (the results file keeps --top_k). "
                        "With an approximate index, also the Recall@K of exact search and the fraction of "
                        "the exact K nearest that the index found, from the gallery embeddings the index "
                        "was built from (its manifest names them). Needs --query_dataset (identities).")
    p.add_argument("--batch_size", type=positive_int, default=1024,
                   help="Queries searched at a time. Default: %(default)s.")
    p.add_argument("--strict", action="store_true",
                   help="Refuse queries embedded by another model than the gallery (their fingerprints "
                        "differ) instead of warning.")
    p.add_argument("--show_ranks", type=writeable_directory, default=None, metavar="DIR",
                   help="Write pictures of some queries beside their top results into this folder, as "
                        "evaluate.py --show_ranks draws them (green: the query's person, red: another, grey: "
                        "unknown); needs --image_root.")
    p.add_argument("--num_show", type=positive_int, default=8,
                   help="Number of queries drawn by --show_ranks, spread evenly. Default: %(default)s.")
    p.add_argument("--image_root", type=readable_directory, default=None,
                   help="Folder the image paths of the CSVs are relative to (for --show_ranks).")
    p.add_argument("--quiet", action="store_true",
                   help="Print only warnings and errors: no progress or log messages.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trinet-search",
        description="Nearest-neighbour search of a gallery with faiss: build an index once, then query it "
                    f"with embeddings or images. Needs faiss: {FAISS_HINT}.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{index,query}")
    _add_index_arguments(commands.add_parser(
        "index", help="Build an index of gallery embeddings.",
        description="Build a faiss index of gallery embeddings into a folder (exact by default)."))
    _add_query_arguments(commands.add_parser(
        "query", help="Find the top-k gallery entries of queries.",
        description="Find the top-k gallery entries of query embeddings or images in an index folder, "
                    "and write them to a JSON or CSV file."))
    return parser


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parsers of `index` and `query` (for the README's flag reference)."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _metric(args: argparse.Namespace) -> str:
    if args.metric:
        return check_metric(args.metric, f"--metric {args.metric}")
    stored = read_metric(args.gallery_embeddings)
    if stored is None:
        return "euclidean"
    log.info("Using the %s distance stored with the embeddings (--metric overrides it).", stored)
    return check_metric(stored, f"{args.gallery_embeddings} (its stored metric; choose another with "
                                "--metric)")


def _index(args: argparse.Namespace) -> int:
    check_index_folder(args.output, f"--output {args.output}")  # before anything is read or built
    gallery = read_csv(args.gallery_dataset)
    vectors = read_embeddings(args.gallery_embeddings, expected_rows=len(gallery),
                              partner=args.gallery_dataset, fids=gallery.fids)
    metric = _metric(args)
    given = {name: getattr(args, name) for name in PARAMETERS}
    log.info("Building an index (%s) of %d gallery embeddings (%d-d, %s)", args.index, len(gallery),
             vectors.shape[1], metric)
    sources = {"gallery_dataset": os.path.abspath(args.gallery_dataset),
               "gallery_embeddings": os.path.abspath(args.gallery_embeddings)}
    with Progress(len(vectors), "Adding gallery vectors", "vectors", quiet=args.quiet) as progress:
        built = build_index(vectors, gallery, args.index, metric, given, sources=sources,
                            model_fingerprint=read_attribute(args.gallery_embeddings, MODEL_ATTRIBUTE),
                            progress=progress.update, named=flag_name)
    save_index(args.output, built)
    log.info("Index written to %s (parameters: %s)", args.output, built.params or "none")
    return 0


def _embed_images(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    from trinet.console.commands import import_tensorflow_quietly

    import_tensorflow_quietly()
    from trinet import Embedder  # the Python API, loaded on first use: it builds the model with TensorFlow

    names = {"checkpoint": "--checkpoint {}", "net_size": "an --experiment_root with its args.json"}
    embedder = Embedder.from_experiment(args.experiment_root, checkpoint=args.checkpoint, names=names)
    from trinet.pipeline.views import check_views  # with this command's flags in the messages
    check_views(args.flip_augment, args.crop_augment, args.aggregator, embedder.net_size,
                embedder.pre_crop_size)
    log.info("Embedding %d query images with %s", len(args.images), args.experiment_root)
    emb = np.asarray(embedder.embed(args.images, flip=args.flip_augment, crops=args.crop_augment,
                                    aggregator=args.aggregator), dtype=np.float32)
    return emb, embedder.fingerprint


def _check_model(args: argparse.Namespace, index: GalleryIndex, fingerprint: str | None, source: str) -> None:
    """Warn (or with --strict refuse) when the queries were embedded by another model than the gallery."""
    if fingerprint is None or index.model_fingerprint is None or fingerprint == index.model_fingerprint:
        return
    gallery = index.sources.get("gallery_embeddings", "the gallery")
    message = (f"The queries ({source}, model {fingerprint[:12]}) were embedded by another model than the "
               f"gallery of the index {args.index} ({gallery}, model {index.model_fingerprint[:12]}): their "
               "distances mean nothing. Embed both with the same model.")
    if args.strict:
        raise TrinetError(f"--strict: {message}")
    log.warning("%s (--strict makes this an error.)", message)


def _queries(args: argparse.Namespace, index: GalleryIndex) -> tuple[Dataset, np.ndarray]:
    """The query rows (paths, pids where known) and their `(Q, D)` embeddings."""
    dim, metric = index.dim, index.metric
    by_file = args.query_dataset is not None or args.query_embeddings is not None
    if by_file == (args.images is not None):
        raise TrinetError("Give the queries either as --query_dataset CSV --query_embeddings H5 or as "
                          "--images PATH ... --experiment_root DIR, not both and not neither")
    if by_file:
        if args.query_dataset is None or args.query_embeddings is None:
            raise TrinetError("--query_dataset and --query_embeddings go together: give both")
        query = read_csv(args.query_dataset)
        emb = read_embeddings(args.query_embeddings, expected_rows=len(query), partner=args.query_dataset,
                              fids=query.fids)
        stored = read_metric(args.query_embeddings)
        if stored and stored != metric:
            raise TrinetError(f"The query embeddings {args.query_embeddings} were made for the {stored} "
                              f"distance but the index {args.index} ranks by {metric}; embed both with the "
                              "same model, or build the index with --metric.")
        source = args.query_embeddings
        fingerprint = read_attribute(args.query_embeddings, MODEL_ATTRIBUTE)
    else:
        if args.experiment_root is None:
            raise TrinetError("--images needs --experiment_root, the training run whose model embeds them")
        query = Dataset(np.full(len(args.images), "", dtype=str), np.asarray(args.images, dtype=str),
                        "--images")
        emb, fingerprint = _embed_images(args)
        source = f"the model of {args.experiment_root}"
    if emb.shape[1] != dim:
        raise TrinetError(f"The query embeddings ({source}) have dimension {emb.shape[1]} but the index "
                          f"{args.index} was built for dimension {dim}; build the index from embeddings of "
                          "the same model.")
    _check_model(args, index, fingerprint, source)
    return query, emb


def _max_distance(args: argparse.Namespace, index: GalleryIndex) -> float | None:
    """The distance threshold of --max_distance or --threshold_from (None: none)."""
    if args.threshold_from is None:
        return args.max_distance
    from trinet.evaluation.verification import read_threshold

    threshold, metric, section = read_threshold(args.threshold_from)
    if metric != index.metric:
        raise TrinetError(f"--threshold_from {args.threshold_from}: its threshold is a {metric} distance, "
                          f"but the index {args.index} ranks by {index.metric}; evaluate with --metric "
                          f"{index.metric}, or give --max_distance")
    log.info("Threshold %g from %s (FAR %g on its evaluation, TAR %.2f%%)", threshold, args.threshold_from,
             section.get("target_far"), 100 * section.get("tar_at_target_far", float("nan")))
    return threshold


def _query(args: argparse.Namespace) -> int:
    if args.show_ranks and args.image_root is None:
        raise TrinetError("--show_ranks needs --image_root, the folder the gallery CSV's paths are relative "
                          "to")
    index = load_index(args.index)
    overrides = {name: getattr(args, name) for name in PARAMETERS if PARAMETERS[name].search}
    foreign = [f"--{name}" for name, value in overrides.items()
               if value is not None and name not in index.params]
    if foreign:
        raise TrinetError(f"{', '.join(foreign)} does not apply to the {index.kind} index in {args.index}")
    if args.recall_at and args.images is not None:
        raise TrinetError("--recall_at needs the queries' identities: give --query_dataset and "
                          "--query_embeddings instead of --images")
    max_distance = _max_distance(args, index)
    query, emb = _queries(args, index)
    try:
        exclusion = EXCLUDERS[args.excluder](query, index.gallery)
    except TrinetError as e:
        raise TrinetError(f"--excluder {args.excluder} (queries {query.source}, gallery of {args.index}): "
                          f"{e}") from None
    log.info("%d queries, %d gallery entries (%s index, %s, %d ignored for every query by the %s excluder), "
             "top %d", len(query), len(index.gallery), index.kind, index.metric,
             exclusion.gallery_ignored.sum(), args.excluder, args.top_k)
    depth = max(args.top_k, *args.recall_at) if args.recall_at else args.top_k
    with Progress(len(query), "Searching", "queries", quiet=args.quiet) as progress:
        hits = search(index, emb, depth, exclusion, overrides=overrides, batch_size=args.batch_size,
                      progress=progress.update)
    if args.recall_at:
        print(_recall_report(args, index, query, emb, exclusion, hits), flush=True)
        hits = Hits(hits.indices[:, :args.top_k], hits.distances[:, :args.top_k])
    if max_distance is not None:
        hits = hits.within(max_distance)
        kept = int((hits.indices >= 0).sum())
        log.info("%d results at a distance <= %g kept; %d queries have none", kept, max_distance,
                 int((hits.indices[:, 0] < 0).sum()) if len(query) else 0)
    write_results(args.filename, records(query.fids, index.gallery, hits))
    log.info("Results written to %s", args.filename)
    if args.show_ranks:
        known = args.images is None and all(query.pids)
        files = [str(f) if args.images is not None else image_path(args.image_root, f) for f in query.fids]
        written = show_hits(args.show_ranks, files, query.pids if known else None, index.gallery,
                            args.image_root, hits, args.num_show, args.quiet)
        log.info("%d rank-list pictures written into %s", len(written), args.show_ranks)
    return 0


def _recall_report(args: argparse.Namespace, index: GalleryIndex, query: Dataset, emb: np.ndarray,
                   exclusion: Exclusion, hits: Hits) -> str:
    """The printed lines of --recall_at: the index's Recall@K, and for an approximate index the exact ones."""
    from trinet.search.recall import exact_top_k, neighbours_found, recall_of_hits

    ks = args.recall_at
    found = recall_of_hits(hits, query.pids, index.gallery.pids, exclusion)
    evaluated = int(found.evaluated.sum())
    if evaluated == 0:
        raise TrinetError(f"--recall_at: none of the {len(query)} queries of {query.source} has an entry of "
                          f"its identity in the gallery of {args.index} under --excluder {args.excluder}")
    recall = " ".join(f"Recall@{k}: {v:.2%}" for k, v in found.recall(ks).items())
    lines = [f"{recall} ({index.kind} index{', exact' if index.kind == 'flat' else ''}; {evaluated} of "
             f"{len(query)} queries have a match in the gallery)"]
    if index.kind == "flat":
        return "\n".join(lines)
    source = index.sources.get("gallery_embeddings")
    if source is None or not os.path.isfile(source):
        log.warning("--recall_at: no exact comparison: the gallery embeddings the index was built from (%s) "
                    "are not there", source or "not named in its manifest")
        return "\n".join(lines)
    gallery_emb = read_embeddings(source, expected_rows=len(index.gallery), partner=f"the index {args.index}",
                                  fids=index.gallery.fids)
    from trinet.evaluation.retrieval import evaluate_retrieval

    exact = evaluate_retrieval(emb, gallery_emb, query.pids, index.gallery.pids, exclusion,
                               metric=index.metric)
    lines.append("exact search: " + " ".join(f"Recall@{k}: {v:.2%}" for k, v in exact.recall(ks).items()))
    nearest = exact_top_k(emb, gallery_emb, max(ks), exclusion, index.metric)
    overlap = neighbours_found(hits.indices, nearest, ks)
    lines.append("exact neighbours found by the index: "
                 + " ".join(f"@{k}: {v:.2%}" for k, v in overlap.items()))
    return "\n".join(lines)


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    setup_console_logging(args.quiet)
    import_faiss()  # fail at once, before any reading, when faiss is missing
    return _index(args) if args.command == "index" else _query(args)


def main(argv: Sequence[str] | None = None) -> int:
    """The `trinet-search` command; returns the exit status."""
    return run_main(_run, argv)
