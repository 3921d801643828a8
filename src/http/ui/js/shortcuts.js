// Keyboard shortcuts, listed in the help panel: `/` search, `r` refresh, `?` help.
// They stay out of the way while typing in a field or with a dialog open, and never
// take a key combined with Ctrl, Alt or Meta (the browser's own shortcuts).

import { $ } from './dom.js';
import { view } from './state.js';
import { pollStatus } from './status.js';
import { loadCurrentTab, showTab } from './tabs.js';
import { toast } from './toast.js';

const SEARCH = { referrals: 'f-q', pipeline: 'f-q', companies: 'c-q' };

function typing(target) {
  return target instanceof Element && Boolean(target.closest('input, select, textarea, [contenteditable=""], [contenteditable="true"]'));
}

function focusSearch() {
  if (!SEARCH[view.tab]) showTab('referrals');
  const input = $(SEARCH[view.tab]);
  input.focus();
  input.select();
}

function refresh() {
  loadCurrentTab();
  pollStatus();
  toast('info', 'Refreshed', null);
}

function openHelp() {
  const help = $('help');
  if (!help.open) help.showModal();
}

/** Escape or a click elsewhere closes an open menu (a <details class="menu">). */
function bindMenus() {
  const menus = () => [...document.querySelectorAll('details.menu[open]')];
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    for (const menu of menus()) {
      menu.open = false;
      menu.querySelector('summary').focus();
    }
  });
  document.addEventListener('click', (e) => {
    for (const menu of menus()) if (!menu.contains(e.target)) menu.open = false;
  });
}

export function bindShortcuts() {
  bindMenus();
  $('help-open').addEventListener('click', openHelp);
  $('help-close').addEventListener('click', () => $('help').close());
  document.addEventListener('keydown', (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.altKey || e.metaKey || e.isComposing) return;
    if (typing(e.target) || document.querySelector('dialog[open]')) return;
    if (e.key === '/') {
      e.preventDefault();
      focusSearch();
    } else if (e.key === 'r' || e.key === 'R') {
      e.preventDefault();
      refresh();
    } else if (e.key === '?') {
      e.preventDefault();
      openHelp();
    }
  });
}
