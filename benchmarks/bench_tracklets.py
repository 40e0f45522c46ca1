"""Tracklet embedding and evaluation of a MARS-size set, generated: time, peak memory, and mAP / rank-1 of
single frames against mean- and max-pooled tracklets.

    python benchmarks/bench_tracklets.py                       # 20,000 tracklets of up to 900 frames
    python benchmarks/bench_tracklets.py --tracklets 2000      # quicker

No network and no images: a generated "embedder" gives each frame its identity's centre, plus a per-tracklet
offset (the tracklet's camera and light) and per-frame noise (pose, blur, occlusion), so pooling the frames
of a tracklet removes the frame noise as a real model's pooling does. Everything else is the real code: the
frames' CSV (`pid,path,camera,tracklet,frame`) is read by `read_csv`, grouped by `group_tracklets`, pooled
by `embed_tracklets_to_file` (embed.py --pool_by tracklet) into HDF5 files, and scored by evaluate.py
(`--excluder camera`) in this process. The query is 1,980 tracklets (MARS's count, scaled with
--tracklets), the gallery the rest. Peak memory is the process's peak resident size after each stage
(`ru_maxrss`); it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import peak_rss_mb  # noqa: E402
from trinet.data.datasets import read_csv, write_csv  # noqa: E402
from trinet.data.tracklets import group_tracklets, tracklet_dataset  # noqa: E402


class GeneratedEmbedder:
    """Embeds frame `t{T}/f{F}.jpg` as centre[identity of T] + offset[T] + noise (seeded by the frame)."""

    local_shape = None

    def __init__(self, identities: np.ndarray, dim: int, tracklets: int, seed: int,
                 offset_scale: float = 0.5, noise_scale: float = 1.0):
        rng = np.random.default_rng(seed)
        self.dim = dim
        self.identities = identities
        self.centres = rng.standard_normal((int(identities.max()) + 1, dim)).astype(np.float32)
        self.offsets = (offset_scale * rng.standard_normal((tracklets, dim))).astype(np.float32)
        self.noise_scale, self.seed = noise_scale, seed

    def view_names(self, flip, crops, aggregator, scales):
        return ["original_resize"]

    def blocks_with_local(self, paths, *, batch_size, **_):
        for start in range(0, len(paths), batch_size):
            part = paths[start:start + batch_size]
            tracklet = np.array([int(p.split("/")[-2][1:]) for p in part])
            rng = np.random.default_rng([self.seed, start])
            emb = (self.centres[self.identities[tracklet]] + self.offsets[tracklet]
                   + self.noise_scale * rng.standard_normal((len(part), self.dim)).astype(np.float32))
            yield emb, emb[None], None


def generate(folder: str, tracklets: int, max_frames: int, identities: int, cameras: int, seed: int
             ) -> tuple[str, np.ndarray]:
    """Write the frames' CSV; returns its path and the identity of each tracklet."""
    rng = np.random.default_rng(seed)
    # MARS-like lengths: most tracklets of a few dozen frames, a long tail up to max_frames.
    lengths = np.clip(np.round(rng.lognormal(3.6, 0.9, tracklets)), 2, max_frames).astype(np.int64)
    lengths[0] = max_frames
    owner = rng.integers(0, identities, tracklets)
    camera = rng.integers(1, cameras + 1, tracklets)
    pids, fids, cams, names, frames = [], [], [], [], []
    for t in range(tracklets):
        n = int(lengths[t])
        pids += [f"{owner[t]:04d}"] * n
        fids += [f"t{t}/f{f}.jpg" for f in range(n)]
        cams += [int(camera[t])] * n
        names += [f"t{t}"] * n
        frames += list(range(n))
    path = os.path.join(folder, "frames.csv")
    write_csv(path, pids, fids, columns={"camera": cams, "tracklet": names, "frame": frames})
    return path, owner


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tracklets", type=int, default=20000, help="number of tracklets (MARS: about 20,000)")
    p.add_argument("--max_frames", type=int, default=900, help="the longest tracklet (MARS: about 900)")
    p.add_argument("--identities", type=int, default=None,
                   help="identities (default: one per 16 tracklets, as MARS: 1,261 for 20,000)")
    p.add_argument("--dim", type=int, default=128, help="embedding dimension")
    p.add_argument("--frames_per_tracklet", type=int, default=None, help="embed.py's flag (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    from trinet.cli.evaluate import main as evaluate
    from trinet.embedding.writer import embed_tracklets_to_file  # imports TensorFlow, as embed.py does

    identities = args.identities or max(2, args.tracklets // 16)
    report: dict = {"settings": vars(args), "rss_after_imports_mb": peak_rss_mb()}
    print(f"Peak memory after the imports (TensorFlow included): {report['rss_after_imports_mb']:.0f} MiB")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        csv, owner = generate(tmp, args.tracklets, args.max_frames, identities, 6, args.seed)
        dataset = read_csv(csv)
        tracklets = group_tracklets(dataset)
        rows = tracklet_dataset(dataset, tracklets)
        report["frames"] = len(dataset)
        report["read_s"], report["read_rss_mb"] = time.perf_counter() - start, peak_rss_mb()
        print(f"{len(dataset):,} frames of {len(tracklets):,} tracklets (longest {args.max_frames}) read and "
              f"grouped in {report['read_s']:.1f} s; peak memory {report['read_rss_mb']:.0f} MiB", flush=True)
        embedder = GeneratedEmbedder(owner, args.dim, len(tracklets), args.seed)
        queries = max(2, round(1980 * args.tracklets / 20000))
        split = {"query": np.arange(queries), "gallery": np.arange(queries, len(tracklets))}
        results = {}
        pooled = args.frames_per_tracklet
        for how, frames in (("single", 1), ("mean", pooled), ("max", pooled)):
            start = time.perf_counter()
            files = {}
            for role, keep in split.items():
                part = dataset.subset(np.isin(dataset.tracklets, rows.tracklets[keep]))
                part_csv = os.path.join(tmp, f"{role}.csv")
                if how == "single":
                    write_csv(part_csv, part.pids.tolist(), part.fids.tolist(),
                              columns={n: c.tolist() for n, c in part.columns().items()})
                part_tracklets = group_tracklets(part)
                part_rows = tracklet_dataset(part, part_tracklets)
                h5 = os.path.join(tmp, f"{role}_{how}.h5")
                embed_tracklets_to_file(
                    embedder, part.fids.tolist(), part_tracklets, part_rows,
                    how="mean" if how == "single" else how,
                    frames_per_tracklet=frames, filename=h5, aggregator=None, batch_size=4096, threads=1,
                    flip=False, crop_mode=None, attrs={}, quiet=True)
                files[role] = (part_csv, h5)
            embed_s = time.perf_counter() - start
            out = os.path.join(tmp, f"{how}.json")
            start = time.perf_counter()
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
                status = evaluate(["--excluder", "camera", "--query_dataset", files["query"][0],
                                   "--query_embeddings", files["query"][1], "--gallery_dataset",
                                   files["gallery"][0], "--gallery_embeddings", files["gallery"][1],
                                   "--filename", out, "--quiet"])
            assert status == 0
            scores = json.loads(open(out).read())
            results[how] = {"mAP": scores["mAP"], "top-1": scores["top-1"], "embed_s": embed_s,
                            "evaluate_s": time.perf_counter() - start, "rss_mb": peak_rss_mb()}
            label = "single frame (the middle)" if how == "single" else f"{how}-pooled tracklets"
            print(f"{label:28} mAP {scores['mAP']:.1%}  rank-1 {scores['top-1']:.1%}  "
                  f"(pooling {embed_s:.1f} s, evaluation {results[how]['evaluate_s']:.1f} s; peak memory "
                  f"{results[how]['rss_mb']:.0f} MiB)", flush=True)
        report["results"] = results
        report["peak_rss_mb"] = peak_rss_mb()
    print(f"Peak memory of the whole run: {report['peak_rss_mb']:.0f} MiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
