"""Time evaluate.py --report at Market-1501 size (3,368 x 19,732, top 10) and the report's first page in a
headless Chromium.

    python benchmarks/bench_report.py                  # with generated 128 x 64 JPEGs (thumbnails copied)
    python benchmarks/bench_report.py --no_images      # the report without thumbnails

The data are bench_evaluate.py's generated Market-1501 evaluation (official names, junk and distractors),
plus one small JPEG per image. Runs evaluate.py three times: plain, with --verification and with --report,
and prints what each adds; then opens the report's first page with `chromium --headless --dump-dom` (the
time includes starting the browser; a second run measures that start on an empty page, for the
difference). Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests",
                                "evaluation"))

from bench_evaluate import generate  # noqa: E402
from headless import dump_dom, find_chromium  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed_cli(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, os.path.join(ROOT, "evaluate.py"), *args, "--quiet"],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(done.stderr)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no_images", action="store_true", help="Write no images: no thumbnails.")
    parser.add_argument("--keep", default=None, help="Write into this folder and keep it (default: a "
                                                     "temporary folder).")
    args = parser.parse_args()
    import cv2

    from trinet.data.embeddings.hdf5 import write_embeddings

    query, gallery = generate("market")
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        os.makedirs(tmp, exist_ok=True)
        flags = ["--excluder", "market1501"]
        start = time.perf_counter()
        rng = np.random.default_rng(0)
        for role, split in (("query", query), ("gallery", gallery)):
            csv = os.path.join(tmp, f"{role}.csv")
            with open(csv, "w") as f:
                f.writelines(f"{p},{role}/{n}\n" for p, n in zip(split.pids, split.fids))
            write_embeddings(os.path.join(tmp, f"{role}.h5"), split.emb)
            flags += [f"--{role}_dataset", csv, f"--{role}_embeddings", os.path.join(tmp, f"{role}.h5")]
            if not args.no_images:
                os.makedirs(os.path.join(tmp, "images", role), exist_ok=True)
                for n in split.fids:
                    image = np.full((128, 64, 3), rng.integers(0, 256, 3), np.uint8)
                    cv2.imwrite(os.path.join(tmp, "images", role, n), image)
        print(f"data written in {time.perf_counter() - start:.1f} s "
              f"({len(query.fids)} x {len(gallery.fids)})")
        plain = timed_cli(flags)
        verification = timed_cli(flags + ["--verification"])
        report_flags = ["--report", os.path.join(tmp, "report")]
        if not args.no_images:
            report_flags += ["--image_root", os.path.join(tmp, "images")]
        report = timed_cli(flags + report_flags)
        print(f"evaluate.py: {plain:.1f} s; --verification: {verification:.1f} s "
              f"(+{verification - plain:.1f}); "
              f"--report: {report:.1f} s (+{report - plain:.1f} over the plain evaluation)")
        browser = find_chromium()
        if browser is None:
            print("no Chromium found: first page not timed")
            return
        index = os.path.join(tmp, "report", "index.html")
        empty = os.path.join(tmp, "empty.html")
        with open(empty, "w") as f:
            f.write("<!DOCTYPE html><title>empty</title>")
        _, _, base = dump_dom(browser, "file://" + empty, budget_ms=2000)
        dom, console, seconds = dump_dom(browser, "file://" + index, budget_ms=2000)
        shown = dom.count('<div class="card')
        print(f"first page in Chromium: {seconds:.2f} s, of which starting the browser about {base:.2f} s; "
              f"{shown} rank lists shown, console messages: {console or 'none'}")


if __name__ == "__main__":
    main()
