"""The results of a gallery search: records per query, the JSON and CSV files, and rank pictures.

JSON: a list with one object per query, `{"query": path, "results": [{"path", "pid", "distance"}, ...]}`,
best first. CSV: a header `query,rank,path,pid,distance`, then one row per result (rank 1 = best).
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Any, Callable, Sequence

import numpy as np

from trinet.core.errors import TrinetError
from trinet.core.fileio import write_text_atomic
from trinet.core.progress import Progress
from trinet.data.datasets import Dataset, image_path
from trinet.evaluation.excluders import Names
from trinet.evaluation.reporting import SHOW_RANKS, RankPictures, spread
from trinet.search.index import Hits

#: The columns of the CSV results file.
CSV_COLUMNS = ("query", "rank", "path", "pid", "distance")


def records(query_fids: Names, gallery: Dataset, hits: Hits) -> list[dict[str, Any]]:
    """One `{"query", "results"}` object per query; a query with fewer results than K lists fewer."""
    out = []
    for fid, indices, distances in zip(query_fids, hits.indices, hits.distances):
        found = indices >= 0
        out.append({"query": str(fid), "results": [
            {"path": str(gallery.fids[j]), "pid": str(gallery.pids[j]), "distance": float(d)}
            for j, d in zip(indices[found], distances[found])]})
    return out


def _json_text(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, ensure_ascii=False, indent=1) + "\n"


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        for rank, result in enumerate(row["results"], start=1):
            writer.writerow([row["query"], rank, result["path"], result["pid"], repr(result["distance"])])
    return buffer.getvalue()


#: The results file formats by extension: the one list of valid `--filename` endings.
RESULT_FORMATS: dict[str, Callable[[list[dict[str, Any]]], str]] = {".json": _json_text, ".csv": _csv_text}


def result_format(path: str) -> str:
    """The extension of `path` if it names a results format; TrinetError listing the valid ones."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in RESULT_FORMATS:
        raise TrinetError(f"--filename {path}: expected a name ending in one of {sorted(RESULT_FORMATS)}")
    return extension


def write_results(path: str, rows: list[dict[str, Any]]) -> None:
    """Write the records to `path` (JSON or CSV, by its extension) atomically."""
    write_text_atomic(path, RESULT_FORMATS[result_format(path)](rows))


def show_hits(directory: str, queries: Sequence[str], query_pids: Names | None, gallery: Dataset,
              image_root: str | None, hits: Hits, count: int, quiet: bool) -> list[str]:
    """Pictures of `count` queries (spread evenly) beside their top results (at most SHOW_RANKS), as
    evaluate.py draws them: framed green for the query's person and red for another when the query's
    person is known (`query_pids`), grey otherwise. Returns the files written.

    Args:
        queries: the query image files (as they are opened); gallery paths are under `image_root`.
    """
    pictures = RankPictures(directory)
    chosen = spread(count, len(queries))
    written = []
    with Progress(len(chosen), "Drawing rank lists", "queries", quiet=quiet) as progress:
        for i in chosen:
            found = hits.indices[i][hits.indices[i] >= 0][:SHOW_RANKS]
            matches: list[bool | None] = [None] * len(found) if query_pids is None else \
                list(np.asarray(gallery.pids)[found] == query_pids[i])
            written.append(pictures.write(
                int(i), queries[i], [image_path(image_root, gallery.fids[j]) for j in found], matches,
                [f"{k + 1}: {d:.3g}" for k, d in enumerate(hits.distances[i][:len(found)])]))
            progress.update()
    pictures.warn("check --image_root and the query paths")
    return written
