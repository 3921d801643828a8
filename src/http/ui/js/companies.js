// Companies derived from referral domains; a click shows the company's referrals.

import { API, api } from './api.js';
import { statusBadge } from './badges.js';
import { $, el, showEmpty } from './dom.js';
import { num, plural, timeEl } from './format.js';
import { view, writeUrl } from './state.js';
import { filterDomain } from './tabs.js';

let companySeq = 0;
const COMPANY_PAGE = 50;

export async function loadCompanies() {
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
      el('td', { 'data-label': 'Domain' }, el('button', { type: 'button', class: 'link', 'data-testid': 'company-open', title: `Show referrals of ${c.domain}`, onclick: () => filterDomain(c.domain) }, c.domain_display || c.domain)),
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

export function bindCompanyControls() {
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
