'use strict';
// The review page: filters, the list of decisions and refusals, and one decision with its reason
// trail (or one refusal), all read from the admin API. Text from records is only ever set as textContent.

const FILTERS = ['kind', 'verdict', 'jurisdiction', 'region', 'route', 'category', 'basis_kind', 'since', 'until', 'id'];
const TOKEN_KEY = 'domicile-admin-token';
const form = document.getElementById('filters');
const statusLine = document.getElementById('status');

function hashParams() {
  return new URLSearchParams(location.hash.slice(1));
}

function token() {
  return form.elements.token.value || sessionStorage.getItem(TOKEN_KEY) || '';
}

function say(text, error) {
  statusLine.textContent = text;
  statusLine.className = error ? 'error' : '';
}

async function api(path) {
  const t = token();
  const res = await fetch(path, { headers: t ? { Authorization: 'Bearer ' + t } : {} });
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail || detail; } catch (_) { /* not a problem body */ }
    throw new Error(res.status + ': ' + detail);
  }
  return res;
}

function cell(row, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
}

function joined(list) {
  return Array.isArray(list) && list.length ? list.join(', ') : '-';
}

async function list() {
  const q = new URLSearchParams();
  for (const f of FILTERS) {
    const v = form.elements[f].value.trim();
    if (v) q.set(f, v);
  }
  q.set('limit', '1000');
  say('Loading…');
  try {
    const text = await (await api('/v1/decisions?' + q)).text();
    const records = text.split('\n').filter(Boolean).map((l) => JSON.parse(l)).reverse();
    const body = document.querySelector('#decisions tbody');
    body.replaceChildren();
    let refused = 0;
    for (const r of records) {
      const row = document.createElement('tr');
      row.dataset.id = r.decision_id;
      row.dataset.kind = r.kind;
      cell(row, r.time);
      cell(row, r.decision_id, 'id');
      if (r.kind === 'refusal') {
        refused += 1;
        row.className = 'kind-refusal';
        cell(row, '-');
        cell(row, '-');
        cell(row, '-');
        cell(row, 'refused', 'verdict');
        cell(row, r.reason_code);
        cell(row, 'answered ' + (r.outcome ? r.outcome.status : '-'));
      } else {
        row.className = 'verdict-' + r.verdict;
        cell(row, r.route);
        cell(row, joined(r.subject && r.subject.jurisdictions));
        cell(row, r.destination ? r.destination.region : '-');
        cell(row, r.verdict, 'verdict');
        cell(row, r.reason_code);
        cell(row, joined(r.basis));
      }
      row.addEventListener('click', () => show(r.decision_id));
      body.appendChild(row);
    }
    const decided = records.length - refused;
    let summary = decided + (decided === 1 ? ' decision' : ' decisions');
    if (refused) summary += ', ' + refused + (refused === 1 ? ' refusal' : ' refusals');
    say(summary);
  } catch (e) {
    say('Could not load decisions: ' + e.message, true);
  }
}

function field(dl, name, value) {
  const dt = document.createElement('dt');
  dt.textContent = name;
  const dd = document.createElement('dd');
  dd.textContent = value;
  dl.append(dt, dd);
}

async function show(id) {
  try {
    const found = await (await api('/v1/decisions/' + encodeURIComponent(id))).json();
    const dl = document.getElementById('detail-fields');
    dl.replaceChildren();
    document.getElementById('reasons').replaceChildren();
    if (found.kind === 'refusal') {
      showRefusal(found.refusal, dl);
      return;
    }
    const { decision: r, outcome: o } = found;
    document.getElementById('detail-kind').textContent = 'Decision';
    document.getElementById('detail-id').textContent = r.decision_id;
    const s = r.subject || {};
    field(dl, 'time', r.time);
    field(dl, 'request', r.method + ' on route ' + r.route + ' (purpose ' + r.purpose + ')');
    field(dl, 'subject', joined(s.jurisdictions) + ' under ' + joined(s.regimes));
    field(dl, 'client', (s.client_address || 'unknown') + ' (from ' + s.client_address_source + ')');
    for (const e of s.evidence || []) {
      field(dl, 'evidence', e.source + ' says ' + e.country + ' (weight ' + e.weight + ') at ' + e.location);
    }
    for (const f of r.findings || []) {
      field(dl, 'finding', f.category + ' at ' + f.location + ' (' + f.detector + ')');
    }
    field(dl, 'destination', r.destination
      ? r.destination.region + ' (' + r.destination.country + ', operated by ' + r.destination.entity + ')'
      : 'none');
    field(dl, 'verdict', r.verdict + ' (' + r.reason_code + ')' + (r.enforced ? '' : ', not enforced (dry run)'));
    field(dl, 'basis', joined(r.basis));
    if (r.re_evaluate_at) field(dl, 're-evaluate at', r.re_evaluate_at);
    field(dl, 'policy revision', r.policy_revision);
    const out = r.outcome || {};
    field(dl, 'outcome', out.action + (out.status ? ' (' + out.status + ')' : ''));
    if (o) {
      field(dl, 'upstream', o.upstream_status != null
        ? 'answered ' + o.upstream_status + ' in ' + o.latency_us + ' µs'
        : (o.error || 'no answer'));
    }
    const ol = document.getElementById('reasons');
    ol.replaceChildren();
    for (const reason of r.reasons || []) {
      const li = document.createElement('li');
      const step = document.createElement('span');
      step.className = 'step';
      step.textContent = '[' + reason.step + '] ' + reason.rule + ': ';
      li.append(step, document.createTextNode(reason.finding));
      ol.appendChild(li);
    }
    document.getElementById('detail').hidden = false;
  } catch (e) {
    say('Could not open decision ' + id + ': ' + e.message, true);
  }
}

// A request answered before any decision: what was refused, when and with which status.
function showRefusal(r, dl) {
  document.getElementById('detail-kind').textContent = 'Refusal';
  document.getElementById('detail-id').textContent = r.decision_id;
  const out = r.outcome || {};
  field(dl, 'time', r.time);
  field(dl, 'request', r.method + ' from ' + (r.client_address || 'an unknown client'));
  field(dl, 'outcome', 'refused with ' + out.status + ' (' + r.reason_code + ') before any decision: nothing was forwarded');
  field(dl, 'policy revision', r.policy_revision);
  document.getElementById('detail').hidden = false;
}

// Whether the trail the list is read from verifies: every hash chain and checkpoint.
async function integrity() {
  const line = document.getElementById('integrity');
  try {
    const v = await (await api('/v1/verify')).json();
    if (v.verified) {
      line.textContent = 'Trail integrity: all ' + v.files + ' files verify (hash chains and checkpoints).';
      line.className = 'ok';
    } else {
      const b = v.broken[0];
      line.textContent = 'The trail does not verify: ' + v.broken.length + ' of ' + v.files +
        ' files broken, first ' + b.file + ' line ' + b.line + ': ' + b.message +
        '. What is listed may have been edited, removed or added.';
      line.className = 'error';
    }
  } catch (e) {
    line.textContent = 'Could not check the trail: ' + e.message;
    line.className = 'error';
  }
}

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (form.elements.token.value) sessionStorage.setItem(TOKEN_KEY, form.elements.token.value);
  list();
  integrity();
});

// Filters, a decision to open and the token may come in the fragment (never sent to a server);
// the token is moved to this tab's storage and removed from the address.
(function start() {
  const p = hashParams();
  if (p.get('token')) {
    sessionStorage.setItem(TOKEN_KEY, p.get('token'));
    p.delete('token');
    history.replaceState(null, '', location.pathname + (p.toString() ? '#' + p : ''));
  }
  for (const f of FILTERS) {
    if (p.get(f)) form.elements[f].value = p.get(f);
  }
  list().then(() => {
    if (p.get('open')) show(p.get('open'));
  });
  integrity();
}());
