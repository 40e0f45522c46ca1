"""Peak memory of embedding long image lists: it should not grow with the number of images.

Embeds lists of N paths (cycling over a few hundred real JPEG files) with 10 views per image through
`trinet.embedding.writer.embed_to_file` and reports the peak resident memory of a fresh process per N. The
HDF5 file is written block by block, so only the (N, D) and (M, N, D) outputs on disk grow.

    python benchmarks/bench_embed_memory.py                  # N = 10,000 and 100,000
    python benchmarks/bench_embed_memory.py --sizes 1000 20000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import peak_rss_mb, write_jpegs  # noqa: E402

CHILD = "--child"


def child(folder: str, count: int, out: str) -> None:
    from trinet.embedding.embedder import Embedder
    from trinet.embedding.writer import embed_to_file
    from trinet.models.builder import ModelSpec, build_model, embedding_model

    files = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".jpg"))
    paths = [files[i % len(files)] for i in range(count)]
    model = embedding_model(build_model(ModelSpec("lunet", "fc1024", 128)))
    before = peak_rss_mb()
    start = time.perf_counter()
    embed_to_file(Embedder(model, (32, 16), (36, 18)), paths, [os.path.basename(p) for p in paths], None,
                  filename=out, output_format="h5", aggregator="mean", batch_size=500, threads=8, quiet=True,
                  attrs={}, flip=True, crop_mode="five")
    print(json.dumps({"count": count, "seconds": time.perf_counter() - start, "peak_mb": peak_rss_mb(),
                      "peak_before_mb": before, "file_mb": os.path.getsize(out) / 2**20}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    args = p.parse_args()
    folder = tempfile.mkdtemp(prefix="bench_embed_memory_")
    write_jpegs(folder, identities=50, per_identity=10)
    print("LuNet, 10 views per image at 32x16 from 36x18, batches of 500 views, one fresh process per N")
    print(f"{'images':>9s} {'seconds':>8s} {'img/s':>7s} {'peak RSS (MiB)':>15s} {'after model build':>18s} "
          f"{'HDF5 (MiB)':>11s}")
    for count in args.sizes:
        out = os.path.join(folder, f"emb_{count}.h5")
        result = subprocess.run([sys.executable, __file__, CHILD, folder, str(count), out],
                                capture_output=True, text=True, check=True)
        r = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"{r['count']:9d} {r['seconds']:8.1f} {r['count'] / r['seconds']:7.0f} {r['peak_mb']:15.0f} "
              f"{r['peak_before_mb']:18.0f} {r['file_mb']:11.1f}")
        os.remove(out)


if __name__ == "__main__":
    main()
