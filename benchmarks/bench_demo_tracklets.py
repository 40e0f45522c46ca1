"""Single frames against mean- and max-pooled tracklets on the demo's video data (`python -m trinet.demo
--tracklets`), with the raw-pixel baseline as embedding (no training, no TensorFlow).

    python benchmarks/bench_demo_tracklets.py                    # 100 test identities, 8 frames per walk
    python benchmarks/bench_demo_tracklets.py --model exp/demo   # the embeddings of a trained run instead

The demo draws each walk of a person past a camera as a tracklet of frames (the same person, camera and
scene, another pose and position each frame). The frames are embedded one by one (raw pixels, or embed.py
with --model); the tracklet files pool them by mean and max (`trinet.core.pooling.pool_groups`, what embed.py
--pool_by tracklet computes) and evaluate.py scores all three under `--excluder camera`. Prints mAP and
rank-1; it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trinet.core.pooling import pool_groups  # noqa: E402
from trinet.data.datasets import read_csv  # noqa: E402
from trinet.data.embeddings.hdf5 import EmbeddingWriter, read_embeddings, write_embeddings  # noqa: E402
from trinet.data.tracklets import group_tracklets, tracklet_dataset  # noqa: E402


def frame_embeddings(csv: str, root: str, h5: str, model: str | None) -> np.ndarray:
    """Per-frame embeddings of `csv`, written to `h5`: raw pixels, or embed.py with the run `model`."""
    dataset = read_csv(csv, root)
    if model is None:
        from trinet.tools.baselines import pixel_embeddings
        emb = pixel_embeddings(dataset, (32, 16))
        write_embeddings(h5, emb, pids=list(dataset.pids), fids=list(dataset.fids))
        return emb
    subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "..", "embed.py"),
                    "--experiment_root", model, "--dataset", csv, "--image_root", root, "--filename",
                    os.path.abspath(h5), "--quiet"], check=True)
    return read_embeddings(h5)


def tracklet_file(csv: str, emb: np.ndarray, how: str, h5: str) -> None:
    """Pool the frames' embeddings of each tracklet of `csv` into the tracklet file `h5`."""
    dataset = read_csv(csv)
    tracklets = group_tracklets(dataset)
    rows = tracklet_dataset(dataset, tracklets)
    groups = np.empty(len(dataset), np.int64)
    for t, own in enumerate(tracklets.rows):
        groups[own] = t
    pooled, counts = pool_groups(emb, groups, len(tracklets), how)
    with EmbeddingWriter(h5, len(rows), emb.shape[1], pids=list(rows.pids), fids=list(rows.fids),
                         extra={"tracklets": tracklets.names, "cameras": rows.cameras,
                                "frame_counts": counts}) as writer:
        writer.write(pooled)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--test_ids", type=int, default=100, help="the demo's --test_ids")
    p.add_argument("--frames", type=int, default=8,
                   help="frames per tracklet (the demo's --images_per_camera)")
    p.add_argument("--seed", type=int, default=0, help="the demo's --seed")
    p.add_argument("--model", default=None,
                   help="an experiment folder whose model embeds the frames (default: raw pixels)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    from trinet.cli.evaluate import main as evaluate
    from trinet.demo import generate

    with tempfile.TemporaryDirectory() as tmp:
        demo = generate(os.path.join(tmp, "demo"), seed=args.seed, train_ids=2, test_ids=args.test_ids,
                        images_per_camera=args.frames, junk=0, distractors=20, tracklets=True, quiet=True)
        files = {}
        for role, csv in (("query", demo.query_csv), ("gallery", demo.test_csv)):
            frames_h5 = os.path.join(tmp, f"{role}_frames.h5")
            emb = frame_embeddings(csv, demo.root, frames_h5, args.model)
            files[role, "single frames"] = (csv, frames_h5)
            for how in ("mean", "max"):
                h5 = os.path.join(tmp, f"{role}_{how}.h5")
                tracklet_file(csv, emb, how, h5)
                files[role, f"{how}-pooled tracklets"] = (csv, h5)
        results = {}
        for what in ("single frames", "mean-pooled tracklets", "max-pooled tracklets"):
            out = os.path.join(tmp, "r.json")
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
                status = evaluate(["--excluder", "camera", "--query_dataset", files["query", what][0],
                                   "--query_embeddings", files["query", what][1],
                                   "--gallery_dataset", files["gallery", what][0],
                                   "--gallery_embeddings", files["gallery", what][1], "--filename", out,
                                   "--quiet"])
            assert status == 0
            scores = json.loads(open(out).read())
            results[what] = {"mAP": scores["mAP"], "top-1": scores["top-1"], "queries": scores["num_queries"]}
            print(f"{what:24} mAP {scores['mAP']:6.1%}  rank-1 {scores['top-1']:6.1%}  "
                  f"({scores['num_queries']} queries)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
