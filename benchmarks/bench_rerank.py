"""Benchmark of trinet's k-reciprocal re-ranking against the authors' dense algorithm, in the same run.

    python benchmarks/bench_rerank.py                       # dense reference at 800 x 4000, then trinet
    python benchmarks/bench_rerank.py --queries 1500 --gallery 8000
    python benchmarks/bench_rerank.py --market              # plus trinet alone at 3,368 x 19,732
    python benchmarks/bench_rerank.py --dense_market        # plus the dense one there (~12 GB, minutes)

The dense reference is the authors' python `re_ranking(q_g_dist, q_q_dist, g_g_dist)` (float32, full
(Q+G)^2 matrices), transcribed; at Market-1501 size it needs several (Q+G)^2 float32/int matrices of
2.1 GB each, so it is run at a size this machine handles and its Market-size time is extrapolated
as (Q+G)^2 (`--dense_market` runs it there). Where float32 distances tie exactly, the authors'
quicksort orders the tied neighbours arbitrarily and trinet by index; the transcription with
`kind="stable"` breaks ties by index too. Prints times, peak memory (tracemalloc, numpy arrays
included) and the largest absolute difference between the two; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from bench_evaluate import generate  # noqa: E402
from test_rerank import paper_re_ranking  # noqa: E402

from trinet.core.distances import cdist  # noqa: E402
from trinet.evaluation.excluders import EXCLUDERS  # noqa: E402
from trinet.evaluation.metrics import evaluate  # noqa: E402
from trinet.evaluation.rerank import ReRanker  # noqa: E402


def dense_re_ranking(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3, kind="quicksort"):
    """The authors' dense algorithm in float32, as they ran it (the transcription the tests use)."""
    return paper_re_ranking(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value, dtype=np.float32,
                            kind=kind)[0]


def measure(fn, *args, memory=True, **kwargs):
    """(result, seconds, peak MB) of `fn`; the peak is traced in a second call when `memory`."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    seconds = time.perf_counter() - start
    peak = float("nan")
    if memory:
        tracemalloc.start()
        fn(*args, **kwargs)
        peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
    return out, seconds, peak


def trinet_all(query, gallery, k1, k2, lam):
    """trinet: neighbour search, sparse encoding, and the final distances of every query."""
    ranker = ReRanker.from_embeddings(query, gallery, k1=k1, k2=k2, lambda_value=lam)
    return ranker(slice(None))


def trinet_evaluation(query, gallery, exclusion, k1, k2, lam):
    """trinet: re-ranking and the metrics, never holding the whole queries x gallery matrix."""
    ranker = ReRanker.from_embeddings(query.emb, gallery.emb, k1=k1, k2=k2, lambda_value=lam)
    return evaluate(query.emb, gallery.emb, query.pids, gallery.pids, exclusion, distances=ranker)


def dense_all(query, gallery, k1, k2, lam, kind="quicksort"):
    return dense_re_ranking(cdist(query, gallery), cdist(query, query), cdist(gallery, gallery), k1, k2, lam,
                            kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=800)
    parser.add_argument("--gallery", type=int, default=4000)
    parser.add_argument("--k1", type=int, default=20)
    parser.add_argument("--k2", type=int, default=6)
    parser.add_argument("--lambda_value", type=float, default=0.3)
    parser.add_argument("--market", action="store_true", help="Also run trinet at Market-1501 size.")
    parser.add_argument("--dense_market", action="store_true",
                        help="Also run the dense reference at Market-1501 size (needs about 12 GB; its peak "
                             "is read from the resident set size).")
    parser.add_argument("--no_memory", action="store_true", help="Skip the tracemalloc runs.")
    args = parser.parse_args()
    params = (args.k1, args.k2, args.lambda_value)

    query, gallery = generate("market")
    rng = np.random.default_rng(1)
    q_rows = np.sort(rng.choice(len(query.pids), args.queries, replace=False))
    g_rows = np.sort(rng.choice(len(gallery.pids), args.gallery, replace=False))
    q, g = query.emb[q_rows], gallery.emb[g_rows]
    n = args.queries + args.gallery
    print(f"re-ranking {args.queries} x {args.gallery} (N = {n}), 128-d, k1={args.k1} k2={args.k2} "
          f"lambda={args.lambda_value}, {os.cpu_count()} CPUs")
    dense, t_dense, m_dense = measure(dense_all, q, g, *params, memory=not args.no_memory)
    print(f"dense reference (authors' algorithm): {t_dense:.2f} s, peak {m_dense:.0f} MB")
    if args.no_memory:
        print("  (peak memory not measured: --no_memory)")
    ours, t_ours, m_ours = measure(trinet_all, q, g, *params, memory=not args.no_memory)
    print(f"trinet: {t_ours:.2f} s, peak {m_ours:.0f} MB (its (Q, G) float64 output alone: "
          f"{args.queries * args.gallery * 8 / 2 ** 20:.0f} MB)")
    print(f"speed-up {t_dense / t_ours:.1f}x, max |difference| {np.abs(ours - dense).max():.2e}")
    names_q = [query.fids[i] for i in q_rows]
    names_g = [gallery.fids[i] for i in g_rows]
    exclusion = EXCLUDERS["market1501"](names_q, names_g)
    pids_q, pids_g = query.pids[q_rows], gallery.pids[g_rows]
    for label, dist in (("dense", dense), ("trinet", ours)):
        r = evaluate(q, g, pids_q, pids_g, exclusion, distances=lambda rows, cols, d=dist: d[rows][:, cols])
        print(f"  metrics on the {label} re-ranked distances: mAP {r.mean_ap:.4f} top-1 {r.top(1):.4f}")
    market_n = len(query.pids) + len(gallery.pids)
    print(f"dense reference extrapolated to Market-1501 size (N = {market_n}, x(N/{n})^2): "
          f"{t_dense * (market_n / n) ** 2:.0f} s, {m_dense * (market_n / n) ** 2 / 1024:.1f} GB")

    if args.market:
        exclusion = EXCLUDERS["market1501"](query.fids, gallery.fids)
        plain = evaluate(query.emb, gallery.emb, query.pids, gallery.pids, exclusion)
        results, t_market, m_market = measure(trinet_evaluation, query, gallery, exclusion, *params,
                                              memory=not args.no_memory)
        print(f"trinet at Market-1501 size ({len(query.pids)} x {len(gallery.pids)}), re-ranking + metrics: "
              f"{t_market:.1f} s, peak {m_market:.0f} MB")
        print(f"  mAP {plain.mean_ap:.4f} -> {results.mean_ap:.4f}, top-1 {plain.top(1):.4f} -> "
              f"{results.top(1):.4f}")
    if args.dense_market:
        ours = trinet_all(query.emb, gallery.emb, *params)
        for kind in ("quicksort", "stable"):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
            start = time.perf_counter()
            dense = dense_all(query.emb, gallery.emb, *params, kind=kind)
            seconds = time.perf_counter() - start
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
            differ = np.abs(ours - dense)
            print(f"dense reference at Market-1501 size, neighbour ranking by {kind} sort: {seconds:.0f} s, "
                  f"max resident set size {peak:.1f} GB (was {before:.1f} GB before); max |difference| "
                  f"to trinet {differ.max():.2e}, {(differ > 1e-4).sum()} entries differ by > 1e-4")
            del dense, differ


if __name__ == "__main__":
    main()
