// The views as ARIA tabs. Each view registers its loader here, so moving between
// views (and following a company to its referrals) needs no import of the views themselves.

import { $ } from './dom.js';
import { NO_FILTERS, TABS, view, writeUrl } from './state.js';

const loaders = {};
const FILTERED_TABS = ['referrals', 'pipeline'];

export function registerTab(name, load) {
  loaders[name] = load;
}

export function loadCurrentTab() {
  loaders[view.tab]();
}

export function showTab(name, { push = true, focus = false } = {}) {
  view.tab = name;
  for (const tab of TABS) {
    const button = $(`tab-${tab}`);
    const selected = tab === name;
    button.setAttribute('aria-selected', String(selected));
    button.tabIndex = selected ? 0 : -1;
    $(`panel-${tab}`).hidden = !selected;
    if (selected && focus) button.focus();
  }
  // Referrals and Pipeline are two views of one filter, so its form serves both.
  $('referral-scope').hidden = !FILTERED_TABS.includes(name);
  $('columns-menu').hidden = name !== 'referrals';
  writeUrl(push);
  loadCurrentTab();
}

/** The referrals of one customer domain, other filters cleared. */
export function filterDomain(domain) {
  Object.assign(view.ref, NO_FILTERS, { domain });
  view.ref.page = 1;
  view.viewName = '';
  showTab('referrals');
}

export function bindTabs() {
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
