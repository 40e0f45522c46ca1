"""The report's data: the order of the queries (worst AP first), their pages, the rank-list entries and the
comparison with another run's results JSON. Pure functions of arrays; no files but the JSON read."""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import numpy as np

from trinet.core.errors import TrinetError
from trinet.evaluation.excluders import Names


def worst_first(aps: np.ndarray) -> np.ndarray:
    """`(Q,)` query indices: the evaluated queries by increasing AP (ties by index), then the skipped ones
    (AP NaN) by index."""
    aps = np.asarray(aps, dtype=np.float64)
    skipped = np.isnan(aps)
    order = np.lexsort((np.arange(len(aps)), np.where(skipped, np.inf, aps)))
    return np.concatenate([order[~skipped[order]], np.flatnonzero(skipped)])


def pages(order: np.ndarray, page_size: int) -> list[np.ndarray]:
    """`order` cut into pages of `page_size` (the last may be shorter; one empty page for no queries)."""
    if page_size < 1:
        raise ValueError(f"page_size must be >= 1. Received: page_size={page_size}")
    return [order[i:i + page_size] for i in range(0, len(order), page_size)] or [order[:0]]


def _number(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def read_other_aps(path: str) -> tuple[dict[str, float], dict[str, Any]]:
    """The per-query AP (`{query path: AP}`) of another evaluate.py results JSON, and its summary (mAP,
    settings). TrinetError naming the file when it cannot be read or holds no per-query AP."""
    try:
        with open(path, encoding="utf-8") as f:
            other = json.load(f)
        aps = {str(row["query"]): float(row["ap"]) for row in other["aps"]}
    except (OSError, ValueError) as e:
        raise TrinetError(f"--report_compare {path}: cannot read it: {e}") from None
    except (KeyError, TypeError):
        raise TrinetError(f"--report_compare {path}: not a results file of evaluate.py --filename (no `aps` "
                          "list of {query, ap})") from None
    return aps, {"mAP": other.get("mAP"), "settings": other.get("settings", {}), "path": path}


def compare(query_fids: Names, aps: np.ndarray, other_aps: dict[str, float], other: dict[str, Any],
            listed: int = 20) -> tuple[np.ndarray, dict[str, Any]]:
    """`(Q,)` AP differences (this run - the other; NaN where either has no AP for the query) and the
    comparison's summary: counts of better, worse and equal queries, the mAPs over the shared queries, and
    the `listed` largest gains and losses."""
    fids = [str(f) for f in query_fids]
    theirs = np.array([other_aps.get(f, np.nan) for f in fids], dtype=np.float64)
    delta = np.asarray(aps, dtype=np.float64) - theirs
    shared = ~np.isnan(delta)
    if not shared.any():
        raise TrinetError(f"--report_compare {other['path']}: none of its {len(other_aps)} queries is an "
                          f"evaluated query of this run (e.g. {next(iter(other_aps), 'none')!r} against "
                          f"{fids[0] if fids else 'none'!r}); compare evaluations of the same query set")
    eps = 1e-9
    order = np.flatnonzero(shared)[np.argsort(delta[shared], kind="stable")]

    def row(i: int) -> dict[str, Any]:
        return {"query": fids[i], "ap": _number(aps[i]), "other_ap": _number(theirs[i]),
                "delta": _number(delta[i])}

    summary = {
        "path": other["path"], "other_mAP_all": other.get("mAP"),
        "shared_queries": int(shared.sum()),
        "mAP": float(np.mean(np.asarray(aps)[shared])), "other_mAP": float(np.mean(theirs[shared])),
        "better": int((delta[shared] > eps).sum()), "worse": int((delta[shared] < -eps).sum()),
        "same": int((np.abs(delta[shared]) <= eps).sum()),
        "largest_losses": [row(i) for i in order[:listed] if delta[i] < -eps],
        "largest_gains": [row(i) for i in order[::-1][:listed] if delta[i] > eps],
    }
    return delta, summary


def entry(i: int, query_fids: Names, query_pids: Names, query_cameras: Names | None,
          gallery_fids: Names, gallery_pids: Names, gallery_cameras: Names | None, aps: np.ndarray,
          first_rank: np.ndarray, indices: np.ndarray, distances: np.ndarray, status: np.ndarray,
          delta: np.ndarray | None, query_thumbs: Sequence[str | None],
          gallery_thumbs: dict[int, str | None]) -> list[Any]:
    """One query of a page: `[index, path, pid, camera, AP, rank of the first true match (1-based), AP
    difference, thumbnail, gallery]`, where gallery lists `[path, pid, camera, distance, status, thumbnail]`
    (status 1 match, 0 miss, -1 ignored) best first; None where unknown."""
    gallery = []
    for j, d, s in zip(indices[i], distances[i], status[i]):
        if j < 0:
            break
        gallery.append([str(gallery_fids[j]), str(gallery_pids[j]),
                        None if gallery_cameras is None else str(gallery_cameras[j]),
                        _number(d), int(s), gallery_thumbs.get(int(j))])
    return [int(i), str(query_fids[i]), str(query_pids[i]),
            None if query_cameras is None else str(query_cameras[i]), _number(aps[i]),
            int(first_rank[i]) + 1 if first_rank[i] >= 0 else None,
            None if delta is None else _number(delta[i]), query_thumbs[i], gallery]


#: The first and last part of a page file: `trinetPage(N, [...]);`.
PAGE_PREFIX, PAGE_SUFFIX = "trinetPage(", ");\n"
QUERIES_PREFIX = "trinetQueries("


def script_text(prefix: str, number: int | None, data: Any) -> str:
    """A data file of the report: a call of the page's function with JSON (scripts load from file://,
    where fetching JSON is refused)."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return f"{prefix}{'' if number is None else f'{number}, '}{body}{PAGE_SUFFIX}"


def read_script(text: str) -> tuple[int | None, Any]:
    """The `(page number, data)` of a data file written by `script_text` (for tests and tools)."""
    for prefix in (PAGE_PREFIX, QUERIES_PREFIX):
        if text.startswith(prefix) and text.endswith(PAGE_SUFFIX):
            body = text[len(prefix):-len(PAGE_SUFFIX)]
            if prefix == PAGE_PREFIX:
                number, _, body = body.partition(", ")
                return int(number), json.loads(body)
            return None, json.loads(body)
    raise ValueError("not a data file of a trinet report")
