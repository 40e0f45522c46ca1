"""Benchmark of Recall@K, MAP@R and R-precision at Stanford Online Products size, with a reference check.

    python benchmarks/bench_retrieval_metrics.py                    # SOP test set: 60,502 x 60,502, 512-d
    python benchmarks/bench_retrieval_metrics.py --images 10000     # a smaller set, same class sizes
    python benchmarks/bench_retrieval_metrics.py --with_map         # also evaluate.py's whole pass (mAP too)

The test set is generated as SOP's: 11,316 classes of 5-6 images (60,502 in all), query = gallery, each
query leaving itself out (`--excluder diagonal`); embeddings are unit-normalised class centres plus noise
(`--noise`), euclidean. It times `trinet.evaluation.retrieval.evaluate_retrieval` (the figures of
`evaluate.py --metrics recall@1,10,100,1000 map_at_r r_precision`) and, within the same pass, the time
spent computing the distances (the baseline: what any exact evaluation must pay), prints the peak resident
memory of the process and the machine's load, and checks `--reference` queries against a
plain full sort. It asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trinet.core.distances import cdist  # noqa: E402
from trinet.evaluation import metrics  # noqa: E402
from trinet.evaluation.retrieval import RetrievalCollector, evaluate_retrieval, self_exclusion  # noqa: E402

SOP_IMAGES, SOP_CLASSES = 60502, 11316
KS = (1, 10, 100, 1000)


def generate(images: int, dim: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`(N, D)` float32 unit embeddings and `(N,)` class labels, SOP's 5.35 images per class."""
    rng = np.random.default_rng(seed)
    classes = max(1, round(images * SOP_CLASSES / SOP_IMAGES))
    labels = np.sort(np.concatenate([np.arange(classes), rng.integers(0, classes, images - classes)]))
    centres = rng.standard_normal((classes, dim), dtype=np.float32)
    emb = centres[labels] + noise * rng.standard_normal((images, dim), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return emb, labels.astype(str)


def reference(emb: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Per query of `rows`, by a full sort (distance, non-match first, index): first rank, MAP@R, R-prec."""
    dist = cdist(emb[rows], emb)
    first, map_r, r_prec = [], [], []
    for i, row in enumerate(rows):
        keep = np.arange(len(emb)) != row
        rel = labels[keep] == labels[row]
        order = np.lexsort((np.flatnonzero(keep), rel, dist[i, keep]))
        rel = rel[order]
        r = int(rel.sum())
        hits = np.cumsum(rel[:r])
        first.append(int(np.argmax(rel)))
        r_prec.append(hits[-1] / r)
        map_r.append(float(np.sum(rel[:r] * hits / np.arange(1, r + 1))) / r)
    return {"first_rank": np.array(first), "map_at_r": np.array(map_r), "r_precision": np.array(r_prec)}


class TimedDistances(metrics.EmbeddingDistances):
    """The euclidean `DistanceFn` of evaluate.py, adding up the time spent computing distances."""

    def __init__(self, query: np.ndarray, gallery: np.ndarray):
        super().__init__(query, gallery, "euclidean")
        self.seconds = 0.0

    def __call__(self, rows: slice, columns: np.ndarray) -> np.ndarray:
        began = time.perf_counter()
        out = super().__call__(rows, columns)
        self.seconds += time.perf_counter() - began
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=SOP_IMAGES)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--noise", type=float, default=2.5, help="per-image noise (per dimension)")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--reference", type=int, default=200, help="queries checked against a full sort")
    parser.add_argument("--with_map", action="store_true",
                        help="also time metrics.evaluate with a RetrievalCollector (evaluate.py --metrics)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    load = os.getloadavg()
    emb, labels = generate(args.images, args.dim, args.noise, args.seed)
    exclusion = self_exclusion(len(emb))
    print(f"{len(emb):,} x {len(emb):,} images, {len(np.unique(labels)):,} classes, {args.dim}-d; "
          f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)

    timed = TimedDistances(emb, emb)
    began = time.perf_counter()
    results = evaluate_retrieval(emb, emb, labels, labels, exclusion, batch_size=args.batch_size,
                                 distances=timed)
    took = time.perf_counter() - began
    figures = " ".join(f"R@{k} {v:.4f}" for k, v in results.recall(KS).items())
    print(f"evaluate_retrieval: {took:.1f} s, of which the distances {timed.seconds:.1f} s: the ranking "
          f"adds {(took - timed.seconds) / timed.seconds:.0%} to them; {figures} "
          f"MAP@R {results.mean_map_at_r:.4f} R-precision {results.mean_r_precision:.4f}", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak resident memory so far: {peak:.2f} GiB (embeddings: {emb.nbytes / 2**20:.0f} MiB)",
          flush=True)

    rows = np.random.default_rng(1).choice(len(emb), min(args.reference, len(emb)), replace=False)
    want = reference(emb, labels, rows)
    for field, values in want.items():
        got = getattr(results, field)[rows]
        assert np.allclose(got, values, rtol=0, atol=1e-12), field
    print(f"reference: {len(rows)} queries by a full sort agree (first rank, MAP@R, R-precision)", flush=True)

    if args.with_map:
        collector = RetrievalCollector()
        timed = TimedDistances(emb, emb)
        began = time.perf_counter()
        full = metrics.evaluate(emb, emb, labels, labels, exclusion, batch_size=args.batch_size,
                                distances=timed, on_block=collector)
        took_full = time.perf_counter() - began
        assert np.array_equal(collector.results().map_at_r, results.map_at_r, equal_nan=True)
        print(f"metrics.evaluate + collector (evaluate.py --metrics: mAP, CMC and these): {took_full:.1f} s, "
              f"of which the distances {timed.seconds:.1f} s; mAP {full.mean_ap:.4f}", flush=True)
        print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB",
              flush=True)
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
