// The referral table's columns: the fixed ones and those a user can add, remembered per
// browser. Each column knows its header, its optional server-side sort and its cell.

import { statusBadges } from './badges.js';
import { openReferral } from './detail.js';
import { $, el } from './dom.js';
import { dateEl, expiryEl, money } from './format.js';
import { load, save } from './storage.js';
import { filterDomain } from './tabs.js';
import { isFresh } from './visits.js';

const dash = () => el('span', { class: 'muted' }, '—');

/** The date that matters next for the referral's state: expiry, close, or expected close. */
function keyDate(r) {
  if (r.status === 'New' && r.expires_at) return expiryEl(r);
  if (r.status === 'Closed' && r.closed_at) return dateEl(r.closed_at, 'Closed ');
  if (r.expected_close_at) return dateEl(r.expected_close_at, 'Expected ');
  return dash();
}

const COLUMNS = [
  {
    key: 'name', label: 'Name', sort: 'name',
    cell: (r) => [
      el('button', { type: 'button', class: 'link', 'data-testid': 'referral-open', onclick: () => openReferral(r.id) }, r.name || '(unnamed referral)'),
      r.missing_since ? el('span', { class: 'sub' }, el('span', { class: 'badge missing', title: `Not listed by Partner Center since ${r.missing_since}` }, 'Missing')) : null,
      isFresh(r) ? el('span', { class: 'sub' }, el('span', { class: 'badge fresh', 'data-testid': 'fresh-mark' }, 'Updated since your last visit')) : null,
    ],
  },
  { key: 'customer', label: 'Customer', sort: 'customer_name', cell: (r) => [r.customer_name || '—', r.customer_country ? el('span', { class: 'sub' }, r.customer_country) : null] },
  {
    key: 'domain', label: 'Domain',
    cell: (r) => (r.customer_domain
      ? el('button', { type: 'button', class: 'link quiet', title: `Show only ${r.customer_domain}`, onclick: () => filterDomain(r.customer_domain) }, r.customer_domain_display || r.customer_domain)
      : dash()),
  },
  {
    key: 'status', label: 'Status', sort: 'status', class: 'badges-cell', testid: 'cell-status',
    cell: (r) => {
      const expiry = expiryEl(r);
      return [statusBadges(r.status, r.substatus) || '—', expiry ? el('span', { class: 'sub' }, expiry) : null];
    },
  },
  { key: 'type', label: 'Type', cell: (r) => [r.type || '—', r.direction ? el('span', { class: 'sub' }, r.direction) : null] },
  { key: 'deal_value', label: 'Deal value', sort: 'deal_value', num: true, class: 'nowrap', testid: 'cell-deal-value', cell: (r) => money(r.deal_value, r.currency) },
  { key: 'created', label: 'Created', sort: 'created_at', optional: true, class: 'nowrap', testid: 'cell-created', cell: (r) => dateEl(r.created_at) },
  { key: 'key_date', label: 'Expires / closes', optional: true, class: 'nowrap', testid: 'cell-key-date', cell: keyDate },
  { key: 'country', label: 'Country', optional: true, testid: 'cell-country', cell: (r) => r.customer_country || dash() },
  { key: 'qualification', label: 'Qualification', optional: true, testid: 'cell-qualification', cell: (r) => r.qualification || dash() },
  { key: 'team', label: 'Team', optional: true, testid: 'cell-team', cell: (r) => (r.team_names && r.team_names.length ? r.team_names.join(', ') : dash()) },
  {
    key: 'link', label: 'Partner Center', optional: true, testid: 'cell-link',
    cell: (r) => (r.partner_center_url
      ? el('a', { href: r.partner_center_url, target: '_blank', rel: 'noopener noreferrer', 'aria-label': `Open ${r.name || 'the referral'} in Partner Center (new tab)` }, 'Open ↗')
      : dash()),
  },
  { key: 'updated', label: 'Updated', sort: 'updated_at', class: 'nowrap', testid: 'cell-updated', cell: (r) => dateEl(r.updated_at) },
];

const OPTIONAL = COLUMNS.filter((c) => c.optional);
let chosen = new Set(load('columns', []).filter((key) => OPTIONAL.some((c) => c.key === key)));

const visibleColumns = () => COLUMNS.filter((c) => !c.optional || chosen.has(c.key));

/** Rebuilds the header row; `onSort(column)` runs when a sortable header is pressed. */
export function renderHead(onSort) {
  $('referrals-head').replaceChildren(...visibleColumns().map((c) => el('th', { scope: 'col', class: c.num ? 'num' : null, 'data-sort': c.sort || null, 'data-column': c.key },
    c.sort ? el('button', { type: 'button', class: 'sort', onclick: () => onSort(c.sort) }, c.label) : c.label)));
}

export function renderRow(r) {
  return visibleColumns().map((c) => el('td', { 'data-label': c.label, class: [c.num ? 'num' : '', c.class || ''].join(' ').trim() || null, 'data-testid': c.testid || null }, c.cell(r)));
}

/** The chooser's checkboxes; `onChange` re-renders the table with the new set. */
export function bindColumnChooser(onChange) {
  $('columns-choices').replaceChildren(...OPTIONAL.map((c) => el('label', { class: 'choice' },
    el('input', {
      type: 'checkbox', value: c.key, checked: chosen.has(c.key), 'data-testid': `column-${c.key}`,
      onchange: (e) => {
        if (e.target.checked) chosen.add(c.key);
        else chosen.delete(c.key);
        chosen = new Set(OPTIONAL.map((o) => o.key).filter((key) => chosen.has(key)));
        save('columns', [...chosen]);
        onChange();
      },
    }),
    c.label)));
}
