// The referrals table: filters, server-side sort and paging.

import { API, api } from './api.js';
import { statusBadge, substatusBadge } from './badges.js';
import { openReferral } from './detail.js';
import { $, el, showEmpty } from './dom.js';
import { money, plural, timeEl } from './format.js';
import { descendingFirst, hasReferralFilters, view, writeUrl } from './state.js';
import { filterDomain } from './tabs.js';

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
  for (const th of document.querySelectorAll('#referrals-table th[data-sort]')) {
    if (th.dataset.sort === r.sort) th.setAttribute('aria-sort', r.order === 'asc' ? 'ascending' : 'descending');
    else th.removeAttribute('aria-sort');
  }
}

function referralParams() {
  const r = view.ref;
  const p = new URLSearchParams();
  for (const key of ['q', 'status', 'substatus', 'type', 'direction', 'domain']) if (r[key]) p.set(key, r[key]);
  if (r.updated_since) {
    // The date picker means local midnight; the API takes an absolute instant.
    const [y, m, d] = r.updated_since.split('-').map(Number);
    const local = new Date(y, m - 1, d);
    if (!Number.isNaN(local.getTime())) p.set('updated_since', local.toISOString());
  }
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

function renderReferrals(body) {
  const rows = body.items.map((r) => el('tr', { 'data-testid': 'referral-row', 'data-id': r.id, 'data-status': r.status || '', 'data-domain': r.customer_domain || '', class: r.missing_since ? 'missing' : null },
    el('td', { 'data-label': 'Name' },
      el('button', { type: 'button', class: 'link', 'data-testid': 'referral-open', onclick: () => openReferral(r.id) }, r.name || '(unnamed referral)'),
      r.missing_since ? el('span', { class: 'sub' }, el('span', { class: 'badge missing', title: `Not listed by Partner Center since ${r.missing_since}` }, 'Missing')) : null),
    el('td', { 'data-label': 'Customer' }, r.customer_name || '—', r.customer_country ? el('span', { class: 'sub' }, r.customer_country) : null),
    el('td', { 'data-label': 'Domain' }, r.customer_domain
      ? el('button', { type: 'button', class: 'link quiet', title: `Show only ${r.customer_domain}`, onclick: () => filterDomain(r.customer_domain) }, r.customer_domain_display || r.customer_domain)
      : el('span', { class: 'muted' }, '—')),
    el('td', { 'data-label': 'Status', class: 'badges-cell', 'data-testid': 'cell-status' }, statusBadge(r.status) || '—', substatusBadge(r.substatus)),
    el('td', { 'data-label': 'Type' }, r.type || '—', r.direction ? el('span', { class: 'sub' }, r.direction) : null),
    el('td', { 'data-label': 'Deal value', class: 'num nowrap', 'data-testid': 'cell-deal-value' }, money(r.deal_value, r.currency)),
    el('td', { 'data-label': 'Updated', class: 'nowrap' }, timeEl(r.updated_at))));
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

function setRef(changes, push = false) {
  Object.assign(view.ref, changes);
  if (!('page' in changes)) view.ref.page = 1;
  writeUrl(push);
  loadReferrals();
}

export function bindReferralControls() {
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
    setRef({ q: '', status: '', substatus: '', type: '', direction: '', updated_since: '', include_missing: false, domain: '' });
  });
  $('domain-chip-clear').addEventListener('click', () => setRef({ domain: '' }));
  $('page-size').addEventListener('change', (e) => setRef({ size: parseInt(e.target.value, 10) || 50 }));
  $('page-prev').addEventListener('click', () => setRef({ page: Math.max(1, view.ref.page - 1) }));
  $('page-next').addEventListener('click', () => setRef({ page: view.ref.page + 1 }));
  for (const th of document.querySelectorAll('#referrals-table th[data-sort]')) {
    th.querySelector('button').addEventListener('click', () => {
      const column = th.dataset.sort;
      if (view.ref.sort === column) setRef({ order: view.ref.order === 'asc' ? 'desc' : 'asc' });
      else setRef({ sort: column, order: descendingFirst(column) ? 'desc' : 'asc' });
    });
  }
}
