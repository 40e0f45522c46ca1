"""Benchmark of AlignedReID's local distance at Market-1501 size: trinet's blocked, vectorised evaluation
against a straightforward numpy implementation, in the same run.

    python benchmarks/bench_local_distance.py                  # 3,368 x 19,732, 8 stripes of 128-d
    python benchmarks/bench_local_distance.py --evaluate       # plus the whole evaluation, with and without
    python benchmarks/bench_local_distance.py --queries 500 --gallery 4000

trinet (`trinet.core.local_distances.local_distances`, as evaluate.py --local_distance_weight calls it through
`trinet.evaluation.metrics.WithLocalDistances`): blocks of 256 queries (evaluate.py's --batch_size), each
computed in sub-blocks of at most `MAX_BLOCK_ENTRIES` stripe distances: one matrix product for every stripe
pair of the sub-block, the normalisation in place, and the shortest path as S^2 vectorised steps over the
sub-block.

The straightforward implementation takes one pair at a time: the S x S stripe distances with numpy, the
normalisation, and the dynamic programme in Python loops. It is far too slow for all 66 million pairs, so it
runs on `--subset` queries x `--subset` gallery entries and its Market-size time is extrapolated linearly in
the number of pairs (it is linear: every pair costs the same). Both are compared on that subset (largest
absolute difference). Peak memory: tracemalloc (numpy arrays included) over trinet's pass, and the process's
peak RSS. For AlignedReID's published figure (about 140 s for Market-1501's local distances, on a GPU) see
the README. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import peak_rss_mb  # noqa: E402
from trinet.core.local_distances import LocalGallery, local_distances  # noqa: E402

#: AlignedReID's reported time for the local distances of Market-1501's test set (seconds).
ALIGNEDREID_SECONDS = 140.0


def straightforward(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """`(Q, S, D), (G, S, D) -> (Q, G)`: one pair at a time, the dynamic programme in Python."""
    out = np.empty((len(query), len(gallery)), np.float64)
    for i, q in enumerate(query):
        for j, g in enumerate(gallery):
            d = np.sqrt(((q[:, None, :] - g[None, :, :]) ** 2).sum(-1) + 1e-12)
            c = (np.exp(d) - 1) / (np.exp(d) + 1)
            s, t = c.shape
            acc = np.zeros((s, t))
            for a in range(s):
                for b in range(t):
                    if a == 0 and b == 0:
                        acc[a, b] = c[a, b]
                    elif a == 0:
                        acc[a, b] = acc[a, b - 1] + c[a, b]
                    elif b == 0:
                        acc[a, b] = acc[a - 1, b] + c[a, b]
                    else:
                        acc[a, b] = min(acc[a - 1, b], acc[a, b - 1]) + c[a, b]
            out[i, j] = acc[-1, -1]
    return out


def features(rng: np.random.Generator, rows: int, stripes: int, dim: int) -> np.ndarray:
    """Local features as the branch makes them: non-negative (after its ReLU), float32."""
    return (np.maximum(rng.normal(size=(rows, stripes, dim)), 0) / np.sqrt(dim)).astype(np.float32)


def trinet_pass(query: np.ndarray, gallery: np.ndarray, block: int) -> float:
    """Every local distance, block of queries by block (each block discarded, as the evaluation ranks it and
    moves on); returns a checksum."""
    laid_out = LocalGallery(gallery)
    total = 0.0
    for start in range(0, len(query), block):
        total += float(local_distances(query[start:start + block], laid_out).sum(dtype=np.float64))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=3368)
    parser.add_argument("--gallery", type=int, default=19732)
    parser.add_argument("--stripes", type=int, default=8)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--subset", type=int, default=60, help="queries and gallery entries of the "
                        "straightforward run (subset x subset pairs)")
    parser.add_argument("--block", type=int, default=256,
                        help="queries per block (evaluate.py's --batch_size)")
    parser.add_argument("--evaluate", action="store_true",
                        help="also time trinet.evaluation.metrics.evaluate with and without the local "
                             "distances")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    query = features(rng, args.queries, args.stripes, args.dim)
    gallery = features(rng, args.gallery, args.stripes, args.dim)
    pairs = args.queries * args.gallery
    print(f"{args.queries} x {args.gallery} pairs, {args.stripes} stripes of {args.dim}-d, float32; "
          f"{os.cpu_count()} CPUs")

    n = min(args.subset, args.queries, args.gallery)
    start = time.perf_counter()
    reference = straightforward(query[:n], gallery[:n])
    slow = time.perf_counter() - start
    ours = local_distances(query[:n], gallery[:n])
    slow_full = slow * pairs / (n * n)
    print(f"straightforward, {n} x {n} pairs: {slow:.2f} s ({1e6 * slow / (n * n):.1f} us/pair); "
          f"extrapolated to {pairs:,} pairs: {slow_full:,.0f} s ({slow_full / 3600:.1f} h)")
    print(f"largest |trinet - straightforward| on the subset: {np.abs(ours - reference).max():.2e} "
          f"(distances up to {reference.max():.2f})")

    tracemalloc.start()
    start = time.perf_counter()
    trinet_pass(query, gallery, args.block)
    fast = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    inputs = (query.nbytes + gallery.nbytes) / 2 ** 20
    print(f"trinet, all {pairs:,} pairs in blocks of {args.block} queries: {fast:.1f} s "
          f"({1e9 * fast / pairs:.0f} ns/pair); peak traced memory {traced:.0f} MB (the features themselves: "
          f"{inputs:.0f} MB, held before); peak RSS {peak_rss_mb():.0f} MB")
    print(f"speed-up over the straightforward one: {slow_full / fast:,.0f}x; AlignedReID reported "
          f"~{ALIGNEDREID_SECONDS:.0f} s (GPU) for Market-1501's local distances: "
          f"{ALIGNEDREID_SECONDS / fast:.1f}x")

    if args.evaluate:
        from trinet.evaluation.metrics import EmbeddingDistances, WithLocalDistances, evaluate

        q_emb = rng.normal(size=(args.queries, 128)).astype(np.float32)
        g_emb = rng.normal(size=(args.gallery, 128)).astype(np.float32)
        q_pids = rng.integers(0, 750, args.queries).astype(str)
        g_pids = rng.integers(0, 750, args.gallery).astype(str)
        start = time.perf_counter()
        evaluate(q_emb, g_emb, q_pids, g_pids)
        plain = time.perf_counter() - start
        start = time.perf_counter()
        evaluate(q_emb, g_emb, q_pids, g_pids,
                 distances=WithLocalDistances(EmbeddingDistances(q_emb, g_emb), query, gallery, 1.0))
        combined = time.perf_counter() - start
        print(f"evaluate(): {plain:.1f} s plain, {combined:.1f} s with --local_distance_weight "
              f"({combined / plain:.0f}x); peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
