"""Benchmark of trinet's evaluation against a per-query full-sort reference, measured in the same run.

    python benchmarks/bench_evaluate.py                      # Market-1501 size: 3,368 x 19,732, 128-d
    python benchmarks/bench_evaluate.py --size msmt17        # 11,659 x 82,161 (reference on a subset)
    python benchmarks/bench_evaluate.py --size million       # 10,000 x 1,000,000 (long; ~1.5 GB)
    python benchmarks/bench_evaluate.py --cli                # also time the whole evaluate.py command
    python benchmarks/bench_evaluate.py --size million --gallery 4000000 --queries 1000 --no_memory
                                                             # how far it goes: 4M gallery (extra distractors)

The data are generated: identities as cluster centres with a per-camera shift and per-image noise,
official file names (Market-1501 naming with junk `-1` and distractors `0000`; MSMT17_V1 naming), so
the excluder, the match lists and the depth of the rankings look like a real evaluation. Prints
times, peak memory (tracemalloc, in a second run so tracing does not slow the timed one) and ratios;
it asserts nothing about time. The reference checks that both give the same numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trinet.core.distances import cdist  # noqa: E402
from trinet.evaluation.excluders import EXCLUDERS  # noqa: E402
from trinet.evaluation.metrics import block_rows, evaluate  # noqa: E402

#: size name -> (queries, gallery, identities, cameras, junk, distractors, naming)
SIZES = {
    "market": (3368, 19732, 750, 6, 3819, 2798, "market1501"),
    "msmt17": (11659, 82161, 3060, 15, 0, 0, "msmt17"),
    "million": (10000, 1000000, 5000, 6, 0, 900000, "market1501"),
}


@dataclasses.dataclass
class Split:
    emb: np.ndarray
    pids: np.ndarray
    fids: list


def _name(naming: str, pid: int, cam: int, index: int) -> str:
    if naming == "msmt17":
        return f"{pid:04d}_{index % 1000:03d}_{cam:02d}_0303morning_{index % 10000:04d}_{index % 3}.jpg"
    person = "-1" if pid < 0 else f"{pid:04d}"
    return f"{person}_c{cam}s{1 + index % 6}_{index:06d}_{index % 8:02d}.jpg"


def generate(size: str, dim: int = 128, seed: int = 0, noise: float = 1.1,
             gallery: int | None = None) -> tuple[Split, Split]:
    """Query and gallery splits of the given size, with realistic names and clustered embeddings.

    `gallery` changes the gallery size; the difference is made up of distractors (person 0000).
    """
    num_q, num_g, num_ids, num_cams, junk, distractors, naming = SIZES[size]
    if gallery is not None:
        distractors = max(0, distractors + gallery - num_g)
        if gallery < junk + distractors:
            raise ValueError(f"--gallery {gallery} is smaller than the junk and distractors of {size}")
        num_g = gallery
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_ids + 1, dim)).astype(np.float32)
    cam_shift = 0.35 * rng.standard_normal((num_cams + 1, dim)).astype(np.float32)
    ids = np.arange(1, num_ids + 1)

    def split(n: int, n_junk: int, n_distractors: int, offset: int) -> Split:
        pids = np.concatenate([np.full(n_junk, -1), np.zeros(n_distractors, np.int64),
                               rng.choice(ids, n - n_junk - n_distractors)])
        cams = rng.integers(1, num_cams + 1, n)
        emb = np.empty((n, dim), np.float32)
        step = 1 << 16
        for s in range(0, n, step):
            p, c = pids[s:s + step], cams[s:s + step]
            block = centres[np.abs(p)] + cam_shift[c] + noise * rng.standard_normal((len(p), dim), np.float32)
            # Distractors are other people: centres of their own; junk is a bad crop near someone.
            block[p == 0] = 1.2 * rng.standard_normal(((p == 0).sum(), dim), np.float32)
            block[p < 0] = centres[rng.choice(ids, (p < 0).sum())] + 1.5 * noise * rng.standard_normal(
                ((p < 0).sum(), dim), np.float32)
            emb[s:s + step] = block
        names = [_name(naming, int(p), int(c), offset + i) for i, (p, c) in enumerate(zip(pids, cams))]
        strings = np.array(["-1" if p < 0 else f"{p:04d}" for p in pids])
        return Split(emb, strings, names)

    return split(num_q, 0, 0, 0), split(num_g, junk, distractors, num_q)


def reference(query: Split, gallery: Split, exclusion, metric: str, rows: np.ndarray) -> dict:
    """Per query: distances, drop ignored entries, full stable argsort, then the metrics.

    Junk columns are dropped before the distances, as trinet does, so that both rank the very same
    float32 distances and must agree exactly.
    """
    _, codes = np.unique(np.concatenate([query.pids, gallery.pids]), return_inverse=True)
    kept = np.flatnonzero(~exclusion.gallery_ignored)
    q_codes, g_codes = codes[:len(query.pids)], codes[len(query.pids):][kept]
    aps, market_aps, inps, first = [], [], [], []
    ties = 0
    step = block_rows(len(g_codes), 256)
    for s in range(0, len(rows), step):
        block_idx = rows[s:s + step]
        dist = cdist(query.emb[block_idx], gallery.emb[kept], metric)
        ignore = exclusion.mask(block_idx)[:, kept]
        for r, i in enumerate(block_idx):
            keep = ~ignore[r]
            order = np.argsort(dist[r, keep], kind="stable")
            hits = (g_codes[keep] == q_codes[i])[order]
            positions = np.flatnonzero(hits) + 1
            if len(positions) == 0:
                continue
            ranked = dist[r, keep][order]
            ties += bool(np.any((ranked[1:] == ranked[:-1]) & (hits[1:] != hits[:-1])))
            k = np.arange(1, len(positions) + 1)
            aps.append(np.mean(k / positions))
            before = np.where(positions > 1, (k - 1) / np.maximum(positions - 1, 1), 1.0)
            market_aps.append(np.mean((k / positions + before) / 2))
            inps.append(len(positions) / positions[-1])
            first.append(positions[0])
    first = np.array(first)
    return {"mAP": np.mean(aps), "market mAP": np.mean(market_aps), "mINP": np.mean(inps),
            "top-1": np.mean(first <= 1), "top-10": np.mean(first <= 10), "aps": np.array(aps),
            "evaluated": len(aps), "ties": ties}


def original_style(query: Split, gallery: Split, exclusion, metric: str, rows: np.ndarray) -> float:
    """triplet-reid's loop: per query scikit-learn's AP plus a full argsort for the CMC; returns mAP."""
    from sklearn.metrics import average_precision_score

    aps = []
    for i in rows:
        dist = cdist(query.emb[i:i + 1], gallery.emb, metric)[0]
        matches = gallery.pids == query.pids[i]
        mask = exclusion.mask(np.array([i]))[0]
        dist[mask], matches[mask] = np.inf, False
        aps.append(average_precision_score(matches, 1 / (1 + dist)))
        np.flatnonzero(matches[np.argsort(dist)])
    return float(np.mean(aps))


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def peak_mb(fn, *args, **kwargs) -> float:
    """Peak traced allocation (numpy arrays included) during `fn`, in MB."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(*args, **kwargs)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2 ** 20


def run_cli(query: Split, gallery: Split, naming: str) -> float:
    """Write the CSVs and HDF5 files, time `python evaluate.py` end to end."""
    from trinet.data.embeddings.hdf5 import write_embeddings
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        args = []
        for role, split in (("query", query), ("gallery", gallery)):
            csv = os.path.join(tmp, f"{role}.csv")
            with open(csv, "w") as f:
                f.writelines(f"{p},{role}/{n}\n" for p, n in zip(split.pids, split.fids))
            write_embeddings(os.path.join(tmp, f"{role}.h5"), split.emb)
            args += [f"--{role}_dataset", csv, f"--{role}_embeddings", os.path.join(tmp, f"{role}.h5")]
        command = [sys.executable, os.path.join(root, "evaluate.py"), "--excluder", naming, *args,
                   "--filename", os.path.join(tmp, "results.json")]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        print(done.stdout.strip())
        if done.returncode:
            print(done.stderr)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="market")
    parser.add_argument("--gallery", type=int, default=None,
                        help="Gallery size instead of the size's (more or fewer distractors), to see how far "
                             "the evaluation goes.")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--metric", default="euclidean")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--queries", type=int, default=None,
                        help="Evaluate only the first N queries (for a quick estimate).")
    parser.add_argument("--reference_queries", type=int, default=None,
                        help="Queries the reference is timed on (then extrapolated); default all for "
                             "market, 1000 for msmt17, 50 for million.")
    parser.add_argument("--no_memory", action="store_true", help="Skip the tracemalloc runs.")
    parser.add_argument("--cli", action="store_true", help="Also time the whole evaluate.py command.")
    args = parser.parse_args()

    num_q, num_g, *_, naming = SIZES[args.size]
    (query, gallery), t_gen = timed(generate, args.size, args.dim, gallery=args.gallery)
    num_g = len(gallery.fids)
    if args.queries:
        num_q = min(num_q, args.queries)
        query = Split(query.emb[:num_q], query.pids[:num_q], query.fids[:num_q])
    print(f"size {args.size}: {num_q} queries x {num_g} gallery, {args.dim}-d, {naming} excluder, "
          f"{os.cpu_count()} CPUs")
    print(f"generated data in {t_gen:.1f} s")

    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    exclusion, t_excl = timed(EXCLUDERS[naming], query.fids, gallery.fids)
    print(f"trinet excluder (parse {num_q + num_g} names): {t_excl:.2f} s")
    kwargs = dict(metric=args.metric, batch_size=args.batch_size)
    results, t_ours = timed(evaluate, query.emb, gallery.emb, query.pids, gallery.pids, exclusion, **kwargs)
    print(f"trinet metrics (distances + ranks): {t_ours:.2f} s ({t_ours / num_q * 1000:.2f} ms per query; "
          f"{t_ours / num_q / num_g * 1e9:.2f} ns per query-gallery pair)   mAP {results.mean_ap:.4f} "
          f"mINP {results.mean_inp:.4f} top-1 {results.top(1):.4f} top-10 {results.top(10):.4f} "
          f"skipped {results.num_skipped}")
    rss_ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  max resident set size: {rss_data:.0f} MB with the generated data, {rss_ours:.0f} MB after the "
          f"excluder and trinet's metrics (+{rss_ours - rss_data:.0f} MB)")
    kept = gallery.emb[~exclusion.gallery_ignored]
    step = block_rows(len(kept), args.batch_size)
    _, t_dist = timed(lambda: [cdist(query.emb[s:s + step], kept, args.metric).shape
                               for s in range(0, num_q, step)])
    print(f"  for comparison, the distances alone (same blocks, nothing else): {t_dist:.2f} s")

    n_ref = args.reference_queries or {"market": num_q, "msmt17": 1000, "million": 50}[args.size]
    rows = np.linspace(0, num_q - 1, min(n_ref, num_q)).astype(np.int64)
    ref, t_ref = timed(reference, query, gallery, exclusion, args.metric, rows)
    t_ref_all = t_ref * num_q / len(rows)
    note = "" if len(rows) == num_q else f" (measured on {len(rows)} queries: {t_ref:.2f} s, extrapolated)"
    print(f"reference per-query full sort: {t_ref_all:.2f} s{note}   mAP {ref['mAP']:.4f} "
          f"mINP {ref['mINP']:.4f} top-1 {ref['top-1']:.4f}")
    ours_ap = results.aps[rows][results.evaluated[rows]]
    differ = np.abs(ours_ap - ref["aps"])
    print(f"speed-up: {t_ref_all / t_ours:.1f}x   max |AP difference| on the reference queries: "
          f"{differ.max():.2e} ({(differ > 1e-12).sum()} queries differ; {ref['ties']} queries have a match "
          "at exactly the distance of a non-match, which the reference orders by gallery index)")

    few = rows[np.linspace(0, len(rows) - 1, min(len(rows), 200)).astype(int)]
    _, t_orig = timed(original_style, query, gallery, exclusion, args.metric, few)
    print(f"original triplet-reid style (scikit-learn AP per query): {t_orig * num_q / len(few):.1f} s "
          f"(measured on {len(few)} queries, extrapolated; distances one query at a time)")

    if not args.no_memory:
        dense = num_q * num_g * 4 / 2 ** 20
        ours_mb = peak_mb(evaluate, query.emb, gallery.emb, query.pids, gallery.pids, exclusion, **kwargs)
        print(f"peak memory, trinet metrics: {ours_mb:.0f} MB (a dense float32 queries x gallery matrix: "
              f"{dense:.0f} MB; inputs not counted)")
        few = rows[:min(len(rows), 512)]
        ref_mb = peak_mb(reference, query, gallery, exclusion, args.metric, few)
        print(f"peak memory, reference ({len(few)} queries): {ref_mb:.0f} MB")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"max resident set size of this process (data, reference and tracing included): {rss:.0f} MB")
    if args.cli:
        elapsed = run_cli(query, gallery, naming)
        print(f"whole command `python evaluate.py` (files written beforehand): {elapsed:.2f} s")


if __name__ == "__main__":
    main()
