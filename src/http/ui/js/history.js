// A referral's timeline: what Partner Center's own dates say (created, updated, closed) and
// the history the daemon recorded as its syncs observed each change, oldest first.

import { statusBadge } from './badges.js';
import { el } from './dom.js';
import { absoluteDate, money, whenEl } from './format.js';

/** The tracked fields (the daemon's one list) in words; another field shows its own name. */
const FIELDS = {
  status: 'Status',
  substatus: 'Substatus',
  deal_value: 'Deal value',
  currency: 'Currency',
  qualification: 'Qualification',
  expiration_date: 'Expires',
  close_date: 'Closed',
  expected_close_date: 'Expected close',
  team: 'Assigned team',
};

const fieldLabel = (field) => FIELDS[field] || String(field).replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());

const ISO_DATE = /^\d{4}-\d{2}-\d{2}(T|$)/;

/** One side of a change as people read it: "—" for nothing, badges for statuses, money, dates. */
function shown(field, value, currency) {
  if (value === null || value === undefined || value === '') return el('span', { class: 'muted' }, '—');
  if (field === 'status' || field === 'substatus') return statusBadge(String(value));
  if (field === 'deal_value') return money(value, currency);
  if (Array.isArray(value)) return value.length === 0 ? el('span', { class: 'muted' }, 'nobody') : value.map(person).join(', ');
  if (typeof value === 'object') return JSON.stringify(value);
  if (typeof value === 'string' && ISO_DATE.test(value) && !Number.isNaN(Date.parse(value))) {
    return el('time', { datetime: value }, absoluteDate(value));
  }
  return String(value);
}

/** A team member in a list, whether the history keeps an email, a name or an object. */
function person(m) {
  if (m && typeof m === 'object') return m.email || m.name || [m.firstName, m.lastName].filter(Boolean).join(' ') || JSON.stringify(m);
  return String(m);
}

/** The timeline entry for one recorded change. */
function changeItem(c, currency) {
  const item = (cls, ...content) => el('li', { class: cls, 'data-testid': 'change', 'data-field': c.field },
    el('div', {}, ...content), el('div', { class: 'when' }, whenEl(c.observed_at)));
  switch (c.field) {
    case 'created':
      return item('', 'First seen by a sync', c.new ? [' as ', shown('status', c.new)] : null);
    case 'missing':
      return item('warn', 'No longer returned by Partner Center');
    case 'returned':
      return item('', 'Returned by Partner Center again');
    default:
      return item('change', el('span', { class: 'field' }, `${fieldLabel(c.field)}: `),
        el('span', { class: 'old', 'data-testid': 'change-old' }, shown(c.field, c.old, currency)),
        el('span', { class: 'arrow', 'aria-label': 'changed to' }, ' → '),
        el('span', { class: 'new', 'data-testid': 'change-new' }, shown(c.field, c.new, currency)));
  }
}

/** A fixed event from the referral's own dates. */
function dateItem(when, label, cls) {
  return el('li', { class: cls || null, 'data-testid': 'timeline-date' }, el('div', {}, label), el('div', { class: 'when' }, whenEl(when)));
}

/**
 * The whole timeline. `changes` is the recorded history (null when it could not be loaded,
 * then `error` says why); entries from it replace the dates that say the same thing.
 */
export function timeline(r, changes, error) {
  const history = changes || [];
  const has = (field) => history.some((c) => c.field === field);
  const dates = [
    [r.created_at, 'Created in Partner Center'],
    [r.updated_at, 'Last updated in Partner Center'],
    has('created') ? null : [r.first_seen_at, 'First synced'],
    [r.last_seen_at, 'Last seen by a sync'],
    has('missing') ? null : [r.missing_since, 'Missing from Partner Center since', 'warn'],
  ].filter((d) => d && d[0]);
  const entries = [
    ...dates.map(([when, label, cls]) => ({ when, node: dateItem(when, label, cls) })),
    ...history.map((c) => ({ when: c.observed_at, node: changeItem(c, r.currency) })),
  ];
  // Stable: changes observed at the same moment keep the server's order.
  entries.sort((a, b) => new Date(a.when) - new Date(b.when));
  return [
    el('ol', { class: 'timeline', 'data-testid': 'timeline' }, entries.map((e) => e.node)),
    changes === null ? el('p', { class: 'small muted', 'data-testid': 'history-error' }, `The change history could not be loaded: ${error}`) : null,
    changes && changes.length === 0 ? el('p', { class: 'small muted' }, 'No changes recorded yet: syncs record each change they observe from now on.') : null,
  ];
}
