// The referral filters: one form above the Referrals and Pipeline views (two views of
// the same rows), the chips for filters that have no field, and the API query they make,
// which the table, the pipeline, the totals and the CSV export all send.

import { $, el } from './dom.js';
import { NO_FILTERS, view, writeUrl } from './state.js';
import { loadCurrentTab, showTab } from './tabs.js';
import { showViewChip } from './views.js';
import { baseline } from './visits.js';

/** Form fields by filter; selects gain an option for a shared URL's value they lack. */
const SELECTS = { status: 'f-status', substatus: 'f-substatus', type: 'f-type', direction: 'f-direction', qualification: 'f-qualification', expiring_within_days: 'f-expiring' };
const INPUTS = { q: 'f-q', country: 'f-country', currency: 'f-currency', min_value: 'f-min-value', max_value: 'f-max-value' };
/** Typed fields whose change has not been applied yet; redrawing the form leaves them be. */
const typing = new Map();

/** Shows `view.ref` in the form and the chips. */
export function syncFilterForm() {
  const r = view.ref;
  for (const [key, id] of Object.entries(INPUTS)) if (!typing.has(key)) $(id).value = r[key];
  for (const [key, id] of Object.entries(SELECTS)) {
    const select = $(id);
    if (r[key] && ![...select.options].some((o) => o.value === r[key])) {
      select.append(el('option', { value: r[key] }, key === 'expiring_within_days' ? `${r[key]} days` : r[key]));
    }
    select.value = r[key];
  }
  $('f-since').value = r.updated_since;
  $('f-missing').checked = r.include_missing;
  $('domain-chip-row').hidden = !r.domain;
  // The display form arrives with the rows; until then the stored form shows.
  if ($('domain-chip-text').dataset.domain !== r.domain) {
    $('domain-chip-text').dataset.domain = r.domain;
    $('domain-chip-text').textContent = r.domain;
  }
  $('fresh-chip').hidden = !(r.fresh && baseline);
  showViewChip();
  $('chip-row').hidden = $('domain-chip-row').hidden && $('fresh-chip').hidden && $('view-chip').hidden;
}

/** The API's filter parameters for the current view; `updated_since` is the later of the two limits. */
export function apiFilterParams() {
  const r = view.ref;
  const p = new URLSearchParams();
  for (const key of [...Object.keys(SELECTS), ...Object.keys(INPUTS), 'domain']) if (r[key]) p.set(key, r[key]);
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
  return p;
}

/** Changes the filters; any change but the page leaves the saved view they came from. */
export function setRef(changes, push = false) {
  Object.assign(view.ref, changes);
  if (!('page' in changes)) view.ref.page = 1;
  if (Object.keys(changes).some((key) => key !== 'page')) view.viewName = '';
  writeUrl(push);
  loadCurrentTab();
}

export function bindFilterControls() {
  const form = $('referral-filters');
  form.addEventListener('submit', (e) => e.preventDefault());
  for (const [key, id] of Object.entries(SELECTS)) $(id).addEventListener('change', (e) => setRef({ [key]: e.target.value }));
  // Typed fields wait for a pause, so each keystroke is not a query.
  for (const [key, id] of Object.entries(INPUTS)) {
    $(id).addEventListener('input', (e) => {
      clearTimeout(typing.get(key));
      typing.set(key, setTimeout(() => {
        typing.delete(key);
        setRef({ [key]: e.target.value.trim() });
      }, 300));
    });
  }
  $('f-since').addEventListener('change', (e) => setRef({ updated_since: e.target.value }));
  $('f-missing').addEventListener('change', (e) => setRef({ include_missing: e.target.checked }));
  form.addEventListener('reset', (e) => {
    e.preventDefault();
    setRef({ ...NO_FILTERS, include_missing: false });
  });
  $('domain-chip-clear').addEventListener('click', () => setRef({ domain: '' }));
  $('fresh-chip-clear').addEventListener('click', () => setRef({ fresh: false }));
  $('new-since').addEventListener('click', () => {
    Object.assign(view.ref, { fresh: true, page: 1 });
    view.viewName = '';
    showTab('referrals');
  });
}
