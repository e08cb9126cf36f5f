"""The report as one self-contained HTML file: Plotly's JavaScript and the data inlined, so it
opens offline from a folder or from S3 with no server. Every string from data reaches the
page as JSON inside a ``<script type="application/json">`` block (``<``, ``>`` and ``&``
escaped) and is put on the page with ``textContent``: nothing from data is parsed as HTML.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

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
th,td{border-bottom:1px solid #eef0f2;padding:3px 6px;text-align:right}th{cursor:pointer;background:#f1f3f5;position:sticky;top:0}
td:first-child,th:first-child,td.text{text-align:left}.scroll{max-height:420px;overflow:auto}
.flag{color:#b42318;font-weight:600}.ok{color:#067647}.muted{color:#667085;font-size:12px}
pre{white-space:pre-wrap;font-size:12px;background:#f6f8fa;padding:8px;border-radius:4px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:14px}.chart{height:360px}
input,select{font-size:13px;padding:3px 6px;margin:0 8px 8px 0}
"""

SCRIPT = r"""
const D = JSON.parse(document.getElementById('report-data').textContent);
const fmt = (v, d = 4) => (v === null || v === undefined) ? '' : (typeof v === 'number' ? v.toFixed(d) : String(v));
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };
const qcols = D.quantiles.map(q => 'q_' + q);
// Plotly renders a little HTML in titles and labels: data strings go in as entities
const esc = s => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

// today's forecasts: sortable, filterable
(function () {
  const F = D.forecasts, cols = ['symbol', 'sector', ...qcols, 'width', 'vol_tercile'];
  const n = F.symbol.length; let order = [...Array(n).keys()], sortCol = 'symbol', asc = true;
  const head = document.querySelector('#forecasts thead tr'), body = document.querySelector('#forecasts tbody');
  const filter = document.getElementById('filter');
  cols.forEach(c => { const th = el('th', c); th.dataset.col = c; th.onclick = () => { asc = sortCol === c ? !asc : true; sortCol = c; draw(); }; head.appendChild(th); });
  function draw() {
    const f = filter.value.toLowerCase();
    order.sort((a, b) => { const x = F[sortCol][a], y = F[sortCol][b]; const r = x < y ? -1 : x > y ? 1 : 0; return asc ? r : -r; });
    body.replaceChildren();
    for (const i of order) {
      if (f && !(F.symbol[i] + ' ' + F.sector[i]).toLowerCase().includes(f)) continue;
      const tr = document.createElement('tr');
      cols.forEach(c => tr.appendChild(el('td', fmt(F[c][i], c === 'vol_tercile' ? 0 : 4), typeof F[c][i] === 'string' ? 'text' : undefined)));
      body.appendChild(tr);
    }
    document.getElementById('shown').textContent = body.children.length + ' of ' + n + ' symbols';
  }
  filter.oninput = draw; draw();
})();

// fan chart per symbol
(function () {
  const sel = document.getElementById('symbol'), names = Object.keys(D.fans);
  names.forEach(s => sel.appendChild(el('option', s)));
  const Q = qcols, lo = Q[0], hi = Q[Q.length - 1];
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
    const mid = Q[Math.floor(Q.length / 2)];
    t.push({x: x, y: f[mid], mode: 'lines', line: {color: '#1f3a5f', width: 1.5}, name: mid});
    t.push({x: x, y: f.y, mode: 'markers', marker: {size: 5, color: f.y.map((v, i) => v === null ? '#999' : (v < f.lo[i] || v > f.hi[i]) ? '#d92d20' : '#12b76a')}, name: 'realized return'});
    return t;
  }
  function draw() {
    Plotly.react('fan', traces(sel.value), {title: {text: esc(sel.value) + ': h-day log return forecasts'}, margin: {t: 40, r: 10}, legend: {orientation: 'h'}, yaxis: {tickformat: '.1%'}});
  }
  sel.onchange = draw; if (names.length) { sel.value = names[0]; draw(); }
})();

// coverage over time, calibration, pinball ratio
(function () {
  const T = D.over_time, band = D.band;
  const cov = Object.keys(T).filter(k => k.startsWith('coverage_')).map(k => ({x: T.date, y: T[k], mode: 'lines', name: k.replace('coverage_', '') + '-day coverage'}));
  document.getElementById('history-source').textContent = 'From ' + D.history_source + '.';
  Plotly.newPlot('coverage', cov, {margin: {t: 30, r: 10}, title: {text: 'Interval coverage, rolled over trading days', font: {size: 12}},
    shapes: [{type: 'rect', xref: 'paper', x0: 0, x1: 1, y0: band[0], y1: band[1], fillcolor: 'rgba(18,183,106,0.12)', line: {width: 0}},
             {type: 'line', xref: 'paper', x0: 0, x1: 1, y0: D.target, y1: D.target, line: {dash: 'dot', color: '#067647'}}],
    yaxis: {tickformat: '.0%'}, legend: {orientation: 'h'}});
  const C = D.calibration;
  Plotly.newPlot('calibration', [
    {x: C.nominal, y: C.nominal, mode: 'lines', name: 'perfect', line: {dash: 'dot', color: '#999'}},
    {x: C.nominal, y: C.observed, mode: 'lines+markers', name: 'observed'}],
    {margin: {t: 30, r: 10}, title: {text: 'Calibration: outcomes below each quantile', font: {size: 12}}, xaxis: {title: {text: 'nominal'}}, yaxis: {title: {text: 'observed'}}, legend: {orientation: 'h'}});
  const P = [];
  Object.keys(T).filter(k => k.startsWith('pinball_ratio_ewma')).forEach(k => P.push({x: T.date, y: T[k], mode: 'lines', name: 'vs ewma (' + k.split('_').pop() + '-day, scores)'}));
  if (D.backtest) Object.keys(D.backtest).filter(k => !['month', 'backtest_id', 'loss'].includes(k)).forEach(b => P.push({x: D.backtest.month, y: D.backtest[b], mode: 'lines', name: 'vs ' + b + ' (backtest, monthly ' + D.backtest.loss + ')'}));
  Plotly.newPlot('pinball', P, {margin: {t: 30, r: 10}, title: {text: 'Loss ratio to the baselines (pinball in the scores, CRPS in the backtest; below 1: the model is better)', font: {size: 12}},
    shapes: [{type: 'line', xref: 'paper', x0: 0, x1: 1, y0: 1, y1: 1, line: {dash: 'dot', color: '#999'}}], legend: {orientation: 'h'},
    annotations: P.length ? [] : [{text: 'no baseline losses yet: run the monitor (python -m flows.monitor --backfill) or a backtest', xref: 'paper', yref: 'paper', x: 0.5, y: 0.5, showarrow: false}]});
})();

// tail risk: the 99 % VaR's zones per symbol, its exceptions over time, the selected symbol's
// VaR against its realized returns, and losses beyond the 97.5 % VaR against their ES
(function () {
  const R = D.risk, box = document.getElementById('risk-note');
  if (!R || !R.watch) { box.textContent = R ? R.note : 'No risk figures.'; return; }
  const W = R.watch;
  box.textContent = 'Over ' + W.dates[0] + ' .. ' + W.dates[1] + ' (' + W.outcomes_per_symbol + ' non-overlapping outcomes per symbol' + (W.checked ? '' : '; ' + W.note) + '): pooled exceedance long ' + fmt(W.pooled.long.exceedance) + ', short ' + fmt(W.pooled.short.exceedance) + ' (expected ' + R.alpha + '); red zone: ' + ([...new Set([...W.red.long, ...W.red.short])].join(', ') || 'none') + '.';
  const Z = R.zones;
  if (Z) {
    const cols = ['symbol', 'long_exceptions', 'long_zone', 'short_exceptions', 'short_zone'];
    const t = el('table'), h = t.createTHead().insertRow(); cols.forEach(c => h.appendChild(el('th', c.replace('_', ' '))));
    const b = t.createTBody(), order = [...Z.symbol.keys()].sort((i, j) => Math.max(Z.long_exceptions[j], Z.short_exceptions[j]) - Math.max(Z.long_exceptions[i], Z.short_exceptions[i]));
    order.forEach(i => { const tr = b.insertRow(); cols.forEach(c => tr.appendChild(el('td', String(Z[c][i]), c.endsWith('zone') ? (Z[c][i] === 'red' ? 'flag text' : 'text') : (c === 'symbol' ? 'text' : undefined)))); });
    const wrap = el('div', undefined, 'scroll'); wrap.appendChild(t); document.getElementById('zones').appendChild(wrap);
  }
  const E = R.exceptions;
  Plotly.newPlot('exceptions', [
    {x: E.date, y: E.long_share, mode: 'lines', name: 'long: below -VaR'},
    {x: E.date, y: E.short_share, mode: 'lines', name: 'short: above VaR'}],
    {margin: {t: 60, r: 10}, title: {text: 'Share of symbols beyond the 99 % VaR per date', font: {size: 12}}, yaxis: {tickformat: '.0%'}, legend: {orientation: 'h'},
     shapes: [{type: 'line', xref: 'paper', x0: 0, x1: 1, y0: R.alpha, y1: R.alpha, line: {dash: 'dot', color: '#999'}}]});
  const sel = document.getElementById('symbol'), lo = 'q_' + R.alpha, hi = 'q_' + (1 - R.alpha);
  function drawVar() {
    const f = D.fans[sel.value]; if (!f || !f[lo]) return;
    const simple = v => v === null ? null : Math.expm1(v);
    const r = f.y.map(simple), down = f[lo].map(simple), up = f[hi].map(simple);
    Plotly.react('var-symbol', [
      {x: f.date, y: down, mode: 'lines', line: {color: '#b42318'}, name: '-VaR 99 % (long)'},
      {x: f.date, y: up, mode: 'lines', line: {color: '#b54708'}, name: 'VaR 99 % (short)'},
      {x: f.date, y: r, mode: 'markers', name: 'realized return', marker: {size: 5, color: r.map((v, i) => v === null ? '#999' : (v < down[i] || v > up[i]) ? '#d92d20' : '#1f3a5f')}}],
      {margin: {t: 60, r: 10}, title: {text: esc(sel.value) + ': h-day simple return and the 99 % VaR', font: {size: 12}}, yaxis: {tickformat: '.1%'}, legend: {orientation: 'h'}});
  }
  sel.addEventListener('change', drawVar); drawVar();
  const S = R.es;
  if (S && S.loss.length) {
    const top = Math.max(...S.loss, ...S.es);
    Plotly.newPlot('es', [
      {x: [0, top], y: [0, top], mode: 'lines', line: {dash: 'dot', color: '#999'}, name: 'loss = ES'},
      {x: S.es, y: S.loss, mode: 'markers', marker: {size: 4, opacity: 0.6}, name: 'losses beyond the 97.5 % VaR', text: S.symbol.map((s, i) => s + ' ' + S.date[i])}],
      {margin: {t: 60, r: 10}, title: {text: 'Realized losses beyond the 97.5 % VaR against the ES forecast (long)', font: {size: 12}}, xaxis: {title: {text: 'forecast ES'}, tickformat: '.1%'}, yaxis: {title: {text: 'realized loss'}, tickformat: '.1%'}, legend: {orientation: 'h'}});
  } else document.getElementById('es').replaceWith(el('p', 'No loss beyond the 97.5 % VaR yet, or the grid lacks its levels.', 'muted'));
})();

// drift, health, quality, model card, alerts
(function () {
  const M = D.monitor;
  const drift = document.getElementById('drift');
  if (!M || !M.drift || !M.drift.features) {
    drift.appendChild(el('p', M && M.drift ? M.drift.note : 'The monitor has not run yet (python -m flows.monitor).', 'muted'));
  } else {
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
  } else health.appendChild(el('p', 'The monitor has not run yet (python -m flows.monitor).', 'muted'));
  const qual = document.getElementById('quality'), Q = D.quality;
  if (Q) {
    qual.appendChild(el('p', 'collect run ' + Q.run_id + ': ' + (Q.totals.rows_quarantined || 0) + ' of ' + (Q.totals.rows_checked || 0) + ' rows quarantined', 'muted'));
    const t = el('table'), h = t.createTHead().insertRow(); ['rule', 'rows rejected', 'what it checks'].forEach(c => h.appendChild(el('th', c)));
    const b = t.createTBody(), by = Q.totals.by_rule || {};
    Object.keys(Q.rules).forEach(r => { const tr = b.insertRow(); tr.appendChild(el('td', r)); tr.appendChild(el('td', String(by[r] || 0))); tr.appendChild(el('td', Q.rules[r], 'text')); });
    qual.appendChild(t);
  } else qual.appendChild(el('p', 'No quality report in the store.', 'muted'));
  document.getElementById('card').textContent = D.model_card;
})();
"""


def render(data: dict[str, Any], plotly_js: str) -> str:
    """The page: header, sections, the data as JSON, Plotly and the drawing script."""
    head = (
        f"forecasts as of {data['as_of']} &middot; run {html.escape(str(data['run_id']))} &middot; "
        f"{html.escape(str(data['model']))}, horizon {int(data['horizon'])} trading days, "
        f"target coverage {float(data['target']):.0%} &middot; generated {html.escape(str(data['generated_at']))}"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{TITLE} {html.escape(str(data["as_of"]))}</title><link rel="icon" href="data:,"><style>{STYLE}</style></head>
<body><header><h1>{TITLE}</h1><p>{head}</p></header><main>
<section><h2>Today's forecasts</h2><input id="filter" placeholder="filter by symbol or sector"><span id="shown" class="muted"></span>
<div class="scroll"><table id="forecasts"><thead><tr></tr></thead><tbody></tbody></table></div></section>
<section><h2>Fan chart</h2><select id="symbol" aria-label="symbol"></select><span class="muted">the last days' forecasts and the realized returns (red: outside the interval)</span><div id="fan" class="chart"></div></section>
<section><h2>Forecast quality over time</h2><p id="history-source" class="muted"></p><div class="grid"><div id="coverage" class="chart"></div><div id="calibration" class="chart"></div></div><div id="pinball" class="chart"></div></section>
<section><h2>Tail risk</h2><p id="risk-note" class="muted"></p><div class="grid"><div id="zones"></div><div id="exceptions" class="chart"></div></div><div class="grid"><div id="var-symbol" class="chart"></div><div id="es" class="chart"></div></div></section>
<section><h2>Feature drift</h2><div id="drift"></div></section>
<section><h2>Data health</h2><div id="health"></div></section>
<section><h2>Quality rules</h2><div id="quality"></div></section>
<section><h2>Model card</h2><pre id="card"></pre></section>
</main>
<script type="application/json" id="report-data">{safe_json(data)}</script>
<script>{plotly_js}</script>
<script>{SCRIPT}</script>
</body></html>
"""
