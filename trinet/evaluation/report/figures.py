"""The report's plots, PNG files drawn with matplotlib (imported when used): the AP histogram, the
distances of true and false matches, the ROC and the AP differences of a comparison. The CMC curve is
`trinet.evaluation.plots.plot_cmc`'s."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from contextlib import contextmanager


@contextmanager
def _figure(path: str, size: tuple[float, float] = (5, 3.6)) -> Iterator[Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    yield axes
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png")


def ap_histogram(path: str, aps: np.ndarray) -> None:
    """The histogram of the evaluated queries' AP (in %), 20 bins."""
    aps = np.asarray(aps, dtype=np.float64)
    aps = aps[~np.isnan(aps)]
    with _figure(path) as axes:
        axes.hist(100 * aps, bins=np.linspace(0, 100, 21), color="#4878a8", edgecolor="white")
        axes.set_xlabel("average precision (%)")
        axes.set_ylabel("queries")
        axes.set_title(f"AP of {len(aps)} queries (mean {100 * aps.mean():.1f}%)" if len(aps) else "AP")


def distance_histograms(path: str, histograms: dict[str, Any], threshold: float | None = None) -> None:
    """The true-match and false-match distance histograms of `verification.histograms`, as fractions of
    each kind, their overlap shaded, and the recommended threshold."""
    edges = np.asarray(histograms["edges"])
    centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    pos, neg = np.asarray(histograms["positive"]), np.asarray(histograms["negative"])
    with _figure(path) as axes:
        axes.bar(centres, pos, width, color="#2ca02c", alpha=0.55, label="true matches")
        axes.bar(centres, neg, width, color="#d62728", alpha=0.55, label="false matches")
        axes.bar(centres, np.minimum(pos, neg), width, color="none", edgecolor="black", hatch="//",
                 linewidth=0, label=f"overlap {100 * histograms['overlap']:.1f}%")
        if threshold is not None:
            axes.axvline(threshold, color="black", linestyle="--", linewidth=1,
                         label=f"threshold {threshold:.3g}")
        axes.set_xlabel("distance")
        axes.set_ylabel("fraction of the pairs")
        axes.set_title("Distances of true and false matches")
        axes.legend(fontsize=8)


def roc_curve(path: str, roc: dict[str, Any], eer: float) -> None:
    """TAR against FAR (log axis) of the `verification.roc` points."""
    far, tar = np.asarray(roc["far"]), np.asarray(roc["tar"])
    keep = far > 0
    with _figure(path) as axes:
        axes.plot(far[keep], 100 * tar[keep], color="#4878a8")
        axes.set_xscale("log")
        axes.set_xlabel("false accept rate")
        axes.set_ylabel("true accept rate (%)")
        axes.set_title(f"ROC (EER {100 * eer:.2f}%)")


def delta_histogram(path: str, delta: np.ndarray, other: str) -> None:
    """The histogram of the per-query AP differences (this run - `other`), in points of %."""
    delta = np.asarray(delta, dtype=np.float64)
    delta = delta[~np.isnan(delta)]
    with _figure(path) as axes:
        axes.hist(100 * delta, bins=np.linspace(-100, 100, 41), color="#8c6bb1", edgecolor="white")
        axes.set_yscale("log")
        axes.set_xlabel(f"AP difference (points): this run - {other}")
        axes.set_ylabel("queries")
        axes.set_title(f"{int((delta > 1e-9).sum())} better, {int((delta < -1e-9).sum())} worse")
