"""evaluate.py: mAP, CMC and mINP of query embeddings against gallery embeddings.

    python evaluate.py --excluder market1501 \\
        --query_dataset data/market1501_query.csv --query_embeddings exp/market1501_query_embeddings.h5 \\
        --gallery_dataset data/market1501_test.csv --gallery_embeddings exp/market1501_test_embeddings.h5 \\
        --filename exp/market1501_evaluation.json

Needs only the CSVs and the HDF5 files written by embed.py (no TensorFlow). On 2 CPU cores a
Market-1501 evaluation (3,368 x 19,732) takes a few seconds.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any, Callable, Sequence

import numpy as np

from trinet.console.argtypes import (nonnegative_float, nonnegative_int, positive_int, readable_directory,
                                     unit_float, writeable_directory, writeable_file)
from trinet.console.commands import run_main, setup_console_logging
from trinet.core.distances import METRICS
from trinet.core.errors import TrinetError, listing
from trinet.core.fileio import make_directory, write_json_atomic
from trinet.core.pooling import TEMPORAL_POOLINGS
from trinet.core.progress import Progress
from trinet.data.datasets import Dataset, read_csv
from trinet.data.embeddings.hdf5 import read_embeddings, read_local_embeddings, read_metric, read_strings
from trinet.evaluation.cmc import CMC_PROTOCOLS, DEFAULT_REPEATS
from trinet.evaluation.excluders import CAMERA_EXCLUDERS, EXCLUDERS, RULES
from trinet.evaluation.metrics import Block, DistanceFn, EmbeddingDistances, WithLocalDistances, evaluate
from trinet.evaluation.reporting import SHOW_RANKS, results_json, show_ranks, summary
from trinet.evaluation.retrieval import (BENCHMARK_KS, RETRIEVAL_METRICS, MetricRequest, RetrievalCollector,
                                         parse_metrics)
from trinet.evaluation.verification import (DEFAULT_MAX_PAIRS, DEFAULT_TARGET_FAR, FARS, PairCollector,
                                            verification_json, verification_summary)

log = logging.getLogger(__name__)


def plot_file(text: str) -> str:
    """argparse type: a writable file name ending in .png, .pdf, .svg or .jpg."""
    from trinet.evaluation.plots import PLOT_FORMATS

    writeable_file(text)
    if os.path.splitext(text)[1].lower().lstrip(".") not in PLOT_FORMATS:
        raise argparse.ArgumentTypeError(
            f"expected a file name ending in one of {['.' + f for f in PLOT_FORMATS]}, got {text!r}")
    return text


def rate(text: str) -> float:
    """argparse type: a false accept rate, a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def metric_token(text: str) -> str:
    """argparse type: one token of --metrics (`recall@1,2,4,8`, `map_at_r`, `r_precision`, `nmi`)."""
    try:
        parse_metrics([text])
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evaluate.py",
        description="Evaluate query embeddings against gallery embeddings: mAP, mINP and the CMC curve "
                    "(top-1/5/10), optionally after k-reciprocal re-ranking, and the retrieval benchmarks' "
                    "Recall@K, MAP@R, R-precision and NMI (--metrics). Needs no TensorFlow.")
    parser.add_argument(
        "--excluder", required=True, choices=sorted(EXCLUDERS),
        help="Which gallery entries each query ignores, read from the file names. market1501, duke, "
             "msmt17, cuhk03 (CUHK03-NP naming), viper (camera from the folder cam_a/ or cam_b/) and cuhk01 "
             "ignore images of the query's person taken by the query's camera, and junk images (person "
             "-1); distractors (0000) stay as negatives; a CSV's camera column, if it has one, must agree "
             "with the file names. camera does the same for any naming, with the identities and the camera "
             "column of the CSVs (a header line `pid,path,camera`). "
             "diagonal ignores only the query's own file (query set = gallery set, e.g. Stanford Online "
             "Products); none ignores nothing.")
    parser.add_argument("--query_dataset", required=True,
                        help="Path to the query dataset CSV file (`pid,path` rows, or the columns its "
                             "header names: see --excluder camera).")
    parser.add_argument("--query_embeddings", required=True,
                        help="Path to the HDF5 file with the query embeddings (dataset `emb`, one row per "
                             "CSV row; or a tracklet file of embed.py --pool_by tracklet, one row per "
                             "tracklet of the CSV's tracklet column, matched by tracklet).")
    parser.add_argument("--gallery_dataset", required=True,
                        help="Path to the gallery dataset CSV file (`pid,path` rows, or the columns its "
                             "header names).")
    parser.add_argument("--gallery_embeddings", required=True,
                        help="Path to the HDF5 file with the gallery embeddings (dataset `emb`, one row "
                             "per CSV row, or per tracklet as --query_embeddings).")
    parser.add_argument("--metric", default=None, choices=sorted(METRICS),
                        help="Distance between embeddings. Default: the metric embed.py stored with the "
                             "embeddings (the training run's --test_metric, else its --metric), or euclidean "
                             "for files without one.")
    parser.add_argument("--filename", type=writeable_file, default=None,
                        help="JSON file to store the results in (mAP, mINP, CMC curve, top-k, per-query "
                             "AP with the query path, skipped queries, settings). Written when the "
                             "evaluation is complete; an existing file is replaced.")
    parser.add_argument("--batch_size", type=positive_int, default=256,
                        help="Number of queries whose distances are held at a time; fewer for large "
                             "galleries, so that at most 64M distances (256 MB) are held. Lower it if "
                             "memory is short. Default: %(default)s.")
    parser.add_argument("--use_market_ap", action="store_true",
                        help="Compute the average precision as the official Market-1501 evaluation "
                             "code does (trapezoid between the precision before and at each match) "
                             "instead of scikit-learn's average_precision_score, which gives slightly "
                             "higher values. The papers' numbers use the Market-1501 code.")
    parser.add_argument("--local_distance_weight", type=nonnegative_float, default=0.0, metavar="W",
                        help="Rank by the distance + W x AlignedReID's local distance of the local features "
                             "(emb_local, written by embed.py for a model trained with --local_branch): "
                             "the stripe distances normalised by (e^d - 1) / (e^d + 1), shortest path from "
                             "the top to the bottom stripes. Exact, numpy, in blocks of queries (Market-1501 "
                             "with 8 stripes: about 20 s on 2 CPU cores). 0: off. Default: %(default)s.")
    retrieval = parser.add_argument_group(
        "retrieval metrics (unseen classes: CUB-200-2011, Cars196, Stanford Online Products, In-Shop)")
    retrieval.add_argument(
        "--metrics", nargs="+", type=metric_token, default=None, metavar="METRIC",
        help="Also compute these, in the same pass over the distances (printed, and in --filename's JSON "
             "under `retrieval`): " + "; ".join(f"{name}: {text}" for name, text in RETRIEVAL_METRICS.items())
             + ". R is the number of gallery entries of the query's class that the excluder keeps; ties "
               "rank non-matches first, as the CMC. The benchmarks' lists: "
             + ", ".join(f"{name} recall@{','.join(map(str, ks))}" for name, ks in BENCHMARK_KS.items())
             + " (data/convert.py prints each protocol). E.g. --metrics recall@1,2,4,8 map_at_r r_precision "
               "nmi. Default: none.")
    retrieval.add_argument(
        "--nmi_seed", type=nonnegative_int, default=None,
        help="--metrics nmi: the seed of the k-means (scikit-learn, one k-means++ initialisation). "
             "Default: 0.")
    multi = parser.add_argument_group("multi-query (Market-1501's protocol, Zheng et al. 2015)")
    multi.add_argument("--multi_query", choices=sorted(TEMPORAL_POOLINGS), default=None,
                       help="Replace each query's embedding by the mean or the element-wise max of the "
                            "embeddings of its person's images from its camera (the rows of "
                            "--multi_query_dataset whose query column names it; a query without any keeps "
                            "its own), then evaluate as usual: every excluder, metric, CMC protocol and "
                            "--rerank apply. Default: single query.")
    multi.add_argument("--multi_query_dataset", default=None, metavar="CSV",
                       help="--multi_query: the multi-query CSV (header pid,path,camera,query), e.g. "
                            "market1501_mquery.csv of data/convert.py market1501 --multi_query.")
    multi.add_argument("--multi_query_embeddings", default=None, metavar="H5",
                       help="--multi_query: the embeddings of --multi_query_dataset (embed.py on that CSV, "
                            "with the model of the query embeddings).")
    cmc = parser.add_argument_group("CMC protocol (open-reid's three)")
    cmc.add_argument("--cmc", choices=sorted(CMC_PROTOCOLS), default="market1501",
                     help="How the CMC curve (top-1/5/10) is counted; mAP and mINP do not change. "
                          + "; ".join(f"{name}: {p.description}" for name, p in sorted(CMC_PROTOCOLS.items()))
                          + ". cuhk03 needs an excluder that reads cameras (not diagonal or none). "
                            "Default: %(default)s.")
    cmc.add_argument("--cmc_repeats", type=positive_int, default=None,
                     help=f"--cmc cuhk03: number of random draws of one image per gallery identity, "
                          f"averaged. Default: {DEFAULT_REPEATS}, as open-reid.")
    cmc.add_argument("--seed", type=nonnegative_int, default=None,
                     help="--cmc cuhk03: seed of the random draws (the same seed gives the same curve, "
                          "whatever --batch_size). Default: 0.")
    rerank = parser.add_argument_group("re-ranking (Zhong et al., CVPR 2017)")
    rerank.add_argument("--rerank", action="store_true",
                        help="Apply k-reciprocal re-ranking to the distances before the metrics. It "
                             "uses the query-query and gallery-gallery distances too, so it costs more "
                             "time than the plain evaluation.")
    rerank.add_argument("--k1", type=positive_int, default=20,
                        help="Re-ranking: size of the k-reciprocal neighbourhoods. Default: %(default)s.")
    rerank.add_argument("--k2", type=positive_int, default=6,
                        help="Re-ranking: number of neighbours averaged in the query expansion (1: "
                             "none). Default: %(default)s.")
    rerank.add_argument("--lambda_value", type=unit_float, default=0.3,
                        help="Re-ranking: weight of the original distance against the Jaccard distance, "
                             "in [0, 1]. Default: %(default)s.")
    verification = parser.add_argument_group("verification (same person or not, by a distance threshold)")
    verification.add_argument(
        "--verification", action="store_true",
        help="Also score every kept query-gallery pair as a same-person decision (distance <= threshold): "
             f"the ROC, TAR at FAR {', '.join(f'{f:g}' for f in FARS)}, the equal error rate and the "
             "threshold recommended for --target_far, printed and stored in --filename's JSON "
             "(`verification`), where trinet-search query --threshold_from reads it. Exact, in the "
             "evaluation's own pass over the distances; beyond --verification_pairs pairs, a uniform sample.")
    verification.add_argument(
        "--target_far", type=rate, default=None, metavar="FAR",
        help="With --verification: the false accept rate (in (0, 1]) whose threshold is recommended: the "
             f"largest distance that accepts at most this fraction of the negative pairs. Default: "
             f"{DEFAULT_TARGET_FAR:g}.")
    verification.add_argument(
        "--verification_pairs", type=positive_int, default=None, metavar="N",
        help="With --verification: the most negative pairs (and, apart, positive pairs) kept; beyond, a "
             "uniform sample of exactly N, the same for the same --verification_seed whatever "
             f"--batch_size. Memory: about 24 bytes a pair. Default: {DEFAULT_MAX_PAIRS:,}.")
    verification.add_argument(
        "--verification_seed", type=nonnegative_int, default=None,
        help="With --verification: the seed of the sample of pairs. Default: 0.")
    report = parser.add_argument_group("HTML report")
    report.add_argument(
        "--report", type=writeable_directory, default=None, metavar="DIR",
        help="Write a static HTML report into this folder (new, empty, or an older report, which is "
             "replaced): the summary and settings, CMC, AP histogram, every query's rank list worst AP "
             "first (paged, with a search box for query file names), the camera x camera rank-1/mAP table, "
             "the distances of true and false matches and the verification figures (--report implies "
             "--verification). Open DIR/index.html in a browser; no server or network is needed. "
             "Thumbnails need --image_root.")
    report.add_argument("--report_top_k", type=positive_int, default=None, metavar="K",
                        help="--report: gallery images shown per query. Default: 10.")
    report.add_argument("--report_page_size", type=positive_int, default=None, metavar="N",
                        help="--report: queries per page of rank lists. Default: 50.")
    report.add_argument("--report_compare", default=None, metavar="OTHER.json",
                        help="--report: another run's results JSON (evaluate.py --filename) of the same "
                             "queries: the report shows each query's AP difference and the largest gains "
                             "and losses (what re-ranking or a new model fixed and broke).")
    pictures = parser.add_argument_group("pictures")
    pictures.add_argument("--plot", type=plot_file, default=None, metavar="FILE",
                          help="Draw the CMC curve (ranks 1-50) into this file (.png, .pdf, .svg or "
                               ".jpg).")
    pictures.add_argument("--show_ranks", type=writeable_directory, default=None, metavar="DIR",
                          help=f"Write pictures of some queries beside their top-{SHOW_RANKS} gallery "
                               "images into this folder (created if needed), framed green for a match "
                               "and red for a miss; needs --image_root.")
    pictures.add_argument("--num_show", type=positive_int, default=8,
                          help="Number of queries drawn by --show_ranks, spread evenly over the "
                               "evaluated queries. Default: %(default)s.")
    pictures.add_argument("--image_root", type=readable_directory, default=None,
                          help="Folder the image paths of the CSVs are relative to (for --show_ranks and "
                               "the thumbnails of --report).")
    parser.add_argument("--quiet", action="store_true",
                        help="Print only the results and warnings: no progress or log messages.")
    return parser


def load_split(csv_path: str, h5_path: str) -> tuple[Dataset, np.ndarray]:
    """The dataset of a CSV and its `(N, D)` embeddings in the CSV's row order (see `read_embeddings`).

    A tracklet file (embed.py --pool_by tracklet: it stores `tracklets`) is matched to the CSV's frames by
    tracklet: the dataset is then one row per tracklet (`trinet.data.tracklets.tracklet_dataset`), in the
    order of the tracklets' first frames in the CSV.
    """
    dataset = read_csv(csv_path)
    try:
        names = read_strings(h5_path, "tracklets")
    except OSError:  # missing or not HDF5: read_embeddings says so
        names = None
    if names is None:
        return dataset, read_embeddings(h5_path, expected_rows=len(dataset), partner=csv_path,
                                        fids=dataset.fids)
    from trinet.data.tracklets import group_tracklets, tracklet_dataset

    rows = tracklet_dataset(dataset, group_tracklets(dataset, f"The tracklet file {h5_path}: {csv_path}"))
    emb = read_embeddings(h5_path, expected_rows=len(rows), partner=f"the tracklets of {csv_path}")
    return rows, emb[match_tracklets(h5_path, names, rows, csv_path)]


def match_tracklets(h5_path: str, names: Sequence[str], rows: Dataset, csv_path: str) -> np.ndarray:
    """The order that puts the rows of the tracklet file `h5_path` (tracklet `names`) into the order of the
    tracklets `rows` of `csv_path`; TrinetError naming the tracklets that differ, or a tracklet whose stored
    identity is not the CSV's."""
    assert rows.tracklets is not None
    position = {name: i for i, name in enumerate(names)}
    missing = [str(t) for t in rows.tracklets if str(t) not in position]
    extra = sorted(set(position) - {str(t) for t in rows.tracklets})
    if missing or extra or len(position) != len(names):
        parts = []
        if missing:
            parts.append(f"{len(missing)} tracklets of the CSV are not in the file: {listing(missing)}")
        if extra:
            parts.append(f"{len(extra)} tracklets of the file are not in the CSV: {listing(extra)}")
        if len(position) != len(names):
            parts.append("the file names a tracklet twice")
        raise TrinetError(f"{h5_path} does not hold the tracklets of {csv_path}: {'; '.join(parts)}. Embed "
                          "that CSV again with --pool_by tracklet.")
    order = np.array([position[str(t)] for t in rows.tracklets], np.int64)
    stored = read_strings(h5_path, "pids")
    if stored is not None:
        wrong = np.flatnonzero(np.asarray(stored, dtype=str)[order] != rows.pids)
        if len(wrong):
            i = wrong[0]
            raise TrinetError(f"{h5_path}: tracklet {rows.tracklets[i]} is identity {stored[order[i]]} there "
                              f"but {rows.pids[i]} in {rows.where(i)}; embed that CSV again.")
    return order


def load_local(args: argparse.Namespace, query: Dataset, gallery: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The `(Q, S, D_l)` and `(G, S, D_l)` local features of --local_distance_weight, in the CSVs' order."""
    flag = f"--local_distance_weight {args.local_distance_weight:g}"
    query_local = read_local_embeddings(args.query_embeddings, expected_rows=len(query),
                                        partner=args.query_dataset, fids=query.fids, flag=flag)
    gallery_local = read_local_embeddings(args.gallery_embeddings, expected_rows=len(gallery),
                                          partner=args.gallery_dataset, fids=gallery.fids, flag=flag)
    if query_local.shape[1:] != gallery_local.shape[1:]:
        raise TrinetError(f"The query local features {args.query_embeddings} have {query_local.shape[1]} "
                          f"stripes of dimension {query_local.shape[2]} but the gallery's "
                          f"{args.gallery_embeddings} {gallery_local.shape[1]} of dimension "
                          f"{gallery_local.shape[2]}; embed both with the same model.")
    log.info("Adding %g x the local distance (%d stripes of dimension %d).", args.local_distance_weight,
             *query_local.shape[1:])
    return query_local, gallery_local


def stored_metric(query_h5: str, gallery_h5: str) -> str:
    """The metric stored with both embedding files (said in the log), else euclidean."""
    query, gallery = read_metric(query_h5), read_metric(gallery_h5)
    if query and gallery and query != gallery:
        raise TrinetError(f"The query embeddings {query_h5} were made for the {query} distance but the "
                          f"gallery embeddings {gallery_h5} for {gallery}; embed both with the same model, "
                          "or choose with --metric.")
    metric = query or gallery
    if metric is None:
        return "euclidean"
    if metric not in METRICS:
        raise TrinetError(f"{query_h5 if query else gallery_h5} stores the metric {metric!r}, which this "
                          f"version does not know; choose one of {', '.join(sorted(METRICS))} with --metric.")
    log.info("Using the %s distance stored with the embeddings (the training run's test metric; --metric "
             "overrides it).", metric)
    return metric


def _settings(args: argparse.Namespace) -> dict:
    """The settings stored in the results JSON."""
    settings = {key: getattr(args, key) for key in (
        "excluder", "metric", "query_dataset", "query_embeddings", "gallery_dataset", "gallery_embeddings",
        "batch_size", "use_market_ap", "rerank", "cmc")}
    if args.local_distance_weight:
        settings["local_distance_weight"] = args.local_distance_weight
    if CMC_PROTOCOLS[args.cmc].single_gallery_shot:
        settings.update(cmc_repeats=args.cmc_repeats, seed=args.seed)
    if args.rerank:
        settings.update(k1=args.k1, k2=args.k2, lambda_value=args.lambda_value)
    if args.verification:
        settings.update(target_far=args.target_far, verification_pairs=args.verification_pairs,
                        verification_seed=args.verification_seed)
    if args.multi_query:
        settings.update(multi_query=args.multi_query, multi_query_dataset=args.multi_query_dataset,
                        multi_query_embeddings=args.multi_query_embeddings)
    if args.metrics:
        settings["metrics"] = list(args.metrics)
        if parse_metrics(args.metrics).nmi:
            settings["nmi_seed"] = args.nmi_seed
    return settings


def check_metrics_flags(args: argparse.Namespace) -> MetricRequest | None:
    """The request of --metrics (None: none); --nmi_seed needs `nmi` in it. Fills in --nmi_seed."""
    request = parse_metrics(args.metrics) if args.metrics else None
    if args.nmi_seed is not None and (request is None or not request.nmi):
        raise TrinetError(f"--nmi_seed {args.nmi_seed} sets the k-means of --metrics nmi; add nmi to "
                          "--metrics")
    args.nmi_seed = 0 if args.nmi_seed is None else args.nmi_seed
    return request


def retrieval_figures(request: MetricRequest, collector: RetrievalCollector | None, gallery: Dataset,
                      gallery_emb: np.ndarray, seed: int) -> tuple[str, dict]:
    """The printed line and the JSON section `retrieval` of --metrics."""
    from trinet.evaluation.retrieval import nmi

    parts: list[str] = []
    out: dict[str, Any] = {}
    if collector is not None:
        figures = collector.results()
        out["num_evaluated"] = figures.num_evaluated
        if request.ks:
            out["recall_at"] = {str(k): v for k, v in figures.recall(request.ks).items()}
            parts.append(" ".join(f"Recall@{k}: {v:.2%}" for k, v in out["recall_at"].items()))
        if request.map_at_r:
            out["map_at_r"] = figures.mean_map_at_r
            parts.append(f"MAP@R: {figures.mean_map_at_r:.2%}")
        if request.r_precision:
            out["r_precision"] = figures.mean_r_precision
            parts.append(f"R-precision: {figures.mean_r_precision:.2%}")
    if request.nmi:
        classes = len(np.unique(gallery.pids))
        log.info("NMI: k-means of the %d gallery embeddings into %d clusters (seed %d)", len(gallery),
                 classes, seed)
        out.update(nmi=nmi(gallery_emb, gallery.pids, seed), nmi_seed=seed, nmi_clusters=classes)
        parts.append(f"NMI: {out['nmi']:.2%} (gallery, k = {classes})")
    return " | ".join(parts), out


def _check_report_flags(args: argparse.Namespace) -> None:
    """The --report_* flags need --report, which implies --verification; fills in their defaults."""
    from trinet.evaluation.report.writer import DEFAULT_PAGE_SIZE, DEFAULT_TOP_K

    if args.report is None:
        given = [f"--{flag}" for flag in ("report_top_k", "report_page_size", "report_compare")
                 if getattr(args, flag) is not None]
        if given:
            raise TrinetError(f"{', '.join(given)} set(s) the HTML report; add --report DIR")
    else:
        args.verification = True
        if args.report_compare is not None and not os.path.isfile(args.report_compare):
            raise TrinetError(f"--report_compare {args.report_compare}: no such file; give the results JSON "
                              "of another evaluate.py --filename")
    args.report_top_k = DEFAULT_TOP_K if args.report_top_k is None else args.report_top_k
    args.report_page_size = DEFAULT_PAGE_SIZE if args.report_page_size is None else args.report_page_size


def _check_verification_flags(args: argparse.Namespace) -> None:
    """The verification flags need --verification (which --report implies); fills in their defaults."""
    if not args.verification:
        given = [f"--{flag}" for flag in ("target_far", "verification_pairs", "verification_seed")
                 if getattr(args, flag) is not None]
        if given:
            raise TrinetError(f"{', '.join(given)} set(s) the verification scores; add --verification")
    args.target_far = DEFAULT_TARGET_FAR if args.target_far is None else args.target_far
    if args.verification_pairs is None:
        args.verification_pairs = DEFAULT_MAX_PAIRS
    args.verification_seed = 0 if args.verification_seed is None else args.verification_seed


def check_multi_query_flags(args: argparse.Namespace) -> None:
    """The multi-query flags go together (TrinetError naming what is missing or extra)."""
    files = [flag for flag in ("multi_query_dataset", "multi_query_embeddings") if getattr(args, flag)]
    if not args.multi_query:
        if files:
            raise TrinetError(f"{', '.join('--' + f for f in files)} given without --multi_query; add "
                              f"--multi_query {' or '.join(sorted(TEMPORAL_POOLINGS))}")
        return
    missing = [f"--{flag}" for flag in ("multi_query_dataset", "multi_query_embeddings") if flag not in files]
    if missing:
        raise TrinetError(f"--multi_query {args.multi_query} needs {' and '.join(missing)}: the multi-query "
                          "CSV (data/convert.py market1501 --multi_query writes market1501_mquery.csv) and "
                          "its embeddings (embed.py on it)")
    if args.local_distance_weight:
        raise TrinetError(f"--local_distance_weight {args.local_distance_weight:g} does not go with "
                          "--multi_query (the local features are not pooled); use one of them")


def multi_query_embeddings(args: argparse.Namespace, query: Dataset, query_emb: np.ndarray) -> np.ndarray:
    """The `(Q, D)` pooled query embeddings of --multi_query."""
    from trinet.evaluation.multiquery import describe, pool_queries

    images, image_emb = load_split(args.multi_query_dataset, args.multi_query_embeddings)
    pooled = pool_queries(query, query_emb, images, image_emb, args.multi_query)
    log.info("%s", describe(pooled, args.multi_query))
    if (pooled.counts == 0).any():
        log.warning("--multi_query: %d of %d queries have no row in %s and keep their own embedding: %s",
                    (pooled.counts == 0).sum(), len(query), args.multi_query_dataset,
                    listing(query.fids[pooled.counts == 0]))
    return pooled.embeddings


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    setup_console_logging(args.quiet)
    if args.show_ranks and args.image_root is None:
        raise TrinetError("--show_ranks needs --image_root, the folder the CSV image paths are relative to")
    if args.local_distance_weight and args.rerank:
        raise TrinetError(f"--local_distance_weight {args.local_distance_weight:g} does not go with --rerank "
                          "yet (re-ranking takes the embeddings' own distances); use one of them")
    protocol = CMC_PROTOCOLS[args.cmc]
    if not protocol.single_gallery_shot:
        given = [flag for flag in ("cmc_repeats", "seed") if getattr(args, flag) is not None]
        if given:
            raise TrinetError(f"{', '.join('--' + flag for flag in given)} set(s) the random draws of --cmc "
                              f"cuhk03; --cmc {args.cmc} draws nothing. Remove it, or add --cmc cuhk03.")
    _check_report_flags(args)
    _check_verification_flags(args)
    check_multi_query_flags(args)
    request = check_metrics_flags(args)
    args.cmc_repeats = DEFAULT_REPEATS if args.cmc_repeats is None else args.cmc_repeats
    args.seed = 0 if args.seed is None else args.seed
    query, query_emb = load_split(args.query_dataset, args.query_embeddings)
    gallery, gallery_emb = load_split(args.gallery_dataset, args.gallery_embeddings)
    if query_emb.shape[1] != gallery_emb.shape[1]:
        raise TrinetError(f"The query embeddings {args.query_embeddings} have dimension {query_emb.shape[1]} "
                          f"but the gallery embeddings {args.gallery_embeddings} have dimension "
                          f"{gallery_emb.shape[1]}; embed both with the same model.")
    args.metric = args.metric or stored_metric(args.query_embeddings, args.gallery_embeddings)
    if args.multi_query:
        query_emb = multi_query_embeddings(args, query, query_emb)
    try:
        exclusion = EXCLUDERS[args.excluder](query, gallery)
    except TrinetError as e:
        raise TrinetError(f"--excluder {args.excluder} (query CSV {args.query_dataset}, gallery CSV "
                          f"{args.gallery_dataset}): {e}") from None
    if protocol.separate_camera_set and exclusion.query_cameras is None:
        raise TrinetError(f"--cmc {args.cmc} compares cameras, but --excluder {args.excluder} reads none "
                          "from the file names or a camera column; use an excluder that does: "
                          f"{', '.join(sorted(CAMERA_EXCLUDERS))}.")
    log.info("%d queries, %d gallery images (%d ignored for every query by the %s excluder), %d-d, %s",
             len(query), len(gallery), exclusion.gallery_ignored.sum(), args.excluder, query_emb.shape[1],
             args.metric)

    distances: DistanceFn = EmbeddingDistances(query_emb, gallery_emb, args.metric)
    if args.local_distance_weight:
        query_local, gallery_local = load_local(args, query, gallery)
        distances = WithLocalDistances(distances, query_local, gallery_local, args.local_distance_weight)
    if args.rerank:
        from trinet.evaluation.rerank import ReRanker, parameter_warnings

        for warning in parameter_warnings(args.k1, args.k2, len(query), len(gallery)):
            log.warning("--rerank: %s. Lower --k1/--k2 (the paper's 20 and 6 suit galleries of thousands).",
                        warning)
        total = len(query) + len(gallery)
        with Progress(total, "Re-ranking: nearest neighbours", "images", quiet=args.quiet) as progress:
            distances = ReRanker.from_embeddings(query_emb, gallery_emb, args.metric, k1=args.k1, k2=args.k2,
                                                 lambda_value=args.lambda_value, progress=progress.update)
    observers: list[Callable[[Block], None]] = []
    pairs = None
    if args.verification:
        pairs = PairCollector(len(gallery), args.verification_pairs, args.verification_seed)
        observers.append(pairs)
    collector = None
    if request is not None and request.ranked:
        collector = RetrievalCollector()
        observers.append(collector)
    lists, cameras, query_cameras, gallery_cameras = None, None, None, None
    if args.report:
        from trinet.evaluation.report.collect import CameraTable, RankLists

        lists = RankLists(len(query), args.report_top_k)
        observers.append(lists)
        if args.excluder in RULES:  # the cameras, as the file names give them (the excluder codes them)
            query_cameras = RULES[args.excluder].parse(query.fids, "query")[1]
            gallery_cameras = RULES[args.excluder].parse(gallery.fids, "gallery")[1]
        elif exclusion.query_cameras is not None:  # the CSVs' camera column (the camera excluder)
            query_cameras, gallery_cameras = exclusion.query_cameras, exclusion.gallery_cameras
        if query_cameras is not None and gallery_cameras is not None:
            cameras = CameraTable(query_cameras, gallery_cameras, args.use_market_ap)
            observers.append(cameras)
    passes = 2 if protocol.single_gallery_shot else 1  # the random draws take a second pass
    with Progress(passes * len(query), "Evaluating", "queries", quiet=args.quiet) as progress:
        results = evaluate(query_emb, gallery_emb, query.pids, gallery.pids, exclusion,
                           batch_size=args.batch_size, market_ap=args.use_market_ap, distances=distances,
                           progress=progress.update, cmc=args.cmc, cmc_repeats=args.cmc_repeats,
                           seed=args.seed, on_block=_all(observers))
    if results.num_evaluated == 0:
        raise TrinetError(f"None of the {len(query)} queries of {args.query_dataset} has a valid match in "
                          f"{args.gallery_dataset} under the {args.excluder} excluder: check that the "
                          "identities of the two CSVs agree and that the excluder fits the dataset.")
    if results.num_skipped:
        skipped = query.fids[~results.evaluated]
        log.warning("%d queries have no valid match in the gallery and are skipped from every average: %s",
                    len(skipped), listing(skipped))
    printed = summary(results, gallery, exclusion)
    retrieval_section = None
    if request is not None:
        line, retrieval_section = retrieval_figures(request, collector, gallery, gallery_emb, args.nmi_seed)
        printed = f"{printed}\n{line}"
    print(printed, flush=True)
    output = results_json(results, query, gallery, exclusion, _settings(args))
    if retrieval_section is not None:
        output["retrieval"] = retrieval_section
    if pairs is not None:
        collected = pairs.pairs()
        if not len(collected.negatives):
            raise TrinetError(f"--verification: every kept pair of {args.query_dataset} and "
                              f"{args.gallery_dataset} shows the same person; with no negative pair there is "
                              "no false accept rate")
        output["verification"] = verification_json(collected, args.target_far)
        print(verification_summary(output["verification"]), flush=True)

    if args.filename:
        make_directory(os.path.dirname(os.path.abspath(args.filename)))
        write_json_atomic(args.filename, output)
        log.info("Results written to %s", args.filename)
    if args.plot:
        from trinet.evaluation.plots import plot_cmc

        make_directory(os.path.dirname(os.path.abspath(args.plot)))
        title = f"CMC: {os.path.basename(args.query_dataset)} vs {os.path.basename(args.gallery_dataset)}"
        plot_cmc(args.plot, results.cmc, label=f"mAP {results.mean_ap:.1%}", title=title)
        log.info("CMC curve drawn into %s", args.plot)
    if args.report:
        from trinet.evaluation.report.writer import ReportData, write_report

        assert lists is not None  # collected with --report
        data = ReportData(results, query, gallery, lists, _settings(args), printed, query_cameras,
                          gallery_cameras, cameras, output.get("verification"))
        if args.image_root is None:
            log.warning("--report without --image_root: the rank lists show file names, no thumbnails")
        index = write_report(args.report, data, image_root=args.image_root, compare_with=args.report_compare,
                             page_size=args.report_page_size, quiet=args.quiet, log=log.warning)
        print(f"Report written to {index}", flush=True)
    if args.show_ranks:
        written = show_ranks(args.show_ranks, args.image_root, query, gallery, exclusion, distances, results,
                             args.num_show, args.quiet)
        log.info("%d rank-list pictures written into %s", len(written), args.show_ranks)
    return 0


def _all(observers: Sequence[Callable[[Block], None]]) -> Callable[[Block], None] | None:
    """One `on_block` observer that calls each of `observers` (None for none)."""
    if not observers:
        return None

    def observe(block: Block) -> None:
        for observer in observers:
            observer(block)
    return observe


def main(argv: Sequence[str] | None = None) -> int:
    """The `evaluate.py` / `trinet-evaluate` command; returns the exit status."""
    return run_main(_run, argv)
