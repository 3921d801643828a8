// The Pipeline view (count and value by status and substatus, per currency, with a bar
// chart) and the per-currency totals above the referral table. Both come from the
// server's aggregate of the whole filter, never from the page of rows on screen, and
// amounts are never added across currencies.

import { API, api } from './api.js';
import { statusBadge } from './badges.js';
import { barChart } from './chart.js';
import { $, el, showEmpty, slug } from './dom.js';
import { compactMoney, money, num, plural } from './format.js';
import { apiFilterParams, syncFilterForm } from './filters.js';
import { hasReferralFilters, view } from './state.js';
import { showTab } from './tabs.js';

const NO_CURRENCY = 'No currency';

let totalsSeq = 0;

/** The totals line above the table: per currency, the sum and how many referrals. */
export async function loadTotals() {
  const seq = ++totalsSeq;
  const line = $('currency-totals');
  try {
    const { body } = await api(`${API}/referrals/pipeline?${apiFilterParams()}`);
    if (seq !== totalsSeq) return;
    line.replaceChildren(el('span', { class: 'muted' }, 'Totals'), ...body.currencies.map((c) => el('span', {
      class: 'total', 'data-testid': 'currency-total', 'data-currency': c.currency || '', 'data-count': c.count, 'data-value': c.value,
    }, c.currency
      ? [el('b', {}, money(c.value, c.currency)), ` in ${plural(c.count, `${c.currency} referral`, `${c.currency} referrals`)}`]
      : plural(c.count, 'referral without a currency', 'referrals without a currency'))));
    line.hidden = body.total === 0;
  } catch (_) {
    // The table says what went wrong; a second message here would only repeat it.
    if (seq === totalsSeq) line.hidden = true;
  }
}

/** Shows the referrals behind a pipeline row. */
function showReferrals(currency, status, substatus) {
  Object.assign(view.ref, { currency, status, substatus: substatus || '', page: 1 });
  view.viewName = '';
  showTab('referrals');
}

function label(value, none) {
  return value === null || value === undefined ? none : value;
}

/** One row of a currency's table; a status or substatus opens its referrals. */
function pipelineRow(c, s, sub) {
  const group = sub || s;
  const name = sub ? label(sub.substatus, 'No substatus') : label(s.status, 'No status');
  const canFilter = c.currency && s.status && (!sub || sub.substatus);
  const title = sub ? `${label(s.status, 'No status')} · ${name}` : name;
  const nameCell = canFilter
    ? el('button', { type: 'button', class: 'link quiet', title: `Show these referrals: ${title}, ${c.currency}`, onclick: () => showReferrals(c.currency, s.status, sub && sub.substatus) },
      sub ? name : statusBadge(s.status))
    : (sub ? name : (statusBadge(s.status) || name));
  return el('tr', {
    class: sub ? 'sub-row' : 'status-row', 'data-testid': sub ? 'pipeline-substatus' : 'pipeline-status',
    'data-currency': c.currency || '', 'data-status': s.status || '', 'data-substatus': sub ? (sub.substatus || '') : null,
    'data-count': group.count, 'data-value': group.value,
  },
  el(sub ? 'td' : 'th', { scope: sub ? null : 'row', 'data-label': sub ? 'Substatus' : 'Status' },
    sub ? el('span', { class: `swatch seg ss-${slug(sub.substatus)}`, 'aria-hidden': 'true' }) : null, nameCell),
  el('td', { class: 'num', 'data-label': 'Referrals' }, num(group.count)),
  el('td', { class: 'num', 'data-label': 'Value' }, group.valued > 0 ? money(group.value, c.currency) : el('span', { class: 'muted' }, '—')));
}

function currencyCard(c) {
  const name = label(c.currency, NO_CURRENCY);
  // Without a single value in this currency, bars by count still show the shape.
  const byValue = c.valued > 0;
  const bars = c.statuses.map((s) => ({
    label: label(s.status, 'No status'),
    total: byValue ? Number(s.value) : s.count,
    text: byValue ? compactMoney(s.value, c.currency) : num(s.count),
    segments: s.substatuses.map((sub) => ({
      value: byValue ? Number(sub.value) : sub.count,
      className: `ss-${slug(sub.substatus)}`,
      title: `${label(s.status, 'No status')} · ${label(sub.substatus, 'No substatus')}: ${plural(sub.count, 'referral', 'referrals')}${sub.valued > 0 ? `, ${money(sub.value, c.currency)}` : ''}`,
    })),
  }));
  const summary = bars.map((b) => `${b.label} ${b.text}`).join(', ');
  return el('article', { class: 'pipeline-card', 'data-testid': 'pipeline-currency', 'data-currency': c.currency || '', 'data-count': c.count, 'data-value': c.value },
    el('header', { class: 'pipeline-head' },
      el('h2', {}, name),
      el('p', { class: 'muted small' }, c.valued > 0 ? [el('b', { class: 'amount' }, money(c.value, c.currency)), ` in ${plural(c.count, 'referral', 'referrals')}`] : plural(c.count, 'referral', 'referrals'),
        c.valued > 0 && c.valued < c.count ? `, ${num(c.count - c.valued)} without a value` : '')),
    barChart(bars, `${name} pipeline by ${byValue ? 'value' : 'count'}: ${summary}`),
    el('table', { class: 'data pipeline-table' },
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Status'), el('th', { scope: 'col', class: 'num' }, 'Referrals'), el('th', { scope: 'col', class: 'num' }, 'Value'))),
      el('tbody', {}, c.statuses.flatMap((s) => [pipelineRow(c, s, null), ...s.substatuses.map((sub) => pipelineRow(c, s, sub))]))));
}

let pipelineSeq = 0;

export async function loadPipeline() {
  const seq = ++pipelineSeq;
  syncFilterForm();
  const body = $('pipeline-body');
  body.setAttribute('aria-busy', 'true');
  try {
    const { body: data } = await api(`${API}/referrals/pipeline?${apiFilterParams()}`);
    if (seq !== pipelineSeq) return;
    body.replaceChildren(...data.currencies.map(currencyCard));
    const currencies = data.currencies.filter((c) => c.currency).length;
    $('pipeline-summary').textContent = data.total === 0 ? ''
      : `${plural(data.total, 'referral', 'referrals')}${currencies > 1 ? ` in ${num(currencies)} currencies; amounts are never added across currencies` : ''}.`;
    showEmpty('pipeline-empty', data.total === 0
      ? (hasReferralFilters() ? 'No referrals match these filters.' : 'No referrals yet. Use “Sync now” to fetch them from Partner Center.')
      : '');
  } catch (error) {
    if (seq !== pipelineSeq) return;
    body.replaceChildren();
    $('pipeline-summary').textContent = '';
    showEmpty('pipeline-empty', error.status === 401
      ? 'This daemon requires its API token; reload the page to enter it.'
      : `Could not load the pipeline: ${error.message}`);
  } finally {
    if (seq === pipelineSeq) body.removeAttribute('aria-busy');
  }
}
