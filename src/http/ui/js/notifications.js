// Notifications: each destination's health and last error, the recent deliveries and their
// state, and (in the demo only) the messages its local inbox received. Refreshed while the
// tab is shown, so a delivery can be watched as it happens.

import { API, api } from './api.js';
import { openReferral } from './detail.js';
import { $, el, showEmpty, slug } from './dom.js';
import { absoluteDate, money, num, plural, whenEl } from './format.js';
import { view } from './state.js';

const DELIVERIES = 50;
/** Milliseconds between refreshes while the tab is shown. */
const REFRESH_MS = 5000;
/** The demo's inbox; a daemon without the demo answers 404 and the section stays hidden. */
const INBOX = '/api/v1/demo/inbox';

let seq = 0;
let inboxAbsent = false;

const EVENTS = {
  referral_new: 'New referral',
  referral_status_changed: 'Status changed',
  referral_expiring: 'Expiring soon',
  referral_missing: 'Missing from Partner Center',
  sign_in_required: 'Sign-in required',
  sync_stale: 'Sync stale',
  import_summary: 'Import summary',
  digest: 'Digest',
};

/** Every event a destination can ask for (the daemon's list). */
const ALL_EVENTS = ['referral_new', 'referral_status_changed', 'referral_expiring', 'referral_missing', 'sign_in_required', 'sync_stale'];

/** An event name in words, the name itself when it is one this page does not know. */
const eventLabel = (event) => EVENTS[event] || String(event || '—').replace(/_/g, ' ');

const stateBadge = (state) => el('span', { class: `badge d-${slug(state)}`, 'data-testid': 'delivery-state' }, state);

function healthBadge(d) {
  return d.healthy
    ? el('span', { class: 'badge d-delivered', 'data-testid': 'destination-health' }, 'Healthy')
    : el('span', { class: 'badge d-failed', 'data-testid': 'destination-health' }, 'Unhealthy');
}

function referralLink(id) {
  if (!id) return el('span', { class: 'muted' }, '—');
  return el('button', { type: 'button', class: 'link mono', 'data-testid': 'delivery-referral', onclick: () => openReferral(id) }, id);
}

function destinationCard(d) {
  const list = Array.isArray(d.events) ? d.events : [];
  const events = list.length === 0 || ALL_EVENTS.every((e) => list.includes(e)) ? 'every event' : list.map(eventLabel).join(', ');
  return el('article', { class: `dest-card${d.healthy ? '' : ' unhealthy'}`, 'data-testid': 'destination', 'data-name': d.name, 'data-healthy': String(Boolean(d.healthy)) },
    el('div', { class: 'dest-head' },
      el('h3', {}, d.name),
      healthBadge(d)),
    el('p', { class: 'small muted' }, `${d.format} · ${events}`),
    el('p', { class: 'counts small' },
      el('span', {}, el('b', {}, num(d.pending)), ' pending'),
      el('span', {}, el('b', {}, num(d.failed_total)), ' failed attempts'),
      el('span', {}, 'last delivered ', d.last_delivered_at ? whenEl(d.last_delivered_at) : el('span', { class: 'muted' }, 'never'))),
    d.last_error ? el('p', { class: 'error-text small', 'data-testid': 'destination-error' }, d.last_error) : null);
}

function deliveryRow(n) {
  return el('tr', { 'data-testid': 'delivery-row', 'data-id': String(n.id), 'data-state': n.state, 'data-destination': n.destination },
    el('td', { 'data-label': 'Event' }, eventLabel(n.event)),
    el('td', { 'data-label': 'Referral' }, referralLink(n.referral_id)),
    el('td', { 'data-label': 'Destination' }, n.destination),
    el('td', { 'data-label': 'State' }, stateBadge(n.state)),
    el('td', { 'data-label': 'Attempts', class: 'num' }, num(n.attempts)),
    el('td', { 'data-label': 'Created', class: 'nowrap' }, whenEl(n.created_at)),
    el('td', { 'data-label': 'Delivered', class: 'nowrap' }, n.delivered_at ? whenEl(n.delivered_at) : ''),
    el('td', { 'data-label': 'Error' }, n.last_error ? el('span', { class: 'error-text', 'data-testid': 'delivery-error' }, n.last_error) : null));
}

const statusText = (status, substatus) => [status, substatus && substatus !== 'None' ? substatus : null].filter(Boolean).join(' · ');

/** What a `json` message says, in the words a chat message would use. */
function messageLines(body) {
  if (!body || typeof body !== 'object') return [String(body || '')];
  const r = body.referral;
  const lines = [];
  if (body.event === 'import_summary') lines.push(`${num(body.imported)} referrals imported by the first sync.`);
  if (body.event === 'digest') {
    lines.push(`${plural(body.count, 'referral update', 'referral updates')} in one sync.`);
    for (const item of (body.items || []).slice(0, 5)) {
      if (item.referral) lines.push(`${eventLabel(item.event)}: ${item.referral.name || item.referral.id}`);
    }
  }
  if (body.event === 'sign_in_required') lines.push(body.reason || 'The saved sign-in no longer works.');
  if (body.event === 'sync_stale') lines.push(body.last_success_at ? `No successful sync since ${absoluteDate(body.last_success_at)}.` : 'No sync has succeeded yet.');
  if (r) {
    lines.push([r.name || r.id, r.customer_name].filter(Boolean).join(' — '));
    const c = body.change;
    if (c) lines.push(`${statusText(c.old_status, c.old_substatus)} → ${statusText(c.new_status, c.new_substatus)}`);
    // A status change already said the status.
    lines.push([c ? null : statusText(r.status, r.substatus), r.deal_value ? money(r.deal_value, r.currency) : null,
      r.expires_at ? `expires ${absoluteDate(r.expires_at)}` : null].filter(Boolean).join(' · '));
  }
  return lines.filter(Boolean);
}

async function loadInbox(mySeq) {
  if (inboxAbsent) return;
  let body;
  try {
    ({ body } = await api(INBOX));
  } catch (error) {
    if (error.status === 404) inboxAbsent = true;
    $('inbox').hidden = true;
    return;
  }
  if (mySeq !== seq) return;
  const messages = body.messages || [];
  $('inbox').hidden = false;
  $('inbox-list').replaceChildren(...messages.map((m) => {
    const referral = m.body && m.body.referral;
    return el('li', { class: 'inbox-message', 'data-testid': 'inbox-message', 'data-event': m.event || '' },
      el('div', { class: 'inbox-head' },
        el('strong', {}, eventLabel(m.event)),
        m.verified
          ? el('span', { class: 'badge d-delivered', 'data-testid': 'inbox-verified', title: 'The HMAC-SHA256 signature matches the timestamp and body' }, 'Signature verified')
          : el('span', { class: 'badge d-failed', 'data-testid': 'inbox-verified' }, 'Signature invalid'),
        m.duplicate ? el('span', { class: 'badge outline', title: 'This delivery id arrived before: a retry a receiver drops' }, 'duplicate') : null,
        whenEl(m.received_at)),
      el('p', { class: 'inbox-text', 'data-testid': 'inbox-text' }, messageLines(m.body).join('\n')),
      referral && referral.id ? el('p', { class: 'small' }, referralLink(referral.id)) : null,
      el('p', { class: 'small muted mono' }, `delivery ${m.delivery_id || '—'}`));
  }));
  showEmpty('inbox-empty', messages.length === 0 ? 'Nothing received yet: messages appear here as the daemon delivers them.' : '');
}

export async function loadNotifications() {
  const mySeq = ++seq;
  const inbox = loadInbox(mySeq);
  try {
    const { body } = await api(`${API}/notifications?limit=${DELIVERIES}`);
    if (mySeq !== seq) return;
    const destinations = body.destinations || [];
    const items = body.items || [];
    $('destinations').replaceChildren(...destinations.map(destinationCard));
    showEmpty('destinations-empty', destinations.length === 0
      ? 'No destinations are configured: add a [[notify]] table to the configuration to send referral events to Teams, Slack or any webhook.'
      : '');
    $('deliveries-body').replaceChildren(...items.map(deliveryRow));
    showEmpty('deliveries-empty', items.length === 0 ? 'No notifications yet.' : '');
    const unhealthy = destinations.filter((d) => !d.healthy).length;
    $('notifications-summary').textContent = [
      plural(destinations.length, 'destination', 'destinations'),
      unhealthy > 0 ? `${num(unhealthy)} unhealthy` : null,
      items.length > 0 ? `the latest ${plural(items.length, 'notification', 'notifications')}` : null,
    ].filter(Boolean).join(' · ');
  } catch (error) {
    if (mySeq !== seq) return;
    $('destinations').replaceChildren();
    $('deliveries-body').replaceChildren();
    showEmpty('deliveries-empty', `Could not load notifications: ${error.message}`);
  }
  await inbox;
}

/** Keeps the tab current while it is shown (and the page is visible). */
export function bindNotifications() {
  setInterval(() => {
    if (view.tab === 'notifications' && document.visibilityState === 'visible') loadNotifications();
  }, REFRESH_MS);
}
