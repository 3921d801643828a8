// Times, money and counts as people read them, in the browser's locale.

import { el } from './dom.js';

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const exactFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

export function relative(iso) {
  const diff = (new Date(iso).getTime() - Date.now()) / 1000;
  const abs = Math.abs(diff);
  if (abs < 45) return diff < 0 ? 'just now' : 'in a few seconds';
  const steps = [[3600, 60, 'minute'], [86400, 3600, 'hour'], [86400 * 30, 86400, 'day'], [86400 * 365, 86400 * 30, 'month']];
  for (const [limit, unit, name] of steps) {
    if (abs < limit) return rtf.format(Math.round(diff / unit), name);
  }
  return rtf.format(Math.round(diff / (86400 * 365)), 'year');
}

/** A <time> showing "4 min ago", with the exact time on hover; refreshed by `tickTimes`. */
export function timeEl(iso, opts = {}) {
  if (!iso) return el('span', { class: 'muted' }, opts.empty || '—');
  const d = new Date(iso);
  return el('time', { datetime: iso, title: `${exactFormat.format(d)} (${iso})`, 'data-rel': opts.dateOnly ? null : '1' },
    opts.dateOnly ? dateFormat.format(d) : relative(iso));
}

export function setTime(node, iso, empty) {
  if (!iso) {
    node.textContent = empty || '—';
    node.removeAttribute('datetime');
    node.removeAttribute('title');
    node.removeAttribute('data-rel');
    return;
  }
  node.textContent = relative(iso);
  node.setAttribute('datetime', iso);
  node.setAttribute('title', `${exactFormat.format(new Date(iso))} (${iso})`);
  node.setAttribute('data-rel', '1');
}

const monthFormat = new Intl.DateTimeFormat(undefined, { month: 'short' });
const pad = (n) => String(n).padStart(2, '0');

/**
 * A calendar date people can scan down a column: "30 Nov" within the current year,
 * `2024-11-30` otherwise (local time). "Last year" on every row told nothing apart.
 */
export function absoluteDate(iso) {
  const d = new Date(iso);
  if (d.getFullYear() === new Date().getFullYear()) return `${d.getDate()} ${monthFormat.format(d)}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

const hoverText = (iso) => `${relative(iso)} · ${exactFormat.format(new Date(iso))}`;

/** A <time> showing the absolute date, with the relative form and exact time on hover. */
export function dateEl(iso, prefix = '') {
  if (!iso) return el('span', { class: 'muted' }, '—');
  return el('time', { datetime: iso, title: hoverText(iso), 'data-abs': '1' }, `${prefix}${absoluteDate(iso)}`);
}

const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

/**
 * A <time> for a moment in a history: the date as `dateEl` writes it and the time of day
 * ("3 Dec 14:05"), with the relative form and the exact time on hover.
 */
export function whenEl(iso) {
  if (!iso) return el('span', { class: 'muted' }, '—');
  return el('time', { datetime: iso, title: hoverText(iso), 'data-abs': '1' }, `${absoluteDate(iso)} ${timeOfDay.format(new Date(iso))}`);
}

export function tickTimes() {
  for (const node of document.querySelectorAll('time[data-rel]')) {
    node.textContent = relative(node.getAttribute('datetime'));
  }
  for (const node of document.querySelectorAll('time[data-abs]')) {
    node.title = hoverText(node.getAttribute('datetime'));
  }
}

const DAY_MS = 86400000;
/** How far ahead an expiry counts as soon. */
const EXPIRY_SOON_DAYS = 7;

/**
 * When an unanswered (New) referral expires, if the API knows: highlighted within
 * `EXPIRY_SOON_DAYS`, and saying how soon in words so the warning is not colour alone.
 */
export function expiryEl(r) {
  if (r.status !== 'New' || !r.expires_at) return null;
  const left = (new Date(r.expires_at).getTime() - Date.now()) / DAY_MS;
  const past = left < 0;
  const soon = !past && left <= EXPIRY_SOON_DAYS;
  const text = `${past ? 'Expired' : 'Expires'} ${absoluteDate(r.expires_at)}${soon ? ` · ${relative(r.expires_at)}` : ''}`;
  return el('time', { class: `expiry${soon ? ' soon' : ''}${past ? ' past' : ''}`, datetime: r.expires_at, title: hoverText(r.expires_at), 'data-testid': 'expiry', 'data-soon': soon ? 'true' : null }, text);
}

export function money(value, currency) {
  if (value === null || value === undefined || value === '') return '—';
  const n = Number(value);
  if (!Number.isFinite(n)) return `${value}${currency ? ` ${currency}` : ''}`;
  if (currency) {
    try {
      return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(n);
    } catch (_) {
      // Not an ISO 4217 code Intl knows: show the number and the code as sent.
    }
  }
  return new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 }).format(n) + (currency ? ` ${currency}` : '');
}

/** An amount short enough for a chart label: "€1.2M". */
export function compactMoney(value, currency) {
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  if (currency) {
    try {
      return new Intl.NumberFormat(undefined, { style: 'currency', currency, notation: 'compact', maximumFractionDigits: 1 }).format(n);
    } catch (_) {
      // Not an ISO 4217 code Intl knows: the number and the code as sent.
    }
  }
  return new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 }).format(n) + (currency ? ` ${currency}` : '');
}

/** Partner Center's company sizes (`51to250employees`, `Morethan20000employees`) in words. */
export function companySize(size) {
  if (!size) return null;
  const range = /^(\d+)to(\d+)employees$/i.exec(size);
  if (range) return `${Number(range[1]).toLocaleString()}–${Number(range[2]).toLocaleString()} employees`;
  const more = /^morethan(\d+)employees$/i.exec(size);
  if (more) return `More than ${Number(more[1]).toLocaleString()} employees`;
  return size;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return m < 60 ? `${m} min ${s} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Counts from the server, tolerating a missing field rather than breaking the page. */
export const num = (n) => (Number(n) || 0).toLocaleString();
export const plural = (n, one, many) => `${num(n)} ${Number(n) === 1 ? one : many}`;
