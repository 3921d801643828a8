// The partner-center-sync web UI: plain JavaScript, no build step, no dependencies.
//
// Rules that keep it safe and cheap:
// - Data never becomes markup: elements are built with createElement and textContent
//   (see `el`), so names with quotes, tags or emoji show as typed. The page's CSP forbids
//   inline script as a second line of defence.
// - Status is polled from /healthz every 2 s while a run is queued or running, every 15 s
//   otherwise, and not at all while the tab is hidden.
// - Filter, sort, page and tab live in the URL so a view can be shared or bookmarked.
'use strict';

(() => {
  const API = '/api/v1/partner-center';
  const TOKEN_KEY = 'partner-center-sync.api-token';
  const POLL_ACTIVE_MS = 2000;
  const POLL_IDLE_MS = 15000;
  const TERMINAL = new Set(['succeeded', 'failed', 'skipped', 'cancelled']);

  const $ = (id) => document.getElementById(id);

  /** Builds an element; strings become text nodes, never HTML. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const slug = (s) => String(s || '').toLowerCase().replace(/[^a-z]/g, '');

  /** RFC 3492 decoding, for showing IDNA (`xn--`) labels the way people write them. */
  function punycodeDecode(input) {
    const base = 36;
    const tMin = 1;
    const tMax = 26;
    let n = 128;
    let i = 0;
    let bias = 72;
    const out = [];
    const basic = Math.max(0, input.lastIndexOf('-'));
    for (let j = 0; j < basic; j += 1) {
      if (input.charCodeAt(j) >= 0x80) throw new Error('not punycode');
      out.push(input.charCodeAt(j));
    }
    const adapt = (delta, points, first) => {
      let d = first ? Math.floor(delta / 700) : delta >> 1;
      d += Math.floor(d / points);
      let k = 0;
      for (; d > ((base - tMin) * tMax) >> 1; k += base) d = Math.floor(d / (base - tMin));
      return Math.floor(k + ((base - tMin + 1) * d) / (d + 38));
    };
    const digitOf = (c) => {
      if (c >= 48 && c <= 57) return c - 22;
      if (c >= 65 && c <= 90) return c - 65;
      if (c >= 97 && c <= 122) return c - 97;
      throw new Error('not punycode');
    };
    for (let idx = basic > 0 ? basic + 1 : 0; idx < input.length;) {
      const oldI = i;
      for (let w = 1, k = base; ; k += base) {
        if (idx >= input.length) throw new Error('not punycode');
        const digit = digitOf(input.charCodeAt(idx));
        idx += 1;
        i += digit * w;
        const t = k <= bias ? tMin : (k >= bias + tMax ? tMax : k - bias);
        if (digit < t) break;
        w *= base - t;
      }
      bias = adapt(i - oldI, out.length + 1, oldI === 0);
      n += Math.floor(i / (out.length + 1));
      i %= out.length + 1;
      out.splice(i, 0, n);
      i += 1;
    }
    return String.fromCodePoint(...out);
  }

  /** A stored (ASCII) domain as people write it; the stored form stays the filter value. */
  function displayDomain(domain) {
    return String(domain).split('.').map((label) => {
      if (!/^xn--/i.test(label)) return label;
      try {
        return punycodeDecode(label.slice(4).toLowerCase());
      } catch (_) {
        return label;
      }
    }).join('.');
  }

  // ---------------------------------------------------------------- time and numbers

  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  const exactFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

  function relative(iso) {
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
  function timeEl(iso, opts = {}) {
    if (!iso) return el('span', { class: 'muted' }, opts.empty || '—');
    const d = new Date(iso);
    return el('time', { datetime: iso, title: `${exactFormat.format(d)} (${iso})`, 'data-rel': opts.dateOnly ? null : '1' },
      opts.dateOnly ? dateFormat.format(d) : relative(iso));
  }

  function setTime(node, iso, empty) {
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

  function tickTimes() {
    for (const node of document.querySelectorAll('time[data-rel]')) {
      node.textContent = relative(node.getAttribute('datetime'));
    }
  }

  function money(value, currency) {
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

  /** Partner Center's company sizes (`51to250employees`, `Morethan20000employees`) in words. */
  function companySize(size) {
    if (!size) return null;
    const range = /^(\d+)to(\d+)employees$/i.exec(size);
    if (range) return `${Number(range[1]).toLocaleString()}–${Number(range[2]).toLocaleString()} employees`;
    const more = /^morethan(\d+)employees$/i.exec(size);
    if (more) return `More than ${Number(more[1]).toLocaleString()} employees`;
    return size;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return '—';
    if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    const m = Math.floor(seconds / 60);
    const s = Math.round(seconds % 60);
    return m < 60 ? `${m} min ${s} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  /** Counts from the server, tolerating a missing field rather than breaking the page. */
  const num = (n) => (Number(n) || 0).toLocaleString();
  const plural = (n, one, many) => `${num(n)} ${Number(n) === 1 ? one : many}`;

  // ---------------------------------------------------------------- toasts

  function toast(kind, title, message) {
    const node = el('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status', 'data-testid': 'toast', 'data-kind': kind },
      el('div', { class: 'msg' }, el('strong', {}, title), message ? el('span', { class: 'small', title: message }, message) : null),
      el('button', { type: 'button', 'aria-label': 'Dismiss', onclick: () => node.remove() }, '×'));
    $('toasts').append(node);
    setTimeout(() => node.remove(), kind === 'error' ? 15000 : 8000);
  }

  // ---------------------------------------------------------------- API access and the token

  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  let tokenPrompt = null;

  /** Asks for the API token once, however many requests were refused at the same time. */
  function askToken(refused) {
    if (tokenPrompt) return tokenPrompt;
    tokenPrompt = new Promise((resolve) => {
      const dialog = $('token-dialog');
      const input = $('token-input');
      input.value = '';
      input.setCustomValidity('');
      const title = $('token-title');
      title.textContent = refused ? 'The API token was refused' : 'API token required';
      dialog.addEventListener('close', () => {
        const value = input.value.trim();
        const ok = dialog.returnValue === 'ok' && value !== '';
        if (ok) sessionStorage.setItem(TOKEN_KEY, value);
        tokenPrompt = null;
        resolve(ok);
      }, { once: true });
      dialog.showModal();
      input.focus();
    });
    return tokenPrompt;
  }

  async function api(path, options = {}) {
    // Two attempts at most: the second only after the user entered a token.
    for (let attempt = 0; ; attempt += 1) {
      const token = sessionStorage.getItem(TOKEN_KEY);
      const headers = { Accept: 'application/json' };
      if (token) headers.Authorization = `Bearer ${token}`;
      const response = await fetch(path, { ...options, headers, cache: 'no-store' });
      if (response.status === 401 && attempt === 0 && await askToken(Boolean(token))) continue;
      let body = null;
      try {
        body = await response.json();
      } catch (_) {
        body = null;
      }
      if (!response.ok) {
        throw new HttpError(response.status, (body && body.error) || `The server answered HTTP ${response.status}.`);
      }
      return { status: response.status, body };
    }
  }

  // ---------------------------------------------------------------- URL state

  const DEFAULT_SORT = { sort: 'updated_at', order: 'desc' };
  const view = {
    tab: 'referrals',
    ref: { q: '', status: '', substatus: '', type: '', direction: '', updated_since: '', include_missing: false, domain: '', sort: 'updated_at', order: 'desc', page: 1, size: 50 },
    co: { q: '', with: true, page: 1 },
    runs: { status: '' },
    referral: null,
  };

  function readUrl() {
    const p = new URLSearchParams(location.search);
    view.tab = ['referrals', 'companies', 'runs'].includes(p.get('tab')) ? p.get('tab') : 'referrals';
    const r = view.ref;
    for (const key of ['q', 'status', 'substatus', 'type', 'direction', 'updated_since', 'domain']) r[key] = p.get(key) || '';
    r.include_missing = p.get('include_missing') === 'true';
    r.sort = p.get('sort') || DEFAULT_SORT.sort;
    r.order = p.get('order') === 'asc' ? 'asc' : (p.get('order') === 'desc' ? 'desc' : (r.sort === 'updated_at' || r.sort === 'deal_value' || r.sort === 'created_at' ? 'desc' : 'asc'));
    r.page = Math.max(1, parseInt(p.get('page'), 10) || 1);
    r.size = [25, 50, 100, 200].includes(parseInt(p.get('size'), 10)) ? parseInt(p.get('size'), 10) : 50;
    view.co.q = p.get('cq') || '';
    view.co.with = p.get('cwith') !== 'false';
    view.co.page = Math.max(1, parseInt(p.get('cpage'), 10) || 1);
    view.runs.status = p.get('rstatus') || '';
    view.referral = p.get('referral');
  }

  function writeUrl(push) {
    const p = new URLSearchParams();
    if (view.tab !== 'referrals') p.set('tab', view.tab);
    const r = view.ref;
    for (const key of ['q', 'status', 'substatus', 'type', 'direction', 'updated_since', 'domain']) if (r[key]) p.set(key, r[key]);
    if (r.include_missing) p.set('include_missing', 'true');
    if (r.sort !== DEFAULT_SORT.sort || r.order !== DEFAULT_SORT.order) {
      p.set('sort', r.sort);
      p.set('order', r.order);
    }
    if (r.page > 1) p.set('page', String(r.page));
    if (r.size !== 50) p.set('size', String(r.size));
    if (view.co.q) p.set('cq', view.co.q);
    if (!view.co.with) p.set('cwith', 'false');
    if (view.co.page > 1) p.set('cpage', String(view.co.page));
    if (view.runs.status) p.set('rstatus', view.runs.status);
    if (view.referral) p.set('referral', view.referral);
    const qs = p.toString();
    const url = qs ? `${location.pathname}?${qs}` : location.pathname;
    if (url !== `${location.pathname}${location.search}`) history[push ? 'pushState' : 'replaceState'](null, '', url);
  }

  // ---------------------------------------------------------------- tabs

  const TABS = ['referrals', 'companies', 'runs'];

  function showTab(name, { push = true, focus = false } = {}) {
    view.tab = name;
    for (const tab of TABS) {
      const button = $(`tab-${tab}`);
      const selected = tab === name;
      button.setAttribute('aria-selected', String(selected));
      button.tabIndex = selected ? 0 : -1;
      $(`panel-${tab}`).hidden = !selected;
      if (selected && focus) button.focus();
    }
    writeUrl(push);
    loadCurrentTab();
  }

  function loadCurrentTab() {
    if (view.tab === 'referrals') loadReferrals();
    else if (view.tab === 'companies') loadCompanies();
    else loadRuns();
  }

  // ---------------------------------------------------------------- badges

  function statusBadge(status) {
    return status ? el('span', { class: `badge s-${slug(status)}`, 'data-testid': 'badge-status' }, status) : null;
  }

  function substatusBadge(substatus) {
    return substatus && substatus !== 'None' ? el('span', { class: `badge ss-${slug(substatus)}`, 'data-testid': 'badge-substatus' }, substatus) : null;
  }

  const runBadge = (status) => el('span', { class: `badge r-${slug(status)}`, 'data-testid': 'run-status' }, status);

  // ---------------------------------------------------------------- referrals table

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
    $('domain-chip-text').textContent = r.domain ? displayDomain(r.domain) : '';
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

  const hasReferralFilters = () => ['q', 'status', 'substatus', 'type', 'direction', 'updated_since', 'domain'].some((k) => view.ref[k]);

  async function loadReferrals() {
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

  function showEmpty(id, message) {
    const node = $(id);
    node.textContent = message;
    node.hidden = !message;
  }

  function renderReferrals(body) {
    const rows = body.items.map((r) => el('tr', { 'data-testid': 'referral-row', 'data-id': r.id, 'data-status': r.status || '', 'data-domain': r.customer_domain || '', class: r.missing_since ? 'missing' : null },
      el('td', { 'data-label': 'Name' },
        el('button', { type: 'button', class: 'link', 'data-testid': 'referral-open', onclick: () => openReferral(r.id) }, r.name || '(unnamed referral)'),
        r.missing_since ? el('span', { class: 'sub' }, el('span', { class: 'badge missing', title: `Not listed by Partner Center since ${r.missing_since}` }, 'Missing')) : null),
      el('td', { 'data-label': 'Customer' }, r.customer_name || '—', r.customer_country ? el('span', { class: 'sub' }, r.customer_country) : null),
      el('td', { 'data-label': 'Domain' }, r.customer_domain
        ? el('button', { type: 'button', class: 'link quiet', title: `Show only ${r.customer_domain}`, onclick: () => filterDomain(r.customer_domain) }, displayDomain(r.customer_domain))
        : el('span', { class: 'muted' }, '—')),
      el('td', { 'data-label': 'Status', class: 'badges-cell', 'data-testid': 'cell-status' }, statusBadge(r.status) || '—', substatusBadge(r.substatus)),
      el('td', { 'data-label': 'Type' }, r.type || '—', r.direction ? el('span', { class: 'sub' }, r.direction) : null),
      el('td', { 'data-label': 'Deal value', class: 'num nowrap', 'data-testid': 'cell-deal-value' }, money(r.deal_value, r.currency)),
      el('td', { 'data-label': 'Updated', class: 'nowrap' }, timeEl(r.updated_at))));
    $('referrals-body').replaceChildren(...rows);
    const r = view.ref;
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

  function filterDomain(domain) {
    Object.assign(view.ref, { q: '', status: '', substatus: '', type: '', direction: '', updated_since: '', domain });
    view.ref.page = 1;
    showTab('referrals');
  }

  function bindReferralControls() {
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
        else setRef({ sort: column, order: ['updated_at', 'deal_value'].includes(column) ? 'desc' : 'asc' });
      });
    }
  }

  // ---------------------------------------------------------------- detail panel

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

  async function openReferral(id) {
    const seq = ++detailSeq;
    view.referral = id;
    writeUrl(false);
    setDialogHead('Referral', 'Loading…', []);
    $('detail-body').replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
    openDialog();
    try {
      const { body } = await api(`${API}/referrals/${encodeURIComponent(id)}`);
      if (seq !== detailSeq) return;
      renderReferral(body);
    } catch (error) {
      if (seq !== detailSeq) return;
      setDialogHead('Referral', 'Referral not available', []);
      $('detail-body').replaceChildren(el('p', { class: 'error-text', 'data-testid': 'detail-error' }, error.message));
    }
  }

  function renderReferral(r) {
    const p = r.payload || {};
    const details = p.details || {};
    const customer = p.customerProfile || {};
    const address = customer.address || {};
    setDialogHead('Referral', r.name || '(unnamed referral)', [statusBadge(r.status), substatusBadge(r.substatus),
      r.missing_since ? el('span', { class: 'badge missing' }, 'Missing from Partner Center') : null]);

    const events = [
      [r.created_at, 'Created in Partner Center'],
      [r.updated_at, 'Last updated in Partner Center'],
      [r.first_seen_at, 'First synced'],
      [r.last_seen_at, 'Last seen by a sync'],
      [r.missing_since, 'Missing from Partner Center since', 'warn'],
    ].filter(([when]) => when).sort((a, b) => new Date(a[0]) - new Date(b[0]));

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
        ['Expected close', details.closingDateTime ? timeEl(details.closingDateTime, { dateOnly: true }) : null],
        ['Notes', details.notes],
        ['Referral ID', el('code', {}, r.id)],
        ['Engagement ID', r.engagement_id ? el('code', {}, r.engagement_id) : null],
      ]),
      el('h3', {}, 'Customer'),
      kv([
        ['Name', r.customer_name || customer.name],
        ['Domain', r.customer_domain ? el('button', { type: 'button', class: 'link', title: r.customer_domain, onclick: () => { $('detail').close(); filterDomain(r.customer_domain); } }, displayDomain(r.customer_domain)) : null],
        ['Location', [address.city, address.state, r.customer_country || address.country].filter(Boolean).join(', ')],
        ['Size', companySize(customer.size)],
      ]),
      el('h3', {}, 'Customer contacts'),
      people(r.customer_team, 'No customer contacts.', 'customer-team'),
      el('h3', {}, 'Partner team'),
      people(r.team, 'No team members.', 'team'),
      el('h3', {}, 'Timeline'),
      el('ol', { class: 'timeline', 'data-testid': 'timeline' }, events.map(([when, label, cls]) => el('li', { class: cls || null },
        el('div', {}, label), el('div', { class: 'when' }, timeEl(when), ' · ', exactFormat.format(new Date(when)))))),
      el('details', { class: 'raw', 'data-testid': 'raw-json-section' },
        el('summary', { 'data-testid': 'raw-json-toggle' }, 'Raw JSON from Partner Center'),
        el('div', { class: 'raw-tools' }),
        el('pre', { 'data-testid': 'raw-json', tabindex: '0' }, json)),
    );
    const tools = $('detail-body').querySelector('.raw-tools');
    tools.append(el('p', { class: 'small muted' }, r.etag ? `ETag ${r.etag}` : ''), copyButton);
  }

  async function openRun(id) {
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

  function bindDialog() {
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

  // ---------------------------------------------------------------- companies

  let companySeq = 0;
  const COMPANY_PAGE = 50;

  async function loadCompanies() {
    const seq = ++companySeq;
    $('c-q').value = view.co.q;
    $('c-with').checked = view.co.with;
    const p = new URLSearchParams({ limit: String(COMPANY_PAGE), offset: String((view.co.page - 1) * COMPANY_PAGE) });
    if (view.co.q) p.set('q', view.co.q);
    if (view.co.with) p.set('with_referrals', 'true');
    try {
      const { body } = await api(`${API}/companies?${p}`);
      if (seq !== companySeq) return;
      $('companies-body').replaceChildren(...body.items.map((c) => el('tr', { 'data-testid': 'company-row', 'data-domain': c.domain },
        el('td', { 'data-label': 'Domain' }, el('button', { type: 'button', class: 'link', 'data-testid': 'company-open', title: `Show referrals of ${c.domain}`, onclick: () => filterDomain(c.domain) }, displayDomain(c.domain))),
        el('td', { 'data-label': 'Name' }, c.name || '—'),
        el('td', { 'data-label': 'Referrals', class: 'num' }, num(c.referral_count)),
        el('td', { 'data-label': 'Latest status' }, statusBadge(c.latest_status) || '—'),
        el('td', { 'data-label': 'Latest referral', class: 'nowrap' }, timeEl(c.latest_referral_at)))));
      showEmpty('companies-empty', body.total === 0 ? (view.co.q ? 'No companies match.' : 'No companies yet; they appear as referrals are synced.') : '');
      const first = body.total === 0 ? 0 : (view.co.page - 1) * COMPANY_PAGE + 1;
      const last = (view.co.page - 1) * COMPANY_PAGE + body.items.length;
      $('companies-summary').textContent = body.total === 0 ? '' : `${first.toLocaleString()}–${last.toLocaleString()} of ${plural(body.total, 'company', 'companies')}`;
      $('c-prev').disabled = view.co.page <= 1;
      $('c-next').disabled = last >= body.total;
    } catch (error) {
      if (seq !== companySeq) return;
      $('companies-body').replaceChildren();
      showEmpty('companies-empty', `Could not load companies: ${error.message}`);
    }
  }

  function bindCompanyControls() {
    $('company-filters').addEventListener('submit', (e) => e.preventDefault());
    let typing = null;
    const update = (changes) => {
      Object.assign(view.co, changes);
      writeUrl(false);
      loadCompanies();
    };
    $('c-q').addEventListener('input', (e) => {
      clearTimeout(typing);
      typing = setTimeout(() => update({ q: e.target.value.trim(), page: 1 }), 300);
    });
    $('c-with').addEventListener('change', (e) => update({ with: e.target.checked, page: 1 }));
    $('c-prev').addEventListener('click', () => update({ page: Math.max(1, view.co.page - 1) }));
    $('c-next').addEventListener('click', () => update({ page: view.co.page + 1 }));
  }

  // ---------------------------------------------------------------- runs

  let runSeq = 0;

  function counts(run) {
    const parts = [['fetched', run.fetched], ['new', run.inserted], ['updated', run.updated], ['unchanged', run.unchanged], ['missing', run.marked_missing], ['parse errors', run.parse_errors]];
    return el('span', { class: 'counts' }, parts.filter(([label, n]) => n > 0 || label === 'fetched').map(([label, n]) => el('span', {}, el('b', {}, num(n)), ` ${label}`)));
  }

  async function loadRuns() {
    const seq = ++runSeq;
    $('r-status').value = view.runs.status;
    const p = new URLSearchParams({ limit: '50' });
    if (view.runs.status) p.set('status', view.runs.status);
    try {
      const { body } = await api(`${API}/sync-runs?${p}`);
      if (seq !== runSeq) return;
      $('runs-body').replaceChildren(...body.items.map((run) => el('tr', { 'data-testid': 'run-row', 'data-id': String(run.id), 'data-status': run.status },
        el('td', { 'data-label': 'Run' }, el('button', { type: 'button', class: 'link', 'data-testid': 'run-open', onclick: () => openRun(run.id) }, `#${run.id}`)),
        el('td', { 'data-label': 'Trigger' }, run.trigger),
        el('td', { 'data-label': 'Mode' }, run.mode),
        el('td', { 'data-label': 'Status' }, runBadge(run.status), run.dry_run ? el('span', { class: 'badge outline' }, 'dry run') : null),
        el('td', { 'data-label': 'Started', class: 'nowrap' }, timeEl(run.started_at || run.queued_at)),
        el('td', { 'data-label': 'Duration', class: 'num nowrap' }, duration(run.duration_seconds)),
        el('td', { 'data-label': 'Counts' }, counts(run)),
        el('td', { 'data-label': 'Error' }, run.error ? el('span', { class: 'error-text', 'data-testid': 'run-error' }, run.error) : null))));
      showEmpty('runs-empty', body.items.length === 0 ? 'No sync runs yet.' : '');
    } catch (error) {
      if (seq !== runSeq) return;
      $('runs-body').replaceChildren();
      showEmpty('runs-empty', `Could not load sync runs: ${error.message}`);
    }
  }

  function bindRunControls() {
    $('run-filters').addEventListener('submit', (e) => e.preventDefault());
    $('r-status').addEventListener('change', (e) => {
      view.runs.status = e.target.value;
      writeUrl(false);
      loadRuns();
    });
  }

  // ---------------------------------------------------------------- status and Sync now

  const status = { health: null, timer: null, watched: new Set(), announced: new Set(), triggering: false };

  function describe(h) {
    if (!h) return { state: 'unreachable', text: 'Daemon unreachable', detail: 'The status endpoint did not answer; retrying.', tone: 'bad' };
    const run = h.current_run;
    if (run && run.status === 'running') {
      const live = [plural(run.pages, 'page', 'pages'), `${num(run.fetched)} fetched`, `${num(run.inserted)} new`, `${num(run.updated)} updated`];
      return { state: 'running', text: `Syncing · ${live.join(' · ')}`, detail: `Run #${run.id} (${run.trigger}, ${run.mode}) started ${relative(run.started_at || run.queued_at)}.` };
    }
    if (run) return { state: 'queued', text: 'Sync queued', detail: `Run #${run.id} will start shortly.` };
    if (h.database && h.database.reachable === false) return { state: 'unreachable', text: 'Database unreachable', detail: 'The daemon cannot reach PostgreSQL; see its log.', tone: 'bad' };
    if (!h.partner_center_enabled) return { state: 'disabled', text: 'Sync disabled', detail: null };
    if (h.auth && h.auth.state === 'sign_in_required') {
      // The explanation shows as the Sync now hint, below.
      return { state: 'sign_in_required', text: 'Sign-in required', detail: null };
    }
    const last = h.last_run;
    if (!last) return { state: 'idle', text: 'Not synced yet', detail: null };
    if (last.status === 'succeeded') {
      return { state: 'succeeded', text: 'Up to date', detail: `Last run #${last.id}: ${num(last.fetched)} fetched, ${num(last.inserted)} new, ${num(last.updated)} updated.` };
    }
    if (last.status === 'failed') return { state: 'failed', text: 'Last sync failed', detail: last.error || `Run #${last.id} failed.`, tone: 'bad' };
    if (last.status === 'cancelled') return { state: 'cancelled', text: 'Last sync cancelled', detail: last.error || `Run #${last.id} was cancelled.`, tone: 'warn' };
    return { state: 'idle', text: `Last run ${last.status}`, detail: null };
  }

  function renderStatus(h) {
    const d = describe(h);
    const indicator = $('sync-status');
    indicator.dataset.state = d.state;
    indicator.querySelector('.status-text').textContent = d.text;
    const detail = $('status-detail');
    detail.textContent = d.detail || '';
    // Long errors are clamped to three lines; the whole text is on hover and in the Runs tab.
    detail.title = d.detail || '';
    detail.hidden = !d.detail;
    detail.className = `status-detail small${d.tone ? ` ${d.tone}` : ''}`;
    $('version').textContent = h && h.version ? `partner-center-sync ${h.version}` : '';
    setTime($('last-success'), h && h.last_success_at, 'never');
    setTime($('next-run'), h && h.partner_center_enabled ? h.next_run_at : null, h && !h.partner_center_enabled ? 'none (sync disabled)' : 'not scheduled');

    const button = $('sync-now');
    const hint = $('sync-hint');
    const active = d.state === 'running' || d.state === 'queued';
    let reason = '';
    if (h && !h.partner_center_enabled) reason = 'Sync is turned off (HUNTER_PARTNER_CENTER_ENABLED=false); enable it and reload the daemon.';
    else if (h && h.auth && h.auth.state === 'sign_in_required') reason = h.auth.message || 'Sign-in required: run `partner-center-sync login` on the server.';
    button.disabled = Boolean(reason) || active || status.triggering;
    button.classList.toggle('busy', active || status.triggering);
    button.querySelector('.label').textContent = active ? 'Syncing…' : 'Sync now';
    button.title = reason;
    hint.textContent = reason;
    hint.hidden = !reason;
    $('sync-progress').hidden = !active;
  }

  function runMessage(run) {
    return `Run #${run.id}: ${plural(run.inserted, 'referral', 'referrals')} inserted, ${num(run.updated)} updated, ${num(run.unchanged)} unchanged.`;
  }

  /** Announces each watched run once when it ends, then refreshes what it changed. */
  async function announceFinished(h) {
    const current = h.current_run ? h.current_run.id : null;
    for (const id of [...status.watched]) {
      if (id === current) continue;
      let run = h.last_run && h.last_run.id === id ? h.last_run : null;
      if (!run) {
        try {
          run = (await api(`${API}/sync-runs/${id}`)).body;
        } catch (_) {
          status.watched.delete(id);
          continue;
        }
      }
      if (!TERMINAL.has(run.status)) continue;
      status.watched.delete(id);
      if (status.announced.has(id)) continue;
      status.announced.add(id);
      if (run.status === 'succeeded') toast('success', 'Sync finished', runMessage(run));
      else if (run.status === 'failed') toast('error', 'Sync failed', run.error || `Run #${run.id} failed.`);
      else toast('info', `Sync ${run.status}`, run.error || `Run #${run.id} ${run.status}.`);
      loadCurrentTab();
    }
  }

  async function pollStatus() {
    clearTimeout(status.timer);
    let h = null;
    try {
      const response = await fetch('/healthz', { headers: { Accept: 'application/json' }, cache: 'no-store' });
      const body = await response.json();
      // Anything but the health document (a proxy's error page, a 401) means "unknown".
      h = body && typeof body === 'object' && 'partner_center_enabled' in body ? body : null;
    } catch (_) {
      h = null;
    }
    status.health = h;
    try {
      if (h && h.current_run) status.watched.add(h.current_run.id);
      renderStatus(h);
      if (h) {
        await announceFinished(h);
        if (h.current_run && view.tab === 'runs') loadRuns();
      }
    } finally {
      schedulePoll();
    }
  }

  function schedulePoll() {
    clearTimeout(status.timer);
    if (document.hidden) return;
    const active = status.watched.size > 0 || (status.health && status.health.current_run);
    status.timer = setTimeout(pollStatus, active ? POLL_ACTIVE_MS : POLL_IDLE_MS);
  }

  async function syncNow() {
    status.triggering = true;
    renderStatus(status.health);
    try {
      const { body } = await api(`${API}/referrals/sync`, { method: 'POST' });
      status.watched.add(body.task_id);
      if (body.status === 'already_running') toast('info', 'A sync is already running', `Run #${body.task_id} is in progress; its result will show here.`);
      else toast('info', 'Sync queued', `Run #${body.task_id} will start shortly.`);
    } catch (error) {
      toast('error', 'Sync could not start', error.message);
    } finally {
      status.triggering = false;
    }
    pollStatus();
  }

  // ---------------------------------------------------------------- start-up

  function bindTabs() {
    for (const tab of TABS) {
      const button = $(`tab-${tab}`);
      button.addEventListener('click', () => showTab(tab));
      button.addEventListener('keydown', (e) => {
        const i = TABS.indexOf(tab);
        let next = null;
        if (e.key === 'ArrowRight') next = TABS[(i + 1) % TABS.length];
        else if (e.key === 'ArrowLeft') next = TABS[(i + TABS.length - 1) % TABS.length];
        else if (e.key === 'Home') next = TABS[0];
        else if (e.key === 'End') next = TABS[TABS.length - 1];
        if (next) {
          e.preventDefault();
          showTab(next, { focus: true });
        }
      });
    }
  }

  function start() {
    readUrl();
    bindTabs();
    bindReferralControls();
    bindCompanyControls();
    bindRunControls();
    bindDialog();
    $('sync-now').addEventListener('click', syncNow);
    window.addEventListener('popstate', () => {
      readUrl();
      showTab(view.tab, { push: false });
      if (view.referral) openReferral(view.referral);
      else if ($('detail').open) $('detail').close();
    });
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) clearTimeout(status.timer);
      else pollStatus();
    });
    setInterval(tickTimes, 20000);
    showTab(view.tab, { push: false });
    if (view.referral) openReferral(view.referral);
    pollStatus();
  }

  start();
})();
