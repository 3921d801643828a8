// The side panel: one referral (with its timeline and raw JSON) or one sync run.

import { API, api } from './api.js';
import { runBadge, statusBadges } from './badges.js';
import { $, el } from './dom.js';
import { companySize, dateEl, duration, expiryEl, money, timeEl } from './format.js';
import { timeline } from './history.js';
import { view, writeUrl } from './state.js';
import { filterDomain } from './tabs.js';
import { toast } from './toast.js';

let detailSeq = 0;

function kv(pairs) {
  const shown = pairs.filter(([, value]) => value !== null && value !== undefined && value !== '');
  return el('dl', { class: 'kv' }, shown.map(([label, value]) => [el('dt', {}, label), el('dd', {}, value)]));
}

function people(list, emptyText, testid) {
  if (!list || list.length === 0) return el('p', { class: 'muted small', 'data-testid': testid }, emptyText);
  return el('ul', { class: 'people', 'data-testid': testid }, list.map((m) => el('li', {},
    el('div', { class: 'who' }, m.name || m.email || '(no name)'),
    m.title ? el('div', { class: 'small muted' }, m.title) : null,
    m.email ? el('div', { class: 'small' }, el('a', { href: `mailto:${m.email}` }, m.email)) : null,
    m.phone ? el('div', { class: 'small muted' }, m.phone) : null)));
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (_) {
      // Permission refused: fall back to a selection copy below.
    }
  }
  const area = el('textarea', { readonly: true, 'aria-hidden': 'true' });
  area.value = text;
  area.style.position = 'fixed';
  area.style.opacity = '0';
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch (_) {
    ok = false;
  }
  area.remove();
  return ok;
}

function openDialog() {
  const dialog = $('detail');
  if (!dialog.open) dialog.showModal();
  $('detail-close').focus();
}

function setDialogHead(kind, title, badges) {
  $('detail-kind').textContent = kind;
  $('detail-title').textContent = title;
  $('detail-badges').replaceChildren(...badges.filter(Boolean));
}

export async function openReferral(id) {
  const seq = ++detailSeq;
  view.referral = id;
  writeUrl(false);
  setDialogHead('Referral', 'Loading…', []);
  $('detail-body').replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
  openDialog();
  const path = `${API}/referrals/${encodeURIComponent(id)}`;
  // The history is extra: the referral shows without it when it cannot be had.
  const history = api(`${path}/changes`).then(({ body }) => ({ changes: body.items || [] }), (error) => ({ changes: null, error: error.message }));
  try {
    const { body } = await api(path);
    const { changes, error } = await history;
    if (seq !== detailSeq) return;
    renderReferral(body, changes, error);
  } catch (error) {
    if (seq !== detailSeq) return;
    setDialogHead('Referral', 'Referral not available', []);
    $('detail-body').replaceChildren(el('p', { class: 'error-text', 'data-testid': 'detail-error' }, error.message));
  }
}

function renderReferral(r, changes, historyError) {
  const p = r.payload || {};
  const details = p.details || {};
  const customer = p.customerProfile || {};
  const address = customer.address || {};
  setDialogHead('Referral', r.name || '(unnamed referral)', [statusBadges(r.status, r.substatus),
    r.missing_since ? el('span', { class: 'badge missing' }, 'Missing from Partner Center') : null]);

  const json = JSON.stringify(p, null, 2);
  const copyButton = el('button', { type: 'button', class: 'btn small', 'data-testid': 'copy-json' }, 'Copy JSON');
  copyButton.addEventListener('click', async () => {
    const ok = await copyText(json);
    toast(ok ? 'success' : 'error', ok ? 'Raw JSON copied' : 'Could not copy', ok ? null : 'Select the text and copy it by hand.');
  });

  $('detail-body').replaceChildren(
    el('h3', {}, 'Deal'),
    kv([
      ['Deal value', money(r.deal_value, r.currency)],
      ['Type', [r.type, r.direction].filter(Boolean).join(' · ')],
      ['Qualification', r.qualification],
      ['Status reason', p.statusReason],
      ['Sales stage', p.salesStage],
      ['Expires', expiryEl(r)],
      ['Closed', r.closed_at ? dateEl(r.closed_at) : null],
      ['Expected close', details.closingDateTime ? timeEl(details.closingDateTime, { dateOnly: true }) : null],
      ['Notes', details.notes],
      ['Referral ID', el('code', {}, r.id)],
      ['Engagement ID', r.engagement_id ? el('code', {}, r.engagement_id) : null],
      ['Partner Center', r.partner_center_url ? el('a', { href: r.partner_center_url, target: '_blank', rel: 'noopener noreferrer' }, 'Open in Partner Center ↗') : null],
    ]),
    el('h3', {}, 'Customer'),
    kv([
      ['Name', r.customer_name || customer.name],
      ['Domain', r.customer_domain ? el('button', { type: 'button', class: 'link', title: r.customer_domain, onclick: () => { $('detail').close(); filterDomain(r.customer_domain); } }, r.customer_domain_display || r.customer_domain) : null],
      ['Location', [address.city, address.state, r.customer_country || address.country].filter(Boolean).join(', ')],
      ['Size', companySize(customer.size)],
    ]),
    el('h3', {}, 'Customer contacts'),
    people(r.customer_team, 'No customer contacts.', 'customer-team'),
    el('h3', {}, 'Partner team'),
    people(r.team, 'No team members.', 'team'),
    el('h3', {}, 'Timeline'),
    ...timeline(r, changes, historyError).filter(Boolean),
    el('details', { class: 'raw', 'data-testid': 'raw-json-section' },
      el('summary', { 'data-testid': 'raw-json-toggle' }, 'Raw JSON from Partner Center'),
      el('div', { class: 'raw-tools' }),
      el('pre', { 'data-testid': 'raw-json', tabindex: '0' }, json)),
  );
  const tools = $('detail-body').querySelector('.raw-tools');
  tools.append(el('p', { class: 'small muted' }, r.etag ? `ETag ${r.etag}` : ''), copyButton);
}

export async function openRun(id) {
  const seq = ++detailSeq;
  setDialogHead('Sync run', `Run #${id}`, []);
  $('detail-body').replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
  openDialog();
  try {
    const { body } = await api(`${API}/sync-runs/${encodeURIComponent(id)}`);
    if (seq !== detailSeq) return;
    setDialogHead('Sync run', `Run #${body.id}`, [runBadge(body.status), body.dry_run ? el('span', { class: 'badge outline' }, 'dry run') : null]);
    $('detail-body').replaceChildren(
      body.error ? el('p', { class: 'error-text', 'data-testid': 'run-detail-error' }, body.error) : null,
      el('h3', {}, 'Run'),
      kv([
        ['Trigger', body.trigger], ['Mode', body.mode],
        ['Queued', timeEl(body.queued_at)], ['Started', body.started_at ? timeEl(body.started_at) : null],
        ['Finished', body.finished_at ? timeEl(body.finished_at) : null], ['Duration', duration(body.duration_seconds)],
      ]),
      el('h3', {}, 'Counts'),
      kv([
        ['Pages', String(body.pages)], ['Fetched', String(body.fetched)], ['Inserted', String(body.inserted)],
        ['Updated', String(body.updated)], ['Unchanged', String(body.unchanged)], ['Marked missing', String(body.marked_missing)],
        ['Parse errors', String(body.parse_errors)],
      ]),
      el('h3', {}, 'Parse errors'),
      body.sync_errors.length === 0
        ? el('p', { class: 'muted small' }, 'None.')
        : el('ul', { class: 'people', 'data-testid': 'run-sync-errors' }, body.sync_errors.map((e) => el('li', {},
          e.referral_id ? el('button', { type: 'button', class: 'link mono', onclick: () => openReferral(e.referral_id) }, e.referral_id) : el('span', { class: 'muted' }, 'unknown referral'),
          el('div', { class: 'small' }, e.reason)))),
    );
  } catch (error) {
    if (seq !== detailSeq) return;
    $('detail-body').replaceChildren(el('p', { class: 'error-text' }, error.message));
  }
}

export function bindDialog() {
  const dialog = $('detail');
  $('detail-close').addEventListener('click', () => dialog.close());
  // A click on the backdrop lands on the dialog element itself.
  dialog.addEventListener('click', (e) => {
    if (e.target === dialog) dialog.close();
  });
  dialog.addEventListener('close', () => {
    detailSeq += 1;
    if (view.referral) {
      view.referral = null;
      writeUrl(false);
    }
  });
}
