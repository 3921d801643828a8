// The referrals table: server-side sort and paging, and the totals per currency of the filter.

import { API, api } from './api.js';
import { bindColumnChooser, renderHead, renderRow } from './columns.js';
import { $, el, showEmpty } from './dom.js';
import { plural } from './format.js';
import { apiFilterParams, bindFilterControls, setRef, syncFilterForm } from './filters.js';
import { loadTotals } from './pipeline.js';
import { descendingFirst, hasReferralFilters, view, writeUrl } from './state.js';
import { isFresh, refreshFreshCount } from './visits.js';

let referralSeq = 0;

/** The API query for the table: the filters, the sort and the page. */
function referralParams() {
  const r = view.ref;
  const p = apiFilterParams();
  p.set('sort', r.sort);
  p.set('order', r.order);
  p.set('limit', String(r.size));
  p.set('offset', String((r.page - 1) * r.size));
  return p;
}

function syncTableControls() {
  const r = view.ref;
  syncFilterForm();
  $('page-size').value = String(r.size);
  for (const th of document.querySelectorAll('#referrals-table th[data-sort]')) {
    if (th.dataset.sort === r.sort) th.setAttribute('aria-sort', r.order === 'asc' ? 'ascending' : 'descending');
    else th.removeAttribute('aria-sort');
  }
}

export async function loadReferrals() {
  const seq = ++referralSeq;
  syncTableControls();
  refreshFreshCount();
  loadTotals();
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

function sortBy(column) {
  if (view.ref.sort === column) setRef({ order: view.ref.order === 'asc' ? 'desc' : 'asc' });
  else setRef({ sort: column, order: descendingFirst(column) ? 'desc' : 'asc' });
}

function columnsChanged() {
  renderHead(sortBy);
  syncTableControls();
  if (lastBody) renderReferrals(lastBody);
}

export function bindReferralControls() {
  renderHead(sortBy);
  bindColumnChooser(columnsChanged);
  bindFilterControls();
  $('page-size').addEventListener('change', (e) => setRef({ size: parseInt(e.target.value, 10) || 50 }));
  $('page-prev').addEventListener('click', () => setRef({ page: Math.max(1, view.ref.page - 1) }));
  $('page-next').addEventListener('click', () => setRef({ page: view.ref.page + 1 }));
}
