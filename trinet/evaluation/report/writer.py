"""Writes the report folder of `evaluate.py --report DIR`.

    DIR/index.html           summary, settings, plots, camera table, comparison; the rank-list viewer
    DIR/data/page_NNNNN.js   the rank lists of one page of queries (worst AP first)
    DIR/data/queries.js      every listed query's file name, AP and page (loaded by the search box)
    DIR/data/report.json     the report's data for tools: the order, the camera table, the histograms
    DIR/plots/*.png          CMC, AP histogram, distance histograms, ROC, AP differences
    DIR/thumbs/q, thumbs/g   thumbnails of the queries and of the gallery images shown

`index.html` is written last: a folder with it is complete. Opening it needs no server.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Any, Callable
from urllib.parse import quote

import numpy as np

from trinet.core.errors import TrinetError
from trinet.core.progress import Progress
from trinet.data.datasets import Dataset, image_path
from trinet.evaluation.metrics import Results
from trinet.evaluation.report import content, figures, page
from trinet.evaluation.report.collect import CameraTable, RankLists
from trinet.evaluation.report.thumbnails import write_thumbnails

#: Queries per page of the rank-list viewer.
DEFAULT_PAGE_SIZE = 50

#: Gallery entries shown per query.
DEFAULT_TOP_K = 10

#: What a report folder holds (replaced when a report is written again).
PARTS = ("index.html", "data", "plots", "thumbs")


@dataclasses.dataclass
class ReportData:
    """What an evaluation hands to `write_report`.

    Attributes:
        results: the metrics; query, gallery: the datasets; lists: the collected rank lists.
        query_cameras, gallery_cameras: `(Q,)` and `(G,)` camera numbers, or None (excluders without).
        cameras: the camera x camera collector, or None.
        verification: the `verification` section of the results JSON, or None.
        settings: what was evaluated, how; summary: the printed summary lines.
    """

    results: Results
    query: Dataset
    gallery: Dataset
    lists: RankLists
    settings: dict[str, Any]
    summary: str
    query_cameras: np.ndarray | None = None
    gallery_cameras: np.ndarray | None = None
    cameras: CameraTable | None = None
    verification: dict[str, Any] | None = None


def prepare_folder(directory: str) -> None:
    """Make `directory` ready for a report: new, empty, or an older report (whose parts are removed).
    TrinetError for a folder holding anything else, which is never touched."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise TrinetError(f"--report {directory} is a file; expected a folder (new, empty or an older "
                          "report)")
    if os.path.isdir(directory) and os.listdir(directory):
        index = os.path.join(directory, "index.html")
        is_report = False
        if os.path.isfile(index):
            with open(index, encoding="utf-8", errors="replace") as f:
                is_report = page.GENERATOR in f.read(4096)
        if not is_report:
            raise TrinetError(f"--report {directory} holds files but no trinet report: choose a new or empty "
                              "folder (an older report there would be replaced)")
        for part in PARTS:
            path = os.path.join(directory, part)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    os.makedirs(os.path.join(directory, "data"), exist_ok=True)
    os.makedirs(os.path.join(directory, "plots"), exist_ok=True)


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _percent(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.2f}%"


def _thumbnails(directory: str, data: ReportData, image_root: str | None,
                quiet: bool) -> tuple[list[str | None], dict[int, str | None], int]:
    """The thumbnails of every query and of the gallery entries shown; `(query thumbs, gallery thumbs by
    index, number missing)`."""
    num_queries = len(data.query)
    if image_root is None:
        return [None] * num_queries, {}, 0
    shown = np.unique(data.lists.indices[data.lists.indices >= 0])
    jobs = [(image_path(image_root, str(f)), f"thumbs/q/{i:06d}") for i, f in enumerate(data.query.fids)]
    jobs += [(image_path(image_root, str(data.gallery.fids[j])), f"thumbs/g/{j:06d}") for j in shown]
    with Progress(len(jobs), "Report: thumbnails", "images", quiet=quiet) as progress:
        written = write_thumbnails(directory, jobs, progress.update)
    missing = sum(w is None for w in written)
    return written[:num_queries], dict(zip(shown.tolist(), written[num_queries:])), missing


def _plots(directory: str, data: ReportData, delta: np.ndarray | None, other: str | None) -> list[str]:
    from trinet.evaluation.plots import plot_cmc

    names = ["plots/cmc.png", "plots/ap_histogram.png"]
    plot_cmc(os.path.join(directory, names[0]), data.results.cmc, label=f"mAP {data.results.mean_ap:.1%}")
    figures.ap_histogram(os.path.join(directory, names[1]), data.results.aps)
    if data.verification is not None:
        names += ["plots/distances.png", "plots/roc.png"]
        figures.distance_histograms(os.path.join(directory, names[2]), data.verification["histograms"],
                                    data.verification["recommended_threshold"])
        figures.roc_curve(os.path.join(directory, names[3]), data.verification["roc"],
                          data.verification["eer"])
    if delta is not None and other is not None:
        names.append("plots/ap_differences.png")
        figures.delta_histogram(os.path.join(directory, names[-1]), delta, os.path.basename(other))
    return names


def _summary_section(data: ReportData) -> str:
    r = data.results
    rows = [("mAP", _percent(r.mean_ap)), ("mINP", _percent(r.mean_inp)),
            *((f"top-{k}", _percent(r.top(k))) for k in (1, 5, 10)),
            ("queries evaluated", f"{r.num_evaluated} of {r.num_queries} ({r.num_skipped} without a valid "
                                  "match)"),
            ("gallery images", str(len(data.gallery))),
            ("AP", "Market-1501" if r.market_ap else "scikit-learn"), ("CMC protocol", r.cmc_protocol)]
    settings = [(k, json.dumps(v) if not isinstance(v, str) else v) for k, v in data.settings.items()]
    return ("<h2>Summary</h2>" + page.table(["metric", "value"], rows)
            + "<h2>Settings</h2>" + page.table(["setting", "value"], settings, text_columns=2))


def _verification_section(section: dict[str, Any]) -> str:
    rows = [(f"TAR at FAR {label}", _percent(v["tar"]),
             "accepts nothing" if v["threshold"] is None else f"{v['threshold']:.4g}",
             "" if v["resolved"] else "fewer negatives than 1/FAR")
            for label, v in section["tar_at_far"].items()]
    rows.append(("EER", _percent(section["eer"]), f"{section['eer_threshold']:.4g}", ""))
    threshold = section["recommended_threshold"]
    rows.append((f"recommended (FAR {section['target_far']:g})", _percent(section["tar_at_target_far"]),
                 "accepts nothing" if threshold is None else f"{threshold:.4g}",
                 "trinet-search --threshold_from"))
    sampled = (f", a uniform sample of {section['sampled_negative_pairs']:,} negatives" if section["sampled"]
               else "")
    return (f"<h2>Verification (distance &le; threshold = same person)</h2><p>"
            f"{section['num_positive_pairs']:,} positive and {section['num_negative_pairs']:,} negative kept "
            f"pairs{page.esc(sampled)}; overlap of the distance histograms: "
            f"{100 * section['histograms']['overlap']:.1f}%.</p>"
            + page.table(["", "TAR", "threshold", "note"], rows))


def _camera_section(table: dict[str, Any]) -> str:
    header = ["query camera \\ gallery camera"] + [f"c{c}" for c in table["gallery_cameras"]]
    rows = []
    for a, r1s, maps, counts in zip(table["query_cameras"], table["rank1"], table["mAP"], table["queries"]):
        rows.append([f"c{a}"] + ["-" if m is None else f"{100 * r:.1f} / {100 * m:.1f} ({n})"
                                 for r, m, n in zip(r1s, maps, counts)])
    return ("<h2>Cameras</h2><p>Rank-1 / mAP (%) of the queries of each camera against the gallery of each "
            "camera alone (queries with a valid match there); - where none has one.</p>"
            + page.table(header, rows))


def _compare_section(summary: dict[str, Any], page_of: dict[str, int]) -> str:
    def link(query: str) -> str:  # the query's card on its page; the page's script decodes the address
        return f"#page={page_of[query]}&q={quote(query, safe='')}"

    def rows(items: list[dict[str, Any]]) -> str:
        body = "".join(
            f'<tr><td class=text><a href="{page.esc(link(x["query"]))}">'
            f'{page.esc(x["query"])}</a></td><td>{_percent(x["other_ap"])}</td><td>{_percent(x["ap"])}</td>'
            f'<td>{100 * x["delta"]:+.1f}</td></tr>' for x in items)
        return ("<table><tr><th class=text>query</th><th>other AP</th><th>AP</th><th>&Delta;</th></tr>"
                f"{body}</table>")

    return (f"<h2>Compared with {page.esc(summary['path'])}</h2><p>{summary['shared_queries']} shared "
            f"queries: mAP {_percent(summary['other_mAP'])} there, {_percent(summary['mAP'])} here; "
            f"<span class=good>{summary['better']} better</span>, <span class=bad>{summary['worse']} worse"
            f"</span>, {summary['same']} unchanged.</p><h3>Largest losses (broken)</h3>"
            f"{rows(summary['largest_losses'])}<h3>Largest gains (fixed)</h3>"
            f"{rows(summary['largest_gains'])}")


def write_report(directory: str, data: ReportData, *, image_root: str | None = None,
                 compare_with: str | None = None, page_size: int = DEFAULT_PAGE_SIZE, quiet: bool = False,
                 log: Callable[[str], None] | None = None) -> str:
    """Write the report folder; returns the path of its `index.html`.

    Args:
        image_root: the folder the CSV paths are relative to (None: no thumbnails, file names shown).
        compare_with: another evaluate.py results JSON: per-query AP differences.
        log: called with notes for the user (missing images).
    """
    prepare_folder(directory)
    results = data.results
    order = content.worst_first(results.aps)
    chunks = content.pages(order, page_size)
    page_of = {str(data.query.fids[i]): n for n, chunk in enumerate(chunks, start=1) for i in chunk}
    delta, comparison = None, None
    if compare_with is not None:
        other_aps, other = content.read_other_aps(compare_with)
        delta, comparison = content.compare(data.query.fids, results.aps, other_aps, other)
    query_thumbs, gallery_thumbs, missing = _thumbnails(directory, data, image_root, quiet)
    if missing and log is not None:
        log(f"{missing} images are missing or unreadable and are shown as placeholders (check --image_root)")
    lists = data.lists
    for n, chunk in enumerate(chunks, start=1):
        entries = [content.entry(int(i), data.query.fids, data.query.pids, data.query_cameras,
                                 data.gallery.fids, data.gallery.pids, data.gallery_cameras, results.aps,
                                 results.first_rank, lists.indices, lists.distances, lists.status, delta,
                                 query_thumbs, gallery_thumbs) for i in chunk]
        _write(os.path.join(directory, "data", f"page_{n:05d}.js"),
               content.script_text(content.PAGE_PREFIX, n, entries))
    names = [[str(data.query.fids[i]), None if np.isnan(results.aps[i]) else round(float(results.aps[i]), 6),
              page_of[str(data.query.fids[i])]] for i in order]
    _write(os.path.join(directory, "data", "queries.js"),
           content.script_text(content.QUERIES_PREFIX, None, names))
    plots = _plots(directory, data, delta, compare_with)
    camera_table = data.cameras.table() if data.cameras is not None else None
    sections = [_summary_section(data)]
    sections.append('<h2>Plots</h2><div class="plots">'
                    + "".join(f'<img src="{p}" alt="{p}">' for p in plots) + "</div>")
    if data.verification is not None:
        sections.append(_verification_section(data.verification))
    if camera_table is not None:
        sections.append(_camera_section(camera_table))
    if comparison is not None:
        sections.append(_compare_section(comparison, page_of))
    report = {"order": order.tolist(), "pages": len(chunks), "page_size": page_size, "top_k": lists.k,
              "camera_table": camera_table, "comparison": comparison,
              "histograms": None if data.verification is None else data.verification["histograms"],
              "plots": plots, "missing_images": missing}
    _write(os.path.join(directory, "data", "report.json"), json.dumps(report, ensure_ascii=False))
    title = f"trinet evaluation: {os.path.basename(str(data.settings.get('query_dataset', 'queries')))}"
    config = {"pages": len(chunks), "page_size": page_size, "num_listed": len(order),
              "thumbnails": image_root is not None}
    index = os.path.join(directory, "index.html")
    _write(index, page.document(title, sections, config))
    return index
