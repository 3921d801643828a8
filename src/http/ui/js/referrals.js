// The referrals table: filters, server-side sort and paging.

import { API, api } from './api.js';
import { bindColumnChooser, renderHead, renderRow } from './columns.js';
import { $, el, showEmpty } from './dom.js';
import { plural } from './format.js';
import { descendingFirst, hasReferralFilters, view, writeUrl } from './state.js';
import { showTab } from './tabs.js';
import { showViewChip } from './views.js';
import { baseline, isFresh, refreshFreshCount } from './visits.js';

let referralSeq = 0;

function syncFilterForm() {
  const r = view.ref;
  $('f-q').value = r.q;
  for (const key of ['status', 'substatus', 'type', 'direction']) {
    const select = $(`f-${key}`);
    // A value from a shared URL that the list does not offer is added so it shows.
    if (r[key] && ![...select.options].some((o) => o.value === r[key])) select.append(el('option', {}, r[key]));
    select.value = r[key];
  }
  $('f-since').value = r.updated_since;
  $('f-missing').checked = r.include_missing;
  $('page-size').value = String(r.size);
  $('domain-chip-row').hidden = !r.domain;
  // The display form arrives with the rows; until then the stored form shows.
  if ($('domain-chip-text').dataset.domain !== r.domain) {
    $('domain-chip-text').dataset.domain = r.domain;
    $('domain-chip-text').textContent = r.domain;
  }
  $('fresh-chip').hidden = !(r.fresh && baseline);
  showViewChip();
  $('chip-row').hidden = $('domain-chip-row').hidden && $('fresh-chip').hidden && $('view-chip').hidden;
  for (const th of document.querySelectorAll('#referrals-table th[data-sort]')) {
    if (th.dataset.sort === r.sort) th.setAttribute('aria-sort', r.order === 'asc' ? 'ascending' : 'descending');
    else th.removeAttribute('aria-sort');
  }
}

/** The API query for the current filters; `updated_since` is the later of the two limits. */
function referralParams() {
  const r = view.ref;
  const p = new URLSearchParams();
  for (const key of ['q', 'status', 'substatus', 'type', 'direction', 'domain']) if (r[key]) p.set(key, r[key]);
  let since = null;
  if (r.updated_since) {
    // The date picker means local midnight; the API takes an absolute instant.
    const [y, m, d] = r.updated_since.split('-').map(Number);
    const local = new Date(y, m - 1, d);
    if (!Number.isNaN(local.getTime())) since = local;
  }
  if (r.fresh && baseline && (!since || new Date(baseline) > since)) since = new Date(baseline);
  if (since) p.set('updated_since', since.toISOString());
  if (r.include_missing) p.set('include_missing', 'true');
  p.set('sort', r.sort);
  p.set('order', r.order);
  p.set('limit', String(r.size));
  p.set('offset', String((r.page - 1) * r.size));
  return p;
}

export async function loadReferrals() {
  const seq = ++referralSeq;
  syncFilterForm();
  refreshFreshCount();
  const table = $('referrals-table');
  table.setAttribute('aria-busy', 'true');
  try {
    const { body } = await api(`${API}/referrals?${referralParams()}`);
    if (seq !== referralSeq) return;
    if (body.items.length === 0 && body.total > 0 && view.ref.page > 1) {
      // The page vanished (rows were filtered or removed): show the last one that exists.
      view.ref.page = Math.max(1, Math.ceil(body.total / view.ref.size));
      writeUrl(false);
      loadReferrals();
      return;
    }
    renderReferrals(body);
  } catch (error) {
    if (seq !== referralSeq) return;
    $('referrals-body').replaceChildren();
    showEmpty('referrals-empty', error.status === 401
      ? 'This daemon requires its API token; reload the page to enter it.'
      : `Could not load referrals: ${error.message}`);
    $('referrals-summary').textContent = '';
  } finally {
    if (seq === referralSeq) table.removeAttribute('aria-busy');
  }
}

let lastBody = null;

function renderReferrals(body) {
  lastBody = body;
  const rows = body.items.map((r) => el('tr', {
    'data-testid': 'referral-row', 'data-id': r.id, 'data-status': r.status || '', 'data-domain': r.customer_domain || '',
    'data-fresh': isFresh(r) ? 'true' : null, class: [r.missing_since ? 'missing' : '', isFresh(r) ? 'fresh' : ''].join(' ').trim() || null,
  }, renderRow(r)));
  $('referrals-body').replaceChildren(...rows);
  const r = view.ref;
  const shown = body.items.find((item) => item.customer_domain === r.domain);
  if (shown && shown.customer_domain_display) $('domain-chip-text').textContent = shown.customer_domain_display;
  if (body.total === 0) {
    showEmpty('referrals-empty', hasReferralFilters() || r.include_missing
      ? 'No referrals match these filters.'
      : 'No referrals yet. Use “Sync now” to fetch them from Partner Center.');
  } else {
    showEmpty('referrals-empty', '');
  }
  const first = body.total === 0 ? 0 : body.offset + 1;
  const last = body.offset + body.items.length;
  $('referrals-summary').textContent = body.total === 0 ? '' : `${first.toLocaleString()}–${last.toLocaleString()} of ${plural(body.total, 'referral', 'referrals')}`;
  $('page-prev').disabled = r.page <= 1;
  $('page-next').disabled = last >= body.total;
}

/** Changes the filters; any change but the page leaves the saved view they came from. */
function setRef(changes, push = false) {
  Object.assign(view.ref, changes);
  if (!('page' in changes)) view.ref.page = 1;
  if (Object.keys(changes).some((key) => key !== 'page')) view.viewName = '';
  writeUrl(push);
  loadReferrals();
}

function sortBy(column) {
  if (view.ref.sort === column) setRef({ order: view.ref.order === 'asc' ? 'desc' : 'asc' });
  else setRef({ sort: column, order: descendingFirst(column) ? 'desc' : 'asc' });
}

function columnsChanged() {
  renderHead(sortBy);
  syncFilterForm();
  if (lastBody) renderReferrals(lastBody);
}

export function bindReferralControls() {
  renderHead(sortBy);
  bindColumnChooser(columnsChanged);
  const form = $('referral-filters');
  form.addEventListener('submit', (e) => e.preventDefault());
  for (const key of ['status', 'substatus', 'type', 'direction']) {
    $(`f-${key}`).addEventListener('change', (e) => setRef({ [key]: e.target.value }));
  }
  $('f-since').addEventListener('change', (e) => setRef({ updated_since: e.target.value }));
  $('f-missing').addEventListener('change', (e) => setRef({ include_missing: e.target.checked }));
  let typing = null;
  $('f-q').addEventListener('input', (e) => {
    clearTimeout(typing);
    typing = setTimeout(() => setRef({ q: e.target.value.trim() }), 300);
  });
  form.addEventListener('reset', (e) => {
    e.preventDefault();
    setRef({ q: '', status: '', substatus: '', type: '', direction: '', updated_since: '', include_missing: false, fresh: false, domain: '' });
  });
  $('domain-chip-clear').addEventListener('click', () => setRef({ domain: '' }));
  $('fresh-chip-clear').addEventListener('click', () => setRef({ fresh: false }));
  $('new-since').addEventListener('click', () => {
    Object.assign(view.ref, { fresh: true, page: 1 });
    view.viewName = '';
    showTab('referrals');
  });
  $('page-size').addEventListener('change', (e) => setRef({ size: parseInt(e.target.value, 10) || 50 }));
  $('page-prev').addEventListener('click', () => setRef({ page: Math.max(1, view.ref.page - 1) }));
  $('page-next').addEventListener('click', () => setRef({ page: view.ref.page + 1 }));
}
