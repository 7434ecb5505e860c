"""ClassBalance's HTML report (pure: string building; no TensorFlow, no I/O).

One self-contained page that works offline: inline CSS, inline SVG charts, thumbnails as
``data:`` URIs, no scripts and nothing loaded from anywhere. Sections (each a ``<section>`` with
an id, in this order): verdicts, findings, classes (counts and class weights), samples
(thumbnails with masks overlaid), stratification (splits and shards vs the whole), masks
(presence, sizes, ImageExampleGen's mask checks, coverage histograms), images (sizes and modes),
leakage, duplicates (near-duplicate groups, their members' thumbnails side by side with split,
class and span), quality (ImageExampleGen's image-quality findings per split and class, with
example thumbnails), shortcut (the shortcut-risk assessment: balanced accuracy against chance,
the top properties), drift (this span vs the baseline span: class mix side by side, the measures
against their thresholds, groups leaking across spans, images re-sent from an earlier span),
statistics (TFDV's statistics of every split, rendered statically).
"""
import colorsys
import html
import math
from typing import Dict, List, Mapping, Sequence

from components.class_balance import balance
from components.class_balance import drift as drift_lib
from components.class_balance import image_findings
from components.class_balance.measure import BalanceResult
from components.errors import escape_control
from components.errors import escape_name
from components.image_example_gen import mask_check as mask_codes

SECTIONS = ('verdicts', 'findings', 'classes', 'samples', 'stratification', 'masks', 'images',
            'leakage', 'duplicates', 'quality', 'shortcut', 'drift', 'statistics')
_TABLEAU = ('#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1',
            '#ff9da7', '#9c755f', '#bab0ac')
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 margin:0;color:#1f2328;background:#f6f8fa}
main{max-width:1180px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:26px;margin:0 0 2px}h2{font-size:19px;margin:0 0 10px}
h3{font-size:15px;margin:14px 0 6px}
.sub{color:#59636e;margin:0 0 16px}
section{background:#fff;border:1px solid #d1d9e0;border-radius:8px;padding:16px 18px;
 margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(3,1fr);gap:12px;margin:0}
.card{border-radius:8px;padding:12px 14px;border:1px solid #d1d9e0;background:#fff}
.card h2{font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:#59636e;margin:0}
.card .v{font-size:21px;font-weight:650;margin:4px 0}
.card p{margin:4px 0;color:#31373d;font-size:13px}
.ok{border-left:6px solid #1a7f37}.ok .v{color:#1a7f37}
.warn{border-left:6px solid #bf8700}.warn .v{color:#9a6700}
.bad{border-left:6px solid #cf222e}.bad .v{color:#cf222e}
table{border-collapse:collapse;margin:6px 0 10px;font-size:12.5px}
td,th{border:1px solid #d1d9e0;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.sev{display:inline-block;border-radius:10px;padding:0 8px;font-size:11.5px;font-weight:600;
 color:#fff}
.sev.error{background:#cf222e}.sev.warning{background:#bf8700}
.no{color:#cf222e;font-weight:600}.yes{color:#1a7f37}
.grid{display:grid;grid-template-columns:180px repeat(4,116px);gap:6px 10px;align-items:center}
.grid img{width:112px;height:112px;border-radius:4px;border:1px solid #d1d9e0;display:block}
.grid .cap{font-size:10.5px;color:#59636e;overflow:hidden;white-space:nowrap;width:112px;
 text-overflow:ellipsis}
.cls{font-weight:600}.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;
 margin-right:6px;vertical-align:-1px}
pre{background:#f6f8fa;border:1px solid #d1d9e0;border-radius:6px;padding:8px 10px;
 font-size:12px;overflow-x:auto}
.muted{color:#59636e}.small{font-size:12px}
.dup{border:1px solid #d1d9e0;border-radius:6px;padding:8px 10px;margin:0 0 10px}
.dup.bad{border-left:6px solid #cf222e}
.members{display:flex;flex-wrap:wrap;gap:8px;margin-top:6px}
.members figure{margin:0;width:100px}
.members img,.members .ph{width:96px;height:96px;border-radius:4px;border:1px solid #d1d9e0;
 display:block}
.members .ph{background:#eaeef2;color:#59636e;font-size:10.5px;display:flex;align-items:center;
 justify-content:center;text-align:center}
.members figcaption{font-size:10.5px;color:#59636e;line-height:1.3;overflow-wrap:anywhere}
td.hit{background:#ffebe9;font-weight:600}
"""


def _e(value) -> str:
  """A value from the data (class names, ids, messages) as HTML text: control and format
  characters (newlines, tabs, bidirectional overrides) shown as escapes, then HTML-escaped."""
  return html.escape(escape_name(value))


def _e_block(text) -> str:
  """Multi-line text for a <pre> block: newlines kept, other control characters escaped."""
  return html.escape(escape_control(text))


def palette(k: int) -> List[str]:
  """k distinct colours: Tableau 10, then evenly spaced hues for more classes."""
  if k <= len(_TABLEAU):
    return list(_TABLEAU[:k])
  out = []
  for i in range(k):
    r, g, b = colorsys.hls_to_rgb((i * 0.618034) % 1.0, 0.55, 0.55)
    out.append(f'#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}')
  return out


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]],
           numeric: Sequence[int] = ()) -> str:
  head = ''.join(f'<th>{_e(h)}</th>' for h in headers)
  body = ''.join(
      '<tr>' + ''.join(f'<td class="n">{_e(v)}</td>' if i in numeric else f'<td>{_e(v)}</td>'
                       for i, v in enumerate(row)) + '</tr>' for row in rows)
  return f'<table><tr>{head}</tr>{body}</table>'


def _section(section_id: str, title: str, body: str) -> str:
  return f'<section id="{section_id}"><h2>{_e(title)}</h2>{body}</section>'


def _fmt_counts(counts: Mapping[str, int]) -> str:
  return ', '.join(f'{k}: {n:,}' for k, n in counts.items())


def _ratio(ratio: float) -> str:
  return f'{ratio:.2f}:1' if math.isfinite(ratio) else 'unbounded'


# --- Sections -------------------------------------------------------------------------------

def _verdicts(r: BalanceResult) -> str:
  worst = max(r.measurements, key=lambda m: m.linf / m.linf_threshold if m.linf_threshold else 0,
              default=None)
  strat = [f'<div class="card {"ok" if r.stratified else "bad"}"><h2>Stratification</h2>'
           f'<div class="v">{_e(r.stratification_verdict)}</div>'
           '<p>Do every split and every shard file have the whole dataset\'s class '
           'proportions? (TFDV\'s L-infinity and Jensen-Shannon measures, thresholds '
           f'max_linf {r.config.max_linf:g} and max_js {r.config.max_js:g} plus the rounding '
           'allowance of a unit of m records; at least '
           f'{r.config.min_count_per_class} example(s) of each class per split.)</p>']
  if worst is not None:
    strat.append(f'<p class="small muted">Closest to its threshold: {_e(worst.unit.name)}, '
                 f'L-infinity {worst.linf:.4f} of {worst.linf_threshold:.4f}.</p>')
  strat.append('</div>')
  imb = r.imbalance
  small = r.name(imb.smallest)
  classes = (f'<div class="card {"ok" if imb.ok else "warn"}"><h2>Class balance (dataset)</h2>'
             f'<div class="v">{"balanced" if imb.ok else "imbalanced"} '
             f'{_e(_ratio(imb.ratio))}</div>'
             f'<p>Largest class / smallest class over all {sum(r.whole_counts.values()):,} '
             f'examples; warning above {imb.max_class_ratio:g}:1 (max_class_ratio). Smallest: '
             f'<b>{_e(small)}</b>, {imb.counts.get(imb.smallest, 0):,} examples '
             f'({imb.smallest_share:.1%}).</p>'
             + ('' if imb.ok else '<p>A property of the data, not of the split: train with the '
                '<a href="#classes">class weights</a> (or resample).</p>') + '</div>')
  kinds: Dict[str, Dict[str, int]] = {}
  for f in r.findings:
    if f.kind not in (balance.KIND_STRATIFICATION, balance.KIND_IMBALANCE):
      kinds.setdefault(f.kind, {}).setdefault(f.severity, 0)
      kinds[f.kind][f.severity] += 1
  others = [f'{n} {balance.KIND_NOUN[kind]} {sev}{"s" * (n != 1)}'
            for kind, by in sorted(kinds.items()) for sev, n in sorted(by.items())]
  worst_sev = ('bad' if any(balance.ERROR in by for by in kinds.values())
               else 'warn' if kinds else 'ok')
  other = (f'<div class="card {worst_sev}"><h2>Other checks</h2>'
           f'<div class="v">{_e(", ".join(others) if others else "nothing found")}</div>'
           '<p>Leakage (identical images or <a href="#duplicates">near-duplicates</a> in '
           'several splits), labels (near-duplicates carrying two classes), integrity (shard '
           'files vs statistics and vs what ImageExampleGen wrote, labels vs the schema), masks '
           '(size, binary, presence per split), <a href="#quality">image quality</a> far more '
           'frequent in one class, <a href="#shortcut">shortcut risk</a>; with earlier spans, '
           '<a href="#drift">drift</a> '
           'from the previous span, groups leaking across spans and images re-sent from an '
           'earlier span. See '
           '<a href="#findings">findings</a>.</p></div>')
  return f'<div class="cards">{"".join(strat)}{classes}{other}</div>'


def _findings(r: BalanceResult) -> str:
  if not r.findings:
    return '<p>None: every check passed.</p>'
  rows = ''.join(
      f'<tr><td><span class="sev {_e(f.severity)}">{_e(f.severity)}</span></td>'
      f'<td>{_e(f.kind)}</td><td>{_e(f.check)}</td><td>{_e(f.scope)}</td>'
      f'<td>{_e(f.message)}</td></tr>' for f in r.findings)
  return ('<table><tr><th>severity</th><th>kind</th><th>check</th><th>where</th>'
          f'<th>what</th></tr>{rows}</table>')


def _class_chart(r: BalanceResult, colours: Mapping[int, str]) -> str:
  labels = list(r.whole_counts)
  total = sum(r.whole_counts.values()) or 1
  largest = max(r.whole_counts.values(), default=0) or 1
  row_h, left, bar_w = 24, 190, 560
  parts = []
  for i, c in enumerate(labels):
    n = r.whole_counts[c]
    y = 6 + i * row_h
    w = bar_w * n / largest
    parts.append(
        f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{_e(r.name(c))}</text>'
        f'<rect x="{left}" y="{y}" width="{max(w, 1):.1f}" height="{row_h - 6}" rx="3" '
        f'fill="{colours[c]}"><title>{_e(r.name(c))}: {n}</title></rect>'
        f'<text x="{left + w + 6:.1f}" y="{y + 14}">{n:,} ({n / total:.1%})</text>')
  height = 12 + len(labels) * row_h
  return (f'<svg width="{left + bar_w + 130}" '
          f'height="{height}" font-size="12" font-family="sans-serif" role="img" '
          f'aria-label="examples per class">{"".join(parts)}</svg>')


def _classes(r: BalanceResult, colours: Mapping[int, str]) -> str:
  train = next((m.unit.counts for m in r.measurements
                if m.unit.kind == balance.SPLIT and m.unit.split == r.weights_split), {})
  rows = [[c, r.name(c), f'{r.whole_counts.get(c, 0):,}', f'{train.get(c, 0):,}',
           f'{r.class_weights.get(c, 0.0):.4f}'] for c in r.whole_counts]
  snippet = ('import json\n'
             '# the ClassBalance output artifact (ML Metadata), e.g. cxr-tfx lineage --latest balance\n'
             "weights = json.loads(artifact.custom_properties['class_weights'].string_value)\n"
             'class_weight = {int(label): w for label, w in weights.items()}\n'
             'model.fit(train_ds, class_weight=class_weight, ...)  # Keras, one output')
  return (_class_chart(r, colours)
          + f'<h3 id="weights">Class weights (from split {_e(r.weights_split)})</h3>'
          '<p>Inverse class frequency, normalized so that the weighted mean over the '
          f'{_e(r.weights_split)} examples is 1: w<sub>c</sub> = N / (K &middot; n<sub>c</sub>). '
          'Stored as the artifact property <code>class_weights</code> (JSON '
          '<code>{"&lt;label&gt;": weight}</code>) and in balance_report.json.</p>'
          + _table(['label', 'class', 'examples', f'in {r.weights_split}', 'weight'], rows,
                   numeric=(0, 2, 3, 4))
          + f'<pre>{_e_block(snippet)}</pre>')


def _samples(r: BalanceResult, colours: Mapping[int, str]) -> str:
  if not r.samples:
    return '<p>No records to sample.</p>'
  cells = []
  for c in r.whole_counts:
    picked = r.samples.get(c, [])
    cells.append(f'<div class="cls"><span class="swatch" style="background:{colours[c]}">'
                 f'</span>{_e(r.name(c))}</div>')
    for i in range(4):
      if i < len(picked):
        s = picked[i]
        cap = (f'{s["split"]}' + ('' if s.get('has_mask') else ' · no mask')
               + f' · {str(s["image_id"]).rsplit("/", 1)[-1]}')
        cells.append(f'<div><img src="{_e(s["uri"])}" alt="{_e(r.name(c))} sample" '
                     f'title="{_e(s["split"])}: {_e(s["image_id"])}">'
                     f'<div class="cap">{_e(cap)}</div></div>')
      else:
        cells.append('<div class="cap">&nbsp;</div>')
  return ('<p class="small muted">The first records of each class in the first shard file of '
          'each split (records are in ImageExampleGen\'s seeded order); masks tinted red, '
          'outlined in yellow.</p>'
          f'<div class="grid">{"".join(cells)}</div>')


def _unit_chart(r: BalanceResult, colours: Mapping[int, str]) -> str:
  """100%-stacked bars: the whole dataset, then every split and its shards."""
  whole = balance.Unit(balance.SPLIT, 'all', '', dict(r.whole_counts))
  rows = [(whole, 'whole dataset')] + [
      (m.unit, m.unit.split if m.unit.kind == balance.SPLIT else f'  {m.unit.shard}')
      for m in r.measurements]
  ok = {m.unit.name: m.ok for m in r.measurements}
  row_h, left, bar_w = 18, 250, 640
  parts = []
  for i, (u, label) in enumerate(rows):
    y = 26 + i * row_h
    bold = ' font-weight="600"' if u.kind == balance.SPLIT else ''
    parts.append(f'<text x="{left - 8}" y="{y + 12}" text-anchor="end"{bold}>{_e(label)}</text>')
    x, size = float(left), u.size or 1
    for c in r.whole_counts:
      w = bar_w * u.counts.get(c, 0) / size
      if w > 0:
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 4}" '
                     f'fill="{colours[c]}"><title>{_e(r.name(c))}: {u.counts.get(c, 0)} of '
                     f'{u.size}</title></rect>')
      x += w
    flag = '' if ok.get(u.name, True) else ' ✗'
    parts.append(f'<text x="{left + bar_w + 6}" y="{y + 12}">{u.size:,}{flag}</text>')
  legend = ''.join(
      f'<rect x="{left + 120 * k}" y="4" width="11" height="11" fill="{colours[c]}"/>'
      f'<text x="{left + 120 * k + 15}" y="14">{_e(r.name(c)[:16])}</text>'
      for k, c in enumerate(r.whole_counts))
  height = 32 + len(rows) * row_h
  return (f'<svg width="{left + bar_w + 70}" '
          f'height="{height}" font-size="11" font-family="sans-serif" role="img" '
          f'aria-label="class proportions per split and shard">{legend}{"".join(parts)}</svg>')


def _stratification(r: BalanceResult, colours: Mapping[int, str]) -> str:
  names = [r.name(c) for c in r.whole_counts]
  table = _table(
      ['unit', 'records'] + names + ['L-inf', 'threshold', 'JS', 'threshold', 'ok'],
      [[m.unit.name, m.unit.size] + [m.unit.counts.get(c, 0) for c in r.whole_counts]
       + [f'{m.linf:.4f}', f'{m.linf_threshold:.4f}', f'{m.js:.6f}', f'{m.js_threshold:.6f}',
          'yes' if m.ok else 'NO'] for m in r.measurements],
      numeric=tuple(range(1, len(names) + 6)))
  return ('<p>Each bar is one split or shard file, its classes as shares of its records; '
          'stratified data look like the whole dataset\'s bar all the way down.</p>'
          + _unit_chart(r, colours) + table)


def _histogram(counts: Sequence[int], colour: str, title: str) -> str:
  top = max(counts) or 1
  bars = ''.join(
      f'<rect x="{4 + i * 14}" y="{54 - 40 * n / top:.1f}" width="12" height="{40 * n / top:.1f}"'
      f' fill="{colour}"><title>coverage {i / 10:.1f}-{(i + 1) / 10:.1f}: {n}</title></rect>'
      for i, n in enumerate(counts))
  return (f'<svg width="148" height="68" font-size="9" font-family="sans-serif" role="img" '
          f'aria-label="{_e(title)}"><text x="3" y="9">{_e(title)}</text>'
          f'<line x1="3" y1="54.5" x2="145" y2="54.5" stroke="#8c959f"/>{bars}'
          '<text x="3" y="65">0</text><text x="74" y="65" text-anchor="middle">coverage</text>'
          '<text x="139" y="65">1</text></svg>')


def _masks(r: BalanceResult, colours: Mapping[int, str]) -> str:
  per_split = {s: r.image_statistics.get(s, {}) for s in r.splits}
  rows = []
  for split, by_class in per_split.items():
    n = sum(v['examples'] for v in by_class.values())
    masks = sum(v['masks_present'] for v in by_class.values())
    mismatch = sum(v['mask_size_mismatch'] for v in by_class.values())
    sizes: Dict[str, int] = {}
    for v in by_class.values():
      for k, c in v['mask_sizes'].items():
        sizes[k] = sizes.get(k, 0) + c
    rows.append([split, f'{n:,}', f'{masks:,}', f'{masks / n:.1%}' if n else '-',
                 _fmt_counts(sizes), f'{mismatch:,}'])
  out = [_table(['split', 'records', 'with a mask', 'presence', 'mask sizes',
                 'mask size ≠ image size (headers)'], rows, numeric=(1, 2, 3, 5))]
  if r.mask_check and r.mask_check != 'off':
    keys = list(mask_codes.COUNT_KEYS)
    order = [r.name(c) for c in r.whole_counts]
    check_rows = [[split, cls] + [f'{by_class[cls].get(k, 0):,}' for k in keys]
                  for split in r.splits for by_class in [r.mask_checks.get(split, {})]
                  for cls in order + sorted(set(by_class) - set(order)) if cls in by_class]
    declared = f', declared mask size {r.mask_size}' if r.mask_size else ''
    out.append(f'<h3>ImageExampleGen\'s mask checks (mode {_e(r.mask_check)}{_e(declared)}), '
               'every mask</h3>'
               + _table(['split', 'class'] + [k.replace('_', ' ') for k in keys], check_rows,
                        numeric=tuple(range(2, 2 + len(keys)))))
  elif r.mask_check == 'off':
    out.append('<p class="muted">ImageExampleGen ran with --mask-check off: no mask checks.</p>')
  else:
    out.append('<p class="muted">No mask checks in the ingest summary (an older '
               'ImageExampleGen): size mismatches above come from the file headers.</p>')
  out.append('<h3>Mask coverage (foreground share of the mask\'s pixels), sampled</h3>'
             f'<p class="small muted">Up to {r.config.coverage_sample or "every"} decoded masks '
             'per shard file and class; n = masks decoded.</p>')
  splits = list(r.splits) + ['all']
  head = ''.join(f'<th>{_e(s)}</th>' for s in splits)
  body = []
  for c in r.whole_counts:
    name = r.name(c)
    cells = []
    for s in splits:
      stats = r.image_statistics.get(s, {}).get(name)
      if not stats or not stats['coverage_sampled']:
        cells.append('<td class="muted small">no masks</td>')
        continue
      title = (f'n={stats["coverage_sampled"]}, mean {stats["mean_mask_coverage"]:.2f}, '
               f'empty {stats["empty_masks_sampled"]}')
      cells.append(f'<td>{_histogram(stats["coverage_histogram"], colours[c], title)}</td>')
    body.append(f'<tr><th><span class="swatch" style="background:{colours[c]}"></span>'
                f'{_e(name)}</th>{"".join(cells)}</tr>')
  out.append(f'<table><tr><th>class</th>{head}</tr>{"".join(body)}</table>')
  return ''.join(out)


def _images(r: BalanceResult) -> str:
  rows = []
  for split in list(r.splits) + ['all']:
    for cls, s in r.image_statistics.get(split, {}).items():
      rows.append([split, cls, f'{s["examples"]:,}', _fmt_counts(s['image_sizes']),
                   _fmt_counts(s['image_modes']), s['unreadable']])
  return ('<p class="small muted">From the file headers (PNG IHDR, JPEG SOF) of every '
          'record; nothing decoded.</p>'
          + _table(['split', 'class', 'examples', 'image sizes', 'format, mode, depth',
                    'unreadable headers'], rows, numeric=(2, 5)))


def _leakage(r: BalanceResult) -> str:
  near = sum(g['crosses_splits'] for g in r.pixels.groups)
  tail = (f'<p>{near} near-duplicate group{"s" * (near != 1)} straddle{"s" * (near == 1)} '
          'splits: see <a href="#duplicates">near-duplicates</a>.</p>' if near else '')
  if not r.duplicates_across_splits:
    return '<p>No identical image bytes in more than one split.</p>' + tail
  return _table(['sha256', 'splits', 'image ids'],
                [[d['image_sha256'][:16], ', '.join(d['splits']), ', '.join(d['image_ids'])]
                 for d in r.duplicates_across_splits]) + tail


def _figure(image_id: str, uri: str, caption: Sequence[str], missing: str) -> str:
  """One thumbnail (or a placeholder saying why there is none) with a caption of lines."""
  cap = '<br>'.join(_e(line) for line in caption if line)
  if uri:
    picture = f'<img src="{_e(uri)}" alt="{_e(image_id)}" title="{_e(image_id)}">'
  else:
    picture = f'<div class="ph">{_e(missing)}</div>'
  return f'<figure>{picture}<figcaption>{cap}</figcaption></figure>'


def _short(image_id: str) -> str:
  return image_id.rsplit('/', 1)[-1]


_NOT_MEASURED = ('<p class="muted">Not measured: the ingest summary has no pixel findings '
                 '(ImageExampleGen ran with --verify header or --near-duplicates off, or is an '
                 'older version; --verify full, the default, measures every image).</p>')


def _duplicates(r: BalanceResult) -> str:
  p = r.pixels
  mode = p.near_duplicates
  how = {image_findings.MODE_GROUP: 'ImageExampleGen dealt each group to one split as one unit '
                                    '(--near-duplicates group)',
         image_findings.MODE_REPORT: 'ImageExampleGen reported them and dealt them as any image '
                                     '(--near-duplicates report)'}.get(mode, '')
  if not p.groups:
    if mode == image_findings.MODE_OFF:
      return ('<p class="muted">Not looked for: ImageExampleGen ran with --near-duplicates '
              'off.</p>')
    if not mode:
      return _NOT_MEASURED
    return ('<p>None: no image is a re-encoded, resized, cropped or re-exposed copy of another '
            f'({_e(how)}).</p>')
  two = sum(g['crosses_classes'] for g in p.groups)
  across = sum(g['crosses_splits'] for g in p.groups)
  listed = (f' The first {len(p.groups)} are listed, those carrying two labels first, then '
            'those straddling splits.' if p.groups_total > len(p.groups) else '')
  out = [f'<p>{p.groups_total:,} group{"s" * (p.groups_total != 1)} of near-duplicates: copies '
         'of one image re-encoded, resized, cropped or re-exposed, which the sha256 of the bytes '
         f'misses{"; " + _e(how) if how else ""}. {two} carr{"ies" if two == 1 else "y"} two '
         f'labels (an error: one image, two labels), {across} straddle{"s" * (across == 1)} '
         f'splits (an error: leakage).{_e(listed)}</p>'
         '<p class="small muted">Thumbnails: 96 pixels, tones as stored; an earlier span\'s '
         'member is not in these shard files and is shown by its sha256.</p>']
  for i, g in enumerate(p.groups, 1):
    flags = ''.join(f' <span class="sev error">{text}</span>' for text, on in (
        ('two labels', g['crosses_classes']), ('across splits', g['crosses_splits'])) if on)
    figures = []
    shown = g['members'][:image_findings.THUMBNAILS_PER_GROUP]
    for m in shown:
      span = f'span {m["span"]}' if m['span'] is not None else ''
      if m['prior']:
        figures.append(_figure(m['sha256'], '', [
            m['split'] or '?', f'{span} (earlier)', f'sha256 {m["sha256"][:12]}'],
            f'{span or "earlier span"}: not in this span\'s files'))
        continue
      thumb = r.listed_images.get(m['image_id'], {})
      line = f'line {m["line"]}' if m['line'] is not None else ''
      figures.append(_figure(
          m['image_id'], str(thumb.get('uri', '')),
          [f'{m["split"] or "?"} · {m["class_name"] or "?"}', ' · '.join(filter(None, [
              span, line])), _short(m['image_id'])],
          'not found in the shard files' if not thumb else 'does not decode'))
    more = g['members'][len(shown):]
    rest = (f'<p class="small muted">and {len(more)} more: '
            + _e(', '.join(m['image_id'] or f'sha256 {m["sha256"][:12]}' for m in more))
            + '</p>' if more else '')
    out.append(f'<div class="dup{" bad" if flags else ""}"><b>group {i}</b>{flags} '
               f'<span class="small muted">{len(g["members"])} images · classes '
               f'{_e(", ".join(g["classes"]) or "?")} · splits '
               f'{_e(", ".join(g["splits"]) or "?")}</span>'
               f'<div class="members">{"".join(figures)}</div>{rest}</div>')
  return ''.join(out)


def _quality(r: BalanceResult) -> str:
  p = r.pixels
  if not p.quality_images and not p.quality_counts:
    return _NOT_MEASURED
  codes = p.quality_codes
  hits = {(cls, code) for code, by_class in p.class_rates.items()
          for cls, rate in by_class.items() if rate.get('warning')}
  thresholds = ', '.join(f'{k} {v}' for k, v in p.quality_thresholds.items())
  out = [f'<p>ImageExampleGen measured {p.quality_images:,} images. Counted per split and '
         'class for information; a warning only when one class has a finding far more often '
         f'than the other classes (at least {image_findings.QUALITY_MIN_FLAGGED} images, '
         f'{image_findings.QUALITY_RATE_RATIO:g}&times; their rate and '
         f'{image_findings.QUALITY_RATE_GAP:.0%} above it plus a 3-sigma sampling allowance): '
         'a model could learn the artefact instead of the disease.</p>']
  if thresholds:
    out.append(f'<p class="small muted">Thresholds: {_e(thresholds)}.</p>')
  if not codes:
    out.append('<p>No image has a quality finding.</p>')
    return ''.join(out)
  order = [r.name(c) for c in r.whole_counts]
  rows = []
  for split in list(r.splits) + sorted(set(p.quality_counts) - set(r.splits)):
    by_class = p.quality_counts.get(split, {})
    for cls in order + sorted(set(by_class) - set(order)):
      if cls in by_class:
        rows.append('<tr>' + f'<td>{_e(split)}</td><td>{_e(cls)}</td>' + ''.join(
            f'<td class="n">{by_class[cls].get(code, 0):,}</td>' for code in codes) + '</tr>')
  for cls in order:  # all splits: counts and rates, the finding's cells marked
    cells = []
    for code in codes:
      rate = p.class_rates.get(code, {}).get(cls)
      text = f'{rate["flagged"]:,} ({rate["rate"]:.1%})' if rate else '-'
      marked = ' hit' if (cls, code) in hits else ''
      cells.append(f'<td class="n{marked}">{_e(text)}</td>')
    rows.append(f'<tr><th>all splits</th><th>{_e(cls)}</th>{"".join(cells)}</tr>')
  head = ''.join(f'<th>{_e(code.replace("_", " "))}</th>' for code in codes)
  out.append(f'<table><tr><th>split</th><th>class</th>{head}</tr>{"".join(rows)}</table>')
  for code in codes:
    examples = p.quality_examples.get(code, [])[:image_findings.MAX_QUALITY_EXAMPLES]
    if not examples:
      continue
    total = sum(by_code.get(code, 0) for by_class in p.quality_counts.values()
                for by_code in by_class.values())
    figures = []
    for e in examples:
      thumb = r.listed_images.get(e['image_id'], {})
      line = f'line {e["line"]}' if e['line'] is not None else ''
      figures.append(_figure(e['image_id'], str(thumb.get('uri', '')),
                             [f'{e["split"] or "?"} · {e["class_name"] or "?"}', line,
                              _short(e['image_id'])],
                             'not found in the shard files' if not thumb else 'does not decode'))
    first = f'; the first {len(examples)}' if total > len(examples) else ''
    out.append(f'<h3>{_e(code.replace("_", " "))} <span class="small muted">({total:,} '
               f'image{"s" * (total != 1)}{first})</span></h3>'
               f'<div class="members">{"".join(figures)}</div>')
  return ''.join(out)


def _accuracy_chart(accuracy: float, chance, threshold, warning: bool) -> str:
  """A 0..1 scale: the balanced accuracy as a bar, chance and the warning threshold as
  ticks."""
  left, width = 10, 560
  x = lambda v: left + width * min(max(v, 0.0), 1.0)
  colour = '#cf222e' if warning else '#1a7f37'
  parts = [f'<rect x="{left}" y="20" width="{width}" height="16" fill="#eaeef2"/>',
           f'<rect x="{left}" y="20" width="{x(accuracy) - left:.1f}" height="16" '
           f'fill="{colour}"><title>balanced accuracy {accuracy:.3f}</title></rect>']
  for value, label, stroke in ((chance, 'chance', '#59636e'), (threshold, 'warning at',
                                                                '#bf8700')):
    if value is not None:
      parts.append(f'<line x1="{x(value):.1f}" y1="14" x2="{x(value):.1f}" y2="42" '
                   f'stroke="{stroke}" stroke-width="2"/><text x="{x(value):.1f}" y="54" '
                   f'text-anchor="middle">{label} {value:.2f}</text>')
  parts.append(f'<text x="{left}" y="12">0</text><text x="{left + width}" y="12" '
               'text-anchor="end">1</text>')
  return (f'<svg width="{left + width + 40}" height="60" font-size="11" '
          'font-family="sans-serif" role="img" aria-label="balanced accuracy against chance">'
          f'{"".join(parts)}</svg>')


def _shortcut(r: BalanceResult) -> str:
  sc = r.pixels.shortcut
  if not sc:
    return ('<p class="muted">Not assessed: the ingest summary has no shortcut-risk assessment '
            '(ImageExampleGen ran with --verify header, or is an older version).</p>')
  accuracy, chance, threshold = sc['balanced_accuracy'], sc['chance'], sc['threshold']
  headline = (f'balanced accuracy {accuracy:.2f}' if accuracy is not None
              else 'balanced accuracy not given')
  if chance is not None:
    headline += f' vs chance {chance:.2f}'
  verdict = 'shortcut risk' if sc['warning'] else 'no shortcut risk found'
  out = [f'<div class="card {"warn" if sc["warning"] else "ok"}"><h2>{_e(verdict)}</h2>'
         f'<div class="v">{_e(headline)}</div>'
         '<p>How well non-anatomical image properties (size, mode, format, intensity, borders, '
         'corners) predict the class, cross-validated'
         + (f'; a warning at {threshold:.2f} (ImageExampleGen --shortcut-threshold)'
            if threshold is not None else '') + '.</p>'
         + (f'<p><b>{_e(sc["message"])}</b></p>' if sc['message'] else '') + '</div>']
  if accuracy is not None:
    out.append(_accuracy_chart(accuracy, chance, threshold, sc['warning']))
  props = sc['top_properties']
  if props:
    top = max(abs(v) for _, v in props) or 1.0
    rows = ''.join(
        f'<tr><td>{_e(name)}</td><td class="n">{value:.3f}</td><td><svg width="206" '
        f'height="12" role="img" aria-label="importance"><rect x="0" y="1" '
        f'width="{max(200 * abs(value) / top, 1):.1f}" height="10" fill="#4e79a7"/></svg>'
        '</td></tr>' for name, value in props)
    out.append('<h3>Top properties</h3><table><tr><th>property</th><th>importance</th><th>'
               f'</th></tr>{rows}</table>')
  if sc['other']:
    out.append('<h3>Details</h3>' + _table(['', 'value'], [[k, v] for k, v in
                                                          sc['other'].items()]))
  return ''.join(out)


def _mix_chart(mix: drift_lib.ClassMix, baseline_span: int, colours: Mapping[str, str]) -> str:
  """Two 100%-stacked bars: the baseline span's class mix over this span's."""
  row_h, left, bar_w = 22, 120, 640
  parts = []
  for i, (label, counts) in enumerate(((f'span {baseline_span}', mix.baseline),
                                        ('this span', mix.current))):
    y = 26 + i * row_h
    parts.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{_e(label)}</text>')
    x, size = float(left), sum(counts.values()) or 1
    for name, n in counts.items():
      w = bar_w * n / size
      if w > 0:
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 5}" '
                     f'fill="{colours[name]}"><title>{_e(name)}: {n} of {size} '
                     f'({n / size:.1%})</title></rect>')
      x += w
    parts.append(f'<text x="{left + bar_w + 6}" y="{y + 13}">{sum(counts.values()):,}</text>')
  legend = ''.join(
      f'<rect x="{left + 120 * k}" y="4" width="11" height="11" fill="{colours[name]}"/>'
      f'<text x="{left + 120 * k + 15}" y="14">{_e(name[:16])}</text>'
      for k, name in enumerate(mix.current))
  return (f'<svg width="{left + bar_w + 70}" height="{32 + 2 * row_h}" font-size="11" '
          'font-family="sans-serif" role="img" aria-label="class mix: baseline span and this '
          f'span">{legend}{"".join(parts)}</svg>')


def _result_cell(ok: bool, severity: str) -> str:
  return ('<td class="yes">pass</td>' if ok
          else f'<td><span class="sev {_e(severity)}">{_e(severity)}</span> '
               '<span class="no">FAIL</span></td>')


def _drift(r: BalanceResult, colours: Mapping[int, str]) -> str:
  d = r.drift
  if d.baseline is None:
    out = [f'<p>No earlier span: nothing to compare span {d.current_span} with (its first span, '
           'or ClassBalance was not given <code>previous_examples</code>).</p>']
  else:
    b = d.baseline
    earlier = ', '.join(str(p.span) for p in d.earlier)
    out = [f'<p>This span ({d.current_span}) against the <b>baseline</b>: span {b.span}, '
           f'version {b.version}, the newest earlier span <span class="small muted">'
           f'({_e(b.uri)}; earlier spans given: {_e(earlier)})</span>. All splits pooled. '
           f'Thresholds: max_drift_linf {r.config.max_drift_linf:g}, max_drift_js '
           f'{r.config.max_drift_js:g} bits; class-mix drift is an error, image and mask drift '
           'a warning.</p>']
    rows = []
    mix = d.class_mix
    if mix is not None:
      names = list(mix.current)
      by_name = {r.name(c): colours[c] for c in colours}
      extra = palette(len(by_name) + len(names))[len(by_name):]
      named = {n: by_name.get(n) or extra[i] for i, n in enumerate(names)}
      now, then = drift_lib.shares(mix.current), drift_lib.shares(mix.baseline)
      out.append(f'<h3>Class mix <span class="small muted">(counts from the {_e(mix.source)})'
                 '</span></h3>'
                 + _mix_chart(mix, b.span, named)
                 + _table(['class', f'span {b.span}', 'share', 'this span', 'share',
                           'difference'],
                          [[n, f'{mix.baseline[n]:,}', f'{then[n]:.1%}', f'{mix.current[n]:,}',
                            f'{now[n]:.1%}', f'{(now[n] - then[n]) * 100:+.1f} pp']
                           for n in names], numeric=(1, 2, 3, 4, 5)))
      rows.append(('class mix', f'L-infinity (class {mix.linf_class!r})', f'{mix.linf:.4f}',
                   f'{mix.max_linf:g}', _result_cell(not mix.linf_drifted, balance.ERROR)))
      rows.append(('class mix', 'Jensen-Shannon divergence (bits)', f'{mix.js:.5f}',
                   f'{mix.max_js:g}', _result_cell(not mix.js_drifted, balance.ERROR)))
    else:
      out.append('<p class="muted">Class mix not compared (no records in one of the '
                 'spans).</p>')
    severity = balance.ERROR if r.config.warnings_as_errors else balance.WARNING
    measure_name = {drift_lib.LINF: 'L-infinity', drift_lib.JS: 'Jensen-Shannon divergence',
                    drift_lib.ABSOLUTE_DIFFERENCE: '|difference| of the rate'}
    for st in d.stats:
      if st.value is None:
        rows.append((st.name, measure_name[st.measure], '-', f'{st.threshold:g}',
                     f'<td class="muted">not compared: {_e(st.note)}</td>'))
        continue
      if st.measure == drift_lib.ABSOLUTE_DIFFERENCE:
        what = f'{st.baseline:.1%} &rarr; {st.current:.1%}'
      elif st.worst and st.value > 0:
        before = (st.baseline.get(st.worst, 0.0) if isinstance(st.baseline, dict)
                  else None)
        what = (f'most moved: {_e(st.worst)}' + (f' ({before:.1%} &rarr; '
                                                 f'{st.current.get(st.worst, 0.0):.1%})'
                                                 if before is not None else ''))
      else:
        what = ''
      rows.append((st.name, measure_name[st.measure] + (f' <span class="small muted">{what}'
                                                        '</span>' if what else ''),
                   f'{st.value:.4f}', f'{st.threshold:g}', _result_cell(st.ok, severity)))
    body = ''.join(f'<tr><td>{_e(a)}</td><td>{m}</td><td class="n">{_e(v)}</td>'
                   f'<td class="n">{_e(t)}</td>{res}</tr>' for a, m, v, t, res in rows)
    out.append('<h3>Measures</h3><table><tr><th>what</th><th>measure</th><th>value</th>'
               f'<th>threshold</th><th>result</th></tr>{body}</table>')
  lk = d.leakage
  out.append('<h3>Groups across spans (group_splits.json)</h3>'
             f'<p>{_e(lk.note[:1].upper() + lk.note[1:])}.</p>')
  if lk.group_column:
    rows = [['group column', lk.group_column],
            ['groups in this span (in its train split)', f'{lk.groups:,} ({lk.train_groups:,})'],
            ['earlier spans compared', ', '.join(map(str, lk.spans_compared)) or '-'],
            ['earlier spans grouped by another column (not compared)',
             ', '.join(f'{s} ({c or "none"})' for s, c in lk.spans_not_comparable) or '-'],
            ['earlier spans without groups', ', '.join(map(str, lk.spans_without_groups)) or '-'],
            ['groups now in train, earlier in eval/test (error)',
             f'{lk.into_train:,}' + (f' (from span {", ".join(map(str, lk.into_train_spans))};'
                                     f' {", ".join(g[:12] for g in lk.into_train_examples)})'
                                     if lk.into_train else '')],
            ['groups in another split otherwise (warning)',
             f'{lk.split_changed:,}' + (f' ({"; ".join(lk.split_changed_examples)})'
                                        if lk.split_changed else '')]]
    out.append(_table(['', 'groups'], rows))
  out.append(_resent(d.resent))
  if d.notes:
    out.append('<ul class="small muted">' + ''.join(f'<li>{_e(n)}</li>' for n in d.notes)
               + '</ul>')
  return ''.join(out)


def _resent(resent: drift_lib.ResentImages) -> str:
  """The ingest summary's images an earlier span already had ('' when it does not say)."""
  if not resent.known:
    return ''
  out = ['<h3>Images re-sent from an earlier span (ingest summary)</h3>']
  if not resent.count:
    out.append(f'<p>None: no image of span {resent.span} has the bytes of an image ingested '
               'in an earlier span.</p>')
    return ''.join(out)
  shown = (f'; the first {len(resent.listed)} listed' if len(resent.listed) < resent.count
           else '')
  out.append(f'<p>{resent.count:,} image{"s" * (resent.count != 1)} of span {resent.span} '
             'had the same bytes as an image ingested in an earlier span; each kept the split '
             f'it had there (a warning, not leakage){_e(shown)}.</p>')
  if resent.listed:
    out.append(_table(['line', 'image id', 'class', 'first span', 'split'],
                      [[r['line'], r['image_id'], r['class_name'], r['first_span'], r['split']]
                       for r in resent.listed], numeric=(0, 3)))
  return ''.join(out)


def _statistics(r: BalanceResult) -> str:
  if not r.statistics:
    return '<p>No statistics.</p>'
  head = ''.join(f'<th>{_e(s)}</th>' for s in r.splits)
  body = ''.join(
      f'<tr><th>{_e(row["feature"])}<div class="small muted">{_e(row["type"])}</div></th>'
      + ''.join('<td>' + '<br>'.join(_e(line) for line in row['cells'].get(s, [])) + '</td>'
                for s in r.splits) + '</tr>' for row in r.statistics)
  return ('<p class="small muted">StatisticsGen\'s statistics (TFDV) of every split, rendered '
          'here (no Facets viewer, nothing loaded from the web).</p>'
          f'<table><tr><th>feature</th>{head}</tr>{body}</table>')


def render(result: BalanceResult) -> str:
  colours = dict(zip(result.whole_counts, palette(len(result.whole_counts))))
  total = sum(result.whole_counts.values())
  where = (f' from {result.ingest["csv_path"]}' if result.ingest.get('csv_path') else '')
  span = (f' · span {result.drift.current_span}'
          if result.drift.baseline is not None or result.drift.current_span else '')
  sub = (f'{total:,} examples{where}{span} · {len(result.whole_counts)} classes · splits '
         f'{", ".join(result.splits)} · {len(result.measurements) - len(result.splits)} '
         'shard files')
  sections = [
      _section('verdicts', 'Verdicts', _verdicts(result)),
      _section('findings', f'Findings ({len(result.errors)} errors, {len(result.warnings)} '
                           'warnings)', _findings(result)),
      _section('classes', 'Classes', _classes(result, colours)),
      _section('samples', 'Samples per class', _samples(result, colours)),
      _section('stratification', 'Stratification: splits and shard files vs the whole dataset',
               _stratification(result, colours)),
      _section('masks', 'Masks', _masks(result, colours)),
      _section('images', 'Images', _images(result)),
      _section('leakage', 'Leakage: identical images across splits', _leakage(result)),
      _section('duplicates', 'Near-duplicates: copies of one image', _duplicates(result)),
      _section('quality', 'Image quality', _quality(result)),
      _section('shortcut', 'Shortcut risk', _shortcut(result)),
      _section('drift', (f'Drift from span {result.drift.baseline.span}'
                         if result.drift.baseline is not None else 'Drift between spans'),
               _drift(result, colours)),
      _section('statistics', 'Statistics (TFDV)', _statistics(result)),
  ]
  return ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
          '<meta name="viewport" content="width=device-width,initial-scale=1">'
          f'<title>cxr-tfx class balance</title><style>{_CSS}</style></head><body><main>'
          f'<h1>Class balance</h1><p class="sub">{_e(sub)}</p>'
          + '\n'.join(sections) + '</main></body></html>')
