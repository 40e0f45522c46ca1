"""The report's `index.html`: the static sections written here, and the inline script that shows the rank
lists a page at a time (`#page=N`, `#page=N&q=PATH`; `&view=lists` hides the sections above them) and
searches the query file names (`#search=TEXT`).
No network: the styles and the script are inline, the data files and pictures local."""

from __future__ import annotations

import html
import json
from typing import Any, Sequence

#: Marks a folder as a trinet report (a report folder may be written again).
GENERATOR = "trinet evaluation report"

STYLE = """
body{font-family:system-ui,sans-serif;margin:0 1.5em 2em;color:#222;background:#fafafa}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.9em;margin:.4em 0}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}th{background:#eee}
td.text,th.text{text-align:left}
.plots img{max-width:32%;min-width:300px;margin:.2em;border:1px solid #ddd;background:#fff}
#nav{position:sticky;top:0;background:#fafafa;padding:.4em 0;border-bottom:1px solid #ccc;z-index:2}
#nav button{margin-right:.3em}#nav input{width:20em}
.card{background:#fff;border:1px solid #ddd;margin:.5em 0;padding:.4em}
.card.focus{outline:3px solid #fc0}
.head{font-size:.85em;margin-bottom:.3em}.head b{font-family:monospace}
.row{display:flex;flex-wrap:nowrap;overflow-x:auto;gap:4px;align-items:flex-start}
figure{margin:0;border:4px solid #999;width:72px;flex:none;background:#eee}
figure.query{border-color:#333;margin-right:10px}figure.match{border-color:#1a9a1a}
figure.miss{border-color:#d62728}figure.ignored{border-color:#aaa;opacity:.6}
figure img{display:block;width:72px;height:144px;object-fit:contain;background:#ddd}
figure .none{width:72px;height:144px;display:flex;align-items:center;justify-content:center;
font-size:.7em;color:#666;text-align:center;overflow:hidden;word-break:break-all}
figcaption{font-size:.65em;line-height:1.2;padding:1px;background:#fff;word-break:break-all}
.good{color:#1a7a1a}.bad{color:#c02020}#errors{color:#c00}
"""

SCRIPT = r"""
(function () {
  var R = window.TRINET_REPORT, loaded = {}, wanted = null, queries = null, needle = null;
  function $(id) { return document.getElementById(id); }
  function params() {
    var out = {};
    location.hash.replace(/^#/, '').split('&').forEach(function (kv) {
      if (!kv) return;
      var i = kv.indexOf('=');
      out[decodeURIComponent(i < 0 ? kv : kv.slice(0, i))] = i < 0 ? '' : decodeURIComponent(kv.slice(i + 1));
    });
    return out;
  }
  function load(src) {
    var s = document.createElement('script');
    s.src = src;
    document.head.appendChild(s);
  }
  function pad(n) { return ('0000' + n).slice(-5); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function pct(v) { return v === null ? 'n/a' : (100 * v).toFixed(1) + '%'; }
  function tile(kind, thumb, path, lines) {
    var f = el('figure', kind);
    if (thumb) {
      var img = el('img');
      img.loading = 'lazy';
      img.alt = path;
      img.src = thumb;
      img.onerror = function () { img.replaceWith(el('div', 'none', 'unreadable')); };
      f.appendChild(img);
    } else {
      f.appendChild(el('div', 'none', R.thumbnails ? 'missing' : path.split('/').pop()));
    }
    var cap = el('figcaption');
    lines.forEach(function (line, k) {
      if (k) cap.appendChild(el('br'));
      cap.appendChild(document.createTextNode(line));
    });
    f.title = path;
    f.appendChild(cap);
    return f;
  }
  var KIND = {'1': 'match', '0': 'miss', '-1': 'ignored'};
  function card(q, position) {
    var c = el('div', 'card');
    c.id = 'q-' + q[0];
    c.setAttribute('data-query', q[1]);
    c.setAttribute('data-ap', q[4] === null ? '' : q[4]);
    var head = el('div', 'head');
    head.appendChild(document.createTextNode('#' + position + ' '));
    head.appendChild(el('b', null, q[1]));
    var text = ' \u00b7 person ' + q[2] + (q[3] === null ? '' : ' \u00b7 camera ' + q[3]) +
      ' \u00b7 AP ' + pct(q[4]) +
      ' \u00b7 ' + (q[5] === null ? 'no valid match (skipped)' : 'first true match at rank ' + q[5]);
    head.appendChild(document.createTextNode(text));
    if (q[6] !== null && q[6] !== undefined) {
      head.appendChild(el('span', q[6] > 0 ? 'good' : q[6] < 0 ? 'bad' : null,
        ' \u00b7 \u0394AP ' + (q[6] > 0 ? '+' : '') + (100 * q[6]).toFixed(1) + ' points'));
    }
    c.appendChild(head);
    var row = el('div', 'row');
    var about = ['query', 'person ' + q[2]].concat(q[3] === null ? [] : ['cam ' + q[3]]);
    row.appendChild(tile('query', q[7], q[1], about));
    var rank = 0;
    q[8].forEach(function (g) {
      var ignored = g[4] === -1;
      if (!ignored) rank += 1;
      row.appendChild(tile(KIND[String(g[4])], g[5], g[0],
        [(ignored ? 'ignored' : rank) + ': ' + (g[3] === null ? '' : g[3].toPrecision(3)),
         'person ' + g[1] + (g[2] === null ? '' : ' c' + g[2])]));
    });
    c.appendChild(row);
    return c;
  }
  function status(text) { $('status').textContent = text; }
  function render(n) {
    var list = $('lists'), entries = loaded[n], p = params();
    list.innerHTML = '';
    $('search-results').innerHTML = '';
    entries.forEach(function (q, k) { list.appendChild(card(q, (n - 1) * R.page_size + k + 1)); });
    list.setAttribute('data-page', n);
    $('pageinfo').textContent = 'page ' + n + ' of ' + R.pages;
    status(R.num_listed + ' queries, worst AP first, ' + R.page_size + ' a page');
    if (p.q) {
      var target = null;
      Array.prototype.forEach.call(list.children, function (c) {
        if (c.getAttribute('data-query') === p.q) target = c;
      });
      if (target) { target.classList.add('focus'); target.scrollIntoView(); }
    }
  }
  function searchNow() {
    var box = $('search-results'), text = needle.toLowerCase(), found = [];
    box.innerHTML = '';
    $('lists').innerHTML = '';
    $('lists').removeAttribute('data-page');
    for (var i = 0; i < queries.length && found.length < 200; i++) {
      if (queries[i][0].toLowerCase().indexOf(text) >= 0) found.push(queries[i]);
    }
    var count = 0;
    for (var j = 0; j < queries.length; j++) if (queries[j][0].toLowerCase().indexOf(text) >= 0) count++;
    var more = count > found.length ? ' (the first ' + found.length + ' shown)' : '';
    status(count + ' queries match \u201c' + needle + '\u201d' + more);
    found.forEach(function (q) {
      var li = el('li'), a = el('a', null, q[0]);
      a.href = '#page=' + q[2] + '&q=' + encodeURIComponent(q[0]);
      li.appendChild(a);
      li.appendChild(document.createTextNode(' AP ' + pct(q[1]) + ', page ' + q[2]));
      box.appendChild(li);
    });
  }
  window.trinetPage = function (n, entries) { loaded[n] = entries; if (wanted === n) render(n); };
  window.trinetQueries = function (rows) { queries = rows; if (needle !== null) searchNow(); };
  function show() {
    var p = params();
    if (p.search !== undefined) {
      needle = p.search;
      $('search').value = needle;
      wanted = null;
      if (queries) searchNow(); else { status('Loading the query names\u2026'); load('data/queries.js'); }
      return;
    }
    needle = null;
    $('static').style.display = p.view === 'lists' ? 'none' : '';
    var n = parseInt(p.page || '1', 10);
    if (!(n >= 1 && n <= R.pages)) n = 1;
    wanted = n;
    if (loaded[n]) {
      render(n);
    } else {
      status('Loading page ' + n + '\u2026');
      load('data/page_' + pad(n) + '.js');
    }
  }
  function go(step) {
    var list = $('lists'), n = parseInt(list.getAttribute('data-page') || '1', 10) + step;
    if (n >= 1 && n <= R.pages) location.hash = 'page=' + n;
  }
  $('prev').onclick = function () { go(-1); };
  $('next').onclick = function () { go(1); };
  $('first').onclick = function () { location.hash = 'page=1'; };
  $('last').onclick = function () { location.hash = 'page=' + R.pages; };
  $('searchform').onsubmit = function (e) {
    e.preventDefault();
    location.hash = 'search=' + encodeURIComponent($('search').value);
  };
  window.addEventListener('hashchange', show);
  show();
})();
"""

#: Records script errors (not missing thumbnails, which show a placeholder) where a test can read them.
ERRORS = r"""
window.TRINET_ERRORS = [];
window.addEventListener('error', function (e) {
  if (e.target && e.target.tagName === 'IMG') return;
  var what = e.message || (e.target && (e.target.src || e.target.href)) || String(e);
  window.TRINET_ERRORS.push(what);
  var box = document.getElementById('errors');
  if (box) box.textContent = window.TRINET_ERRORS.join('\n');
}, true);
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], text_columns: int = 1) -> str:
    """An HTML table; the first `text_columns` columns left-aligned."""
    def cells(values: Sequence[Any], tag: str) -> str:
        return "".join(f"<{tag}{' class=text' if k < text_columns else ''}>{esc(v)}</{tag}>"
                       for k, v in enumerate(values))
    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    return f"<table><tr>{cells(header, 'th')}</tr>{body}</table>"


def document(title: str, sections: Sequence[str], config: dict[str, Any]) -> str:
    """The whole `index.html`: the static `sections` (HTML), then the rank-list viewer configured by
    `config` (`pages`, `page_size`, `num_listed`, `thumbnails`)."""
    data = json.dumps(config, separators=(",", ":")).replace("</", "<\\/")
    viewer = (
        '<h2 id="ranklists">Rank lists, worst AP first</h2>'
        '<div id="nav"><button id="first">&laquo; first</button><button id="prev">&lsaquo; previous</button>'
        '<span id="pageinfo"></span> <button id="next">next &rsaquo;</button><button id="last">last &raquo;'
        '</button> <form id="searchform" style="display:inline"><input id="search" type="search" '
        'placeholder="query file name (part of it)"> <button type="submit">search</button></form> '
        '<span id="status"></span></div><ul id="search-results"></ul><div id="lists"></div>'
        '<pre id="errors"></pre>')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="generator" content="{GENERATOR}"><title>{esc(title)}</title>'
            f'<script>{ERRORS}</script><style>{STYLE}</style></head><body>'
            f'<h1>{esc(title)}</h1><div id="static">{"".join(sections)}</div>{viewer}'
            f'<script>window.TRINET_REPORT = {data};</script><script>{SCRIPT}</script></body></html>\n')
