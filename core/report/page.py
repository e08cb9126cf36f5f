"""The report as one self-contained HTML file: Plotly's JavaScript and the data inlined, so it
opens offline from a folder or from S3 with no server. Every string from data reaches the
page as JSON inside a ``<script type="application/json">`` block (``<``, ``>`` and ``&``
escaped) and is put on the page with ``textContent``: nothing from data is parsed as HTML.
The one exception, the model card: its Markdown becomes HTML here
(``core.report.markdown``), every piece of its text escaped before a tag goes around it. Sections with nothing
to show say what is missing and which command makes it; ``#symbol=NAME`` in the address
opens one symbol's view.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

from core.report.markdown import markdown_html

TITLE = "Stock market analytics: forecast report"


def safe_json(data: Any) -> str:
    """JSON that cannot close its script element or open another (NaN/inf become null)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    text = json.dumps(clean(data), separators=(",", ":"), allow_nan=False, default=str)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2933;background:#f7f8fa}
header{background:#1f3a5f;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;font-size:13px;opacity:.85}
main{padding:12px 24px;max-width:1400px}section{background:#fff;border:1px solid #e1e4e8;border-radius:6px;margin:14px 0;padding:12px 16px}
h2{font-size:16px;margin:4px 0 10px}table{border-collapse:collapse;font-size:12px;width:100%}
th,td{border-bottom:1px solid #eef0f2;padding:3px 6px;text-align:right}th{background:#f1f3f5;position:sticky;top:0}
#forecasts th{cursor:pointer}#forecasts tbody tr{cursor:pointer}#forecasts tbody tr:hover{background:#f5f8ff}#forecasts tbody tr.selected{background:#e3ecfa}
td:first-child,th:first-child,td.text{text-align:left}.scroll{max-height:420px;overflow:auto}
.flag{color:#b42318;font-weight:600}.ok{color:#067647}.muted{color:#667085;font-size:12px}
.note{color:#667085;font-size:13px;margin:6px 0}code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em;background:#f1f3f5;padding:0 3px;border-radius:3px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:14px}figure{margin:0;min-width:0}.chart{height:360px}
.chart-title{font-size:13px;font-weight:600;margin:8px 0 2px;overflow-wrap:anywhere}
.controls{display:flex;align-items:center;flex-wrap:wrap;gap:0 8px}.controls label{font-size:13px}
input,select{font-size:13px;padding:3px 6px;margin:0 8px 8px 0}[hidden]{display:none!important}
#symbol-note{color:#b54708;overflow-wrap:anywhere}.card{font-size:13px;line-height:1.45}.card h3{font-size:15px;margin:6px 0 8px}
.card h4,.card h5,.card h6{font-size:13px;margin:10px 0 6px}.card p{margin:6px 0 10px}
.table-wrap{overflow-x:auto;margin:4px 0 12px}.card td{white-space:nowrap}
"""

SCRIPT = r"""
const D = JSON.parse(document.getElementById('report-data').textContent);
const fmt = (v, d = 4) => (v === null || v === undefined) ? '' : (typeof v === 'number' ? v.toFixed(d) : String(v));
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };
const qcols = D.quantiles.map(q => 'q_' + q);
// Plotly renders a little HTML in labels and hover text: data strings go in as entities
const esc = s => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
// every chart: titles are HTML headings above it (clear of the mode bar), legends below
const CONFIG = {displaylogo: false, responsive: true};
const layout = (extra, below = 0.14) => Object.assign({margin: {t: 30, r: 10}, legend: {orientation: 'h', y: -below, yanchor: 'top'}}, extra);
// a one-line note of what is missing and the command that makes it (`...`: a command)
function noted(e, text) {
  e.className = 'note';
  e.replaceChildren(...String(text).split('`').map((part, i) => i % 2 ? el('code', part) : document.createTextNode(part)));
  return e;
}
const empty = (id, text) => noted(document.getElementById(id), text);
const NO_SCORES = 'No scored forecasts yet: run `python -m flows.monitor` once outcomes are known (`--backfill` scores every prediction file).';

// the per-symbol view: '#symbol=NAME' in the address selects a symbol and choosing one writes
// it there, so a link opens one symbol's charts; a name the report lacks gets a note
const view = (function () {
  const sel = document.getElementById('symbol'), box = document.getElementById('symbol-note');
  const names = Object.keys(D.fans), drawers = []; let shown = null;
  names.forEach(s => sel.appendChild(el('option', s)));
  const wanted = () => new URLSearchParams(location.hash.slice(1)).get('symbol');
  function show(name) {
    sel.value = name;
    if (name === shown) return;
    shown = name; drawers.forEach(f => f(name));
  }
  function select(name) {
    box.hidden = true; show(name);
    const hash = '#symbol=' + encodeURIComponent(name);
    if (location.hash !== hash) location.replace(hash);
  }
  function fromHash() {
    const given = wanted(), name = given === '' ? null : given;  // '#symbol=' selects nothing
    const found = name === null ? undefined : (names.includes(name) ? name : names.find(n => n.toUpperCase() === name.toUpperCase()));
    if (found !== undefined) { box.hidden = true; show(found); return; }
    const current = shown === null ? names[0] : shown;
    if (name !== null) {  // the name isolated (<bdi>): a right-to-left mark cannot turn the line
      box.replaceChildren('No symbol "', el('bdi', name), '" in this report' + (current === undefined ? '.' : ': showing ' + current + '.'));
      box.hidden = false;
    }
    if (current !== undefined) show(current);
  }
  sel.addEventListener('change', () => select(sel.value));
  window.addEventListener('hashchange', fromHash);
  function start() {
    fromHash();
    if (wanted() !== null) document.getElementById('symbol-view').scrollIntoView();
  }
  return {names: names, on: f => drawers.push(f), select: select, start: start};
})();

// today's forecasts: sortable, filterable; a row click selects its symbol
(function () {
  const F = D.forecasts, cols = ['symbol', 'sector', ...qcols, 'width', 'vol_tercile'];
  const n = F.symbol.length; let order = [...Array(n).keys()], sortCol = 'symbol', asc = true, current = null;
  const head = document.querySelector('#forecasts thead tr'), body = document.querySelector('#forecasts tbody');
  const filter = document.getElementById('filter');
  cols.forEach(c => { const th = el('th', c); th.dataset.col = c; th.onclick = () => { asc = sortCol === c ? !asc : true; sortCol = c; draw(); }; head.appendChild(th); });
  const mark = () => { for (const tr of body.rows) tr.classList.toggle('selected', tr.dataset.symbol === current); };
  function draw() {
    const f = filter.value.toLowerCase();
    order.sort((a, b) => { const x = F[sortCol][a], y = F[sortCol][b]; const r = x < y ? -1 : x > y ? 1 : 0; return asc ? r : -r; });
    body.replaceChildren();
    for (const i of order) {
      if (f && !(F.symbol[i] + ' ' + F.sector[i]).toLowerCase().includes(f)) continue;
      const tr = document.createElement('tr');
      tr.dataset.symbol = F.symbol[i];
      if (view.names.includes(F.symbol[i])) tr.onclick = () => view.select(F.symbol[i]);
      cols.forEach(c => tr.appendChild(el('td', fmt(F[c][i], c === 'vol_tercile' ? 0 : 4), typeof F[c][i] === 'string' ? 'text' : undefined)));
      body.appendChild(tr);
    }
    mark();
    document.getElementById('shown').textContent = body.children.length + ' of ' + n + ' symbols';
  }
  view.on(s => { current = s; mark(); });
  filter.oninput = draw; draw();
})();

// the selected symbol's fan chart and today's forecast in words
(function () {
  if (!view.names.length) { empty('fan', 'No forecasts to draw: run `python -m flows.predict`.'); return; }
  const Q = qcols, mid = Q[Math.floor(Q.length / 2)], F = D.forecasts;
  const pct = v => (v === null || v === undefined) ? '?' : (100 * v).toFixed(2) + ' %';
  function traces(s) {
    const f = D.fans[s], x = f.date;
    const t = [
      {x: x, y: f.hi, mode: 'lines', line: {width: 0}, showlegend: false, hoverinfo: 'skip'},
      {x: x, y: f.lo, mode: 'lines', fill: 'tonexty', fillcolor: 'rgba(31,58,95,0.15)', line: {width: 0}, name: 'calibrated interval'},
    ];
    if (Q.length > 3) {
      t.push({x: x, y: f[Q[Q.length - 2]], mode: 'lines', line: {width: 0}, showlegend: false, hoverinfo: 'skip'});
      t.push({x: x, y: f[Q[1]], mode: 'lines', fill: 'tonexty', fillcolor: 'rgba(31,58,95,0.3)', line: {width: 0}, name: Q[1] + ' .. ' + Q[Q.length - 2]});
    }
    t.push({x: x, y: f[mid], mode: 'lines', line: {color: '#1f3a5f', width: 1.5}, name: mid});
    t.push({x: x, y: f.y, mode: 'markers', marker: {size: 5, color: f.y.map((v, i) => v === null ? '#999' : (v < f.lo[i] || v > f.hi[i]) ? '#d92d20' : '#12b76a')}, name: 'realized return'});
    return t;
  }
  function today(s) {
    const i = F.symbol.indexOf(s);
    if (i < 0) return s + ' has no forecast in the newest prediction file: its history only.';
    return s + (F.sector[i] ? ' (' + F.sector[i] + ')' : '') + ', forecast of ' + F.date[i] + (F.target_date ? ' for ' + F.target_date[i] : '') +
      ': median log return ' + pct(F[mid][i]) + ', ' + Math.round(100 * D.target) + ' % interval ' + pct(F.lo[i]) + ' .. ' + pct(F.hi[i]) + '.';
  }
  view.on(s => {
    document.getElementById('fan-title').textContent = s + ': h-day log return forecasts';
    document.getElementById('symbol-summary').textContent = today(s);
    Plotly.react('fan', traces(s), layout({yaxis: {tickformat: '.1%'}}), CONFIG);
  });
})();

// coverage over time, calibration, loss ratios
(function () {
  const T = D.over_time, band = D.band, C = D.calibration;
  document.getElementById('history-source').textContent = 'From ' + D.history_source + '.';
  const cov = Object.keys(T).filter(k => k.startsWith('coverage_')).map(k => ({x: T.date, y: T[k], mode: 'lines', name: k.replace('coverage_', '') + '-day coverage'}));
  if (!T.date || !T.date.length) empty('coverage', NO_SCORES);
  else Plotly.newPlot('coverage', cov, layout({
    shapes: [{type: 'rect', xref: 'paper', x0: 0, x1: 1, y0: band[0], y1: band[1], fillcolor: 'rgba(18,183,106,0.12)', line: {width: 0}},
             {type: 'line', xref: 'paper', x0: 0, x1: 1, y0: D.target, y1: D.target, line: {dash: 'dot', color: '#067647'}}],
    yaxis: {tickformat: '.0%'}}), CONFIG);
  if (!C.rows) empty('calibration', NO_SCORES);
  else Plotly.newPlot('calibration', [
    {x: C.nominal, y: C.nominal, mode: 'lines', name: 'perfect', line: {dash: 'dot', color: '#999'}},
    {x: C.nominal, y: C.observed, mode: 'lines+markers', name: 'observed'}],
    layout({xaxis: {title: {text: 'nominal'}}, yaxis: {title: {text: 'observed'}}}, 0.24), CONFIG);
  const P = [];
  Object.keys(T).filter(k => k.startsWith('pinball_ratio_ewma')).forEach(k => P.push({x: T.date, y: T[k], mode: 'lines', name: 'vs ewma (' + k.split('_').pop() + '-day, scores)'}));
  const scored = P.length > 0, scores = (T.source || []).some(s => s !== 'held-out test');
  if (D.backtest) Object.keys(D.backtest).filter(k => !['month', 'backtest_id', 'loss'].includes(k)).forEach(b => P.push({x: D.backtest.month, y: D.backtest[b], mode: 'lines', name: 'vs ' + b + ' (backtest, monthly ' + D.backtest.loss + ')'}));
  const noScores = scores ? 'The scores have no baseline losses yet (the EWMA baseline needs 20 returns): run `python -m flows.monitor` as outcomes come in' : NO_SCORES.replace(/\.$/, '');
  const noBacktest = 'run `python -m flows.backtest` for its monthly ratios';
  if (!P.length) { empty('pinball', noScores + '; no backtest yet: ' + noBacktest + '.'); return; }
  Plotly.newPlot('pinball', P, layout({shapes: [{type: 'line', xref: 'paper', x0: 0, x1: 1, y0: 1, y1: 1, line: {dash: 'dot', color: '#999'}}]}), CONFIG);
  const missing = scored ? (D.backtest ? null : 'No backtest yet: ' + noBacktest + '.') : noScores + '.';
  if (missing) document.getElementById('pinball').after(noted(el('p'), missing));
})();

// tail risk: the 99 % VaR's zones per symbol, its exceptions over time, the selected symbol's
// VaR against its realized returns, and losses beyond the 97.5 % VaR against their ES
(function () {
  const R = D.risk, box = document.getElementById('risk-note');
  if (!R || !R.watch) {
    const levels = D.quantiles.includes(0.01) && D.quantiles.includes(0.99);
    noted(box, 'No tail-risk figures yet' + (R && R.note ? ' (' + R.note + ')' : '') + (levels ? ': run `python -m flows.monitor` as outcomes come in.' : ': train with the 1 % and 99 % levels (`python -m flows.train`).'));
    document.querySelectorAll('#risk .grid').forEach(g => g.remove());
    return;
  }
  const W = R.watch;
  box.textContent = 'Over ' + W.dates[0] + ' .. ' + W.dates[1] + ' (' + W.outcomes_per_symbol + ' non-overlapping outcomes per symbol' + (W.checked ? '' : '; ' + W.note) + '): pooled exceedance long ' + fmt(W.pooled.long.exceedance) + ', short ' + fmt(W.pooled.short.exceedance) + ' (expected ' + R.alpha + '); red zone: ' + ([...new Set([...W.red.long, ...W.red.short])].join(', ') || 'none') + '.';
  const Z = R.zones;
  if (Z) {
    const cols = ['symbol', 'long_exceptions', 'long_zone', 'short_exceptions', 'short_zone'];
    const t = el('table'), h = t.createTHead().insertRow(); cols.forEach(c => h.appendChild(el('th', c.replace('_', ' '))));
    const b = t.createTBody(), order = [...Z.symbol.keys()].sort((i, j) => Math.max(Z.long_exceptions[j], Z.short_exceptions[j]) - Math.max(Z.long_exceptions[i], Z.short_exceptions[i]));
    order.forEach(i => { const tr = b.insertRow(); cols.forEach(c => tr.appendChild(el('td', String(Z[c][i]), c.endsWith('zone') ? (Z[c][i] === 'red' ? 'flag text' : 'text') : (c === 'symbol' ? 'text' : undefined)))); });
    const wrap = el('div', undefined, 'scroll'); wrap.appendChild(t); document.getElementById('zones').appendChild(wrap);
  } else empty('zones', 'No symbol has a zone yet: run `python -m flows.monitor` as outcomes come in.');
  const E = R.exceptions;
  Plotly.newPlot('exceptions', [
    {x: E.date, y: E.long_share, mode: 'lines', name: 'long: below -VaR'},
    {x: E.date, y: E.short_share, mode: 'lines', name: 'short: above VaR'}],
    layout({yaxis: {tickformat: '.0%'}, shapes: [{type: 'line', xref: 'paper', x0: 0, x1: 1, y0: R.alpha, y1: R.alpha, line: {dash: 'dot', color: '#999'}}]}), CONFIG);
  const lo = 'q_' + R.alpha, hi = 'q_' + (1 - R.alpha), simple = v => v === null ? null : Math.expm1(v);
  view.on(s => {
    const f = D.fans[s], title = document.getElementById('var-symbol-title');
    title.textContent = s + ': h-day simple return and the 99 % VaR';
    const chart = document.getElementById('var-symbol');
    if (!f || !f[lo]) { Plotly.purge(chart); noted(chart, s + ' has no 1 % and 99 % forecasts to draw: train with those levels (`python -m flows.train`).'); return; }
    if (chart.className === 'note') { chart.replaceChildren(); chart.className = 'chart'; }
    const r = f.y.map(simple), down = f[lo].map(simple), up = f[hi].map(simple);
    Plotly.react(chart, [
      {x: f.date, y: down, mode: 'lines', line: {color: '#b42318'}, name: '-VaR 99 % (long)'},
      {x: f.date, y: up, mode: 'lines', line: {color: '#b54708'}, name: 'VaR 99 % (short)'},
      {x: f.date, y: r, mode: 'markers', name: 'realized return', marker: {size: 5, color: r.map((v, i) => v === null ? '#999' : (v < down[i] || v > up[i]) ? '#d92d20' : '#1f3a5f')}}],
      layout({yaxis: {tickformat: '.1%'}}), CONFIG);
  });
  const S = R.es;
  if (S && S.loss.length) {
    const top = Math.max(...S.loss, ...S.es);
    Plotly.newPlot('es', [
      {x: [0, top], y: [0, top], mode: 'lines', line: {dash: 'dot', color: '#999'}, name: 'loss = ES'},
      {x: S.es, y: S.loss, mode: 'markers', marker: {size: 4, opacity: 0.6}, name: 'losses beyond the 97.5 % VaR', text: S.symbol.map((s, i) => esc(s) + ' ' + S.date[i])}],
      layout({xaxis: {title: {text: 'forecast ES'}, tickformat: '.1%'}, yaxis: {title: {text: 'realized loss'}, tickformat: '.1%'}}, 0.24), CONFIG);
  } else empty('es', D.quantiles.includes(0.025) ? 'No loss beyond the 97.5 % VaR yet: run `python -m flows.monitor` as outcomes come in.' : 'No ES figures: the grid lacks the 2.5 % level; train with it (`python -m flows.train`).');
})();

// drift, health, quality, alerts
(function () {
  const M = D.monitor;
  const drift = document.getElementById('drift');
  if (!M) noted(drift, 'No drift figures yet: run `python -m flows.monitor` (it compares the recent features with the training window).');
  else if (!M.drift || !M.drift.features) noted(drift, M.drift ? M.drift.note : 'No drift figures in the monitor summary: run `python -m flows.monitor`.');
  else {
    drift.appendChild(el('p', M.drift.note, 'muted'));
    const t = el('table'), h = t.createTHead().insertRow();
    ['feature', 'rank', 'PSI', 'KS', 'rows', 'flag'].forEach(c => h.appendChild(el('th', c)));
    const b = t.createTBody();
    M.drift.features.forEach(r => { const tr = b.insertRow(); tr.appendChild(el('td', r.feature));
      [r.rank, fmt(r.psi, 3), fmt(r.ks, 3), r.rows].forEach(v => tr.appendChild(el('td', String(v))));
      tr.appendChild(el('td', r.alerting ? 'PSI above the line' : (r.exempt ? 'calendar / categorical' : ''), r.alerting ? 'flag text' : 'text')); });
    const wrap = el('div', undefined, 'scroll'); wrap.appendChild(t); drift.appendChild(wrap);
  }
  const health = document.getElementById('health');
  if (M && M.health) {
    const fr = M.health.freshness, q = M.health.quarantine;
    if (fr) health.appendChild(el('p', fr.fresh + ' of ' + fr.symbols + ' symbols (' + (100 * fr.fresh_share).toFixed(1) + ' %) have a bar for ' + fr.session + (fr.stale_symbols.length ? '; stale: ' + fr.stale_symbols.slice(0, 20).join(', ') : ''), fr.fresh_share < D.fresh_share ? 'flag' : 'ok'));
    if (q && q.latest_run) health.appendChild(el('p', 'quarantine rate of collect run ' + q.latest_run + ': ' + (100 * q.latest_rate).toFixed(3) + ' %' + (q.trailing_mean === null ? '' : ' (trailing mean ' + (100 * q.trailing_mean).toFixed(3) + ' % over ' + q.trailing_runs + ' runs)')));
    const active = Object.entries(M.alerts.active);
    health.appendChild(el('p', active.length ? 'active alerts: ' + active.map(([k, v]) => v.reason).join('; ') : 'no active alert', active.length ? 'flag' : 'ok'));
  } else noted(health, 'No data-health figures yet: run `python -m flows.monitor` (freshness, quarantine rate, alerts).');
  const qual = document.getElementById('quality'), Q = D.quality;
  if (Q) {
    qual.appendChild(el('p', 'collect run ' + Q.run_id + ': ' + (Q.totals.rows_quarantined || 0) + ' of ' + (Q.totals.rows_checked || 0) + ' rows quarantined', 'muted'));
    const t = el('table'), h = t.createTHead().insertRow(); ['rule', 'rows rejected', 'what it checks'].forEach(c => h.appendChild(el('th', c)));
    const b = t.createTBody(), by = Q.totals.by_rule || {};
    Object.keys(Q.rules).forEach(r => { const tr = b.insertRow(); tr.appendChild(el('td', r)); tr.appendChild(el('td', String(by[r] || 0))); tr.appendChild(el('td', Q.rules[r], 'text')); });
    qual.appendChild(t);
  } else noted(qual, 'No quality report in the store: `python -m flows.collect` writes one per run.');
})();

view.start();
"""


def figure(chart_id: str, title: str = "") -> str:
    """A chart with its title as an HTML heading above it: Plotly's mode bar sits inside the
    chart, so it never covers the title (``title``: escaped; empty ones are set by the script)."""
    return (
        f'<figure><h3 class="chart-title" id="{chart_id}-title">{html.escape(title)}</h3>'
        f'<div id="{chart_id}" class="chart"></div></figure>'
    )


def sections(data: dict[str, Any]) -> str:
    """The page's sections, empty containers the script fills (the model card: rendered here)."""
    return f"""<section><h2>Today's forecasts</h2><input id="filter" placeholder="filter by symbol or sector" aria-label="filter"><span id="shown" class="muted"></span>
<div class="scroll"><table id="forecasts"><thead><tr></tr></thead><tbody></tbody></table></div></section>
<section id="symbol-view"><h2>Per symbol</h2><div class="controls"><label for="symbol">Symbol</label><select id="symbol" aria-label="symbol"></select>
<span class="muted">the last days' forecasts and the realized returns (red: outside the interval); pick a row above, or link one symbol with <code>#symbol=NAME</code></span></div>
<p id="symbol-note" class="note" role="status" hidden></p><p id="symbol-summary" class="muted"></p>
{figure("fan")}</section>
<section><h2>Forecast quality over time</h2><p id="history-source" class="muted"></p>
<div class="grid">{figure("coverage", "Interval coverage, rolled over trading days")}{figure("calibration", "Calibration: outcomes below each quantile")}</div>
{figure("pinball", "Loss ratio to the baselines (pinball in the scores, CRPS in the backtest; below 1: the model is better)")}</section>
<section id="risk"><h2>Tail risk</h2><p id="risk-note" class="muted"></p>
<div class="grid"><figure><h3 class="chart-title">The 99 % VaR's zones per symbol</h3><div id="zones"></div></figure>{figure("exceptions", "Share of symbols beyond the 99 % VaR per date")}</div>
<div class="grid">{figure("var-symbol")}{figure("es", "Realized losses beyond the 97.5 % VaR against the ES forecast (long)")}</div></section>
<section><h2>Feature drift</h2><div id="drift"></div></section>
<section><h2>Data health</h2><div id="health"></div></section>
<section><h2>Quality rules</h2><div id="quality"></div></section>
<section><h2>Model card</h2><div id="card" class="card">{markdown_html(str(data["model_card"]))}</div></section>"""


def render(data: dict[str, Any], plotly_js: str) -> str:
    """The page: header, sections, the data as JSON, Plotly and the drawing script."""
    head = (
        f"forecasts as of {html.escape(str(data['as_of']))} &middot; run {html.escape(str(data['run_id']))} &middot; "
        f"{html.escape(str(data['model']))}, horizon {int(data['horizon'])} trading days, "
        f"target coverage {float(data['target']):.0%} &middot; generated {html.escape(str(data['generated_at']))}"
    )
    script_data = {k: v for k, v in data.items() if k != "model_card"}  # the card is HTML
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{TITLE} {html.escape(str(data["as_of"]))}</title><link rel="icon" href="data:,"><style>{STYLE}</style></head>
<body><header><h1>{TITLE}</h1><p>{head}</p></header><main>
{sections(data)}
</main>
<script type="application/json" id="report-data">{safe_json(script_data)}</script>
<script>{plotly_js}</script>
<script>{SCRIPT}</script>
</body></html>
"""
