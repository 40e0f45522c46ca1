"""The report in a real headless Chromium: it loads without a console error, the first rank list is the
worst query, paging and the search box work, and a screenshot is saved."""

import json
import os
import re
from urllib.parse import quote

import numpy as np
import pytest

from headless import dump_dom, find_chromium, screenshot
from trinet.cli.evaluate import main
from trinet.data.embeddings.hdf5 import write_embeddings

BROWSER = find_chromium()
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium on PATH (install Debian's: apt-get install chromium "
                            "chromium-driver, as .ci/run does; or set $CHROMIUM)")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report of 90 queries of 30 persons (Market-1501 names, coloured images), 15 a page."""
    import cv2

    root = tmp_path_factory.mktemp("browser")
    rng = np.random.default_rng(0)
    centres = 2.0 * rng.standard_normal((31, 16))
    splits = {"query": [(int(rng.integers(1, 31)), int(rng.integers(1, 4))) for _ in range(90)],
              "bounding_box_test": [(p, c) for p in range(1, 31) for c in (1, 2, 3) for _ in range(2)]}
    args = []
    for folder, rows in splits.items():
        (root / "images" / folder).mkdir(parents=True)
        first = 0 if folder == "query" else 1000
        fids = [f"{folder}/{p:04d}_c{c}s1_{first + i:06d}_01.jpg" for i, (p, c) in enumerate(rows)]
        pids = [f"{p:04d}" for p, _ in rows]
        for fid, (p, c) in zip(fids, rows):
            colour = (p * 37 % 255, 60 * c, 120)
            cv2.imwrite(str(root / "images" / fid), np.full((64, 32, 3), colour, np.uint8))
        (root / f"{folder}.csv").write_text("".join(f"{p},{f}\n" for p, f in zip(pids, fids)))
        write_embeddings(str(root / f"{folder}.h5"), np.array(
            [centres[p] + 1.3 * rng.standard_normal(16) for p, _ in rows], np.float32), pids=pids, fids=fids)
        role = "query" if folder == "query" else "gallery"
        args += [f"--{role}_dataset", str(root / f"{folder}.csv"), f"--{role}_embeddings",
                 str(root / f"{folder}.h5")]
    out = root / "report"
    assert main(["--excluder", "market1501", *args, "--report", str(out), "--image_root",
                 str(root / "images"), "--report_page_size", "15", "--quiet"]) == 0
    return out


def url(report, fragment=""):
    return "file://" + quote(str(report / "index.html")) + (f"#{fragment}" if fragment else "")


def cards(dom):
    return re.findall(r'<div class="card[^"]*" id="q-(\d+)" data-query="([^"]+)" data-ap="([^"]*)"', dom)


def errors_box(dom):
    return re.search(r'<pre id="errors">(.*?)</pre>', dom, re.S).group(1)


def test_first_page_loads_without_errors_and_shows_the_worst_query_first(report):
    dom, console, seconds = dump_dom(BROWSER, url(report))
    assert console == [] and errors_box(dom) == ""
    order = json.loads((report / "data" / "report.json").read_text())["order"]
    shown = cards(dom)
    assert len(shown) == 15
    assert [int(i) for i, _, _ in shown] == order[:15]
    aps = [float(ap) for _, _, ap in shown]
    assert aps == sorted(aps) and aps[0] < 1  # worst first
    assert 'data-page="1"' in dom and "page 1 of 6" in dom
    assert dom.count('loading="lazy"') >= 15 * 11  # the query and its 10 gallery images, each card
    assert seconds < 30  # browser start included; the page itself is a fraction of that


def test_paging_by_the_address(report):
    order = json.loads((report / "data" / "report.json").read_text())["order"]
    dom, console, _ = dump_dom(BROWSER, url(report, "page=3"))
    assert console == [] and 'data-page="3"' in dom and "page 3 of 6" in dom
    assert [int(i) for i, _, _ in cards(dom)] == order[30:45]
    dom, _, _ = dump_dom(BROWSER, url(report, "page=6"))
    assert [int(i) for i, _, _ in cards(dom)] == order[75:90]
    dom, _, _ = dump_dom(BROWSER, url(report, "page=99"))  # out of range: the first page
    assert 'data-page="1"' in dom and '<div id="static">' in dom
    dom, _, _ = dump_dom(BROWSER, url(report, "page=2&view=lists"))  # the rank lists alone
    assert 'data-page="2"' in dom and '<div id="static" style="display: none;">' in dom


def test_the_search_box_finds_queries_and_links_to_their_page(report):
    names = [line.split(",")[1] for line in (report.parent / "query.csv").read_text().splitlines()]
    needle = "_c2s1"
    dom, console, _ = dump_dom(BROWSER, url(report, "search=" + quote(needle)))
    assert console == [] and errors_box(dom) == ""
    expected = sum(needle in n for n in names)
    assert f"{expected} queries match" in dom
    links = re.findall(r'<a href="#page=(\d+)&amp;q=([^"]+)">', dom)
    assert len(links) == expected and expected > 0
    page, name = links[0]
    dom, _, _ = dump_dom(BROWSER, url(report, f"page={page}&q={name}"))
    focused = re.findall(r'<div class="card focus" id="q-\d+" data-query="([^"]+)"', dom)
    assert focused == [name.replace("%2F", "/")]
    dom, _, _ = dump_dom(BROWSER, url(report, "search=no-such-file"))
    assert "0 queries match" in dom


def test_screenshot(report, tmp_path):
    path = tmp_path / "report.png"
    assert screenshot(BROWSER, url(report, "page=1"), str(path)) == []
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000
    saved = os.environ.get("TRINET_SCREENSHOTS")  # keep it: e.g. for the README's picture
    if saved:
        os.makedirs(saved, exist_ok=True)
        os.replace(path, os.path.join(saved, "report.png"))
