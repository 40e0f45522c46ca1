"""A tracker's view of trinet: crops with their track ids in, one embedding per track, matched against a
gallery index.

    python examples/track_embed.py --experiment_root exp/market --index exp/market/gallery_index \\
        --tracks tracks.csv --image_root frames/ --top_k 5

The loop a tracker runs, in three calls:

1. the crops of each track, as `(H, W, 3)` uint8 RGB arrays (here read from `--tracks`, a CSV of
   `pid,path,tracklet` rows as the tracker would have cut them; the pid is not used: `unknown` will do);
2. `Embedder.embed_tracklets(crops_by_track)`: one embedding per track, the mean (or max) of its crops';
3. `trinet.search.index.search`: the nearest gallery entries of each track in an index built by
   `trinet-search index` (faiss; `pip install 'trinet[search]'`).

Prints, for each track, its best gallery matches (identity, path, distance).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Mapping, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_tracks(csv: str, image_root: str) -> dict[str, list[np.ndarray]]:
    """The crops of each track of a tracker's CSV (`tracklet` column), as RGB arrays, in frame order."""
    import cv2

    from trinet.data.datasets import read_csv
    from trinet.data.tracklets import group_tracklets

    dataset = read_csv(csv, image_root)
    tracklets = group_tracklets(dataset, f"--tracks {csv}")
    paths = dataset.paths()
    return {str(name): [cv2.imread(paths[i])[:, :, ::-1].copy() for i in rows]
            for name, rows in zip(tracklets.names, tracklets.rows)}


def match_tracks(embedder, crops_by_track: Mapping[str, Sequence[np.ndarray]], index, top_k: int = 5,
                 pooling: str = "mean") -> dict[str, list[tuple[str, str, float]]]:
    """The `top_k` gallery entries `(pid, path, distance)` of each track, best first.

    Args:
        embedder: a `trinet.Embedder`.
        crops_by_track: track id -> its crops (uint8 RGB arrays or image paths), in frame order.
        index: a `trinet.search.index.GalleryIndex` (`load_index` of a `trinet-search index` folder).
    """
    from trinet.search.index import search

    names = list(crops_by_track)
    emb = embedder.embed_tracklets([crops_by_track[n] for n in names], pooling=pooling)
    hits = search(index, emb, top_k)
    gallery = index.gallery
    return {name: [(str(gallery.pids[j]), str(gallery.fids[j]), float(d))
                   for j, d in zip(hits.indices[t], hits.distances[t]) if j >= 0]
            for t, name in enumerate(names)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment_root", required=True, help="the training run whose model embeds")
    parser.add_argument("--index", required=True, help="a gallery index folder of trinet-search index")
    parser.add_argument("--tracks", required=True, help="CSV of the crops: pid,path,tracklet rows")
    parser.add_argument("--image_root", default=None, help="folder the --tracks paths are relative to")
    parser.add_argument("--top_k", type=int, default=5, help="matches per track (default 5)")
    parser.add_argument("--pooling", choices=["mean", "max"], default="mean",
                        help="how a track's crops become one embedding (default mean)")
    args = parser.parse_args(argv)
    from trinet import Embedder
    from trinet.search.index import load_index

    embedder = Embedder.from_experiment(args.experiment_root)
    matches = match_tracks(embedder, read_tracks(args.tracks, args.image_root), load_index(args.index),
                           args.top_k, args.pooling)
    for track, found in matches.items():
        print(f"track {track}: " + "; ".join(f"{pid} {path} ({d:.3f})" for pid, path, d in found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
