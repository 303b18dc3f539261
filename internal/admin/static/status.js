// omnigate status page: polls admin/status.json every second, keeps the
// last WINDOW_S seconds of answers and shows rates and latency quantiles
// computed from their differences. The token, when the admin API needs
// one, comes from the URL fragment (#token=…), which the browser never
// sends to the server, and goes out as an Authorization header.
'use strict';

const WINDOW_S = 30;
const POLL_MS = 1000;
const polls = []; // {time, doc}, oldest first

function token() {
  return new URLSearchParams(location.hash.slice(1)).get('token') || '';
}

async function getJSON(path) {
  const t = token();
  const r = await fetch(path, {headers: t ? {Authorization: 'Bearer ' + t} : {}, cache: 'no-store'});
  if (r.status === 401) {
    throw new Error(t ? 'the token in the URL is not the admin token' :
      'this admin API needs a token: open this page as …/status#token=YOUR_TOKEN');
  }
  if (!r.ok) {
    let msg = r.status + ' ' + r.statusText;
    try { msg = (await r.json()).error.message; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return r.json();
}

async function poll() {
  try {
    const doc = await getJSON('admin/status.json');
    record(doc);
    render();
    problem('');
  } catch (e) {
    problem('Cannot read the gateway\'s status: ' + e.message);
    document.getElementById('updated').classList.add('stale');
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

async function build() {
  try {
    const b = await getJSON('admin/build');
    let s = b.version;
    if (b.vcs_revision) s += ' · ' + b.vcs_revision.slice(0, 12) + (b.vcs_modified ? '+' : '');
    document.getElementById('build').textContent = s;
  } catch (e) { /* poll reports the problem */ }
}

function problem(msg) {
  const p = document.getElementById('problem');
  p.textContent = msg;
  p.hidden = !msg;
}

// record keeps doc and drops what is older than the window, keeping the
// newest poll at or past its start as the base of the differences. A
// counter that went down (a restarted gateway) starts the window over.
function record(doc) {
  const last = polls[polls.length - 1];
  if (last && doc.time <= last.time) return;
  if (last && wentDown(last.doc, doc)) polls.length = 0;
  polls.push({time: doc.time, doc});
  while (polls.length > 2 && polls[1].time <= doc.time - WINDOW_S) polls.shift();
}

function wentDown(a, b) {
  for (const m of b.models) {
    const old = a.models.find(x => x.model === m.model);
    if (!old) continue;
    const [t0] = requestTotals(old.metrics);
    const [t1] = requestTotals(m.metrics);
    if (t0 !== null && t1 !== null && t1 < t0) return true;
  }
  return false;
}

// requestTotals sums a series' requests: [all, errors (status ≥ 500)];
// nulls when the gateway has no such counters.
function requestTotals(s) {
  if (!s || !s.requests) return [null, null];
  let all = 0, bad = 0;
  for (const r of s.requests) {
    all += r.count;
    if (Number(r.code) >= 500) bad += r.count;
  }
  return [all, bad];
}

// windowed finds a series (a model's, or a deployment's when dep is set)
// in the newest poll and in the oldest one of the window that has it.
function windowed(model, dep) {
  const pick = doc => {
    const m = doc.models.find(x => x.model === model);
    if (!m) return null;
    if (dep === undefined) return m.metrics;
    const d = m.deployments.find(x => x.deployment === dep);
    return d ? d.metrics : null;
  };
  const cur = polls[polls.length - 1];
  const now = pick(cur.doc);
  for (const p of polls) {
    if (p === cur) break;
    const then = pick(p.doc);
    if (then) return {now, then, dt: cur.time - p.time};
  }
  return {now, then: null, dt: 0};
}

// rates computes a series' window figures; null for what is not known.
function rates(w) {
  const out = {rps: null, errors: null, tps: null, p50: null, p99: null};
  if (!w.now || !w.then || w.dt <= 0) return out;
  const [a1, b1] = requestTotals(w.now);
  const [a0, b0] = requestTotals(w.then);
  if (a1 !== null) {
    const n = a1 - (a0 || 0);
    out.rps = n / w.dt;
    out.errors = n > 0 ? (b1 - (b0 || 0)) / n : null;
  }
  if (w.now.tokens) {
    const before = (w.then.tokens && w.then.tokens.completion) || 0;
    out.tps = ((w.now.tokens.completion || 0) - before) / w.dt;
  }
  const h = histDiff(w.now.latency, w.then.latency);
  if (h) {
    out.p50 = quantile(0.5, h);
    out.p99 = quantile(0.99, h);
  }
  return out;
}

// histDiff is the observations between two cumulative histograms, as
// [{le, count}] with +Inf last; a histogram missing at the start of the
// window had none then.
function histDiff(now, then) {
  if (!now) return null;
  const same = then && then.le.length === now.le.length && then.le.every((x, i) => x === now.le[i]);
  const base = same ? then : {counts: now.counts.map(() => 0), count: 0};
  const out = now.le.map((le, i) => ({le, count: now.counts[i] - base.counts[i]}));
  out.push({le: Infinity, count: now.count - base.count});
  return out;
}

// quantile is Prometheus's histogram_quantile: find the bucket the rank
// falls in and interpolate linearly within it; in the +Inf bucket, the
// highest finite bound; NaN (null here) without observations.
function quantile(q, buckets) {
  if (buckets.length < 2) return null;
  const total = buckets[buckets.length - 1].count;
  if (!(total > 0)) return null;
  let rank = q * total;
  let b = buckets.findIndex(x => x.count >= rank);
  if (b === buckets.length - 1) return buckets[buckets.length - 2].le;
  if (b === 0 && buckets[0].le <= 0) return buckets[0].le;
  let start = 0, count = buckets[b].count;
  if (b > 0) {
    start = buckets[b - 1].le;
    count -= buckets[b - 1].count;
    rank -= buckets[b - 1].count;
  }
  return start + (buckets[b].le - start) * (rank / count);
}

// Formatting. Each cell carries its raw number in data-value ("" when not
// known) so tools and tests read the figures, not the text.
const fmt = {
  rate: v => v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0),
  pct: v => (v === 0 ? '0' : (100 * v).toFixed(v < 0.01 ? 2 : v < 0.1 ? 1 : 0)) + ' %',
  secs: v => v < 1 ? (1000 * v).toFixed(0) + ' ms' : v.toFixed(2) + ' s',
  int: v => String(v),
  num: v => v.toFixed(1),
};

function cell(tr, field, value, format, cls) {
  const td = document.createElement('td');
  td.dataset.field = field;
  const known = value !== null && value !== undefined && !(typeof value === 'number' && !isFinite(value));
  td.dataset.value = known ? String(value) : '';
  if (known) {
    td.textContent = format ? format(value) : String(value);
  } else {
    td.textContent = '–';
    td.classList.add('unknown');
  }
  if (cls) td.classList.add(...cls.split(' ').filter(Boolean));
  tr.appendChild(td);
  return td;
}

function badge(tr, field, value, text, cls, title) {
  const td = cell(tr, field, value);
  td.textContent = '';
  const s = document.createElement('span');
  s.className = 'badge ' + cls;
  s.textContent = text;
  if (title) s.title = title;
  td.appendChild(s);
}

function nameCell(tr, name, extra, extraClass) {
  const td = document.createElement('td');
  td.className = 'name';
  td.dataset.field = 'name';
  td.dataset.value = name;
  td.textContent = name;
  if (extra) {
    const s = document.createElement('span');
    s.className = extraClass;
    s.textContent = extra;
    td.appendChild(s);
  }
  tr.appendChild(td);
}

// shadowNote adds to a model's name what its shadow traffic found: the
// candidate, the share mirrored and how often the candidate answered the
// same (the counts in its title).
function shadowNote(td, sh) {
  const s = document.createElement('span');
  s.className = 'shadow';
  s.dataset.candidate = sh.candidate;
  s.dataset.agreement = sh.agreement === undefined ? '' : String(sh.agreement);
  const agree = sh.agreement === undefined ? 'no answers compared yet' : fmt.pct(sh.agreement) + ' agree';
  s.textContent = 'shadow → ' + sh.candidate + ' · ' + fmt.pct(sh.share) + ' · ' + agree;
  s.title = 'Shadow traffic since the last reload: ' + sh.agree + ' agree, ' + sh.differ + ' differ, ' +
    sh.error + ' failed, ' + sh.dropped + ' dropped';
  td.appendChild(s);
}

// summary fills the cards above the table: the models' figures summed
// (the error rate over all their requests).
function summary(doc, figures) {
  let rps = null, tps = null, bad = null, inFlight = 0, queued = null, up = 0, all = 0;
  for (const [i, m] of doc.models.entries()) {
    const r = figures[i];
    if (r.rps !== null) rps = (rps || 0) + r.rps;
    if (r.tps !== null) tps = (tps || 0) + r.tps;
    if (r.errors !== null) bad = (bad || 0) + r.errors * r.rps;
    if (m.admission) queued = (queued || 0) + m.admission.queued;
    inFlight += m.in_flight;
    for (const d of m.deployments) {
      all++;
      if (d.health !== 'down' && d.breaker !== 'open') up++;
    }
  }
  const set = (field, value, format, bad) => {
    const el = document.querySelector('#summary [data-field="' + field + '"]');
    const known = value !== null && isFinite(value);
    el.dataset.value = known ? String(value) : '';
    el.textContent = known ? format(value) : '–';
    el.classList.toggle('unknown', !known);
    el.classList.toggle('bad', !!bad);
  };
  set('rps', rps, fmt.rate);
  set('errors', bad !== null && rps > 0 ? bad / rps : null, fmt.pct, bad > 0);
  set('in_flight', inFlight, fmt.int);
  set('queued', queued, fmt.int, queued > 0);
  set('tps', tps, fmt.num);
  set('up', up, v => v + ' / ' + all, up < all);
}

function render() {
  const cur = polls[polls.length - 1].doc;
  const rows = [];
  const figures = [];
  for (const m of cur.models) {
    const tr = document.createElement('tr');
    tr.dataset.row = 'model';
    tr.dataset.model = m.model;
    nameCell(tr, m.model, m.tier, 'tier');
    if (m.shadow) shadowNote(tr.lastChild, m.shadow);
    const up = m.deployments.filter(d => d.health !== 'down' && d.breaker !== 'open').length;
    cell(tr, 'health', up + '/' + m.deployments.length, v => v + ' up', up < m.deployments.length ? 'bad' : '');
    cell(tr, 'breaker', null);
    const r = rates(windowed(m.model));
    figures.push(r);
    cell(tr, 'rps', r.rps, fmt.rate);
    cell(tr, 'errors', r.errors, fmt.pct, r.errors > 0 ? 'bad' : '');
    cell(tr, 'in_flight', m.in_flight, fmt.int);
    cell(tr, 'queued', m.admission ? m.admission.queued : null, fmt.int);
    cell(tr, 'limit', m.admission ? m.admission.limit : null, fmt.int);
    cell(tr, 'load', m.deployments.reduce((a, d) => a + d.load, 0), fmt.num);
    cell(tr, 'running', null);
    cell(tr, 'waiting', null);
    cell(tr, 'kv', null);
    cell(tr, 'p50', r.p50, fmt.secs);
    cell(tr, 'p99', r.p99, fmt.secs);
    cell(tr, 'tps', r.tps, fmt.num);
    rows.push(tr);
    for (const d of m.deployments) rows.push(deploymentRow(m, d));
  }
  document.querySelector('#models tbody').replaceChildren(...rows);
  summary(cur, figures);
  const span = polls.length > 1 ? (polls[polls.length - 1].time - polls[0].time).toFixed(0) + ' s' : 'one poll';
  const u = document.getElementById('updated');
  u.textContent = 'updated ' + new Date(cur.time * 1000).toLocaleTimeString() + ' · window ' + span;
  u.classList.remove('stale');
}

function deploymentRow(m, d) {
  const tr = document.createElement('tr');
  tr.dataset.row = 'deployment';
  tr.dataset.model = m.model;
  tr.dataset.deployment = d.deployment;
  nameCell(tr, d.deployment, d.kind, 'kind');
  // Not probed (the simulator, hosted APIs): in rotation, so up.
  const health = d.health === 'down' ? 'down' : 'up';
  badge(tr, 'health', health, health, health + (d.health === 'unchecked' ? ' unprobed' : ''),
    d.health === 'unchecked' ? 'not probed: in rotation' : 'health check: ' + d.health);
  badge(tr, 'breaker', d.breaker, d.breaker.replace('_', '-'), d.breaker);
  const r = rates(windowed(m.model, d.deployment));
  cell(tr, 'rps', r.rps, fmt.rate);
  cell(tr, 'errors', r.errors, fmt.pct, r.errors > 0 ? 'bad' : '');
  cell(tr, 'in_flight', d.in_flight, fmt.int);
  cell(tr, 'queued', null);
  cell(tr, 'limit', null);
  cell(tr, 'load', d.load, fmt.num);
  const e = d.engine;
  const stale = e && e.stale ? 'stale' : '';
  cell(tr, 'running', e ? e.running : null, fmt.int, stale);
  cell(tr, 'waiting', e ? e.waiting : null, fmt.int, stale);
  const kv = cell(tr, 'kv', e ? e.kv_cache_usage : null, fmt.pct, stale);
  if (e && e.kv_cache_usage !== null) {
    const bar = document.createElement('span');
    bar.className = 'bar';
    const fill = document.createElement('span');
    fill.style.width = Math.min(100, 100 * e.kv_cache_usage).toFixed(0) + '%';
    bar.appendChild(fill);
    kv.prepend(bar);
  }
  cell(tr, 'p50', r.p50, fmt.secs);
  cell(tr, 'p99', r.p99, fmt.secs);
  cell(tr, 'tps', r.tps, fmt.num);
  return tr;
}

document.getElementById('window').textContent = WINDOW_S;
build();
poll();
