"""The report as one self-contained HTML page: inline CSS, inline script (sorting, filtering), inline SVG and
data: URI thumbnails; nothing is fetched from elsewhere."""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

from imagenets.names import shown_html as escape

from ..engine.metrics import SUMMARY_KEYS
from ..engine.report import OFFICIAL_LISTS
from .charts import bucket_chart, curve_chart, histogram_chart, sorted_iou_chart
from .data import BUCKETS, ClassRow, ReportData
from .pictures import ERRORS, Picture

MEANING = {
    "mIoU": "mean IoU over ids 0..K (other included; absent classes count 0)",
    "mBIoU": "the same on boundary pixels",
    "S": "mIoU of objects covering at most 5% of their image", "MS": "objects of 5-25%",
    "ML": "objects of 25-50%", "L": "objects over 50%",
    "BS": "S on boundary pixels", "BMS": "MS on boundary pixels", "BML": "ML on boundary pixels",
    "BL": "L on boundary pixels",
    "Acc": "images whose most predicted class is in their ground truth",
    "FMeasure": "foreground F-measure (beta\u00b2 = 0.3), averaged over images",
}
DASH, ELLIPSIS = "\u2013", "\u2026"
#: Pictures: the narrowest panel (its caption fits) and the gap between panels, in CSS pixels.
MIN_PANEL, PANEL_GAP = 72, 6
BUCKET_LABELS = {"S": "S \u2264 5%", "MS": "MS \u2264 25%", "ML": "ML \u2264 50%", "L": "L > 50%"}

CSS = """
:root{--fg:#1a202c;--muted:#4a5568;--line:#e2e8f0;--bar:#bee3f8;--accent:#2b6cb0}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);
margin:0;background:#f7fafc}
header{background:#1a365d;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px;font-weight:600}
header .headline{font-size:15px;margin-top:4px;color:#e2e8f0}
header .headline b{color:#fff;font-size:17px}
nav{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--line);padding:6px 24px}
nav a{margin-right:16px;color:var(--accent);text-decoration:none}
main{padding:8px 24px 40px;max-width:1600px}
section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:12px 16px;margin:14px 0}
h2{font-size:17px;margin:2px 0 10px}
h3{font-size:15px;margin:14px 0 6px}
p.note{color:var(--muted);margin:4px 0 8px}
table{border-collapse:collapse}
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.chart{width:640px;max-width:100%;flex:1 1 500px;height:auto;background:#fff;font:11px system-ui,"DejaVu Sans",sans-serif}
.chart text{fill:#2d3748}.chart .title{font-size:13px;font-weight:600}
.chart .name{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
.chart .grid{stroke:#edf2f7}.chart .axis{stroke:#4a5568}.chart .leader{stroke:#a0aec0}
.chart .ci{stroke:#222;stroke-width:1.3;fill:none}
.scroll{max-height:640px;overflow:auto;border:1px solid var(--line)}
#classes thead th{position:sticky;top:0;background:#edf2f7;z-index:1}
th[data-type]{cursor:pointer;user-select:none;white-space:nowrap}
th[data-type]:after{content:" \\2195";color:#a0aec0}
th[aria-sort=ascending]:after{content:" \\2191";color:var(--fg)}
th[aria-sort=descending]:after{content:" \\2193";color:var(--fg)}
td.bar{background:linear-gradient(90deg,var(--bar) calc(var(--v)*1%),transparent 0)}
td.small{font-size:12px;color:var(--muted);min-width:260px;max-width:440px}
#class-table{font-size:13px}#class-table td,#class-table th{padding:3px 6px}
#class-table td:nth-child(2){white-space:nowrap}
input[type=search]{padding:4px 8px;width:280px;margin-bottom:6px}
.pics{display:flex;flex-wrap:wrap;gap:12px}
figure.pic{margin:0;border:1px solid var(--line);border-radius:6px;padding:8px;max-width:100%;background:#fff}
figure.pic figcaption{font-size:13px;margin-bottom:6px;overflow-wrap:anywhere}
.panels{display:flex;flex-wrap:wrap;gap:6px}
.panel{display:flex;flex-direction:column;font-size:12px;color:var(--muted);min-width:72px}
.panel img{border:1px solid var(--line)}.panel img.mask{image-rendering:pixelated}
ul.legend{list-style:none;padding:0;margin:6px 0 0;display:flex;flex-wrap:wrap;gap:2px 14px;font-size:12px}
ul.legend i{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px;
border:1px solid #718096}
i.hatch{background:repeating-linear-gradient(45deg,#fff 0 3px,#969696 3px 6px)}
dl.ctx{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;margin:0}
dl.ctx dt{color:var(--muted)}dl.ctx dd{margin:0;overflow-wrap:anywhere}
.ok{color:#2f855a}.bad{color:#c53030}
"""

SCRIPT = """
(function(){
  function value(cell, type){
    var raw = cell.hasAttribute('data-s') ? cell.getAttribute('data-s') : cell.textContent;
    if (type === 'num') { var v = parseFloat(raw); return isNaN(v) ? -Infinity : v; }
    return raw.toLowerCase();
  }
  function sortBy(th){
    var table = th.closest('table'), body = table.tBodies[0], col = th.cellIndex, type = th.dataset.type;
    var dir = th.getAttribute('aria-sort') === 'descending' ? 'ascending'
            : th.getAttribute('aria-sort') === 'ascending' ? 'descending'
            : (type === 'num' ? 'descending' : 'ascending');
    table.querySelectorAll('th[aria-sort]').forEach(function(h){ h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir);
    var sign = dir === 'ascending' ? 1 : -1;
    var rows = Array.prototype.slice.call(body.rows).map(function(r, i){
      return {row: r, key: value(r.cells[col], type), i: i}; });
    rows.sort(function(a, b){
      if (a.key < b.key) return -sign; if (a.key > b.key) return sign; return a.i - b.i; });
    var frag = document.createDocumentFragment();
    rows.forEach(function(r){ frag.appendChild(r.row); });
    body.appendChild(frag);
  }
  document.querySelectorAll('table.sortable th[data-type]').forEach(function(th){
    th.tabIndex = 0;
    th.addEventListener('click', function(){ sortBy(th); });
    th.addEventListener('keydown', function(e){ if (e.key === 'Enter') sortBy(th); });
  });
  var filter = document.getElementById('class-filter');
  if (filter) filter.addEventListener('input', function(){
    var q = filter.value.toLowerCase();
    document.querySelectorAll('#class-table tbody tr').forEach(function(r){
      r.hidden = q && r.textContent.toLowerCase().indexOf(q) < 0; });
  });
})();
"""


def _num(value: Optional[float], digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _cell(value: Optional[float], digits: int = 1, bar: bool = False) -> str:
    if value is None or math.isnan(value):
        return '<td class="n" data-s="">\u2013</td>'
    style = f' class="n bar" style="--v:{value:.1f}"' if bar else ' class="n"'
    return f"<td{style}>{value:.{digits}f}</td>"


def _share(value: float) -> str:
    return "0" if value == 0 else (f"{value:.3f}" if value < 0.1 else f"{value:.2f}")


def _percent(share: float) -> str:
    return "&lt;0.1%" if share < 0.05 else f"{share:.1f}%"


def id_label(class_id: int, rows: Sequence[ClassRow], short: bool = True) -> str:
    if class_id >= len(rows):
        return "unmatched / outside 0..K"
    if class_id == 0:
        return "other"
    name = rows[class_id].name
    return f"{class_id} {name[:24] + ELLIPSIS if short and len(name) > 25 else name}"


# ---- sections ---------------------------------------------------------------------------------------

def summary_section(data: ReportData) -> str:
    result = data.result
    ci = result.get("ci95") if isinstance(result.get("ci95"), dict) else None
    boot = result.get("bootstrap") if isinstance(result.get("bootstrap"), dict) else {}
    head = "<tr><th>metric</th><th class=n>value</th>" + ("<th class=n>95% interval</th>" if ci else "") + \
        "<th>what it is</th></tr>"
    rows = []
    for key in SUMMARY_KEYS:
        interval = ""
        if ci:
            bounds = ci.get(key)
            interval = (f"<td class=n>[{_num(bounds[0])}, {_num(bounds[1])}]</td>" if bounds else "<td class=n>\u2013</td>")
        rows.append(f"<tr><th>{key}</th><td class=n>{_num(result.get(key))}</td>{interval}"
                    f"<td>{escape(MEANING[key])}</td></tr>")
    how = ""
    if ci:
        method = boot.get("method") or result.get("ci95_method") or "percentile"
        how = (f"<p class=note>95% intervals from {escape(str(boot.get('resamples', '?')))} bootstrap resamples of "
               f"the images (seed {escape(str(boot.get('seed', '?')))}, method: {escape(str(method))}).</p>")
    else:
        how = "<p class=note>No intervals: evaluate with <code>--bootstrap 1000</code> to get them.</p>"
    classes = [(r.name, r.iou, r.biou) for r in data.classes]
    iou_hist = histogram_chart("How many classes reach each IoU", [
        ("IoU", [r.iou for r in data.classes], "#2b6cb0"),
        ("boundary IoU", [r.biou for r in data.classes], "#dd6b20")], "classes")
    chart = sorted_iou_chart(classes, float(result.get("mIoU") or math.nan))
    return (f'<section id="summary"><h2>Summary</h2><div class="row"><div><table>{head}{"".join(rows)}</table>'
            f"{how}</div>{chart}{iou_hist}</div></section>")


def buckets_section(data: ReportData) -> str:
    result = data.result
    ci = result.get("ci95") if isinstance(result.get("ci95"), dict) else {}
    groups: List[Tuple[str, Optional[float], Optional[float]]] = [
        ("all", result.get("mIoU"), result.get("mBIoU"))]  # type: ignore[list-item]
    intervals = {"all": (ci.get("mIoU"), ci.get("mBIoU"))}
    rows = [f"<tr><th>all pixels</th><td class=n>{_num(result.get('mIoU'))}</td>"
            f"<td class=n>{_num(result.get('mBIoU'))}</td><td class=n>{len(data.classes)}</td><td class=n>\u2013</td></tr>"]
    for b in BUCKETS:
        info = data.buckets.get(b, {})
        groups.append((BUCKET_LABELS[b], info.get("iou"), info.get("biou")))
        intervals[BUCKET_LABELS[b]] = (ci.get(b), ci.get("B" + b))
        objects = info.get("objects")
        rows.append(f"<tr><th>{BUCKET_LABELS[b]}</th><td class=n>{_num(info.get('iou'))}</td>"
                    f"<td class=n>{_num(info.get('biou'))}</td><td class=n>{info.get('classes', DASH)}</td>"
                    f"<td class=n>{DASH if objects is None else f'{objects:,}'}</td></tr>")
    table = ("<table><tr><th>objects</th><th class=n>mIoU</th><th class=n>boundary mIoU</th>"
             "<th class=n>classes</th><th class=n>objects (image \u00d7 class)</th></tr>" + "".join(rows) + "</table>")
    return (f'<section id="sizes"><h2>Size buckets and boundaries</h2><p class=note>An object is a class in one '
            "image, bucketed by its share of the image's scored pixels; a bucket's mIoU averages the classes "
            "with objects there (other counts in every bucket of its image). Boundary numbers count only pixels "
            f"near a GT or predicted edge.</p><div class=row>{bucket_chart(groups, intervals)}<div>{table}</div>"
            "</div></section>")


def classes_section(data: ReportData) -> str:
    rows = data.classes
    has_images = any(r.images is not None for r in rows)
    has_clusters = any(r.clusters is not None for r in rows)
    head = ["<th data-type=num class=n>id</th>", "<th data-type=text>class</th>", "<th data-type=text>wnid</th>",
            "<th data-type=num class=n>IoU</th>", "<th data-type=num class=n>boundary IoU</th>",
            "<th data-type=num class=n title='share of all scored GT pixels'>GT pixels %</th>",
            "<th data-type=num class=n title='share of all scored pixels predicted as this class'>predicted %</th>"]
    head += [f"<th data-type=num class=n title='IoU of its objects in bucket {b}'>{b}</th>" for b in BUCKETS]
    if has_images:
        head.append("<th data-type=num class=n title='validation images whose GT holds it'>images</th>")
    head.append("<th>most often predicted instead (share of its GT pixels)</th>")
    if has_clusters:
        head.append("<th data-type=num title='clusters the match gave it (purity: share of the cluster&#39;s "
                    "scored pixels on this class)'>clusters (purity)</th>")
    body = []
    for r in rows:
        cells = [f"<td class=n>{r.id}</td><td>{escape(r.name)}</td><td>{escape(r.wnid)}</td>",
                 _cell(r.iou, 2, bar=True), _cell(r.biou, 2),
                 f'<td class=n data-s="{r.gt_share!r}">{_share(r.gt_share)}</td>',
                 f'<td class=n data-s="{r.pred_share!r}">{_share(r.pred_share)}</td>']
        cells += [_cell(v, 1) for v in r.buckets]
        if has_images:
            cells.append(f"<td class=n>{'' if r.images is None else r.images}</td>")
        confused = ", ".join(f"{escape(id_label(p, rows))} ({_percent(share)})" for p, share in r.confused)
        cells.append(f"<td class=small>{confused}</td>")
        if has_clusters:
            text = ", ".join(f"{c} ({'n/a' if s is None else f'{s:.0f}%'})" for c, s in r.clusters or [])
            cells.append(f'<td class=small data-s="{len(r.clusters or [])}">{text or ("none" if r.id else "")}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    missing = sum(1 for r in rows[1:] if r.clusters == [])
    cluster_note = (f" The match gives no cluster to {missing} classes (their IoU is 0)." if has_clusters and missing
                    else "")
    return (f'<section id="classes"><h2>Classes</h2><p class=note>Every id, 0 = other. Click a heading to sort '
            f"(again to reverse); type to filter.{cluster_note}</p>"
            '<input type="search" id="class-filter" placeholder="filter: name, wnid or id" aria-label="filter classes">'
            '<div class="scroll"><table id="class-table" class="sortable"><thead><tr>' + "".join(head) +
            "</tr></thead><tbody>" + "".join(body) + "</tbody></table></div></section>")


def confusions_section(data: ReportData) -> str:
    if not data.confusions:
        return ""
    rows = data.classes
    body = "".join(f"<tr><td>{escape(id_label(g, rows, False))}</td><td>{escape(id_label(p, rows, False))}</td>"
                   f"<td class=n>{pixels:,}</td><td class=n>{share:.1f}</td></tr>"
                   for g, p, pixels, share in data.confusions)
    return ('<section id="confusions"><h2>Most confused classes</h2><p class=note>The largest class-to-class '
            "cells of the pixel confusion matrix (each class's confusions with other and with unmatched ids are "
            "in the class table).</p><table><tr><th>ground truth</th><th>predicted as</th><th class=n>pixels</th>"
            f"<th class=n>% of its GT pixels</th></tr>{body}</table></section>")


def _picture(rank: str, score, picture: Picture) -> str:
    panels = "".join(f'<div class="panel"><span>{escape(caption)}</span><img src="{uri}" width="{w}" height="{h}" '
                     f'alt="{escape(caption)}"{"" if caption == "image" else " class=mask"}></div>'
                     for caption, uri, w, h in picture.panels)
    legend = []
    for colour, text in picture.legend:
        swatch = '<i class="hatch"></i>' if colour == "hatch" else \
            f'<i style="background:rgb({colour[0]},{colour[1]},{colour[2]})"></i>'  # type: ignore[index]
        legend.append(f"<li>{swatch}{escape(text)}</li>")
    for key, colour, text in ERRORS:
        share = picture.errors.get(key, 0.0)
        if share:
            legend.append(f'<li><i style="background:rgb{colour}"></i>error: {escape(text)} {share:.1f}%</li>')
    acc = '<span class="ok">Acc \u2713</span>' if score.correct else '<span class="bad">Acc \u2717</span>'
    note = f" <em>({escape(picture.note)})</em>" if picture.note else ""
    # As wide as its panels (at least a legend line): the caption and the legend wrap inside, so cards flow.
    width = max(sum(max(w, MIN_PANEL) for _c, _u, w, _h in picture.panels) + PANEL_GAP * len(picture.panels) + 18, 340)
    return (f'<figure class="pic" style="width:{width}px"><figcaption><b>{rank}</b> {escape(score.mask)} \u2014 image IoU '
            f"{_num(score.iou, 1)}, F {score.fmeasure:.1f}, {acc}{note}</figcaption>"
            f'<div class="panels">{panels}</div><ul class="legend">{"".join(legend)}</ul></figure>')


def pictures_section(data: ReportData, shown: Dict[str, List[Tuple[object, Picture]]]) -> str:
    if data.images is None:
        return ""
    values = [s.iou for s in data.images]
    scored = sum(1 for v in values if not math.isnan(v))
    hist = histogram_chart(f"Per-image IoU, {scored:,} images", [("image IoU", values, "#2b6cb0")], "images")
    parts = [f'<section id="pictures"><h2>Worst and best images</h2><p class=note>Per-image IoU: the mean IoU over '
             "the ids in an image's GT or prediction (ignore dropped), as <code>visualize</code> sorts. Panels: the "
             "image (when found), ground truth, prediction (after the match) and its errors over the greyed image. "
             f"Colours follow the legend under each picture.</p>{hist}"]
    for title, items in shown.items():
        if not items:
            continue
        parts.append(f"<h3>{escape(title)}</h3><div class=pics>"
                     + "".join(_picture(f"#{i}", s, p) for i, (s, p) in enumerate(items, 1)) + "</div>")
    return "".join(parts) + "</section>"


def curve_section(data: ReportData) -> str:
    curve = data.curve
    if not curve:
        return ""
    rows = curve["curve"]  # type: ignore[index]
    best = curve["best_threshold"]
    marked = "".join(f"<tr{' class=ok' if row['threshold'] == best else ''}><td class=n>{row['threshold']:g}</td>"
                     f"<td class=n>{row['mIoU']:.2f}</td><td class=n>{row['Acc']:.2f}</td>"
                     f"<td class=n>{row['FMeasure']:.2f}</td></tr>" for row in rows)  # type: ignore[union-attr]
    how = "rematched at every threshold" if curve.get("rematch") else (
        f"match {curve['match']}" if curve.get("match") else "no match")
    return (f'<section id="curve"><h2>Threshold curve</h2><p class=note>{escape(how)}; the rest of this page is '
            f"the full evaluation at the best threshold t = {best:g} (by mIoU).</p><div class=row>"
            f"{curve_chart(curve['thresholds'], rows, best)}"  # type: ignore[arg-type]
            '<div class="scroll" style="max-height:280px"><table><tr><th class=n>t</th><th class=n>mIoU</th>'
            f"<th class=n>Acc</th><th class=n>FMeasure</th></tr>{marked}</table></div></div></section>")


def _ties(ties: Optional[Dict[str, object]]) -> str:
    if not ties:
        return "not recorded"
    unique = ties.get("unique")
    head = ("optimum unique" if unique else "optimum NOT unique") if isinstance(unique, bool) else ""
    rest = [f"{escape(str(k))}: {escape(str(v))}" for k, v in ties.items() if k not in ("unique",)
            and isinstance(v, (str, int, float, bool))]
    return "; ".join([head] * bool(head) + rest)


def context_section(data: ReportData) -> str:
    result, ctx = data.result, data.context
    official = ctx.get(OFFICIAL_LISTS)
    lists = "not recorded" if official is None else ("yes" if official else "NO: numbers are not the benchmark's")
    boot = result.get("bootstrap") if isinstance(result.get("bootstrap"), dict) else None
    versions = ctx.get("versions") or {}
    items = [("subset", f"{result.get('subset')} ({result.get('images')} images)"),
             ("official lists", lists), ("metadata", ctx.get("metadata")),
             ("predictions", result.get("predict_dir")), ("ground truth", result.get("gt_dir"))]
    if data.curve:
        items.append(("scores", data.curve.get("scores_dir")))
    items += [("match", result.get("match") or "none (ids used as they are)"),
              ("match tie report", _ties(ctx.get("ties")) if result.get("match") else "no match"),  # type: ignore[arg-type]
              ("out-of-range pixels", f"{result.get('out_of_range_pixels', 0):,}"),
              ("bootstrap", ", ".join(f"{k} {v}" for k, v in boot.items()) if boot else "not asked for"),
              ("images folder", ctx.get("images_dir") or "not found (no photos in the pictures)"),
              ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),  # type: ignore[union-attr]
              ("written", ctx.get("date"))]
    body = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in items)
    notes = "".join(f"<p class=note>{escape(n)}</p>" for n in data.notes)
    return f'<section id="context"><h2>Run</h2><dl class="ctx">{body}</dl>{notes}</section>'


def render_page(data: ReportData, shown: Dict[str, List[Tuple[object, Picture]]]) -> str:
    """The whole page."""
    result = data.result
    sections = [curve_section(data), summary_section(data), buckets_section(data), classes_section(data),
                confusions_section(data), pictures_section(data, shown), context_section(data)]
    links = [("curve", "Curve", bool(data.curve)), ("summary", "Summary", True), ("sizes", "Sizes & boundaries", True),
             ("classes", "Classes", True), ("confusions", "Confusions", bool(data.confusions)),
             ("pictures", "Pictures", data.images is not None), ("context", "Run", True)]
    nav = "".join(f'<a href="#{anchor}">{text}</a>' for anchor, text, present in links if present)
    title = f"{result.get('subset')} evaluation report"
    headline = " \u00b7 ".join(f"{key} <b>{_num(result.get(key))}</b>" for key in ("mIoU", "mBIoU", "Acc", "FMeasure"))
    where = f"{result.get('images')} images" + (f", match {escape(str(result['match']))}" if result.get("match") else "")
    if data.curve:
        where += f", 'other' below t = {data.curve['best_threshold']:g}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{escape(title)}</h1><div class=headline>{headline} \u2014 {where}</div></header>"
            f"<nav>{nav}</nav><main>{''.join(sections)}</main><script>{SCRIPT}</script></body></html>\n")
