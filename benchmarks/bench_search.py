"""Benchmark of trinet-search's indexes: build time, memory, queries/s and recall@10 against exact search.

    python benchmarks/bench_search.py                          # 1,000,000 x 128-d gallery, 5,000 queries
    python benchmarks/bench_search.py --gallery 100000         # a quick run
    python benchmarks/bench_search.py --kinds flat ivfsq hnsw  # HNSW too (slow to build on few cores)
    python benchmarks/bench_search.py --nprobe 8 16 32         # the ivf indexes at several nprobe values

The gallery is generated like real embeddings: identities of about `--per_identity` images whose centres
lie near a `--latent`-dimensional subspace (learned embeddings have a low intrinsic dimension), each image
its centre plus noise in all dimensions; the queries are further images of gallery identities. Every
index is built and searched through `trinet.search.index` with the defaults of `trinet-search index`, so the
figures are those of the command. Memory is the size of the serialized index (what it holds in RAM);
recall@10 is the mean fraction of the exact top-10 (the flat index, same run) that the index returns in
its top-10. On a busy machine use `--threads 1 --repeat 3` (faiss's OpenMP threads wait for each other
when a core is taken away). Prints each figure, the ratios to exact search and whether the targets are
met (recall@10 >= 0.95, >= 10x the exact queries/s, <= 1/3 of its memory); asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import peak_rss_mb  # noqa: E402

from trinet.data.datasets import Dataset  # noqa: E402
from trinet.search.index import INDEX_KINDS, build_index, import_faiss, search  # noqa: E402

#: The targets of issue 13 for an approximate index, against exact (flat) search.
TARGET_RECALL, TARGET_SPEEDUP, TARGET_MEMORY = 0.95, 10.0, 1 / 3


def generate(count: int, queries: int, dim: int, per_identity: int, latent: int, noise: float,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`(count, dim)` gallery and `(queries, dim)` query embeddings, float32, clustered by identity."""
    rng = np.random.default_rng(seed)
    identities = max(1, count // per_identity)
    basis = (rng.standard_normal((latent, dim)) / np.sqrt(latent)).astype(np.float32)
    centres = rng.standard_normal((identities, latent)).astype(np.float32) @ basis
    centres += 0.1 * rng.standard_normal(centres.shape).astype(np.float32)  # off the subspace a little

    def images(n: int) -> np.ndarray:
        out = np.empty((n, dim), np.float32)
        for start in range(0, n, 1 << 16):
            rows = min(1 << 16, n - start)
            out[start:start + rows] = centres[rng.integers(0, identities, rows)]
            out[start:start + rows] += noise * rng.standard_normal((rows, dim), np.float32)
        return out

    return images(count), images(queries)


def recall_at(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |found top-k & exact top-k| / k, for `(Q, k)` index arrays."""
    k = exact.shape[1]
    return float(np.mean([len(np.intersect1d(f, e)) / k for f, e in zip(found, exact)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gallery", type=int, default=1_000_000,
                        help="Gallery vectors. Default: %(default)s.")
    parser.add_argument("--queries", type=int, default=5000, help="Queries. Default: %(default)s.")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--per_identity", type=int, default=20, help="Gallery images per identity.")
    parser.add_argument("--latent", type=int, default=32, help="Dimension the identity centres lie near.")
    parser.add_argument("--noise", type=float, default=0.35, help="Per-image noise per dimension.")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--kinds", nargs="+", default=["flat", "ivfsq", "ivfpq"], choices=sorted(INDEX_KINDS),
                        help="Index kinds to measure; flat (exact) is always measured, as the reference.")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[None],
                        help="nprobe values of the ivf indexes (default: the index default).")
    parser.add_argument("--threads", type=int, default=None, help="faiss threads (default: all cores).")
    parser.add_argument("--repeat", type=int, default=1,
                        help="Time each search this many times and keep the fastest (steadier on a busy "
                             "machine). Default: %(default)s.")
    args = parser.parse_args()

    faiss = import_faiss()
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    start = time.perf_counter()
    gallery, queries = generate(args.gallery, args.queries, args.dim, args.per_identity, args.latent,
                                args.noise)
    rows = Dataset(np.full(len(gallery), "", dtype=str), np.arange(len(gallery)).astype(str))
    print(f"gallery {args.gallery} x {args.dim}-d, {args.queries} queries, top-{args.k}; generated in "
          f"{time.perf_counter() - start:.1f} s; {os.cpu_count()} CPUs, faiss {faiss.__version__} with "
          f"{faiss.omp_get_max_threads()} threads; data {gallery.nbytes / 2 ** 20:.0f} MiB")

    figures: dict[str, dict[str, float]] = {}
    exact: np.ndarray | None = None
    for kind in ["flat"] + [k for k in args.kinds if k != "flat"]:
        rss = peak_rss_mb()
        start = time.perf_counter()
        built = build_index(gallery, rows, kind)
        build_s = time.perf_counter() - start
        memory = len(faiss.serialize_index(built.index)) / 2 ** 20
        grown = peak_rss_mb() - rss
        print(f"{kind}: built in {build_s:.1f} s, index {memory:.0f} MiB (peak RSS +{grown:.0f} MiB while "
              f"building), parameters {built.params or '-'}")
        settings = args.nprobe if "nprobe" in built.params else [None]
        for nprobe in settings:
            overrides = {"nprobe": nprobe} if nprobe else {}
            seconds = float("inf")
            for _ in range(args.repeat):
                start = time.perf_counter()
                hits = search(built, queries, args.k, overrides=overrides)
                seconds = min(seconds, time.perf_counter() - start)
            name = kind + (f" nprobe={nprobe}" if nprobe else "")
            qps = len(queries) / seconds
            if exact is None:
                exact = hits.indices
            recall = recall_at(hits.indices, exact)
            figures[name] = {"build": build_s, "memory": memory, "qps": qps, "recall": recall}
            print(f"  {name}: {qps:.0f} queries/s ({seconds:.2f} s), recall@{args.k} {recall:.4f}")
        del built

    base = figures["flat"]
    print(f"\nagainst exact search (flat: {base['qps']:.0f} queries/s, {base['memory']:.0f} MiB); targets: "
          f"recall@{args.k} >= {TARGET_RECALL}, >= {TARGET_SPEEDUP:.0f}x queries/s, <= 1/3 memory")
    for name, f in figures.items():
        if name == "flat":
            continue
        speedup, memory = f["qps"] / base["qps"], f["memory"] / base["memory"]
        met = [f["recall"] >= TARGET_RECALL, speedup >= TARGET_SPEEDUP, memory <= TARGET_MEMORY]
        verdict = "all targets met" if all(met) else "missed: " + ", ".join(
            what for what, ok in zip(("recall", "speed", "memory"), met) if not ok)
        print(f"  {name:18s} recall@{args.k} {f['recall']:.4f} | speed-up {speedup:6.1f}x | memory "
              f"{memory:.3f} of flat | build {f['build']:.1f} s | {verdict}")
    print(f"max resident set size of this process: {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
