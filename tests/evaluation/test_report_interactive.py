"""The report of the demo's data used as a person uses it, in a real headless Chromium driven through the
DevTools protocol: mouse clicks on the page buttons, typing in the search box and Enter, a click on a result.

The report is written by evaluate.py with the flags `experiments/demo.sh` gives it (the market1501
excluder, the images, a re-ranked comparison), on a smaller demo dataset and with raw-pixel embeddings in
place of the trained network (training is not what this tests)."""

import base64
import json
import re
from urllib.parse import quote

import pytest

from headless import DevTools, find_chromium
from trinet.cli.evaluate import main as evaluate
from trinet.demo.folder import generate
from trinet.tools.baselines import main as baselines

BROWSER = find_chromium()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    BROWSER is None, reason="no Chromium on PATH (install Debian's: apt-get install chromium, as .ci/run "
                            "does; or set $CHROMIUM)")]

PAGE_SIZE = 8


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_report")
    data = root / "data"
    generate(str(data), seed=3, train_ids=2, test_ids=24, quiet=True)
    for split in ("query", "test"):
        assert baselines(["--dataset", str(data / f"demo_{split}.csv"), "--image_root", str(data),
                          "--filename", str(root / f"{split}.h5"), "--quiet"]) == 0
    common = ["--excluder", "market1501", "--quiet", "--query_dataset", str(data / "demo_query.csv"),
              "--query_embeddings", str(root / "query.h5"), "--gallery_dataset", str(data / "demo_test.csv"),
              "--gallery_embeddings", str(root / "test.h5")]
    assert evaluate([*common, "--rerank", "--filename", str(root / "reranked.json")]) == 0
    assert evaluate([*common, "--filename", str(root / "plain.json"), "--image_root", str(data),
                     "--report", str(root / "report"), "--report_compare", str(root / "reranked.json"),
                     "--report_page_size", str(PAGE_SIZE)]) == 0
    return root / "report"


def shown(page):
    """`[(query index, file name)]` of the rank lists on screen, and the page the list says it is."""
    cards = page.evaluate("Array.from(document.querySelectorAll('#lists .card')).map("
                          "c => [parseInt(c.id.slice(2), 10), c.getAttribute('data-query')])")
    number = page.evaluate("document.getElementById('lists').getAttribute('data-page')")
    return [tuple(c) for c in cards], number


def test_paging_and_search_by_mouse_and_keyboard(report):
    meta = json.loads((report / "data" / "report.json").read_text())
    order, pages = meta["order"], -(-len(meta["order"]) // PAGE_SIZE)
    assert pages >= 3  # enough queries to page through
    with DevTools(BROWSER) as page:
        page.open("file://" + quote(str(report / "index.html")))
        page.wait_for("document.querySelectorAll('#lists .card').length > 0")
        cards, number = shown(page)
        assert number == "1" and [i for i, _ in cards] == order[:PAGE_SIZE]
        # the first rank list is the worst query of the evaluation's own per-query APs
        evaluation = json.loads((report.parent / "plain.json").read_text())
        aps = {row["query"]: row["ap"] for row in evaluation["aps"]}
        assert aps[cards[0][1]] == min(aps.values())
        assert [aps[name] for _, name in cards] == sorted(aps.values())[:PAGE_SIZE]

        page.click("#next")
        page.wait_for("document.getElementById('lists').getAttribute('data-page') === '2'")
        cards, _ = shown(page)
        assert [i for i, _ in cards] == order[PAGE_SIZE:2 * PAGE_SIZE]
        assert page.evaluate("location.hash") == "#page=2"

        page.click("#last")
        page.wait_for(f"document.getElementById('lists').getAttribute('data-page') === '{pages}'")
        assert [i for i, _ in shown(page)[0]] == order[(pages - 1) * PAGE_SIZE:]
        page.click("#next")  # past the last page: nothing changes
        assert shown(page)[1] == str(pages)
        page.click("#prev")
        page.wait_for(f"document.getElementById('lists').getAttribute('data-page') === '{pages - 1}'")
        page.click("#first")
        page.wait_for("document.getElementById('lists').getAttribute('data-page') === '1'")

        # type part of a query's file name and press Enter
        names = [line.split(",")[1] for line in (report.parent / "data" / "demo_query.csv").read_text()
                 .splitlines()[1:]]
        needle = re.search(r"_c\d", names[len(names) // 2]).group(0)  # a camera
        page.click("#search")
        page.type(needle)
        page.press_enter()
        expected = sum(needle.lower() in name.lower() for name in names)
        status = page.wait_for("(function () { var s = document.getElementById('status').textContent;"
                               " return s.indexOf('queries match') >= 0 ? s : ''; })()")
        assert status.startswith(f"{expected} queries match") and expected > 0
        links = page.evaluate("Array.from(document.querySelectorAll('#search-results a')).map(a => a.href)")
        assert links and all(needle in link for link in links)

        # a click on a result shows its page with that query's rank list marked
        page.click("#search-results li:first-child a")
        target = re.search(r"#page=(\d+)&q=(.+)$", links[0])
        page.wait_for("document.querySelector('#lists .card.focus') !== null")
        focused = page.evaluate("document.querySelector('#lists .card.focus').getAttribute('data-query')")
        assert shown(page)[1] == target.group(1) and focused == target.group(2).replace("%2F", "/")
        assert page.evaluate("window.TRINET_ERRORS") == [] and page.errors == []
        png = base64.b64decode(page.send("Page.captureScreenshot", session=True, format="png")["data"])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        (report / "interactive.png").write_bytes(png)  # what the page showed at the end
